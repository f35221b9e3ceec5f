"""What the tester, offline evaluation and reports need from where a test is kept: the exposure log.

The bandit stage decides; it does not know tables. Everything it keeps (tests, arms with their running
totals, exposures with their propensities, outcomes, the change-effect cap's allocations) goes through
an :class:`ExposureLog`, in the typed values of :mod:`genart.types` (``LoggedTest``, ``LoggedArm``,
``LoggedExposure``, ``LoggedOutcome``, ``LoggedAllocation``). The SQL one is
:class:`genart.store.exposure_log.SqlExposureLog`; orchestration builds it
(:func:`genart.usecases.tester.open_tester`) and hands it to the :class:`~genart.bandit.tester.Tester`.

A decision reads the posterior, draws, and logs the exposure as one atomic step, so the log is used
through transactions: ``with log.write() as txn:`` is one write transaction (all of it lands, or none;
on SQLite ``BEGIN IMMEDIATE``, so concurrent writers queue instead of deadlocking) and ``log.read()``
a read one. A unique key that a concurrent writer stored first raises
:class:`genart.errors.StoreConflictError` from the ``with`` (nothing written); the tester retries.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from pathlib import Path
from typing import Mapping, Protocol, Sequence

from genart.types import LoggedAllocation, LoggedArm, LoggedExposure, LoggedOutcome, LoggedTest

#: (segment, arm id) -> a count or a reward sum, for one test.
ArmCounts = Mapping[tuple[str, str], int]
ArmSums = Mapping[tuple[str, str], float]


class LogTxn(Protocol):
    """One transaction on the log. Reads see the transaction's own writes."""

    # --- tests and arms
    def test(self, test_id: str) -> LoggedTest | None:
        """The test, or None."""
        ...

    def tests(self, test_ids: Sequence[str] | None = None) -> list[LoggedTest]:
        """Every test (or those of ``test_ids``), by test id."""
        ...

    def test_ids(self, limit: int | None = None) -> list[str]:
        """The ids of the log's tests, sorted (at most ``limit``)."""
        ...

    def arms(self, test_id: str | None, segments: Sequence[str] | None = None) -> list[LoggedArm]:
        """The arms of a test (None: of every test), by test, segment and position; only ``segments``'."""
        ...

    def insert_test(self, test: LoggedTest) -> None:
        ...

    def insert_arms(self, arms: Sequence[LoggedArm]) -> None:
        ...

    def replace_arms(self, test_id: str, arms: Sequence[LoggedArm]) -> None:
        """A draft's arms replaced (its allocations go too: a draft has served nobody)."""
        ...

    def mark_running(self, test_id: str, approved_by: str, approved_at: float, *, arms_changed: bool) -> None:
        """A draft approved; ``arms_changed`` bumps its ``arms_version``."""
        ...

    def mark_stopped(self, test_id: str, stopped_at: float, winners: Mapping[str, str]) -> None:
        ...

    def bump_arms_version(self, test_id: str) -> None:
        """Every process's view of the test is stale: arms were added."""
        ...

    # --- decisions
    def insert_exposures(self, exposures: Sequence[LoggedExposure]) -> None:
        ...

    def add_impressions(self, test_id: str, counts: ArmCounts) -> None:
        """Arms' impression totals moved by ``counts``."""
        ...

    def user_exposures(self, test_id: str, user_ids: Sequence[str]) -> list[LoggedExposure]:
        """The exposures of these members in the test, in log order (stickiness)."""
        ...

    def allocations(self, test_id: str, segments: Sequence[str] | None = None, *,
                    for_update: bool = False) -> dict[str, LoggedAllocation]:
        """Per segment, the allocation last served; ``for_update`` locks the rows until the transaction
        ends where the database needs it (one change-cap budget for every process)."""
        ...

    def save_allocation(self, allocation: LoggedAllocation, *, new: bool) -> None:
        """Stores the allocation served (``new``: the segment has none yet)."""
        ...

    # --- feedback
    def exposures_by_id(self, exposure_ids: Sequence[str]) -> dict[str, LoggedExposure]:
        """The stored exposures among ``exposure_ids``, by id."""
        ...

    def outcomes_by_id(self, exposure_ids: Sequence[str]) -> dict[str, LoggedOutcome]:
        """The stored outcomes of ``exposure_ids``' exposures, by exposure id."""
        ...

    def insert_outcomes(self, outcomes: Sequence[LoggedOutcome]) -> None:
        ...

    def add_outcomes(self, test_id: str, counts: ArmCounts, rewards: ArmSums) -> None:
        """Arms' outcome counts and reward sums moved."""
        ...

    # --- replay and evaluation
    def exposures_after(self, test_id: str, seq: int, *, fresh_only: bool) -> list[LoggedExposure]:
        """Exposures with a sequence number above ``seq``, in order (``fresh_only``: no sticky repeats)."""
        ...

    def outcomes_after(self, test_id: str, seq: int) -> list[tuple[LoggedOutcome, LoggedExposure]]:
        """Counted outcomes of fresh (not sticky) exposures with a sequence number above ``seq``, in order."""
        ...

    def events(self, test_id: str) -> list[tuple[LoggedExposure, LoggedOutcome | None]]:
        """Every exposure of the test with its outcome (None without one), in log order."""
        ...

    def counts(self, test_id: str) -> tuple[int, int]:
        """(exposures, outcomes) stored for the test."""
        ...


class ExposureLog(Protocol):
    """Where bandit tests are kept (see the module docstring)."""

    @property
    def folder(self) -> Path | None:
        """The folder arms' image paths are kept relative to (a SQLite file's folder; None elsewhere)."""
        ...

    @property
    def lookback(self) -> int:
        """How many sequence numbers behind the newest a replay re-reads: 0 where writers commit in
        sequence order (SQLite), a window where a lower number may commit after a higher one was read."""
        ...

    def read(self) -> AbstractContextManager[LogTxn]:
        ...

    def write(self) -> AbstractContextManager[LogTxn]:
        ...
