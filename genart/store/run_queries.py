"""The read side of the ``runs`` table for the run use case and the batch job: typed values back
(``RunSummary``), the SQL here so no orchestration module builds a query.

Writing a run's rows stays on ``Store`` (``start_run``, ``reopen_run``, ``finish_run``).
"""

from __future__ import annotations

from typing import Sequence

from sqlalchemy import select

from genart.store import convert
from genart.store.db import RunRow, Store
from genart.types import RunSummary


def unfinished_runs(store: Store, resume_key: str) -> list[RunSummary]:
    """The runs of one command (``resume_key``, see ``genart.usecases.run.resume_key``) left ``running``
    (killed) or ``failed``, newest first: the candidates a new call of the same command resumes."""
    with store.session() as s:
        rows = s.scalars(select(RunRow).where(RunRow.resume_key == resume_key,
                                              RunRow.status.in_(("running", "failed")))
                         .order_by(RunRow.created_at.desc(), RunRow.id.desc())).all()
        return [convert.run_summary_from_row(r) for r in rows]


def run_summary(store: Store, run_id: str) -> RunSummary | None:
    """One run as stored, or None when the store has no run of that id."""
    with store.session() as s:
        row = s.get(RunRow, run_id)
        return convert.run_summary_from_row(row) if row is not None else None


def run_summaries(store: Store, run_ids: Sequence[str]) -> list[RunSummary]:
    """The stored runs among ``run_ids`` (any order; ids the store does not hold are left out)."""
    if not run_ids:
        return []
    with store.session() as s:
        rows = s.scalars(select(RunRow).where(RunRow.id.in_(list(run_ids)))).all()
        return [convert.run_summary_from_row(r) for r in rows]
