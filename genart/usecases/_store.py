"""What the use cases share (private to ``genart.usecases``): the run store opened once per process and
folder, one write lock per store, the cache of runs read back, and the check of a reviewer's name."""

from __future__ import annotations

import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from genart.types import RunResult
from genart.errors import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from genart.store.db import Store

_MAX_REVIEWER = 128


_STORES: dict[tuple[str, str | None], "Store"] = {}


_STORES_LOCK = threading.Lock()


_WRITE_LOCKS: dict[str, threading.Lock] = {}


_RUNS: dict[tuple[str, str], tuple[tuple[object, ...], RunResult]] = {}  # (store, run) -> (what it depends on, load_run)


@contextmanager
def _review_store(out: str | Path, db: str | None = None) -> Iterator["Store"]:
    """The run store with the review tables created, opened once per process and folder.

    Every review call (a decision, a gallery, a history) used to open the store afresh: a new engine,
    the schema checked table by table, the connections closed again; with several reviewers that was
    most of a decision's time. The store is thread-safe (a session per call), so one is kept per
    folder; it is opened again if its database file was removed.
    """
    import genart.store.review_tables  # noqa: F401  (registers the tables before Store's create_all)
    from genart.store.db import Store

    key = (str(Path(out).resolve()), db)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is not None and db is None and not (store.root / "genart.sqlite").exists():
            store.engine.dispose()
            store = None
        if store is None:  # rooted at the absolute folder: the working directory may change later
            store = _STORES[key] = Store(Path(out).resolve(), db)
    yield store


def _write_lock(store: "Store") -> threading.Lock:
    """One decision written at a time per store in this process: writers queue here (and wake at once)
    instead of in SQLite's busy handler, whose back-off sleeps grow while the database is free."""
    with _STORES_LOCK:
        return _WRITE_LOCKS.setdefault(store.url, threading.Lock())


def _check_reviewer(reviewer: object) -> str:
    name = reviewer.strip() if isinstance(reviewer, str) else ""
    if not name or len(name) > _MAX_REVIEWER:
        raise InvalidArgumentError("reviewer", reviewer, f"your name (1 to {_MAX_REVIEWER} characters)")
    return name
