"""Offline evaluation: IPS / SNIPS / DR / replay recover a known policy value; exports."""

from __future__ import annotations


import numpy as np
import pytest

from genart.bandit import Tester, TestConfig
from genart.bandit.offline import (
    estimate,
    evaluate,
    greedy_policy,
    logged_data,
    segment_policy,
    simulated_log,
    to_obp,
    to_vw_text,
)
from genart.bandit.simulator import Population, drive_tester
from genart.errors import InvalidArgumentError
from genart.store.exposure_log import SqlExposureLog

RATES = np.array([[0.10, 0.40, 0.25, 0.20], [0.45, 0.15, 0.30, 0.10], [0.05, 0.10, 0.08, 0.30]])
WEIGHTS = np.array([0.5, 0.3, 0.2])
# a non-uniform logging policy with a floor (as the tester logs): favours arm 2 everywhere
LOGGING = np.array([[0.1, 0.2, 0.6, 0.1], [0.1, 0.1, 0.7, 0.1], [0.2, 0.2, 0.4, 0.2]])
BEST = RATES.argmax(axis=1)
TRUE_VALUE = float((WEIGHTS * RATES[np.arange(3), BEST]).sum())


@pytest.mark.parametrize("method", ["ips", "snips", "dr"])
def test_estimators_cover_the_true_value_of_a_new_policy(method):
    log = simulated_log(RATES, LOGGING, 20_000, weights=WEIGHTS, seed=11)
    est = estimate(log, greedy_policy(log, BEST), method, n_boot=300, seed=1)
    assert est.ci_low <= TRUE_VALUE <= est.ci_high, est
    assert est.ci_high - est.ci_low < 0.05
    assert est.n == 20_000 and est.level == 0.95


def test_replay_is_unbiased_on_uniform_logging_and_says_when_it_is_not():
    uniform = np.full((3, 4), 0.25)
    log = simulated_log(RATES, uniform, 20_000, weights=WEIGHTS, seed=12)
    est = estimate(log, greedy_policy(log, BEST), "replay", n_boot=300, seed=2)
    assert est.ci_low <= TRUE_VALUE <= est.ci_high, est
    assert "matched" in est.note and "biased" not in est.note
    biased = estimate(simulated_log(RATES, LOGGING, 2000, weights=WEIGHTS), greedy_policy(log, BEST)[:2000], "replay",
                      n_boot=10)
    assert "not uniform" in biased.note


def test_estimators_are_unbiased_over_many_logs():
    """Mean of the estimates over 40 independent logs is within 3 standard errors of the truth."""
    for method in ("ips", "snips", "dr"):
        vals = []
        for seed in range(40):
            log = simulated_log(RATES, LOGGING, 3000, weights=WEIGHTS, seed=100 + seed)
            vals.append(estimate(log, greedy_policy(log, BEST), method, n_boot=1, seed=seed).value)
        se = np.std(vals, ddof=1) / np.sqrt(len(vals))
        assert abs(np.mean(vals) - TRUE_VALUE) < 3 * se + 1e-3, (method, np.mean(vals), TRUE_VALUE, se)


def test_logging_policy_value_is_recovered_with_on_policy_weights():
    log = simulated_log(RATES, LOGGING, 10_000, weights=WEIGHTS, seed=3)
    truth = float((WEIGHTS * (LOGGING * RATES).sum(axis=1)).sum())
    for est in evaluate(log, segment_policy(log, LOGGING), ("ips", "snips", "dr"), n_boot=200):
        assert est.ci_low <= truth <= est.ci_high, est


def test_bad_shapes_are_typed_errors():
    log = simulated_log(RATES, LOGGING, 100, seed=0)
    with pytest.raises(InvalidArgumentError, match="action_dist shape"):
        estimate(log, np.ones((100, 3)) / 3)
    with pytest.raises(InvalidArgumentError, match="method"):
        estimate(log, greedy_policy(log, BEST), "magic")
    with pytest.raises(InvalidArgumentError, match="rows summing to 1"):
        segment_policy(log, np.ones((3, 4)))


@pytest.fixture
def logged_test(tmp_path):
    pop = Population(segments=("drama", "comedy"), arms=("a", "b", "c"),
                     rates=((0.1, 0.5, 0.2), (0.5, 0.1, 0.2)), weights=(0.5, 0.5))
    tester = Tester(SqlExposureLog(tmp_path / "b.db"), seed=0)
    tester.create_test("t", pop.arms_for("t"), TestConfig(floor=0.1))
    drive_tester(tester, "t", pop, 600, seed=0, batch_size=100)
    return tester


def test_logged_data_from_the_store_and_obp_arrays(logged_test):
    log = logged_data(logged_test, "t")
    assert log.n == 600 and log.n_actions == 3
    np.testing.assert_allclose(log.logging_dist.sum(axis=1), 1.0)
    np.testing.assert_allclose(log.logging_dist[np.arange(log.n), log.actions], log.pscores)
    assert log.pscores.min() >= 0.1 - 1e-9  # the floor
    assert log.segments == ("comedy", "drama") and log.action_ids[0] == ("a", "b", "c")
    pi = greedy_policy(log, [0, 1])
    obp = to_obp(log, pi)
    assert obp.action_dist.shape == (600, 3, 1) and obp.pi_b.shape == (600, 3, 1)
    assert obp.action.shape == obp.reward.shape == obp.pscore.shape == obp.position.shape == (600,)
    assert set(obp.bandit_feedback()) >= {"n_rounds", "n_actions", "action", "reward", "pscore", "position", "context"}
    est = estimate(log, pi, "snips", n_boot=100)
    assert 0.2 < est.value < 0.8


def test_vw_text_export_format(logged_test):
    log = logged_data(logged_test, "t")
    text = to_vw_text(log)
    events = text.strip("\n").split("\n\n")
    assert len(events) == log.n
    first = events[0].split("\n")
    assert first[0].startswith("shared |s ")
    assert len(first) == 1 + 3
    labelled = [ln for ln in first[1:] if ln[0].isdigit()]
    assert len(labelled) == 1
    _, cost, prob = labelled[0].split(" ", 1)[0].split(":")
    assert float(cost) == -log.rewards[0] and float(prob) == pytest.approx(log.pscores[0], rel=1e-5)


def test_vw_reads_the_exported_log(logged_test):
    vw = pytest.importorskip("vowpalwabbit", reason="vowpalwabbit not installed: VW export checked for format only")
    log = logged_data(logged_test, "t")
    ws = vw.Workspace("--cb_explore_adf --quiet")
    for event in to_vw_text(log).strip("\n").split("\n\n"):
        ws.learn(event.split("\n"))
    pmf = ws.predict(["shared |s c0:1 c2:1", "|a arm=a", "|a arm=b", "|a arm=c"])
    assert len(pmf) == 3 and sum(pmf) == pytest.approx(1.0, abs=1e-5)


def test_agrees_with_open_bandit_pipeline():
    obp_ope = pytest.importorskip(
        "obp.ope", reason="obp (Open Bandit Pipeline) not installed: obp 0.5.7 requires Python < 3.11 and pins "
                          "old pandas / scikit-learn; comparison skipped")
    log = simulated_log(RATES, LOGGING, 5000, weights=WEIGHTS, seed=5)
    pi = greedy_policy(log, BEST)
    arrays = to_obp(log, pi)
    kw = dict(reward=arrays.reward, action=arrays.action, pscore=arrays.pscore, position=arrays.position,
              action_dist=arrays.action_dist)
    assert obp_ope.InverseProbabilityWeighting().estimate_policy_value(**kw) == pytest.approx(
        estimate(log, pi, "ips", n_boot=1).value, rel=1e-9)
    assert obp_ope.SelfNormalizedInverseProbabilityWeighting().estimate_policy_value(**kw) == pytest.approx(
        estimate(log, pi, "snips", n_boot=1).value, rel=1e-9)
    from genart.bandit.offline import reward_model

    q = reward_model(log)
    assert obp_ope.DoublyRobust().estimate_policy_value(estimated_rewards_by_reg_model=q[:, :, None], **kw) == \
        pytest.approx(estimate(log, pi, "dr", n_boot=1, q_hat=q).value, rel=1e-9)
