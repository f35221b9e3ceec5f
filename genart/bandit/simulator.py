"""A simulated audience: segments with true reward rates per arm, to show (and test) learning.

:func:`simulate` runs a policy in memory, vectorised and batched: decisions are made in batches
whose posterior is fixed within the batch (as a service sees delayed rewards), with batches that
start small and grow geometrically (4, 4, ..., then 2 % of the rounds so far, capped at 4096), which keeps
regret close to a fully sequential policy while the per-batch numpy work is amortised over many
decisions. The environment is pre-drawn (segment per round, one uniform per round and arm), so
two policies run on the same seed face exactly the same members and the same potential outcomes.

Regret is the expected regret: the sum over rounds of (best arm's true rate - chosen arm's true
rate) in the member's segment.

:func:`drive_tester` pushes the same simulated traffic through a real :class:`Tester` and store.

Randomness: the audience (who comes, and what they would click), the policy's draws and the
simulated user ids are independent streams of one seed (:func:`streams`, numpy's
``SeedSequence.spawn``). Seeding the tester and the audience from the same stream makes the
tester's draws for member i the very numbers that chose member i's segment, and then the arms it
picks disagree with the propensities it logs (by many standard deviations): regret and offline
estimates from such a run are invalid.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterator

import numpy as np

from genart.bandit.contextual import LinearState, LinTS, LinUCB
from genart.bandit.policies import BetaState, apply_floor, choose, make_beta_policy
from genart.bandit.types import BETA_POLICIES, POLICY_NAMES, Context, SimulationResult
from genart.errors import InvalidArgumentError, UnknownPolicyError
from genart.types import Arm, Outcome
from genart.bandit.vw import VWModel


DETERMINISTIC = ("ucb1", "linucb", "egreedy")  # deterministic apart from ties / the epsilon coin
DETERMINISTIC_MAX_BATCH = 32
AUDIENCE, POLICY, MEMBERS = 0, 1, 2  # the streams of a seed, see streams()


def streams(seed: int | np.random.SeedSequence, n: int = 3) -> list[np.random.SeedSequence]:
    """Independent random streams of one seed: ``[audience, policy, members, ...]``."""
    root = seed if isinstance(seed, np.random.SeedSequence) else np.random.SeedSequence(seed)
    return root.spawn(n)


def stream_seed(seq: np.random.SeedSequence) -> int:
    """An integer seed for a stream (a ``TestConfig.seed`` is stored as JSON)."""
    return int(seq.generate_state(1, np.uint64)[0] >> np.uint64(1))


@dataclass(frozen=True)
class Population:
    """Segments x arms true reward rates, traffic shares per segment, optional member features."""

    segments: tuple[str, ...]
    arms: tuple[str, ...]
    rates: tuple[tuple[float, ...], ...]
    weights: tuple[float, ...]
    features: tuple[tuple[float, ...], ...] = ()  # per segment, what a contextual policy sees

    def __post_init__(self) -> None:
        r = np.asarray(self.rates, dtype=float)
        if r.shape != (len(self.segments), len(self.arms)):
            raise InvalidArgumentError("rates shape", r.shape, f"({len(self.segments)}, {len(self.arms)})")
        if np.any((r < 0) | (r > 1)):
            raise InvalidArgumentError("rates", r.min() if r.min() < 0 else r.max(), "probabilities in [0, 1]")
        w = np.asarray(self.weights, dtype=float)
        if w.shape != (len(self.segments),) or np.any(w < 0) or w.sum() <= 0:
            raise InvalidArgumentError("weights", self.weights, "one non-negative share per segment, not all 0")

    @classmethod
    def random(cls, n_arms: int = 6, n_segments: int = 4, seed: int = 0, low: float = 0.02,
               high: float = 0.12, n_features: int = 0) -> "Population":
        """Random rates in [low, high] per segment and arm, each segment preferring other arms."""
        if n_arms < 2 or n_segments < 1:
            raise InvalidArgumentError("population size", (n_arms, n_segments), "at least 2 arms and 1 segment")
        rng = np.random.default_rng(seed)
        rates = rng.uniform(low, high, size=(n_segments, n_arms))
        weights = rng.dirichlet(np.full(n_segments, 5.0))
        feats = tuple(tuple(float(v) for v in rng.normal(size=n_features)) for _ in range(n_segments)) if n_features else ()
        return cls(segments=tuple(f"seg{i}" for i in range(n_segments)), arms=tuple(f"arm{k}" for k in range(n_arms)),
                   rates=tuple(tuple(float(v) for v in row) for row in rates),
                   weights=tuple(float(w) for w in weights), features=feats)

    @property
    def rate_array(self) -> np.ndarray:
        return np.asarray(self.rates, dtype=float)

    @property
    def best_arms(self) -> np.ndarray:
        return self.rate_array.argmax(axis=1)

    def environment(self, rounds: int, seed: int | np.random.SeedSequence = 0) -> "Environment":
        """Pre-draws ``rounds`` members: their segment and a uniform per arm (common random numbers),
        from the audience stream of ``seed`` (an int), or from ``seed`` itself (a SeedSequence)."""
        rng = np.random.default_rng(seed if isinstance(seed, np.random.SeedSequence) else streams(seed)[AUDIENCE])
        w = np.asarray(self.weights, dtype=float)
        seg = rng.choice(len(self.segments), size=rounds, p=w / w.sum())
        u = rng.random((rounds, len(self.arms)), dtype=np.float32)
        return Environment(self, seg.astype(np.int64), u)

    def arms_for(self, test_id: str) -> list[Arm]:
        """The population's arms as a test's arms (every arm in every segment, flat priors)."""
        return [Arm(test_id=test_id, arm_id=a, segment=s, variant_id=None, image_path=None)
                for s in self.segments for a in self.arms]


@dataclass(frozen=True)
class Environment:
    population: Population
    segments: np.ndarray  # (N,) segment index per round
    uniforms: np.ndarray  # (N, K) float32: arm k pays off in round i iff uniforms[i, k] < rate
    _flat_rates: np.ndarray = field(init=False, repr=False, compare=False)  # set in __post_init__
    _flat_uniforms: np.ndarray = field(init=False, repr=False, compare=False)

    @property
    def rounds(self) -> int:
        return int(self.segments.shape[0])

    def __post_init__(self) -> None:
        object.__setattr__(self, "_flat_rates", self.population.rate_array.ravel())
        object.__setattr__(self, "_flat_uniforms", self.uniforms.reshape(-1))

    def rewards(self, start: int, arms: np.ndarray) -> np.ndarray:
        """Rewards of ``arms`` chosen for the members ``start .. start + len(arms)``."""
        n = arms.shape[0]
        k = self.uniforms.shape[1]
        seg = self.segments[start:start + n]
        u = self._flat_uniforms[(start + np.arange(n)) * k + arms]
        return (u < self._flat_rates[seg * k + arms]).astype(np.float64)


def batch_schedule(rounds: int, min_batch: int = 4, growth: float = 0.02, max_batch: int = 4096) -> Iterator[int]:
    """Batch sizes: ``min_batch`` while few rounds are done, then ``growth`` x rounds so far, capped."""
    t = 0
    while t < rounds:
        b = int(min(max_batch, max(min_batch, growth * t), rounds - t))
        yield b
        t += b


def simulate(population: Population, policy: str = "ts", rounds: int = 50_000, *, seed: int = 0,
             floor: float = 0.0, epsilon: float = 0.1, ucb_c: float = 1.0, mc_samples: int = 1000,
             batch_size: int | None = None, max_batch: int = 4096, checkpoints: int = 50,
             lin_alpha: float = 1.0, lin_v: float = 0.5, env: Environment | None = None) -> SimulationResult:
    """Runs ``policy`` for ``rounds`` members of ``population`` and measures its regret.

    Args:
        population: the simulated audience.
        policy: ``ts``, ``egreedy``, ``ucb1``, ``lints``, ``linucb`` or ``vw``.
        rounds: number of decisions.
        seed: seeds the environment and the policy.
        floor: exploration floor.
        batch_size: fixed batch size; ``None`` for the growing schedule (:func:`batch_schedule`).
        checkpoints: how many points the curves in the result have.
        env: a pre-drawn environment (to run several policies on the same members).

    Raises:
        UnknownPolicyError: ``policy`` is not a known policy.
        InvalidArgumentError: ``rounds < 1`` or a bad ``batch_size``.
    """
    if policy not in POLICY_NAMES:
        raise UnknownPolicyError(policy, POLICY_NAMES)
    if rounds < 1:
        raise InvalidArgumentError("rounds", rounds, "an integer >= 1")
    if batch_size is not None and batch_size < 1:
        raise InvalidArgumentError("batch_size", batch_size, "None or an integer >= 1")
    env = env or population.environment(rounds, seed)
    if env.rounds < rounds:
        raise InvalidArgumentError("env rounds", env.rounds, f">= {rounds}")
    rng = np.random.default_rng(streams(seed)[POLICY])
    rates = population.rate_array
    s, k = rates.shape
    best_rate = rates.max(axis=1)
    best_arm = rates.argmax(axis=1)
    mask = np.ones((s, k), dtype=bool)

    if policy in BETA_POLICIES:
        state = BetaState.uniform(s, k)
        pol = make_beta_policy(policy, epsilon=epsilon, ucb_c=ucb_c, mc_samples=mc_samples)

        def decide(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            probs = pol.probabilities(state, rng, np.bincount(seg, minlength=s))
            if floor > 0:
                probs = apply_floor(probs, mask, floor)
            return choose(probs, seg, rng)

        def learn(seg, arms, rewards, props) -> None:
            state.update(seg, arms, rewards)
    else:
        feats = np.asarray(population.features, dtype=float) if population.features else np.zeros((s, 0))
        X_seg = np.concatenate([np.eye(s), feats, np.ones((s, 1))], axis=1)
        if policy == "vw":
            model = VWModel([f"arm={a}" for a in population.arms], None, seed=seed)

            def decide(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                probs = apply_floor(model.probabilities(X_seg, None, rng), mask, floor)
                return choose(probs, seg, rng)

            def learn(seg, arms, rewards, props) -> None:
                model.update(X_seg[seg], arms, rewards, props)
        else:
            lin = LinearState(k, X_seg.shape[1])
            lpol = LinUCB(lin_alpha) if policy == "linucb" else LinTS(lin_v, mc_samples)

            def decide(seg: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
                probs = apply_floor(lpol.probabilities(lin, X_seg, None, rng), mask, floor)
                return choose(probs, seg, rng)

            def learn(seg, arms, rewards, props) -> None:
                lin.update(X_seg[seg], arms, rewards)

    if policy in DETERMINISTIC and batch_size is None:
        # A deterministic policy sends a whole batch of a segment to one arm; a service recomputes
        # it per request, so simulate it with small batches.
        max_batch = min(max_batch, DETERMINISTIC_MAX_BATCH)
    sizes = (batch_schedule(rounds, max_batch=max_batch) if batch_size is None
             else (min(batch_size, rounds - t) for t in range(0, rounds, batch_size)))
    marks = np.unique(np.linspace(0, rounds, checkpoints + 1).astype(int)[1:]) if checkpoints else np.array([rounds])
    regret_flat = (best_rate[:, None] - rates).ravel()
    best_flat = np.zeros(s * k, dtype=np.int64)
    best_flat[np.arange(s) * k + best_arm] = 1
    regret = reward = 0.0
    best_hits = 0
    window_counts = np.zeros(k)
    cp, cr, cw, shares = [], [], [], []
    t = 0
    mi = 0
    for b in sizes:
        seg = env.segments[t:t + b]
        arms, props = decide(seg)
        rewards = env.rewards(t, arms)
        learn(seg, arms, rewards, props)
        flat = seg * k + arms
        regret += float(regret_flat[flat].sum())
        reward += float(rewards.sum())
        best_hits += int(best_flat[flat].sum())
        window_counts += np.bincount(arms, minlength=k)
        t += b
        while mi < len(marks) and t >= marks[mi]:
            cp.append(int(t))
            cr.append(regret)
            cw.append(reward)
            total = window_counts.sum()
            shares.append(tuple(float(x) for x in (window_counts / total if total else window_counts)))
            window_counts = np.zeros(k)
            mi += 1
    return SimulationResult(policy=policy, rounds=int(rounds), regret=float(regret),
                            best_arm_share=best_hits / float(rounds), reward=float(reward),
                            checkpoints=tuple(cp), cumulative_regret=tuple(cr), cumulative_reward=tuple(cw),
                            arm_share=tuple(shares))


def drive_tester(tester, test_id: str, population: Population, rounds: int, *, seed: int = 0,
                 batch_size: int = 500, users: int = 0, env: Environment | None = None) -> SimulationResult:
    """Runs simulated traffic through a real tester and store: ``assign_many`` then ``record_many``
    per batch, a success or not recorded for every exposure (a success is a click, or a play or
    watch time that earns the full reward under the test's reward rule).

    The test must exist with the population's segments and arms (e.g. from
    :meth:`Population.arms_for`). Returns the expected regret of what the tester chose.

    Args:
        seed: the audience's and the user ids' streams (:func:`streams`); seed the tester (its
            ``TestConfig.seed`` or ``Tester(seed=)``) from another stream.
        users: if > 0, members carry one of this many user ids (for stickiness).
        env: pre-drawn members (the same members for several runs).
    """
    env = env or population.environment(rounds, seed)
    rates = population.rate_array
    best_rate, best_arm = rates.max(axis=1), rates.argmax(axis=1)
    arm_index = {a: i for i, a in enumerate(population.arms)}
    rng = np.random.default_rng(streams(seed)[MEMBERS])
    # what a member who "clicks" is observed doing under the test's reward rule: a click, a play as
    # long as the threshold, the capped watch time
    rule = tester.config(test_id).reward
    success = rule.threshold if rule.kind == "threshold" and rule.threshold > 0 else \
        rule.scale if rule.kind == "value" else 1.0
    regret = reward = 0.0
    hits = 0
    t = 0
    while t < rounds:
        b = min(batch_size, rounds - t)
        seg = env.segments[t:t + b]
        ctxs = []
        for i in range(b):
            uid = f"u{int(rng.integers(users))}" if users else None
            feats = tuple(population.features[seg[i]]) if tester.config(test_id).context_dim else ()
            ctxs.append(Context(population.segments[seg[i]], uid, feats))
        exps = tester.assign_many(test_id, ctxs)
        arms = np.array([arm_index[e.arm_id] for e in exps])
        rewards = env.rewards(t, arms)
        now = tester.clock()
        tester.record_many([Outcome(e.exposure_id, float(r) * success, now) for e, r in zip(exps, rewards)])
        regret += float((best_rate[seg] - rates[seg, arms]).sum())
        reward += float(rewards.sum())
        hits += int((arms == best_arm[seg]).sum())
        t += b
    return SimulationResult(policy=tester.config(test_id).policy, rounds=rounds, regret=regret,
                            best_arm_share=hits / float(rounds), reward=reward)
