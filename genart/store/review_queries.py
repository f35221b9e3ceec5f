"""The review side of the store: queries and commands over runs, the review log and hand-offs.

The review, hand-off and learning use cases (``genart.usecases``) read and write the store only
through these functions, so every SQL statement of theirs lives here and returns the typed values
of ``genart.types`` (built by ``genart.store.convert``, the one converter). Each takes an open
``Store`` (or a session of one) and leaves opening and caching stores to the caller.
"""

from __future__ import annotations

import json
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from genart.errors import DecisionConflictError, InvalidArgumentError, StoreError, UnknownRunError, UnknownVariantError
from genart.store import convert
from genart.store.batch_tables import BatchTitleRow
from genart.store.db import RankingRow, RunRow, VariantRow
from genart.store.review_tables import ReviewDecisionRow, ReviewHandoffRow
from genart.types import Arm, HandoffRecord, ReviewDecision, RunResult, RunSummary

if TYPE_CHECKING:  # pragma: no cover
    from genart.store.db import Store


def now_iso() -> str:
    """The time a review entry is stamped with: UTC, ISO 8601 with microseconds (they order the log)."""
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


# --- runs -----------------------------------------------------------------------------------------------
def run_row(session: Session, run_id: str) -> RunRow:
    """The run's row.

    Raises:
        UnknownRunError: no such run (the message lists the runs there are, newest first).
    """
    row = session.get(RunRow, run_id) if isinstance(run_id, str) and run_id else None
    if row is None:
        known = session.scalars(select(RunRow.id).order_by(RunRow.created_at.desc())).all()
        raise UnknownRunError(str(run_id), known)
    return row


def run_summaries(store: "Store") -> list[RunSummary]:
    """The runs of a store, newest first.

    Raises:
        ManifestError: a run's stored manifest is not one (the message names the run).
    """
    with store.session() as s:
        rows = s.scalars(select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc())).all()
        return [convert.run_summary_from_row(r) for r in rows]


def run_stamp(store: "Store", run_id: str) -> tuple[Any, ...]:
    """What a run read back depends on, in two cheap queries: a regeneration adds a variant and re-ranks,
    a run finishing changes its status; the same stamp means ``run_result`` would give the same result.

    Raises:
        UnknownRunError: no such run.
    """
    with store.session() as s:
        run = run_row(s, run_id)
        return (run.status, run.finished_at, run.manifest,
                tuple(s.execute(select(func.count(), func.max(VariantRow.pk)).where(VariantRow.run_id == run_id)).one()),
                tuple(s.execute(select(func.count(), func.sum(RankingRow.total), func.max(RankingRow.rank_score))
                                .where(RankingRow.run_id == run_id)).one()))


def run_result(store: "Store", run_id: str) -> RunResult:
    """A stored run read back: key frames, every variant (regenerated ones too) ranked per profile, in
    the manifest's profile order; accepted ones by rank, rejected ones by total.

    Raises:
        UnknownRunError: no such run.
        ManifestError: the run's stored manifest is not one.
    """
    with store.session() as s:
        run = run_row(s, run_id)
        preset, source, manifest = run.preset, run.source, convert.run_manifest_from_row(run)
    kfs = {k.id: k for k in sorted(store.keyframes(run_id, source), key=lambda k: k.t_s)}
    per = store.ranked(run_id, {v.id: v for v in store.variants(run_id, keyframes=kfs)})
    order = [pid for pid, _ in manifest.profiles]
    for pid in per:
        if pid not in order:
            order.append(pid)
    ranked, rejected = [], []
    for pid in order:
        rows = per.get(pid, [])
        good = sorted((r for r in rows if r.rejected is None), key=lambda r: (r.rank is None, r.rank or 0, -r.total))
        bad = sorted((r for r in rows if r.rejected is not None), key=lambda r: -r.total)
        ranked.append((pid, tuple(good)))
        rejected.append((pid, tuple(bad)))
    run_dir = store.root / "runs" / run_id
    return RunResult(run_id=run_id, preset=preset, out_dir=run_dir, manifest_path=run_dir / "manifest.json",
                     keyframes=tuple(kfs.values()), ranked=tuple(ranked), rejected=tuple(rejected))


def variant_ids(store: "Store", run_id: str) -> list[str]:
    """Every variant id of a run (regenerated and rejected ones too)."""
    with store.session() as s:
        return list(s.scalars(select(VariantRow.variant_id).where(VariantRow.run_id == run_id)).all())


def title_run_id(store: "Store", title_id: str, catalog: str | Path | None = None) -> str:
    """The run a batch job made for a catalogue title (the newest, when it ran more than once).

    Raises:
        InvalidArgumentError: no such title in the store (the message lists the titles there are).
    """
    with store.session() as s:
        q = select(BatchTitleRow).where(BatchTitleRow.title_id == title_id)
        if catalog is not None:
            q = q.where(BatchTitleRow.catalog == str(Path(catalog).resolve()))
        rows = list(s.scalars(q.order_by(BatchTitleRow.created_at.desc())))
        if not rows:
            known = sorted(set(s.scalars(select(BatchTitleRow.title_id))))
            raise InvalidArgumentError("title", title_id, "a catalogue title this store ran: " + (", ".join(known)
                                       or "(none: `genart batch CATALOG --out DIR` runs one)"))
        return rows[0].run_id


# --- the review log -------------------------------------------------------------------------------------
def _decision(row: ReviewDecisionRow) -> ReviewDecision:
    return ReviewDecision(decision_id=row.decision_id, run_id=row.run_id, variant_id=row.variant_id,
                          profile_id=row.profile_id, action=row.action, note=row.note or "", reviewer=row.reviewer,
                          created_at=row.created_at, version=row.version)


def decisions(store: "Store", run_id: str, variant_id: str | None = None) -> list[ReviewDecision]:
    """A run's review log (or one variant's), oldest first.

    Raises:
        UnknownRunError: no such run.
    """
    with store.session() as s:
        run_row(s, run_id)
        q = select(ReviewDecisionRow).where(ReviewDecisionRow.run_id == run_id)
        if variant_id is not None:
            q = q.where(ReviewDecisionRow.variant_id == variant_id)
        return [_decision(r) for r in s.scalars(q.order_by(ReviewDecisionRow.decision_id))]


def append_decision(store: "Store", run_id: str, variant_id: str, action: str, reviewer: str, note: str,
                    expected_version: int | None, *, lock: threading.Lock) -> ReviewDecision:
    """Append one log entry as version N + 1; the unique (run, variant, version) makes a race visible.

    Args:
        lock: held while a version is read and written (the process's writers queue on it instead of
            in SQLite's busy handler).

    Raises:
        UnknownRunError, UnknownVariantError: no such run, or no such variant in it.
        DecisionConflictError: ``expected_version`` is not the variant's current version.
        StoreError: the store stayed busy.
    """
    def latest(s: Session) -> ReviewDecisionRow | None:
        return s.scalars(select(ReviewDecisionRow).where(ReviewDecisionRow.run_id == run_id,
                                                         ReviewDecisionRow.variant_id == variant_id)
                         .order_by(ReviewDecisionRow.version.desc()).limit(1)).first()

    with store.session() as s:
        run_row(s, run_id)
        vrow = s.scalars(select(VariantRow).where(VariantRow.run_id == run_id, VariantRow.variant_id == variant_id)).first()
        if vrow is None:
            raise UnknownVariantError(run_id, variant_id)
        profile_id = vrow.profile_id
    last_error: Exception | None = None
    for attempt in range(50):
        with lock, store.session() as s:
            current = s.scalar(select(func.max(ReviewDecisionRow.version)).where(
                ReviewDecisionRow.run_id == run_id, ReviewDecisionRow.variant_id == variant_id)) or 0
            if expected_version is not None and current != expected_version:
                last = latest(s)
                raise DecisionConflictError(variant_id, expected_version, current, by=last.reviewer if last else "",
                                            action=last.action if last else "",
                                            at=last.created_at[:19].replace("T", " ") + " UTC" if last else "")
            row = ReviewDecisionRow(run_id=run_id, variant_id=variant_id, profile_id=profile_id, version=current + 1,
                                    action=action, note=note, reviewer=reviewer, created_at=now_iso())
            try:
                s.add(row)
                s.commit()
                return _decision(row)
            except (IntegrityError, OperationalError) as exc:  # another writer took version N + 1 first
                s.rollback()
                last_error = exc
        time.sleep(0.005 * (attempt + 1))
    raise StoreError(f"could not record the decision on variant {variant_id}: {last_error}")


# --- hand-offs ------------------------------------------------------------------------------------------
def _handoff_record(row: ReviewHandoffRow, store: "Store") -> HandoffRecord:
    return HandoffRecord(run_id=row.run_id, test_id=row.test_id, reviewer=row.reviewer, created_at=row.created_at,
                         arms=tuple(convert.arm_from_json(d, store.resolve) for d in json.loads(row.arms)))


def handoffs(store: "Store", run_id: str) -> list[HandoffRecord]:
    """The bandit tests a run's variants were handed to, oldest first.

    Raises:
        UnknownRunError: no such run.
    """
    with store.session() as s:
        run_row(s, run_id)
        rows = s.scalars(select(ReviewHandoffRow).where(ReviewHandoffRow.run_id == run_id)
                         .order_by(ReviewHandoffRow.pk))
        return [_handoff_record(r, store) for r in rows]


def record_handoff(store: "Store", run_id: str, test_id: str, reviewer: str, arms: Sequence[Arm]) -> HandoffRecord:
    """Log who handed which arms of a run to a test: one record per test, so a hand-off repeated (or
    raced from two sessions) returns the first record and changes nothing.

    Raises:
        StoreError: the store stayed busy.
    """
    def first(s: Session) -> ReviewHandoffRow | None:
        return s.scalars(select(ReviewHandoffRow).where(ReviewHandoffRow.test_id == test_id)
                         .order_by(ReviewHandoffRow.pk).limit(1)).first()

    with store.session() as s:
        old = first(s)
        if old is not None:
            return _handoff_record(old, store)
    row = ReviewHandoffRow(run_id=run_id, test_id=test_id, reviewer=reviewer, created_at=now_iso(),
                           arms=json.dumps([convert.arm_json(a, store.rel) for a in arms]))
    for attempt in range(20):
        with store.session() as s:
            try:
                s.add(row)
                s.commit()
                return _handoff_record(row, store)
            except IntegrityError:  # another hand-off of this test won the one row: it is the record
                s.rollback()
                won = first(s)
                if won is not None:
                    return _handoff_record(won, store)
            except OperationalError:  # SQLite busy: another writer's transaction; try again
                s.rollback()
        time.sleep(0.01 * (attempt + 1))
        row = ReviewHandoffRow(run_id=run_id, test_id=test_id, reviewer=reviewer, created_at=row.created_at,
                               arms=row.arms)
    raise StoreError(f"could not record the hand-off of run '{run_id}' to test '{test_id}': the store stayed busy")
