"""The exposure-log contract (genart.bandit.log.ExposureLog): the same checks on the SQL log (a SQLite
file, and SQLite in memory) and on the in-memory one of genart.testing, directly and through a Tester.

What the tester's guarantees rest on: a write transaction lands whole or not at all; a second outcome
for an exposure is a StoreConflictError that writes nothing; totals move with the rows that move them;
the log hands back what was written, typed and in sequence order; a second tester on the same log (a
restarted process) sees every test and decides on the same posterior.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from genart.bandit import Context, TestConfig
from genart.bandit.log import ExposureLog
from genart.bandit.simulator import Population
from genart.bandit.tester import Tester
from genart.errors import InvalidArgumentError, StoreConflictError, TestNotRunningError, UnknownExposureError
from genart.store.exposure_log import SqlExposureLog
from genart.testing.exposure_log import MemoryExposureLog
from genart.types import LoggedArm, LoggedExposure, LoggedOutcome, LoggedTest, Outcome

POP = Population.random(n_arms=3, n_segments=2, seed=7)


@pytest.fixture(params=["sqlite-file", "sqlite-memory", "memory"])
def log(request, tmp_path) -> ExposureLog:
    if request.param == "sqlite-file":
        return SqlExposureLog(tmp_path / "log.sqlite")
    if request.param == "sqlite-memory":
        return SqlExposureLog("sqlite://")
    return MemoryExposureLog()


def _test_row(test_id: str = "t") -> LoggedTest:
    return LoggedTest(test_id=test_id, policy="ts", config=TestConfig().to_json(), status="running",
                      created_at=1.0)


def _arm(arm_id: str, position: int, test_id: str = "t", segment: str = "s") -> LoggedArm:
    return LoggedArm(test_id=test_id, segment=segment, arm_id=arm_id, position=position, features=(0.5, 1.0),
                     facts={"faces": 1.0})


def _exposure(eid: str, arm_id: str = "a", *, t: float = 10.0, user: str | None = None) -> LoggedExposure:
    return LoggedExposure(exposure_id=eid, test_id="t", segment="s", arm_id=arm_id, user_id=user, propensity=0.25,
                          probs=(0.25, 0.75), features=(1.5,), policy="ts", t=t)


def test_the_log_gives_back_what_was_written_typed_and_in_order(log: ExposureLog) -> None:
    with log.write() as txn:
        txn.insert_test(_test_row())
        txn.insert_arms([_arm("b", 1), _arm("a", 0)])
        txn.insert_exposures([_exposure("e1", "a", user="u1"), _exposure("e2", "b"), _exposure("e3", "a", user="u1")])
        txn.add_impressions("t", {("s", "a"): 2, ("s", "b"): 1})
        txn.insert_outcomes([LoggedOutcome(exposure_id="e2", test_id="t", value=1.0, reward=1.0, counted=True, t=11.0)])
        txn.add_outcomes("t", {("s", "b"): 1}, {("s", "b"): 1.0})
    with log.read() as txn:
        assert txn.test_ids() == ["t"] and txn.test("nope") is None
        head = txn.test("t")
        assert head is not None and head.status == "running" and head.arms_version == 0
        arms = txn.arms("t")
        assert [a.arm_id for a in arms] == ["a", "b"]  # position order, whatever the insert order
        assert arms[0].features == (0.5, 1.0) and arms[0].facts == {"faces": 1.0}
        assert (arms[0].impressions, arms[1].impressions, arms[1].outcomes, arms[1].reward_sum) == (2, 1, 1, 1.0)
        events = txn.events("t")
        assert [e.exposure_id for e, _ in events] == ["e1", "e2", "e3"]
        seqs = [e.seq for e, _ in events]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3
        assert [o.reward if o else None for _, o in events] == [None, 1.0, None]
        assert events[0][0].probs == (0.25, 0.75) and events[0][0].features == (1.5,) and events[0][0].t == 10.0
        assert [x.exposure_id for x in txn.user_exposures("t", ["u1"])] == ["e1", "e3"]
        assert [x.exposure_id for x in txn.exposures_after("t", seqs[0], fresh_only=True)] == ["e2", "e3"]
        assert [(o.exposure_id, x.arm_id) for o, x in txn.outcomes_after("t", 0)] == [("e2", "b")]
        assert set(txn.exposures_by_id(["e1", "zz"])) == {"e1"} and set(txn.outcomes_by_id(["e1", "e2"])) == {"e2"}
        assert txn.counts("t") == (3, 1)


def test_a_write_that_fails_leaves_nothing(log: ExposureLog) -> None:
    with log.write() as txn:
        txn.insert_test(_test_row())
        txn.insert_arms([_arm("a", 0)])
    with pytest.raises(RuntimeError, match="half-way"):
        with log.write() as txn:
            txn.insert_exposures([_exposure("e1")])
            txn.add_impressions("t", {("s", "a"): 1})
            raise RuntimeError("half-way")
    with log.read() as txn:
        assert txn.counts("t") == (0, 0) and txn.arms("t")[0].impressions == 0


def test_a_second_outcome_for_an_exposure_is_a_conflict_that_writes_nothing(log: ExposureLog) -> None:
    with log.write() as txn:
        txn.insert_test(_test_row())
        txn.insert_arms([_arm("a", 0)])
        txn.insert_exposures([_exposure("e1"), _exposure("e2")])
        txn.insert_outcomes([LoggedOutcome(exposure_id="e1", test_id="t", value=1.0, reward=1.0, counted=True, t=11.0)])
    with pytest.raises(StoreConflictError):
        with log.write() as txn:
            txn.insert_outcomes([LoggedOutcome(exposure_id="e2", test_id="t", value=0.0, reward=0.0, counted=True,
                                               t=12.0),
                                 LoggedOutcome(exposure_id="e1", test_id="t", value=0.0, reward=0.0, counted=True,
                                               t=12.0)])
    with log.read() as txn:
        assert txn.counts("t") == (2, 1)  # not even e2's outcome went in
        assert txn.outcomes_by_id(["e1"])["e1"].reward == 1.0


def test_allocations_and_arm_versions_are_kept(log: ExposureLog) -> None:
    from genart.types import LoggedAllocation

    with log.write() as txn:
        txn.insert_test(_test_row())
        txn.insert_arms([_arm("a", 0), _arm("b", 1)])
        txn.save_allocation(LoggedAllocation(test_id="t", segment="s", probs=(0.5, 0.5), t=1.0, served=3), new=True)
    with log.write() as txn:
        txn.save_allocation(LoggedAllocation(test_id="t", segment="s", probs=(0.4, 0.6), t=2.0, served=5), new=False)
        txn.bump_arms_version("t")
        txn.mark_stopped("t", 3.0, {"s": "b"})
    with log.read() as txn:
        alloc = txn.allocations("t", ["s"])["s"]
        assert (alloc.probs, alloc.t, alloc.served) == ((0.4, 0.6), 2.0, 5)
        head = txn.test("t")
        assert head is not None and (head.status, head.arms_version, dict(head.winners)) == ("stopped", 1, {"s": "b"})


# --- the tester on each log: its guarantees hold whatever keeps the rows --------------------------------
def test_the_tester_keeps_its_promises_on_every_log(log: ExposureLog) -> None:
    tester = Tester(log, seed=0)
    tester.create_test("t", POP.arms_for("t"), TestConfig(floor=0.05, sticky=True))
    tester.create_test("t", POP.arms_for("t"), TestConfig(floor=0.05, sticky=True))  # a re-run changes nothing
    segs = tester._load("t").segments
    exps = tester.assign_many("t", [Context(segs[i % 2], user_id=f"u{i % 5}") for i in range(40)])
    assert tester.counts("t") == (40, 0)
    again = tester.assign("t", Context(exps[0].segment, user_id="u0"))  # sticky: the same arm, its propensity
    assert (again.arm_id, again.propensity) == (exps[0].arm_id, exps[0].propensity)
    for seg in segs:
        dist = dict(tester.assign_detail("t", seg).probabilities)
        assert abs(sum(dist.values()) - 1.0) < 1e-9 and min(dist.values()) >= 0.05 - 1e-9
    now = time.time()
    first = tester.record(Outcome(exps[1].exposure_id, 1.0, now))
    dup = tester.record(Outcome(exps[1].exposure_id, 0.0, now))
    assert (first.status, dup.status, dup.reward) == ("recorded", "duplicate", 1.0)
    with pytest.raises(UnknownExposureError):
        tester.record_many([Outcome(exps[2].exposure_id, 1.0, now), Outcome("nope", 1.0, now)])
    n_exp = tester.counts("t")[0]
    assert tester.counts("t") == (n_exp, 1)  # the batch with an unknown id wrote nothing
    with pytest.raises(InvalidArgumentError):
        tester.record(Outcome(exps[3].exposure_id, 1.0, exps[3].t - 60))  # before its exposure
    rep = tester.report("t")
    assert sum(a.impressions for s in rep.segments for a in s.arms) == n_exp
    assert sum(a.outcomes for s in rep.segments for a in s.arms) == 1
    restarted = Tester(log, seed=1)  # another process on the same log
    assert restarted.tests() == ["t"] and restarted.counts("t") == tester.counts("t")
    assert restarted.report("t") == tester.report("t")
    final = tester.stop("t")
    winners = {s.segment: s.winner for s in final.segments}
    served = restarted.assign("t", segs[0])
    assert served.arm_id == winners[segs[0]] and served.propensity == 1.0


def test_drafts_added_arms_and_the_change_cap_on_every_log(log: ExposureLog) -> None:
    clock = iter(np.arange(1000.0, 10_000.0, 1.0))
    tester = Tester(log, seed=0, clock=lambda: float(next(clock)))
    arms = POP.arms_for("d")
    tester.create_test("d", arms, TestConfig(floor=0.05, change_cap=0.1, change_interval=50.0,
                                             change_unit="exposures"), draft=True)
    with pytest.raises(TestNotRunningError):
        tester.assign("d", arms[0].segment)
    tester.approve("d", "ana")
    assert tester.info("d").approved_by == "ana"
    seg = arms[0].segment
    before = tester.allocation("d")
    tester.assign_many("d", [seg] * 20)
    after = tester.allocation("d")
    assert seg in after and seg not in before
    from genart.types import Arm

    tester.add_arms("d", [Arm(test_id="d", arm_id="new", segment=seg, variant_id="vnew", image_path=None)])
    detail = Tester(log).assign_detail("d", seg)  # a fresh view sees the arm, at the exploration floor at least
    assert "new" in dict(detail.probabilities) and dict(detail.probabilities)["new"] >= 0.05 - 1e-9
