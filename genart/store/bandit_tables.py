"""The bandit stage's tables, on the shared ``Base`` so one ``create_all`` makes the whole store.

- ``bandit_tests``: one row per test, its policy and its configuration (JSON), running or stopped.
- ``bandit_arms``: the arms per (test, segment), their cold-start prior and the running totals the
  Beta policies decide from (impressions, outcomes, reward sum). The totals change in the same
  transaction as the exposure or outcome that moves them, so they always equal the log.
- ``bandit_exposures``: every decision with the propensity it was made with and the full
  distribution over the segment's arms (for offline evaluation), committed before ``assign``
  returns. ``exposure_id`` is unique.
- ``bandit_outcomes``: at most one reward per exposure (a unique exposure id), which is what
  makes ``record`` idempotent even across processes; ``seq`` orders them for incremental replay.
- ``bandit_allocations``: per (test, segment), the distribution over arms last served and when,
  which the change-effect cap measures the next one against (updated in the same transaction as
  the exposures it served).

The learning loop's audit trail (``genart.learning``), every step traceable:

- ``bandit_triggers``: a segment found weak (which test, which report numbers, why), once per
  state of the segment's arms (``arms_key``: a unique constraint, so two processes checking at once
  make one trigger).
- ``bandit_proposals``: exactly one per trigger (a unique ``trigger_id``): the run and profile its
  variants are made in.
- ``bandit_candidates``: a proposal's sampled generation settings, one row each: the model's
  predicted reward for it, the variant it became, its ranking and review outcome, and the arm it
  was added as. ``bandit_arms.proposal_id`` points back from the arm.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from genart.store.schema import Base

# SQLite only auto-increments an INTEGER PRIMARY KEY; PostgreSQL gets a BIGINT identity.
SeqType = BigInteger().with_variant(Integer(), "sqlite")


class BanditTestRow(Base):
    __tablename__ = "bandit_tests"
    test_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    policy: Mapped[str] = mapped_column(String(32))
    config: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(16), default="running")  # running | stopped
    created_at: Mapped[float] = mapped_column(Float)
    stopped_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    winners: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {segment: arm_id}
    # who let it run: a reviewer's name, or "auto-approve" when the job was told to (--auto-approve)
    approved_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    approved_at: Mapped[float | None] = mapped_column(Float, nullable=True)
    auto_approve: Mapped[bool | None] = mapped_column(Boolean, nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the run its arms came from
    origin: Mapped[str | None] = mapped_column(String(16), nullable=True)  # cli | app | batch | api
    arms_version: Mapped[int | None] = mapped_column(Integer, nullable=True)  # bumped when arms are added


class BanditArmRow(Base):
    __tablename__ = "bandit_arms"
    test_id: Mapped[str] = mapped_column(ForeignKey("bandit_tests.test_id"), primary_key=True)
    segment: Mapped[str] = mapped_column(String(128), primary_key=True)
    arm_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[int] = mapped_column(Integer)
    variant_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    image_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    is_control: Mapped[bool] = mapped_column(Boolean, default=False)
    prior_mean: Mapped[float] = mapped_column(Float, default=0.5)
    profile_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    features: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of floats
    impressions: Mapped[int] = mapped_column(BigInteger, default=0)
    outcomes: Mapped[int] = mapped_column(BigInteger, default=0)
    reward_sum: Mapped[float] = mapped_column(Float, default=0.0)
    prior_strength: Mapped[float | None] = mapped_column(Float, nullable=True)  # None: the test's prior_weight
    facts: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON {fact: value}: what the artwork shows
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    proposal_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # the loop's proposal it came from
    added_at: Mapped[float | None] = mapped_column(Float, nullable=True)


class BanditExposureRow(Base):
    __tablename__ = "bandit_exposures"
    __table_args__ = (
        ForeignKeyConstraint(["test_id", "segment", "arm_id"],
                             ["bandit_arms.test_id", "bandit_arms.segment", "bandit_arms.arm_id"]),
        Index("ix_bandit_exposures_test_seq", "test_id", "seq"),
        Index("ix_bandit_exposures_user", "test_id", "user_id", "segment"),
    )
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    exposure_id: Mapped[str] = mapped_column(String(64), unique=True)
    test_id: Mapped[str] = mapped_column(String(128))
    segment: Mapped[str] = mapped_column(String(128))
    arm_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    propensity: Mapped[float] = mapped_column(Float)
    probs: Mapped[str] = mapped_column(Text)  # JSON list over the segment's arms, in arm position order
    features: Mapped[str] = mapped_column(Text, default="[]")  # JSON list of the context's features
    policy: Mapped[str] = mapped_column(String(32))
    sticky_of: Mapped[str | None] = mapped_column(String(64), nullable=True)  # reused exposure, not a fresh draw
    t: Mapped[float] = mapped_column(Float)


class BanditOutcomeRow(Base):
    __tablename__ = "bandit_outcomes"
    __table_args__ = (Index("ix_bandit_outcomes_test_seq", "test_id", "seq"),)
    seq: Mapped[int] = mapped_column(SeqType, primary_key=True, autoincrement=True)
    exposure_id: Mapped[str] = mapped_column(ForeignKey("bandit_exposures.exposure_id"), unique=True)
    test_id: Mapped[str] = mapped_column(String(128))
    value: Mapped[float] = mapped_column(Float)  # what was observed (a click, minutes watched)
    reward: Mapped[float] = mapped_column(Float)  # the test's reward rule applied, in [0, 1]
    counted: Mapped[bool] = mapped_column(Boolean, default=True)  # False for a late reward
    t: Mapped[float] = mapped_column(Float)


class BanditAllocationRow(Base):
    __tablename__ = "bandit_allocations"
    test_id: Mapped[str] = mapped_column(ForeignKey("bandit_tests.test_id"), primary_key=True)
    segment: Mapped[str] = mapped_column(String(128), primary_key=True)
    probs: Mapped[str] = mapped_column(Text)  # JSON list over the segment's arms, in position order
    t: Mapped[float] = mapped_column(Float)  # when it was served
    served: Mapped[int] = mapped_column(BigInteger, default=0)  # fresh decisions drawn from it


class BanditTriggerRow(Base):
    __tablename__ = "bandit_triggers"
    __table_args__ = (UniqueConstraint("test_id", "segment", "arms_key", name="uq_bandit_trigger_arms"),)
    trigger_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    test_id: Mapped[str] = mapped_column(ForeignKey("bandit_tests.test_id"), index=True)
    segment: Mapped[str] = mapped_column(String(128))
    arms_key: Mapped[str] = mapped_column(String(64))  # hash of the segment's arm ids when it fired
    t: Mapped[float] = mapped_column(Float)
    reason: Mapped[str] = mapped_column(Text)
    evidence: Mapped[str] = mapped_column(Text)  # JSON: impressions, P(beats control), lift per arm


class BanditProposalRow(Base):
    __tablename__ = "bandit_proposals"
    proposal_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    trigger_id: Mapped[str] = mapped_column(ForeignKey("bandit_triggers.trigger_id"), unique=True)  # one each
    test_id: Mapped[str] = mapped_column(String(128), index=True)
    segment: Mapped[str] = mapped_column(String(128))
    run_id: Mapped[str | None] = mapped_column(String(64), nullable=True)  # where its variants are made
    profile_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(16))  # open (candidates waiting) | done | failed
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[float] = mapped_column(Float)


class BanditCandidateRow(Base):
    __tablename__ = "bandit_candidates"
    candidate_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    proposal_id: Mapped[str] = mapped_column(ForeignKey("bandit_proposals.proposal_id"), index=True)
    test_id: Mapped[str] = mapped_column(String(128), index=True)
    segment: Mapped[str] = mapped_column(String(128))
    setting_key: Mapped[str] = mapped_column(String(32))
    setting: Mapped[str] = mapped_column(Text)  # JSON: frame, face/character, aspect, grade, prompt edit, strength
    predicted: Mapped[float] = mapped_column(Float)  # the model's mean reward rate for the setting
    predicted_low: Mapped[float] = mapped_column(Float)
    predicted_high: Mapped[float] = mapped_column(Float)
    sampled: Mapped[float] = mapped_column(Float)  # the rate in the Thompson draw that picked it
    # proposed -> queued (waiting for review) -> added | rejected (by the ranking or a reviewer) | failed
    status: Mapped[str] = mapped_column(String(16))
    variant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    arm_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[float] = mapped_column(Float)
