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
