"""Non-contextual policies over per segment x arm Beta posteriors, vectorised in numpy.

Every policy here returns an explicit probability for each arm of each segment (rows sum to 1,
arms a segment does not have get 0). The decision is then *drawn from that distribution*
(:func:`choose`), so the propensity logged with an exposure is exactly the probability the arm was
chosen with, which is what IPS / SNIPS / DR need.

- Thompson sampling: P(arm k is best) is estimated by Monte-Carlo over ``mc_samples`` joint
  posterior draws (the fraction of draws in which arm k has the largest sampled rate). The decision
  is drawn from that estimated distribution, so the logged propensity is exact for the policy that
  actually ran ("probability matching with M draws"), and the MC error only makes that policy a
  slightly smoothed Thompson sampler. With M = 1000 the per-arm MC standard error is <= 0.016.
- epsilon-greedy: epsilon spread over the segment's arms, the rest on the best posterior mean (ties
  split evenly).
- UCB1 with the cold-start prior as pseudo-observations: deterministic apart from ties.

:func:`apply_floor` mixes in the exploration floor: ``p = floor + (1 - K * floor) * p_policy``.
Rewards are in [0, 1]; a fractional reward updates a Beta posterior as ``alpha += r``,
``beta += 1 - r``. :func:`cap_change` applies the change-effect cap (how fast a segment's
allocation may move) after the floor.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass

import numpy as np

from genart.errors import InvalidArgumentError, UnknownPolicyError


@dataclass
class BetaState:
    """Beta posteriors for S segments x K arms; ``mask[s, k]`` says segment s has arm k.

    Mutable on purpose: it is a policy's working memory, never passed between stages.
    """

    prior_alpha: np.ndarray
    prior_beta: np.ndarray
    successes: np.ndarray
    trials: np.ndarray
    mask: np.ndarray

    @classmethod
    def from_prior_means(cls, means: np.ndarray, weight: float | np.ndarray = 2.0,
                         mask: np.ndarray | None = None) -> "BetaState":
        """Priors with mean ``means[s, k]`` worth ``weight`` pseudo-observations (cold start); a
        weight per arm (an array of the shape of ``means``) where a model knows some arms better.

        Raises:
            InvalidArgumentError: a mean is outside (0, 1) or a weight is not positive.
        """
        means = np.asarray(means, dtype=float)
        if means.ndim != 2:
            raise InvalidArgumentError("prior means", means.shape, "a 2-D array (segments x arms)")
        weight = np.broadcast_to(np.asarray(weight, dtype=float), means.shape)
        if np.any(weight <= 0) or not np.all(np.isfinite(weight)):
            raise InvalidArgumentError("prior weight", float(weight.min()), "finite numbers > 0")
        mask = np.ones(means.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        m = np.where(mask, means, 0.5)
        if np.any((m <= 0) | (m >= 1)):
            raise InvalidArgumentError("prior mean", m[(m <= 0) | (m >= 1)][0], "a number strictly between 0 and 1")
        return cls(prior_alpha=m * weight, prior_beta=(1 - m) * weight, successes=np.zeros_like(m),
                   trials=np.zeros_like(m), mask=mask)

    @classmethod
    def uniform(cls, n_segments: int, n_arms: int) -> "BetaState":
        """Beta(1, 1) everywhere."""
        return cls.from_prior_means(np.full((n_segments, n_arms), 0.5), weight=2.0)

    @property
    def shape(self) -> tuple[int, int]:
        return self.mask.shape

    @property
    def alpha(self) -> np.ndarray:
        return self.prior_alpha + self.successes

    @property
    def beta(self) -> np.ndarray:
        return self.prior_beta + self.trials - self.successes

    @property
    def means(self) -> np.ndarray:
        a = self.alpha
        return a / (a + self.beta)

    def update(self, segments: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        """Adds a batch of (segment, arm, reward in [0, 1]) observations."""
        s, k = self.shape
        idx = np.asarray(segments, dtype=np.int64) * k + np.asarray(arms, dtype=np.int64)
        self.successes += np.bincount(idx, weights=np.asarray(rewards, dtype=float), minlength=s * k).reshape(s, k)
        self.trials += np.bincount(idx, minlength=s * k).reshape(s, k)


class BetaPolicy(ABC):
    """A policy whose choice distribution depends on the segment's posteriors only."""

    name: str = ""

    @abstractmethod
    def probabilities(self, state: BetaState, rng: np.random.Generator,
                      demand: np.ndarray | None = None) -> np.ndarray:
        """The (S, K) choice distribution; rows sum to 1, masked arms are 0.

        ``demand[s]`` is how many decisions the caller will draw from row s (a batch); policies
        that estimate their distribution may size the estimate to it.
        """


def _split_ties(scores: np.ndarray, mask: np.ndarray) -> np.ndarray:
    scores = np.where(mask, scores, -np.inf)
    top = scores.max(axis=-1, keepdims=True)
    best = mask & np.isclose(scores, top, rtol=0.0, atol=1e-12)
    return best / best.sum(axis=-1, keepdims=True)


class ThompsonSampling(BetaPolicy):
    """Bernoulli Thompson sampling as explicit probabilities (probability matching by Monte-Carlo).

    Without ``demand`` every segment gets ``mc_samples`` joint posterior draws. With a batch
    ``demand``, segment s gets ``clip(demand[s], min_samples, mc_samples)`` draws: as many draws as
    decisions is what classic per-decision Thompson sampling spends anyway, and the estimated
    distribution is unbiased for P(arm is best) whatever the number of draws, so each decision is
    still Thompson sampling on average while the logged propensity is exact for the distribution
    the decision was drawn from.
    """

    name = "ts"

    def __init__(self, mc_samples: int = 1000, min_samples: int = 8) -> None:
        if mc_samples < 1 or min_samples < 1:
            raise InvalidArgumentError("mc_samples", (mc_samples, min_samples), "integers >= 1")
        self.mc_samples = int(mc_samples)
        self.min_samples = int(min(min_samples, mc_samples))

    def probabilities(self, state: BetaState, rng: np.random.Generator,
                      demand: np.ndarray | None = None) -> np.ndarray:
        s, k = state.shape
        alpha, beta = state.alpha, state.beta
        if demand is None:
            m = np.full(s, self.mc_samples, dtype=np.int64)
        else:
            demand = np.asarray(demand, dtype=np.int64)
            m = np.where(demand > 0, np.clip(demand, self.min_samples, self.mc_samples), 1)
        seg_of_draw = np.repeat(np.arange(s), m)
        # Beta(a, b) = G_a / (G_a + G_b); float32 gamma draws are ~25 % faster than rng.beta and
        # only the argmax of each draw matters.
        g_a = rng.standard_gamma(alpha.astype(np.float32)[seg_of_draw], dtype=np.float32)
        g_b = rng.standard_gamma(beta.astype(np.float32)[seg_of_draw], dtype=np.float32)
        draws = g_a / (g_a + g_b)
        if not state.mask.all():
            draws = np.where(state.mask[seg_of_draw], draws, -1.0)
        best = draws.argmax(axis=-1) + seg_of_draw * k
        counts = np.bincount(best, minlength=s * k).reshape(s, k)
        return counts / m[:, None].astype(float)


class EpsilonGreedy(BetaPolicy):
    name = "egreedy"

    def __init__(self, epsilon: float = 0.1) -> None:
        if not 0.0 <= epsilon <= 1.0:
            raise InvalidArgumentError("epsilon", epsilon, "a number in [0, 1]")
        self.epsilon = float(epsilon)

    def probabilities(self, state: BetaState, rng: np.random.Generator,
                      demand: np.ndarray | None = None) -> np.ndarray:
        mask = state.mask
        explore = mask / mask.sum(axis=-1, keepdims=True)
        return self.epsilon * explore + (1.0 - self.epsilon) * _split_ties(state.means, mask)


class UCB1(BetaPolicy):
    """UCB1 (Auer et al. 2002) with the prior's pseudo-observations counted as trials."""

    name = "ucb1"

    def __init__(self, c: float = 1.0) -> None:
        if c < 0:
            raise InvalidArgumentError("ucb_c", c, "a number >= 0")
        self.c = float(c)

    def probabilities(self, state: BetaState, rng: np.random.Generator,
                      demand: np.ndarray | None = None) -> np.ndarray:
        n = state.trials + state.prior_alpha + state.prior_beta
        total = np.where(state.mask, n, 0.0).sum(axis=-1, keepdims=True)
        bonus = self.c * np.sqrt(2.0 * np.log(np.maximum(total, 1.0)) / n)
        return _split_ties(state.means + bonus, state.mask)


def make_beta_policy(name: str, *, epsilon: float = 0.1, ucb_c: float = 1.0, mc_samples: int = 1000) -> BetaPolicy:
    """The non-contextual policy called ``name`` (``ts``, ``egreedy``, ``ucb1``).

    Raises:
        UnknownPolicyError: ``name`` is not one of them.
    """
    if name == "ts":
        return ThompsonSampling(mc_samples)
    if name == "egreedy":
        return EpsilonGreedy(epsilon)
    if name == "ucb1":
        return UCB1(ucb_c)
    raise UnknownPolicyError(name, ("ts", "egreedy", "ucb1"))


def apply_floor(probs: np.ndarray, mask: np.ndarray, floor: float) -> np.ndarray:
    """Mixes the exploration floor into each row: ``p = floor + (1 - K * floor) * p_policy``.

    ``K`` is the number of arms the row has (``mask``). Rows are renormalised so they sum to 1 to
    the last bit.

    Raises:
        InvalidArgumentError: ``floor * K > 1`` for some row (no distribution can respect it).
    """
    probs = np.asarray(probs, dtype=float)
    mask = np.broadcast_to(np.asarray(mask, dtype=bool), probs.shape)
    if floor <= 0.0:
        out = np.where(mask, probs, 0.0)
    else:
        k = mask.sum(axis=-1, keepdims=True)
        if np.any(floor * k > 1.0 + 1e-12):
            raise InvalidArgumentError("floor", floor, f"at most 1 / (number of arms) = {1.0 / int(k.max()):.4g}")
        out = np.where(mask, floor + (1.0 - k * floor) * probs, 0.0)
    return out / out.sum(axis=-1, keepdims=True)


def cap_change(target: np.ndarray, reference: np.ndarray | None, budget: float) -> tuple[np.ndarray, np.ndarray]:
    """The change-effect cap: moves a segment's allocation from ``reference`` towards ``target`` by at
    most ``budget`` per arm.

    ``target`` is the (n, K) distribution the policy wants for the segment's n members (rows equal
    for the Beta policies, different per member for the contextual ones); the segment's allocation
    is their mean. Each row becomes ``lam * target + (1 - lam) * reference`` with the largest
    ``lam`` in [0, 1] that keeps every arm's mean share within ``budget`` of the reference. A
    mixture of two distributions that respect the exploration floor respects it too, and the
    decision is drawn from the result, so the logged propensity is the capped one.

    Args:
        target: (n, K) rows summing to 1.
        reference: (K,) the allocation served last (None: the first decision, nothing to move from).
        budget: how far any arm's share may move now (>= 0).

    Returns:
        (served rows (n, K), the new allocation (K,): their mean).
    """
    target = np.atleast_2d(np.asarray(target, dtype=float))
    mean = target.mean(axis=0)
    if reference is None:
        return target, mean
    reference = np.asarray(reference, dtype=float)
    gap = float(np.abs(mean - reference).max())
    if gap <= budget:
        return target, mean
    lam = max(0.0, budget) / gap
    served = lam * target + (1.0 - lam) * reference[None, :]
    served /= served.sum(axis=1, keepdims=True)
    return served, served.mean(axis=0)


def extend_reference(reference: np.ndarray, k: int, floor: float) -> np.ndarray:
    """A reference allocation over ``k`` arms from one over fewer (arms were added): the new arms
    start at the exploration floor, the old keep their proportions in the rest."""
    reference = np.asarray(reference, dtype=float)
    if reference.shape[0] == k:
        return reference
    padded = np.zeros(k)
    padded[:min(k, reference.shape[0])] = reference[:k]
    total = padded.sum()
    padded = padded / total if total > 0 else np.full(k, 1.0 / k)
    return floor + (1.0 - k * floor) * padded


def choose(probs: np.ndarray, rows: np.ndarray | None, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Draws one arm per decision from ``probs`` and returns (arms, propensities).

    Args:
        probs: (R, K) distributions, each row summing to 1.
        rows: for each decision, which row of ``probs`` it uses (e.g. its segment); ``None`` means
            one decision per row.
        rng: the generator the draws come from.

    Returns:
        ``arms`` (n,) int64 and ``propensities`` (n,) = ``probs[row, arm]``, the exact probability
        each arm was drawn with.
    """
    probs = np.asarray(probs, dtype=float)
    cdf = np.cumsum(probs, axis=-1)
    last = probs.shape[-1] - 1 - np.argmax(probs[:, ::-1] > 0, axis=-1)  # last arm with p > 0
    if rows is None:
        rows = np.arange(probs.shape[0])
    rows = np.asarray(rows, dtype=np.int64)
    u = rng.random(rows.shape[0]) * cdf[rows, -1]
    arms = (u[:, None] >= cdf[rows]).sum(axis=-1)
    arms = np.minimum(arms, last[rows])
    return arms, probs[rows, arms]
