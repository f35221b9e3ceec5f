"""The batch job's ledger (``genart batch``), on the shared ``Base`` so one ``create_all`` makes it.

- ``batch_titles``: one row per title run of a catalogue: which run holds it, its catalogue entry,
  and when it was finished (hand-off done, summary written).
- ``batch_units``: one row per finished unit of work, written in the same transaction as the unit's
  results, so a row exists exactly when its results do (a kill, even SIGKILL, leaves either both
  or neither). Units: ``variant`` (one variant slot: profile, key frame, index), ``rank`` (one
  profile of a title ranked), ``handoff`` (the title's top-k handed to the bandit stage). The unique
  constraint makes a second completion of the same unit impossible, whichever process tries.
  ``device_s`` is the accelerator (or CPU) time the unit took; ``worker`` who did it.
"""

from __future__ import annotations

from sqlalchemy import Float, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from genart.store.schema import Base


class BatchTitleRow(Base):
    __tablename__ = "batch_titles"
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    title_id: Mapped[str] = mapped_column(String(64), index=True)
    catalog: Mapped[str] = mapped_column(Text)
    entry: Mapped[str] = mapped_column(Text)  # the resolved catalogue entry, JSON
    created_at: Mapped[str] = mapped_column(String(40))
    finished_at: Mapped[str | None] = mapped_column(String(40), nullable=True)


class BatchUnitRow(Base):
    __tablename__ = "batch_units"
    __table_args__ = (UniqueConstraint("run_id", "kind", "profile_id", "keyframe_id", "idx", name="uq_batch_unit"),)
    pk: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))  # variant | rank | handoff
    profile_id: Mapped[str] = mapped_column(String(64), default="")
    keyframe_id: Mapped[str] = mapped_column(String(64), default="")
    idx: Mapped[int] = mapped_column(Integer, default=-1)
    variant_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    device_s: Mapped[float] = mapped_column(Float, default=0.0)
    worker: Mapped[str] = mapped_column(String(64), default="")
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)  # JSON (the hand-off's test and arms)
    finished_at: Mapped[str] = mapped_column(String(40))
