"""An exposure log in memory (:class:`genart.bandit.log.ExposureLog`), for tests and notebooks.

It keeps the promises the SQL one does, so the contract suite (``tests/test_exposure_log_contract.py``)
runs the same checks on both: a write transaction lands whole or not at all (it works on a copy that
replaces the state only when the ``with`` block ends cleanly), writers queue on one lock, sequence
numbers commit in order, and a second outcome for an exposure (or a repeated exposure id, arm, test or
allocation) raises :class:`genart.errors.StoreConflictError` with nothing written.
"""

from __future__ import annotations

import copy
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Iterator, Mapping, Sequence

from genart.errors import StoreConflictError
from genart.types import LoggedAllocation, LoggedArm, LoggedExposure, LoggedOutcome, LoggedTest


@dataclass
class _State:
    tests: dict[str, LoggedTest] = field(default_factory=dict)
    arms: dict[tuple[str, str, str], LoggedArm] = field(default_factory=dict)  # (test, segment, arm)
    exposures: dict[str, LoggedExposure] = field(default_factory=dict)  # by id, in seq order
    outcomes: dict[str, LoggedOutcome] = field(default_factory=dict)  # by exposure id, in seq order
    allocations: dict[tuple[str, str], LoggedAllocation] = field(default_factory=dict)
    exp_seq: int = 0
    out_seq: int = 0


def _conflict(what: str) -> StoreConflictError:
    return StoreConflictError(f"{what} is stored already", hint="try again")


class MemoryTxn:
    """One transaction on a :class:`MemoryExposureLog` (see :class:`genart.bandit.log.LogTxn`)."""

    def __init__(self, state: _State, writable: bool) -> None:
        self.state = state
        self.writable = writable

    def _write(self) -> _State:
        if not self.writable:
            raise RuntimeError("a write inside a read transaction")
        return self.state

    # --- tests and arms
    def test(self, test_id: str) -> LoggedTest | None:
        return self.state.tests.get(test_id)

    def tests(self, test_ids: Sequence[str] | None = None) -> list[LoggedTest]:
        wanted = set(test_ids) if test_ids is not None else None
        return [t for k, t in sorted(self.state.tests.items()) if wanted is None or k in wanted]

    def test_ids(self, limit: int | None = None) -> list[str]:
        return sorted(self.state.tests)[:limit]

    def arms(self, test_id: str | None, segments: Sequence[str] | None = None) -> list[LoggedArm]:
        segs = set(segments) if segments is not None else None
        found = [a for a in self.state.arms.values()
                 if (test_id is None or a.test_id == test_id) and (segs is None or a.segment in segs)]
        return sorted(found, key=lambda a: (a.test_id, a.segment, a.position))

    def insert_test(self, test: LoggedTest) -> None:
        st = self._write()
        if test.test_id in st.tests:
            raise _conflict(f"test {test.test_id}")
        st.tests[test.test_id] = test

    def insert_arms(self, arms: Sequence[LoggedArm]) -> None:
        st = self._write()
        for a in arms:
            key = (a.test_id, a.segment, a.arm_id)
            if key in st.arms:
                raise _conflict(f"arm {a.segment}/{a.arm_id}")
            st.arms[key] = a

    def replace_arms(self, test_id: str, arms: Sequence[LoggedArm]) -> None:
        st = self._write()
        st.allocations = {k: v for k, v in st.allocations.items() if k[0] != test_id}
        st.arms = {k: v for k, v in st.arms.items() if k[0] != test_id}
        self.insert_arms(arms)

    def _update_test(self, test_id: str, **changes: object) -> None:
        st = self._write()
        if test_id in st.tests:
            st.tests[test_id] = replace(st.tests[test_id], **changes)  # type: ignore[arg-type]

    def mark_running(self, test_id: str, approved_by: str, approved_at: float, *, arms_changed: bool) -> None:
        t = self.state.tests.get(test_id)
        if t is not None:
            self._update_test(test_id, status="running", approved_by=approved_by, approved_at=approved_at,
                              arms_version=t.arms_version + (1 if arms_changed else 0))

    def mark_stopped(self, test_id: str, stopped_at: float, winners: Mapping[str, str]) -> None:
        self._update_test(test_id, status="stopped", stopped_at=stopped_at, winners=dict(winners))

    def bump_arms_version(self, test_id: str) -> None:
        t = self.state.tests.get(test_id)
        if t is not None:
            self._update_test(test_id, arms_version=t.arms_version + 1)

    # --- decisions
    def insert_exposures(self, exposures: Sequence[LoggedExposure]) -> None:
        st = self._write()
        for x in exposures:
            if x.exposure_id in st.exposures:
                raise _conflict(f"exposure {x.exposure_id}")
            if (x.test_id, x.segment, x.arm_id) not in st.arms:
                raise _conflict(f"an exposure of no arm ({x.segment}/{x.arm_id})")
            st.exp_seq += 1
            st.exposures[x.exposure_id] = replace(x, seq=st.exp_seq)

    def _bump(self, test_id: str, counts: Mapping[tuple[str, str], int],
              rewards: Mapping[tuple[str, str], float] | None) -> None:
        st = self._write()
        for (seg, arm_id), n in counts.items():
            a = st.arms.get((test_id, seg, arm_id))
            if a is None:
                continue
            st.arms[(test_id, seg, arm_id)] = (
                replace(a, impressions=a.impressions + int(n)) if rewards is None else
                replace(a, outcomes=a.outcomes + int(n), reward_sum=a.reward_sum + float(rewards[(seg, arm_id)])))

    def add_impressions(self, test_id: str, counts: Mapping[tuple[str, str], int]) -> None:
        self._bump(test_id, counts, None)

    def user_exposures(self, test_id: str, user_ids: Sequence[str]) -> list[LoggedExposure]:
        users = set(user_ids)
        return [x for x in self.state.exposures.values() if x.test_id == test_id and x.user_id in users]

    def allocations(self, test_id: str, segments: Sequence[str] | None = None, *,
                    for_update: bool = False) -> dict[str, LoggedAllocation]:
        return {seg: a for (tid, seg), a in self.state.allocations.items()
                if tid == test_id and (segments is None or seg in segments)}

    def save_allocation(self, allocation: LoggedAllocation, *, new: bool) -> None:
        st = self._write()
        key = (allocation.test_id, allocation.segment)
        if new and key in st.allocations:
            raise _conflict(f"the allocation of {allocation.segment}")
        st.allocations[key] = allocation

    # --- feedback
    def exposures_by_id(self, exposure_ids: Sequence[str]) -> dict[str, LoggedExposure]:
        return {i: self.state.exposures[i] for i in exposure_ids if i in self.state.exposures}

    def outcomes_by_id(self, exposure_ids: Sequence[str]) -> dict[str, LoggedOutcome]:
        return {i: self.state.outcomes[i] for i in exposure_ids if i in self.state.outcomes}

    def insert_outcomes(self, outcomes: Sequence[LoggedOutcome]) -> None:
        st = self._write()
        for o in outcomes:
            if o.exposure_id in st.outcomes:
                raise _conflict(f"an outcome for exposure {o.exposure_id}")
            if o.exposure_id not in st.exposures:
                raise _conflict(f"an outcome of no exposure ({o.exposure_id})")
            st.out_seq += 1
            st.outcomes[o.exposure_id] = replace(o, seq=st.out_seq)

    def add_outcomes(self, test_id: str, counts: Mapping[tuple[str, str], int],
                     rewards: Mapping[tuple[str, str], float]) -> None:
        self._bump(test_id, counts, rewards)

    # --- replay and evaluation
    def exposures_after(self, test_id: str, seq: int, *, fresh_only: bool) -> list[LoggedExposure]:
        return [x for x in self.state.exposures.values()
                if x.test_id == test_id and x.seq > seq and not (fresh_only and x.sticky_of is not None)]

    def outcomes_after(self, test_id: str, seq: int) -> list[tuple[LoggedOutcome, LoggedExposure]]:
        out = []
        for o in self.state.outcomes.values():
            x = self.state.exposures[o.exposure_id]
            if o.test_id == test_id and o.seq > seq and o.counted and x.sticky_of is None:
                out.append((o, x))
        return out

    def events(self, test_id: str) -> list[tuple[LoggedExposure, LoggedOutcome | None]]:
        return [(x, self.state.outcomes.get(x.exposure_id)) for x in self.state.exposures.values()
                if x.test_id == test_id]

    def counts(self, test_id: str) -> tuple[int, int]:
        return (sum(1 for x in self.state.exposures.values() if x.test_id == test_id),
                sum(1 for o in self.state.outcomes.values() if o.test_id == test_id))


class MemoryExposureLog:
    """An :class:`genart.bandit.log.ExposureLog` in this process's memory (nothing is kept on disk)."""

    def __init__(self, folder: str | Path | None = None) -> None:
        self._folder = Path(folder).resolve() if folder is not None else None
        self._state = _State()
        self._lock = threading.RLock()  # one writer at a time, as SQLite's BEGIN IMMEDIATE

    @property
    def folder(self) -> Path | None:
        return self._folder

    @property
    def lookback(self) -> int:
        return 0  # writers are serialised: sequence numbers commit in order

    @contextmanager
    def read(self) -> Iterator[MemoryTxn]:
        with self._lock:  # a consistent snapshot: no writer half-way
            snapshot = self._state
        yield MemoryTxn(snapshot, writable=False)

    @contextmanager
    def write(self) -> Iterator[MemoryTxn]:
        with self._lock:
            work = copy.deepcopy(self._state)
            yield MemoryTxn(work, writable=True)
            self._state = work  # only when the block ended cleanly: all of it lands, or none
