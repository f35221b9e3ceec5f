"""The bandit tester of a run store: one per store in this process."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

from genart.usecases._store import _review_store

if TYPE_CHECKING:  # pragma: no cover
    from genart.bandit.tester import Tester


_TESTERS: dict[str, "Tester"] = {}


_TESTERS_LOCK = threading.Lock()


def open_tester(out: str | Path | None, db: str | None = None) -> "Tester":
    """One ``genart.bandit.tester.Tester`` per store (it is thread-safe), on the run store's database
    (``out`` None: the database ``db`` names, for the bandit commands given only a URL)."""
    from genart.bandit.tester import Tester

    if out is None:
        from genart.bandit.store import locate

        url = locate(db)
    else:
        with _review_store(out, db) as store:
            url = store.url
    with _TESTERS_LOCK:
        tester = _TESTERS.get(url)
        if tester is None:
            tester = _TESTERS[url] = Tester(url)
        return tester
