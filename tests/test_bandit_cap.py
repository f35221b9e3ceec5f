"""The change-effect cap, and whether logged propensities are the probabilities arms were drawn with.

The cap: a burst of one-sided rewards cannot move a segment's allocation faster than the cap allows
(per exposures and per seconds of a clock), the floor still holds, and without the cap the same burst
does move it faster (so the checks can fail). Propensities: a chi-square test of the arms picked
against the logged distributions over many draws, which passes through the tester with the cap, and
fails for the simulator's old seeding (audience and tester from one stream), which is the bug the
independent streams fix; ``genart bandit simulate --store`` passes it.
"""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
from sqlalchemy import select

from genart.bandit import Context, Tester, TestConfig
from genart.bandit.simulator import Population, drive_tester
from genart.store.bandit_tables import BanditArmRow, BanditExposureRow
from genart.types import Outcome
from genart.store.exposure_log import SqlExposureLog

scipy_stats = pytest.importorskip("scipy.stats", reason="scipy (a dependency of scikit-image) gives the chi-square")

POP = Population(segments=("drama", "comedy"), arms=("a", "b", "c"),
                 rates=((0.10, 0.45, 0.20), (0.50, 0.15, 0.25)), weights=(0.5, 0.5))


class Clock:
    """Seconds that move only when the test says so (hours of traffic in a test's second)."""

    def __init__(self, t: float = 1_000_000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def batches(tester: Tester, test_id: str, segment: str) -> list[tuple[int, np.ndarray]]:
    """Per assign call (one timestamp each, the clock ticks between calls): (fresh draws, mean logged distribution)."""
    e = BanditExposureRow
    with tester.engine.connect() as conn:
        rows = conn.execute(select(e.t.label("at"), e.probs).where(e.test_id == test_id, e.segment == segment,
                                                                   e.sticky_of.is_(None)).order_by(e.seq)).all()
    out: dict[float, list] = {}
    for r in rows:
        out.setdefault(r.at, []).append(json.loads(r.probs))
    return [(len(v), np.mean(np.array(v), axis=0)) for _, v in sorted(out.items())]


def burst(tester: Tester, test_id: str, clock: Clock, rng: np.random.Generator, n_calls: int = 60) -> None:
    """Batches of 1..150 members; every exposure of arm b clicks and no other does: one-sided noise."""
    for _ in range(n_calls):
        clock.t += 1.0
        exps = tester.assign_many(test_id, ["drama", "comedy"] * int(rng.integers(1, 75)))
        tester.record_many([Outcome(e.exposure_id, 1.0 if e.arm_id == "b" else 0.0, clock.t) for e in exps])


@pytest.mark.slow
def test_the_cap_holds_under_a_burst_and_without_it_the_burst_swings_the_allocation(tmp_path):
    cap, interval = 0.1, 100.0
    moves = {}
    for capped in (True, False):
        clock = Clock()
        tester = Tester(SqlExposureLog(tmp_path / f"cap-{capped}.db"), clock=clock)
        cfg = TestConfig(policy="ts", floor=0.02, change_cap=cap if capped else None, change_interval=interval,
                         change_unit="exposures", seed=7)
        tester.create_test("t", POP.arms_for("t"), cfg)
        burst(tester, "t", clock, np.random.default_rng(3))
        worst = 0.0
        for seg in ("drama", "comedy"):
            seq = batches(tester, "t", seg)
            assert len(seq) == 60
            for (n0, p0), (_, p1) in zip(seq, seq[1:]):
                allowed = cap * n0 / interval
                worst = max(worst, float(np.abs(p1 - p0).max()) - allowed)
                assert p1.min() >= 0.02 - 1e-12  # the floor holds under the cap too
        moves[capped] = worst
    assert moves[True] <= 1e-9  # never faster than 10 points per 100 exposures served
    assert moves[False] > 0.05  # the same burst, uncapped, moves far faster: the cap is what held it


@pytest.mark.slow
def test_the_cap_per_hour_of_a_clock(tmp_path):
    clock = Clock()
    tester = Tester(SqlExposureLog(tmp_path / "hour.db"), clock=clock)
    tester.create_test("t", POP.arms_for("t"), TestConfig(policy="egreedy", epsilon=0.0, floor=0.05, change_cap=0.1,
                                                          change_interval=3600.0, seed=1))
    first = dict(tester.assign_detail("t", "drama").probabilities)
    for _ in range(40):  # 2,000 members and their clicks on arm b, all within one second
        exps = tester.assign_many("t", ["drama"] * 50)
        tester.record_many([Outcome(e.exposure_id, float(e.arm_id == "b"), clock.t) for e in exps])
    same_second = dict(tester.assign_detail("t", "drama").probabilities)
    assert same_second == pytest.approx(first)  # no time passed: nothing may move
    clock.t += 1800  # half an hour: at most 5 points
    later = dict(tester.assign_detail("t", "drama").probabilities)
    assert max(abs(later[a] - first[a]) for a in first) == pytest.approx(0.05, abs=1e-9)
    assert later["b"] > first["b"]  # it moves the way the clicks say, only slowly
    alloc = dict(tester.allocation("t")["drama"])
    assert alloc == pytest.approx(later)


def propensity_chi2(tester: Tester, test_id: str, chunks: int = 8) -> tuple[float, int, float]:
    """Arms picked against the logged distributions: per segment and chunk of consecutive exposures,
    O - E with E = sum of the logged probabilities and covariance sum(diag(p) - p p^T) (independent,
    non-identical categorical draws), as a quadratic form; the sum is chi-square with the summed
    ranks as degrees of freedom when the logged probabilities are the ones the draws used."""
    e, a = BanditExposureRow, BanditArmRow
    with tester.engine.connect() as conn:
        pos = {(r.segment, r.arm_id): r.position for r in conn.execute(
            select(a.segment, a.arm_id, a.position).where(a.test_id == test_id))}
        rows = conn.execute(select(e.segment, e.arm_id, e.probs).where(e.test_id == test_id, e.sticky_of.is_(None))
                            .order_by(e.seq)).all()
    stat, dof = 0.0, 0
    for seg in sorted({r.segment for r in rows}):
        mine = [r for r in rows if r.segment == seg]
        for chunk in np.array_split(np.arange(len(mine)), chunks):
            P = np.array([json.loads(mine[i].probs) for i in chunk])
            O = np.bincount([pos[(seg, mine[i].arm_id)] for i in chunk], minlength=P.shape[1])  # noqa: E741 - observed, as in the statistic
            E = P.sum(axis=0)
            S = np.diag(E) - P.T @ P
            d = O - E
            # S 1 = 0 (each logged row sums to 1): rank K - 1; drop that direction, not rounding noise in it
            stat += float(d @ np.linalg.pinv(S, rcond=1e-9, hermitian=True) @ d)
            dof += int(np.linalg.matrix_rank(S, tol=1e-9 * np.abs(S).max(), hermitian=True))
    return stat, dof, float(scipy_stats.chi2.sf(stat, dof))


@pytest.mark.slow
def test_logged_propensities_under_the_cap_match_the_picks(tmp_path):
    tester = Tester(SqlExposureLog(tmp_path / "chi.db"), seed=11)
    tester.create_test("t", POP.arms_for("t"), TestConfig(policy="ts", floor=0.03, change_cap=0.1,
                                                          change_interval=200, change_unit="exposures", mc_samples=200))
    drive_tester(tester, "t", POP, 12_000, seed=5, batch_size=100)
    stat, dof, p = propensity_chi2(tester, "t")
    assert dof == 2 * 8 * 2  # two segments x eight chunks x (3 arms - 1)
    assert p > 1e-3, (stat, dof)
    # the cap was active: the allocation moved, in steps no larger than it allows
    seq = batches(tester, "t", "drama")
    steps = [float(np.abs(b[1] - a[1]).max()) - 0.1 * a[0] / 200 for a, b in zip(seq, seq[1:])]
    assert max(steps) <= 1e-9 and seq[-1][1].max() > 0.5


@pytest.mark.slow
def test_the_check_catches_a_tester_seeded_from_the_audience_stream(tmp_path):
    """The old seeding: the audience drawn from the very stream the tester draws from. Arms then
    follow the member's segment draw and disagree with the logged propensities."""
    seed = 4
    tester = Tester(SqlExposureLog(tmp_path / "bug.db"))
    tester.create_test("t", POP.arms_for("t"), TestConfig(policy="egreedy", epsilon=0.3, floor=0.05, seed=seed))
    env = POP.environment(6000, seed=np.random.SeedSequence(seed))  # what default_rng(seed) gave both before
    drive_tester(tester, "t", POP, 6000, seed=seed, env=env)
    assert propensity_chi2(tester, "t")[2] < 1e-6


@pytest.mark.slow
def test_simulate_through_a_store_logs_propensities_that_match(tmp_path):
    from typer.testing import CliRunner

    from genart.bandit.cli import app

    db = tmp_path / "sim.db"
    r = CliRunner().invoke(app, ["simulate", "--rounds", "6000", "--arms", "3", "--segments", "2", "--policy",
                                 "egreedy", "--store", str(db), "--test-id", "x", "--seed", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert propensity_chi2(Tester(SqlExposureLog(db)), "x")[2] > 1e-3


def test_added_arms_start_at_the_floor_and_ramp_up_no_faster_than_the_cap(tmp_path):
    from genart.types import Arm

    clock = Clock()
    tester = Tester(SqlExposureLog(tmp_path / "add.db"), clock=clock)
    tester.create_test("t", POP.arms_for("t"), TestConfig(policy="ts", floor=0.02, change_cap=0.1,
                                                          change_interval=100, change_unit="exposures", seed=2))
    other = Tester(SqlExposureLog(tmp_path / "add.db"), clock=clock)  # a second process's view, cached before the arm exists
    other.assign("t", "drama")
    tester.add_arms("t", [Arm("t", "new", "drama", "v-new", None, prior_mean=0.9, prior_strength=50.0)])
    clock.t += 1
    a = other.assign_detail("t", Context("drama"))  # it notices the new arm on its next decision
    probs = dict(a.probabilities)
    assert set(probs) == {"a", "b", "c", "new"} and probs["new"] == pytest.approx(0.02, abs=0.011)
    for _ in range(20):
        clock.t += 1
        exps = other.assign_many("t", ["drama"] * 50)
        other.record_many([Outcome(e.exposure_id, float(e.arm_id == "new"), time.time()) for e in exps])
    seq = batches(other, "t", "drama")[1:]  # from the first decision that knew four arms
    assert all(len(p) == 4 for _, p in seq)
    for (n0, p0), (_, p1) in zip(seq, seq[1:]):
        assert np.abs(p1 - p0).max() <= 0.1 * n0 / 100 + 1e-9
    assert seq[-1][1][3] > 0.5  # and it does get the traffic its clicks earn
    from genart.bandit.offline import logged_data

    logged = logged_data(other, "t")
    assert logged.n_actions == 4 and logged.n == sum(n for n, _ in batches(other, "t", "drama")) + \
        sum(n for n, _ in batches(other, "t", "comedy"))
