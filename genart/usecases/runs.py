"""Runs read back from the store: the list, one run with its ranked variants, a catalogue title's run."""

from __future__ import annotations

from pathlib import Path

from genart.types import RunResult, RunSummary
from genart.usecases._store import _RUNS, _STORES_LOCK, _review_store


def list_runs(out: str | Path = "runs", *, db: str | None = None) -> list[RunSummary]:
    """The runs of a store, newest first (an empty list when the folder holds no store yet)."""
    from genart.store import review_queries


    if db is None and not (Path(out) / "genart.sqlite").exists():
        return []
    with _review_store(out, db) as store:
        return review_queries.run_summaries(store)


def load_run(out: str | Path, run_id: str, *, db: str | None = None) -> RunResult:
    """A stored run read back: key frames, every variant (regenerated ones too) ranked per profile.

    Raises:
        UnknownRunError: no such run in the store (the message lists the runs there are).
    """
    from genart.store import review_queries


    with _review_store(out, db) as store:
        # the same stamp (status, variants, rankings) gives back the same (frozen) result
        stamp = review_queries.run_stamp(store, run_id)
        key = (store.url, run_id)
        with _STORES_LOCK:
            hit = _RUNS.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        result = review_queries.run_result(store, run_id)
        with _STORES_LOCK:
            _RUNS[key] = (stamp, result)
            while len(_RUNS) > 64:  # the runs being reviewed now, not every run ever opened
                _RUNS.pop(next(iter(_RUNS)))
        return result


def title_run(out: str | Path, title_id: str, *, catalog: str | Path | None = None, db: str | None = None) -> str:
    """The run a batch job made for a catalogue title (the newest, when it ran more than once).

    Raises:
        InvalidArgumentError: no such title in the store (the message lists the titles there are).
    """
    from genart.store import review_queries


    with _review_store(out, db) as store:
        return review_queries.title_run_id(store, title_id, catalog)
