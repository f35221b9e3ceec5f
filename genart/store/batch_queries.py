"""The batch job's ledger (``genart.store.batch_tables``) as query and command functions over a
``Store``: typed ``BatchUnit`` values back, and each unit committed in the same transaction as its
results (the exactly-once guarantee of ``genart batch``), the SQL here.
"""

from __future__ import annotations

import json
from datetime import datetime, timezone
from typing import Any, Mapping, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from genart.errors import BatchError
from genart.store import convert
from genart.store.batch_tables import BatchTitleRow, BatchUnitRow
from genart.store.db import Store
from genart.types import BatchUnit, Variant


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# --- reading ----------------------------------------------------------------------------------------
def units(store: Store, kind: str, run_ids: Sequence[str] | None = None) -> list[BatchUnit]:
    """The finished units of ``kind`` (``variant``, ``rank``, ``handoff``), of every run or of ``run_ids``."""
    q = select(BatchUnitRow).where(BatchUnitRow.kind == kind)
    if run_ids is not None:
        q = q.where(BatchUnitRow.run_id.in_(list(run_ids)))
    with store.session() as s:
        return [convert.batch_unit_from_row(r) for r in s.scalars(q)]


def count_units(store: Store, kind: str) -> int:
    """How many units of ``kind`` the ledger holds (every run): what a progress bar polls."""
    with store.session() as s:
        return int(s.scalar(select(func.count()).select_from(BatchUnitRow).where(BatchUnitRow.kind == kind)) or 0)


def has_batch_title(store: Store, run_id: str) -> bool:
    """Whether the run is recorded as a title of a catalogue (its ``batch_titles`` row)."""
    with store.session() as s:
        return s.get(BatchTitleRow, run_id) is not None


# --- writing ----------------------------------------------------------------------------------------
def add_batch_title(store: Store, run_id: str, title_id: str, catalog: str, entry: Mapping[str, Any]) -> None:
    """Record the run as the title ``title_id`` of ``catalog`` (its resolved entry kept as JSON); a second
    call for the same run leaves the first row."""
    with store.session() as s, s.begin():
        if s.get(BatchTitleRow, run_id) is None:
            s.add(BatchTitleRow(run_id=run_id, title_id=title_id, catalog=catalog, entry=json.dumps(entry),
                                created_at=_now()))


def finish_batch_title(store: Store, run_id: str) -> None:
    """The title is finished (handed off, result files written): stamp it once."""
    with store.session() as s, s.begin():
        row = s.get(BatchTitleRow, run_id)
        if row is not None and row.finished_at is None:
            row.finished_at = _now()


def commit_unit(store: Store, unit: BatchUnit) -> None:
    """Mark a title-level unit (``rank`` of a profile, ``handoff``) done; already done, nothing changes."""
    with store.session() as s, s.begin():
        exists = s.scalars(select(BatchUnitRow.pk).where(
            BatchUnitRow.run_id == unit.run_id, BatchUnitRow.kind == unit.kind,
            BatchUnitRow.profile_id == unit.profile_id, BatchUnitRow.keyframe_id == unit.keyframe_id,
            BatchUnitRow.idx == unit.idx)).first()
        if exists is None:
            s.add(BatchUnitRow(**convert.batch_unit_row_fields(unit)))


def commit_variants(store: Store, made: Sequence[tuple[BatchUnit, Variant, bytes]], software: str,
                    signer: object = None) -> list[Variant]:
    """Store variants (their encoded files ``bytes``) and their ``variant`` units in one transaction.

    Each variant goes through ``Store.stage_variant`` (the same provenance and rows as
    ``Store.add_variants``) inside this transaction, so its ledger row commits with it.

    Returns:
        The stored variants (paths in the store), in the order given.

    Raises:
        BatchError: one of the units is committed already (two jobs on one output folder).
    """
    stored = []
    try:
        with store.session() as s, s.begin():
            for unit, v, data in made:
                stored.append(store.stage_variant(s, unit.run_id, v, software, signer, data=data))
                s.add(BatchUnitRow(**convert.batch_unit_row_fields(unit)))
    except IntegrityError as exc:
        keys = ", ".join("/".join(map(str, unit.key)) for unit, _, _ in made[:3])
        raise BatchError(f"a variant unit was already committed by another worker ({keys}...): {exc.orig}",
                         hint="run one job per output folder; finished units are kept, run it again") from None
    return stored
