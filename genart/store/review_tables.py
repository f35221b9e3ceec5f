"""The review app's tables, on the shared ``Base`` so one ``create_all`` makes the whole store.

- ``review_decisions``: the append-only audit log of what reviewers decided about variants (approve,
  reject, flag, and the ``regenerated`` entry a regeneration leaves on its new variant), with who and
  when. Rows are never updated or deleted. ``version`` numbers a variant's entries 1, 2, 3, ... and
  ``(run_id, variant_id, version)`` is unique: two reviewers who both decide on version N race for
  the one row N + 1, the database lets exactly one of them have it, and the other is told instead of
  silently overwriting (optimistic concurrency that works on SQLite and PostgreSQL alike).
- ``review_handoffs``: which approved variants were sent to which bandit test, by whom, when; one row
  per test (a unique index), so a hand-off repeated or raced is recorded once. Arms' image paths are
  kept relative to the store's folder.

Import this module before constructing ``genart.store.db.Store`` so its ``create_all`` makes them
(``genart.api``'s review functions do).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genart.store.schema import Base


class ReviewDecisionRow(Base):
    __tablename__ = "review_decisions"
    __table_args__ = (
        UniqueConstraint("run_id", "variant_id", "version", name="uq_review_decision_version"),
        Index("ix_review_decisions_run", "run_id", "decision_id"),
    )
    decision_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"))
    variant_id: Mapped[str] = mapped_column(String(64))
    profile_id: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # approve | reject | flag | regenerated
    note: Mapped[str] = mapped_column(Text, default="")
    reviewer: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[str] = mapped_column(String(40))  # UTC ISO 8601, microseconds


class ReviewHandoffRow(Base):
    __tablename__ = "review_handoffs"
    # one hand-off record per test: two reviewers handing off at once race for the one row, the loser
    # reads the winner's (the store adds this index to older stores whose rows do not repeat a test)
    __table_args__ = (Index("uq_review_handoff_test", "test_id", unique=True),)
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    test_id: Mapped[str] = mapped_column(String(128))
    reviewer: Mapped[str] = mapped_column(String(128))
    created_at: Mapped[str] = mapped_column(String(40))
    arms: Mapped[str] = mapped_column(Text)  # JSON list of the arms handed off
