"""Bandit policies: exact propensities, the exploration floor, convergence in the simulator."""

from __future__ import annotations

import numpy as np
import pytest

from genart.bandit.contextual import LinearState, LinTS, LinUCB
from genart.bandit.policies import BetaState, EpsilonGreedy, ThompsonSampling, UCB1, apply_floor, choose
from genart.bandit.simulator import Population, batch_schedule, simulate
from genart.bandit.types import TestConfig
from genart.errors import InvalidArgumentError, UnknownPolicyError

# Two segments whose best arms differ; gaps of >= 0.1 so convergence is quick to see.
CLEAR = Population(segments=("drama", "comedy"), arms=("a", "b", "c", "d"),
                   rates=((0.10, 0.40, 0.25, 0.20), (0.45, 0.15, 0.30, 0.10)), weights=(0.5, 0.5))


def _state(rng: np.random.Generator) -> BetaState:
    st = BetaState.uniform(3, 5)
    st.mask[2, 3:] = False  # segment 2 has only 3 arms
    segs = rng.integers(0, 3, 2000)
    arms = rng.integers(0, 3, 2000)
    st.update(segs, arms, (rng.random(2000) < 0.3).astype(float))
    return st


@pytest.mark.parametrize("policy", [ThompsonSampling(500), EpsilonGreedy(0.2), UCB1(1.0)])
@pytest.mark.parametrize("floor", [0.0, 0.03])
def test_probabilities_sum_to_one_and_respect_floor_and_mask(policy, floor):
    rng = np.random.default_rng(0)
    st = _state(rng)
    p = apply_floor(policy.probabilities(st, rng), st.mask, floor)
    assert p.shape == (3, 5)
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-12)
    assert np.all(p[~st.mask] == 0.0)
    assert np.all(p[st.mask] >= floor - 1e-12)


def test_floor_mixing_formula_and_impossible_floor():
    probs = np.array([[1.0, 0.0, 0.0, 0.0]])
    p = apply_floor(probs, np.ones((1, 4), bool), 0.05)
    np.testing.assert_allclose(p, [[0.05 + 0.8, 0.05, 0.05, 0.05]])
    with pytest.raises(InvalidArgumentError, match="floor"):
        apply_floor(probs, np.ones((1, 4), bool), 0.3)


def test_choose_draws_from_the_distribution_and_reports_its_propensity():
    rng = np.random.default_rng(1)
    probs = np.array([[0.5, 0.3, 0.2, 0.0], [0.0, 0.0, 0.1, 0.9]])
    rows = np.repeat([0, 1], 50_000)
    arms, props = choose(probs, rows, rng)
    np.testing.assert_array_equal(props, probs[rows, arms])
    assert np.all(props > 0)  # a zero-probability arm is never drawn
    freq0 = np.bincount(arms[rows == 0], minlength=4) / 50_000
    freq1 = np.bincount(arms[rows == 1], minlength=4) / 50_000
    np.testing.assert_allclose(freq0, probs[0], atol=0.01)
    np.testing.assert_allclose(freq1, probs[1], atol=0.01)


def test_thompson_probabilities_match_posterior_probability_of_being_best():
    st = BetaState.from_prior_means(np.array([[0.5, 0.5]]), weight=2.0)
    arms = np.r_[np.zeros(30, int), np.ones(30, int)]
    rewards = np.r_[np.ones(12), np.zeros(18), np.ones(9), np.zeros(21)]  # 12/30 vs 9/30
    st.update(np.zeros(60, int), arms, rewards)
    rng = np.random.default_rng(2)
    p = ThompsonSampling(4000).probabilities(st, rng)
    big = rng.beta(st.alpha[0], st.beta[0], size=(400_000, 2))
    truth = (big[:, 0] > big[:, 1]).mean()
    assert abs(p[0, 0] - truth) < 0.03  # MC standard error at M=4000 is < 0.008
    # sized to a batch: still a distribution, still unbiased
    pb = np.mean([ThompsonSampling(1000).probabilities(st, rng, np.array([40]))[0, 0] for _ in range(300)])
    assert abs(pb - truth) < 0.02


def test_cold_start_prior_breaks_ties_before_any_traffic():
    st = BetaState.from_prior_means(np.array([[0.6, 0.4, 0.4]]), weight=50.0)
    p = ThompsonSampling(2000).probabilities(st, np.random.default_rng(0))
    assert p[0, 0] > 0.8
    assert EpsilonGreedy(0.0).probabilities(st, np.random.default_rng(0))[0, 0] == 1.0


@pytest.mark.parametrize("policy,rounds", [("ts", 6000), ("egreedy", 6000), ("ucb1", 20000),
                                           ("lints", 6000), ("linucb", 6000)])
def test_policies_converge_to_the_best_arm_within_stated_rounds(policy, rounds):
    """After `rounds` decisions the per-round regret over the last fifth is below 0.03 (the
    smallest gap to a best arm is 0.15, so >= 80 % of the late traffic goes to the best arm)."""
    res = simulate(CLEAR, policy, rounds, seed=3, epsilon=0.05, checkpoints=10)
    late_regret = (res.cumulative_regret[-1] - res.cumulative_regret[-3]) / (res.checkpoints[-1] - res.checkpoints[-3])
    assert late_regret < 0.03, (policy, late_regret)
    assert res.best_arm_share > 0.75


def test_thompson_beats_uniform_random_by_a_wide_margin():
    pop = Population.random(6, 4, seed=0)
    env = pop.environment(20_000, seed=0)
    ts = simulate(pop, "ts", 20_000, env=env, checkpoints=0)
    rates = pop.rate_array
    uniform_regret = float((rates.max(axis=1)[env.segments] - rates[env.segments].mean(axis=1)).sum())
    assert ts.regret < 0.35 * uniform_regret


def test_simulation_is_reproducible_and_floor_is_respected():
    a = simulate(CLEAR, "ts", 2000, seed=5)
    b = simulate(CLEAR, "ts", 2000, seed=5)
    assert a == b
    floored = simulate(CLEAR, "ts", 20_000, seed=5, floor=0.05, checkpoints=4)
    assert min(floored.arm_share[-1]) >= 0.04  # every arm keeps ~5 % even after convergence


def test_batch_schedule_covers_the_rounds_and_grows():
    sizes = list(batch_schedule(1_000_000, max_batch=4096))
    assert sum(sizes) == 1_000_000
    assert sizes[0] == 4 and max(sizes) == 4096
    assert sizes[:-1] == sorted(sizes[:-1])


def test_linear_policies_probabilities():
    st = LinearState(3, 4)
    rng = np.random.default_rng(0)
    X = np.eye(4)[[0, 1, 2]]
    st.update(X[[0, 0, 1]], np.array([2, 2, 1]), np.array([1.0, 1.0, 0.0]))
    mask = np.array([[True, True, True], [True, True, False], [True, True, True]])
    for pol in (LinUCB(0.5), LinTS(0.3, 500)):
        p = pol.probabilities(st, X[:3], mask, rng)
        np.testing.assert_allclose(p.sum(axis=1), 1.0)
        assert p[1, 2] == 0.0
    assert LinUCB(0.0).probabilities(st, X[:1], None, rng)[0, 2] == 1.0


def test_unknown_policy_is_a_typed_error_naming_the_choices():
    with pytest.raises(UnknownPolicyError, match="known policies: egreedy, lints, linucb, ts, ucb1, vw"):
        simulate(CLEAR, "thompson", 10)
    with pytest.raises(UnknownPolicyError):
        TestConfig(policy="nope")
    with pytest.raises(InvalidArgumentError, match="floor"):
        TestConfig(floor=0.9)
