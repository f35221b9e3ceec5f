"""The learning loop's side of the store: its audit trail (trigger -> proposal -> candidates) and
what the segment preference model learns from (every arm's facts and traffic, CLIP embeddings).

Every SQL statement of the learning use cases (``genart.usecases.loop``, ``.preferences``,
``.facts``) lives here. The bandit tables are the tester's: these functions run inside the
transaction the caller opened on the tester's engine (``genart.store.bandit_engine.read_txn`` /
``write_txn``), so a step of the loop reads and writes with the tester's own locking.
"""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any, ContextManager, Iterable, Mapping, NamedTuple, Sequence

from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from genart.store.bandit_tables import (
    BanditArmRow,
    BanditCandidateRow,
    BanditProposalRow,
    BanditTestRow,
    BanditTriggerRow,
)
from genart.store.embedding_tables import EmbeddingRow

if TYPE_CHECKING:  # pragma: no cover
    from genart.store.db import Store


class ArmTraffic(NamedTuple):
    """One arm with measured facts: what it showed and how it did."""

    test_id: str
    segment: str
    facts: dict[str, float]
    impressions: int
    outcomes: int
    reward_sum: float


class QueuedCandidate(NamedTuple):
    """A proposed variant waiting for a person's review."""

    candidate_id: str
    proposal_id: str
    run_id: str
    segment: str
    variant_id: str


class SegmentHistory(NamedTuple):
    """What decides whether a segment may trigger the loop again."""

    waiting: bool  # a proposal of its is still proposed or queued
    seen_arms: bool  # its present arms triggered already
    last_impressions: int | None  # its impressions at its last trigger


# --- what the preference model learns from -----------------------------------------------------------
def embedding_vectors(store: "Store", image_keys: Iterable[str]) -> list[tuple[str, str, bytes]]:
    """``(image key, model fingerprint, float32 vector bytes)`` of every cached embedding of these images."""
    with store.session() as s:
        rows = s.scalars(select(EmbeddingRow).where(EmbeddingRow.image_key.in_(sorted(set(image_keys)))))
        return [(r.image_key, r.fingerprint, r.vector) for r in rows]


def arm_traffic(conn: Connection) -> tuple[dict[str, str], list[ArmTraffic]]:
    """Every test's config (JSON, by test id), and every arm with facts and its traffic."""
    tests = {r.test_id: r.config for r in conn.execute(select(BanditTestRow))}
    arms = [ArmTraffic(a.test_id, a.segment, json.loads(a.facts), a.impressions, a.outcomes, a.reward_sum)
            for a in conn.execute(select(BanditArmRow).where(BanditArmRow.facts.is_not(None)))]
    return tests, arms


# --- the loop's audit trail -------------------------------------------------------------------------------
def tried_setting_keys(conn: Connection, test_id: str) -> set[str]:
    """The settings the loop proposed for a test already."""
    return {r[0] for r in conn.execute(select(BanditCandidateRow.setting_key)
                                       .where(BanditCandidateRow.test_id == test_id))}


def segment_history(conn: Connection, test_id: str, segment: str, arms_key: str) -> SegmentHistory:
    waiting = conn.execute(select(BanditCandidateRow.candidate_id).where(
        BanditCandidateRow.test_id == test_id, BanditCandidateRow.segment == segment,
        BanditCandidateRow.status.in_(("proposed", "queued"))).limit(1)).first() is not None
    seen = conn.execute(select(BanditTriggerRow.trigger_id).where(
        BanditTriggerRow.test_id == test_id, BanditTriggerRow.segment == segment,
        BanditTriggerRow.arms_key == arms_key)).first() is not None
    last = conn.execute(select(BanditTriggerRow.evidence).where(
        BanditTriggerRow.test_id == test_id, BanditTriggerRow.segment == segment)
        .order_by(BanditTriggerRow.t.desc()).limit(1)).first()
    return SegmentHistory(waiting, seen, None if last is None else int(json.loads(last[0])["impressions"]))


def add_trigger(txn: ContextManager[Connection], *, trigger_id: str, proposal_id: str, test_id: str, segment: str,
                arms_key: str, reason: str, evidence: Mapping[str, object], run_id: str) -> bool:
    """A trigger and its one open proposal, written in the write transaction ``txn`` (entered here)
    under the unique (test, segment, arms) key. Returns False, writing nothing, when another process
    triggered the same segment state first."""
    now = time.time()
    try:
        with txn as conn:
            conn.execute(insert(BanditTriggerRow).values(
                trigger_id=trigger_id, test_id=test_id, segment=segment, arms_key=arms_key, t=now, reason=reason,
                evidence=json.dumps(evidence)))
            conn.execute(insert(BanditProposalRow).values(
                proposal_id=proposal_id, trigger_id=trigger_id, test_id=test_id, segment=segment,
                run_id=run_id, profile_id=None, status="open", created_at=now))
    except IntegrityError:
        return False
    return True


def set_proposal(conn: Connection, proposal_id: str, status: str, note: str | None = None, **values: Any) -> None:
    conn.execute(update(BanditProposalRow).where(BanditProposalRow.proposal_id == proposal_id)
                 .values(status=status, note=note, **values))


def add_candidates(conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
    """The settings a proposal picked, one ``bandit_candidates`` row each (columns by name)."""
    conn.execute(insert(BanditCandidateRow), [dict(r) for r in rows])


def set_candidate(conn: Connection, candidate_id: str, status: str, **values: Any) -> None:
    conn.execute(update(BanditCandidateRow).where(BanditCandidateRow.candidate_id == candidate_id)
                 .values(status=status, updated_at=time.time(), **values))


def queued_candidates(conn: Connection, test_id: str) -> list[QueuedCandidate]:
    """A test's proposed variants waiting for review, with the run each was made in."""
    rows = conn.execute(select(BanditCandidateRow, BanditProposalRow.run_id)
                        .join(BanditProposalRow, BanditProposalRow.proposal_id == BanditCandidateRow.proposal_id)
                        .where(BanditCandidateRow.test_id == test_id, BanditCandidateRow.status == "queued")).all()
    return [QueuedCandidate(r.candidate_id, r.proposal_id, r.run_id, r.segment, r.variant_id) for r in rows]


def close_done_proposals(conn: Connection, test_id: str) -> None:
    """Open proposals of a test with no candidate left to decide become ``done``."""
    open_ids = [r[0] for r in conn.execute(select(BanditProposalRow.proposal_id).where(
        BanditProposalRow.test_id == test_id, BanditProposalRow.status == "open"))]
    for pid in open_ids:
        left = conn.execute(select(BanditCandidateRow.candidate_id).where(
            BanditCandidateRow.proposal_id == pid, BanditCandidateRow.status.in_(("proposed", "queued")))).first()
        if left is None:
            conn.execute(update(BanditProposalRow).where(BanditProposalRow.proposal_id == pid).values(status="done"))


def proposal_rows(conn: Connection, test_id: str) -> tuple[Sequence[Any], Sequence[Any]]:
    """A test's proposals oldest first (each with its trigger's ``reason``), and its candidates: the rows,
    read by column name (the bandit stage's ``ProposalRecord`` / ``CandidateRecord`` are made of them)."""
    props = conn.execute(select(BanditProposalRow, BanditTriggerRow.reason)
                         .join(BanditTriggerRow, BanditTriggerRow.trigger_id == BanditProposalRow.trigger_id)
                         .where(BanditProposalRow.test_id == test_id).order_by(BanditProposalRow.created_at)).all()
    cands = conn.execute(select(BanditCandidateRow).where(BanditCandidateRow.test_id == test_id)
                         .order_by(BanditCandidateRow.candidate_id)).all()
    return props, cands
