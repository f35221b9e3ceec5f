"""Who builds a bandit tester: one per store, on the SQL exposure log of the run store's database.

The tester (:class:`genart.bandit.tester.Tester`) is thread-safe and caches each test's arms and its
contextual model, so a process keeps one per store URL: the CLI's commands, the app, the batch job, the
learning loop and the HTTP service share it, and a model is rebuilt from the log once, not per call.
The tester, the log and SQLAlchemy load on the first call: the facade imports this module at start-up.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pragma: no cover
    from genart.bandit.tester import Tester

_TESTERS: dict[str, "Tester"] = {}
_TESTERS_LOCK = threading.Lock()


def open_tester(out: str | Path | None, db: str | None = None) -> "Tester":
    """The tester of an output folder's store, made once per store URL in this process.

    Args:
        out: the output folder (its ``genart.sqlite``, the run store ``genart run`` / ``app`` / ``batch``
            wrote); None: the database ``db`` names (a URL or SQLite file, for the bandit commands given
            only a store), else the default store (``$GENART_BANDIT_URL``, ``./genart.sqlite``, ...).
        db: the run store's database URL, when it is not the folder's ``genart.sqlite``.

    Returns:
        The tester, shared by every caller on the same store.

    Raises:
        StoreError: the database cannot be opened.
    """
    from genart.bandit.tester import Tester
    from genart.store.bandit_engine import locate, run_store_url
    from genart.store.exposure_log import SqlExposureLog

    url = locate(db) if out is None else run_store_url(out, db)
    with _TESTERS_LOCK:
        tester = _TESTERS.get(url)
        if tester is None:
            tester = _TESTERS[url] = Tester(SqlExposureLog(url))
        return tester
