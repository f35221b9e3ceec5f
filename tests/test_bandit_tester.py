"""The tester: logged-before-returned exposures, exact propensities, idempotent rewards, stickiness."""

from __future__ import annotations

import json
import os
import threading
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from genart.bandit import Context, RewardRule, Tester, TestConfig
from genart.bandit.simulator import Population, drive_tester
from genart.errors import (
    InvalidArgumentError,
    TestConflictError,
    UnknownExposureError,
    UnknownSegmentError,
    UnknownTestError,
)
from genart.store.bandit_tables import BanditExposureRow, BanditOutcomeRow
from genart.types import Arm, Outcome
from genart.store.exposure_log import SqlExposureLog

CLEAR = Population(segments=("drama", "comedy"), arms=("a", "b", "c"),
                   rates=((0.10, 0.45, 0.20), (0.50, 0.15, 0.25)), weights=(0.5, 0.5))


PG_URL = os.environ.get("GENART_BANDIT_TEST_PG_URL")  # e.g. postgresql+psycopg://postgres@127.0.0.1:5432/bandit


@pytest.fixture(params=["sqlite"] + (["postgresql"] if PG_URL else []))
def store_url(request, tmp_path):
    """The store: a SQLite file; also PostgreSQL when $GENART_BANDIT_TEST_PG_URL names a scratch
    database (its bandit tables are dropped before each test)."""
    if request.param == "sqlite":
        return str(tmp_path / "bandit.db")
    from sqlalchemy import create_engine

    from genart.store.bandit_engine import TABLES
    from genart.store.schema import Base

    engine = create_engine(PG_URL)
    Base.metadata.drop_all(engine, tables=TABLES)
    engine.dispose()
    return PG_URL


@pytest.fixture
def tester(store_url):
    return Tester(SqlExposureLog(store_url), seed=0)


def make(tester: Tester, test_id: str = "t", **cfg) -> str:
    tester.create_test(test_id, CLEAR.arms_for(test_id), TestConfig(**cfg))
    return test_id


def test_exposure_is_committed_before_assign_returns(tester, store_url):
    make(tester)
    exp = tester.assign("t", Context("drama", user_id="u1"))
    other = Tester(SqlExposureLog(store_url))  # a second process's view of the same store
    with other.engine.connect() as conn:
        row = conn.execute(select(BanditExposureRow).where(BanditExposureRow.exposure_id == exp.exposure_id)).one()
    assert (row.arm_id, row.segment, row.user_id) == (exp.arm_id, "drama", "u1")
    assert row.propensity == pytest.approx(exp.propensity)
    assert other.counts("t") == (1, 0)


@pytest.mark.parametrize("policy", ["ts", "egreedy", "ucb1", "lints", "linucb"])
def test_propensities_sum_to_one_respect_floor_and_match_the_choice(tester, policy):
    make(tester, policy=policy, floor=0.05, mc_samples=400)
    for i in range(30):
        a = tester.assign_detail("t", Context("comedy"))
        probs = dict(a.probabilities)
        assert sum(probs.values()) == pytest.approx(1.0, abs=1e-12)
        assert min(probs.values()) >= 0.05 - 1e-12
        assert a.exposure.propensity == pytest.approx(probs[a.exposure.arm_id])
        tester.record(Outcome(a.exposure.exposure_id, float(i % 3 == 0), time.time()))
    with tester.engine.connect() as conn:
        for r in conn.execute(select(BanditExposureRow.probs, BanditExposureRow.propensity)):
            assert sum(json.loads(r.probs)) == pytest.approx(1.0, abs=1e-9)


def test_duplicate_and_retried_rewards_change_nothing_twice(tester):
    make(tester)
    e = tester.assign("t", "drama")
    first = tester.record(Outcome(e.exposure_id, 1.0, time.time()))
    before = tester.report("t")
    again = tester.record(Outcome(e.exposure_id, 0.0, time.time()))  # a different value: still ignored
    batch = tester.record_many([Outcome(e.exposure_id, 1.0, time.time())] * 3)
    assert first.status == "recorded" and first.reward == 1.0
    assert again.status == "duplicate" and again.reward == 1.0
    assert [b.status for b in batch] == ["duplicate"] * 3
    assert tester.report("t") == before
    assert tester.counts("t") == (1, 1)


def test_duplicates_inside_one_batch_are_counted_once(tester):
    make(tester)
    e = tester.assign("t", "drama")
    res = tester.record_many([Outcome(e.exposure_id, 1.0, time.time()), Outcome(e.exposure_id, 1.0, time.time())])
    assert [r.status for r in res] == ["recorded", "duplicate"]
    arm = next(a for s in tester.report("t").segments for a in s.arms if a.arm_id == e.arm_id and s.segment == "drama")
    assert (arm.impressions, arm.outcomes, arm.rewards) == (1, 1, 1.0)


def test_unknown_exposure_is_a_typed_error_and_a_batch_with_one_writes_nothing(tester):
    make(tester)
    e = tester.assign("t", "drama")
    with pytest.raises(UnknownExposureError, match="'nope'"):
        tester.record(Outcome("nope", 1.0, time.time()))
    with pytest.raises(UnknownExposureError):
        tester.record_many([Outcome(e.exposure_id, 1.0, time.time()), Outcome("missing", 1.0, time.time())])
    assert tester.counts("t") == (1, 0)
    with pytest.raises(InvalidArgumentError, match="reward"):
        tester.record(Outcome(e.exposure_id, float("nan"), time.time()))
    with pytest.raises(InvalidArgumentError, match="reward"):
        tester.record(Outcome(e.exposure_id, -1.0, time.time()))


def test_late_reward_is_stored_but_not_counted(tester):
    make(tester, reward=RewardRule(kind="click", window_s=60))
    e = tester.assign("t", "drama")
    res = tester.record(Outcome(e.exposure_id, 1.0, e.t + 3600))
    assert res.status == "late"
    assert tester.record(Outcome(e.exposure_id, 1.0, e.t + 1)).status == "duplicate"
    arm = next(a for s in tester.report("t").segments for a in s.arms if a.arm_id == e.arm_id and s.segment == "drama")
    assert arm.outcomes == 0 and arm.rewards == 0.0
    assert tester.counts("t") == (1, 1)


def test_quality_play_reward_rule(tester):
    make(tester, reward=RewardRule(kind="threshold", threshold=15.0))  # minutes watched >= 15
    e1, e2 = tester.assign_many("t", ["drama", "drama"])
    assert tester.record(Outcome(e1.exposure_id, 42.0, time.time())).reward == 1.0
    assert tester.record(Outcome(e2.exposure_id, 3.0, time.time())).reward == 0.0
    assert RewardRule(kind="value", scale=60).reward(30) == 0.5


def test_sticky_members_keep_their_artwork(tester):
    make(tester, sticky=True, floor=0.2)
    first = tester.assign("t", Context("drama", user_id="alice"))
    repeats = [tester.assign("t", Context("drama", user_id="alice")) for _ in range(10)]
    assert {r.arm_id for r in repeats} == {first.arm_id}
    assert all(r.propensity == first.propensity for r in repeats)
    with tester.engine.connect() as conn:
        sticky_of = conn.execute(select(BanditExposureRow.sticky_of).where(BanditExposureRow.user_id == "alice")
                                 .order_by(BanditExposureRow.seq)).scalars().all()
    assert sticky_of == [None] + [first.exposure_id] * 10
    from genart.bandit.offline import logged_data

    assert logged_data(tester, "t").n == 1  # repeats are not fresh draws: left out of evaluation


def test_unknown_test_segment_and_bad_features_are_typed_errors(tester):
    make(tester)
    with pytest.raises(UnknownTestError, match="unknown bandit test 'zzz'; known tests: t"):
        tester.assign("zzz", "drama")
    with pytest.raises(UnknownSegmentError, match="known segments: comedy, drama"):
        tester.assign("t", "horror")
    with pytest.raises(InvalidArgumentError, match="context_dim"):
        tester.assign("t", Context("drama", features=(1.0,)))


def test_create_test_is_idempotent_and_conflicts_are_typed(tester):
    make(tester)
    make(tester)  # same arms, same config: a no-op
    with pytest.raises(TestConflictError, match="different config"):
        make(tester, policy="ucb1")
    with pytest.raises(InvalidArgumentError, match="test_id"):
        tester.create_test("x", CLEAR.arms_for("t"))
    with pytest.raises(InvalidArgumentError, match="floor"):
        tester.create_test("y", CLEAR.arms_for("y"), TestConfig(floor=0.4))


@pytest.mark.slow
def test_tester_learns_and_the_stopping_rule_declares_the_true_best_arms(tester):
    """3000 simulated members through the store: each segment's winner is its true best arm."""
    make(tester, floor=0.01, stop_probability=0.95, min_impressions=20)
    res = drive_tester(tester, "t", CLEAR, 3000, seed=1, batch_size=150)
    assert res.best_arm_share > 0.7
    rep = tester.report("t")
    winners = {s.segment: s.winner for s in rep.segments}
    assert winners == {"drama": "b", "comedy": "a"}
    for seg in rep.segments:
        assert sum(a.prob_best for a in seg.arms) == pytest.approx(1.0)
        for a in seg.arms:
            assert a.ci_low <= a.posterior_mean <= a.ci_high
    assert tester.counts("t") == (3000, 3000)
    stopped = tester.stop("t")
    assert stopped.status == "stopped"
    after = tester.assign_detail("t", "drama")
    assert after.exposure.arm_id == "b" and after.exposure.propensity == 1.0


@pytest.mark.slow
@pytest.mark.parametrize("policy", ["lints", "linucb"])
def test_contextual_policies_learn_through_the_tester(tester, policy):
    make(tester, policy=policy, floor=0.02, mc_samples=200)
    res = drive_tester(tester, "t", CLEAR, 2000, seed=2, batch_size=100)
    assert res.best_arm_share > 0.6


def test_a_restarted_tester_rebuilds_its_contextual_model_from_the_store(store_url):
    t1 = Tester(SqlExposureLog(store_url), seed=0)
    make(t1, policy="linucb", floor=0.0, lin_alpha=0.0)
    drive_tester(t1, "t", CLEAR, 600, seed=3, batch_size=100)
    p1 = dict(t1.assign_detail("t", "drama").probabilities)
    t2 = Tester(SqlExposureLog(store_url), seed=0)
    p2 = dict(t2.assign_detail("t", "drama").probabilities)
    assert p1 == p2


@pytest.mark.slow
def test_concurrent_threads_lose_nothing_and_double_count_nothing(tester):
    make(tester)
    errors: list[BaseException] = []

    def worker(k: int) -> None:
        try:
            for i in range(25):
                e = tester.assign("t", Context("drama" if i % 2 else "comedy", user_id=f"u{k}-{i}"))
                for _ in range(2):  # every reward is sent twice
                    tester.record(Outcome(e.exposure_id, float(i % 4 == 0), time.time()))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(6)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert not errors
    assert tester.counts("t") == (150, 150)
    with tester.engine.connect() as conn:
        dup = conn.execute(select(func.count()).select_from(BanditOutcomeRow)
                           .group_by(BanditOutcomeRow.exposure_id).having(func.count() > 1)).all()
    assert dup == []
    rep = tester.report("t")
    assert sum(a.impressions for s in rep.segments for a in s.arms) == 150
    assert sum(a.outcomes for s in rep.segments for a in s.arms) == 150


@pytest.mark.slow
def test_report_plots_are_pngs(tester, tmp_path):
    pytest.importorskip("matplotlib", reason="matplotlib not installed: plots are optional")
    from genart.bandit.report import plot_test

    make(tester)
    drive_tester(tester, "t", CLEAR, 400, seed=0, batch_size=100)
    paths = plot_test(tester, "t", tmp_path / "plots")
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 2000


def test_arms_of_different_sizes_per_segment(tester):
    arms = [Arm("m", "x", "s1", None, None), Arm("m", "y", "s1", None, None), Arm("m", "z", "s1", None, None),
            Arm("m", "x", "s2", None, None)]
    tester.create_test("m", arms, TestConfig(floor=0.1))
    assert {tester.assign("m", "s2").arm_id for _ in range(5)} == {"x"}
    seen = {tester.assign("m", "s1").arm_id for _ in range(60)}
    assert seen == {"x", "y", "z"}
    assert np.isclose(sum(p for _, p in tester.assign_detail("m", "s1").probabilities), 1.0)


def test_sticky_assignment_expires_after_its_ttl(tester):
    make(tester, sticky=True, sticky_ttl_s=0.0, floor=0.3)
    arms = {tester.assign("t", Context("drama", user_id="bob")).arm_id for _ in range(40)}
    assert len(arms) > 1  # a zero TTL never sticks: fresh draws every visit


def test_config_round_trips_through_json():
    cfg = TestConfig(policy="lints", floor=0.02, reward=RewardRule(kind="threshold", threshold=15, window_s=86400),
                     sticky=True, context_dim=3, seed=4)
    assert TestConfig.from_json(cfg.to_json()) == cfg


@pytest.mark.slow
def test_racing_duplicate_rewards_are_recorded_once(tester):
    """Four threads send the same 40 rewards at once: each exposure ends with exactly one outcome."""
    make(tester)
    exps = tester.assign_many("t", ["drama", "comedy"] * 20)
    statuses: list[tuple[str, str]] = []
    lock = threading.Lock()
    barrier = threading.Barrier(4)

    def worker(seed: int) -> None:
        order = np.random.default_rng(seed).permutation(len(exps))
        barrier.wait()
        for i in order:
            r = tester.record(Outcome(exps[i].exposure_id, 1.0, time.time()))
            with lock:
                statuses.append((r.exposure_id, r.status))

    threads = [threading.Thread(target=worker, args=(k,)) for k in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    recorded = [eid for eid, st in statuses if st == "recorded"]
    assert len(statuses) == 160
    assert sorted(recorded) == sorted(e.exposure_id for e in exps)  # once each
    assert tester.counts("t") == (40, 40)
    assert sum(a.rewards for s in tester.report("t").segments for a in s.arms) == 40.0
