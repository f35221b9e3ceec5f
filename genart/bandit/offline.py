"""Offline evaluation on the logs: what would a candidate policy have earned?

Logged data and estimators are kept apart (as Open Bandit Pipeline does), with typed values
instead of feedback dicts:

- :class:`LoggedData`: for each logged exposure, the action index (within its segment's arms), the
  reward, the propensity it was chosen with, the logging policy's full distribution, the context
  row (segment one-hot, member features, bias) and the segment.
- A candidate policy is an ``(n, K)`` array ``action_dist``: its probability of each action for
  each logged context (helpers below build it from a per-segment table).
- Estimators: ``replay`` (Li et al. 2011: keep the events where the candidate picks the logged
  action; unbiased only when the logging policy was uniform at random), ``ips``, ``snips`` and
  ``dr`` (doubly robust with a cross-fitted per segment x action reward model), each with a
  percentile bootstrap confidence interval.
- Exports: Vowpal Wabbit's contextual-bandit ADF text format and Open Bandit Pipeline-style
  arrays (``action``, ``reward``, ``pscore``, ``position``, ``context``, ``action_dist`` of shape
  ``(n, K, 1)``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from genart.bandit.types import Estimate
from genart.bandit.vw import adf_example, vw_token
from genart.errors import InvalidArgumentError

METHODS: tuple[str, ...] = ("replay", "ips", "snips", "dr")


@dataclass(frozen=True, eq=False)
class LoggedData:
    """Logged bandit feedback as arrays (n events, K action slots).

    ``actions[i]`` indexes the arms of event i's segment (in position order); segments with fewer
    arms than K have zero-probability padding slots. ``action_ids[s][k]`` names action k of
    segment s.
    """

    actions: np.ndarray  # (n,) int
    rewards: np.ndarray  # (n,) float in [0, 1]
    pscores: np.ndarray  # (n,) propensity of the logged action
    logging_dist: np.ndarray  # (n, K) the logging policy's distribution
    contexts: np.ndarray  # (n, d)
    segment_index: np.ndarray  # (n,) int
    segments: tuple[str, ...]
    action_ids: tuple[tuple[str, ...], ...]
    positions: np.ndarray | None = None

    def __post_init__(self) -> None:
        n = self.actions.shape[0]
        for name in ("rewards", "pscores", "segment_index"):
            if getattr(self, name).shape != (n,):
                raise InvalidArgumentError(name, getattr(self, name).shape, f"({n},)")
        if self.logging_dist.ndim != 2 or self.logging_dist.shape[0] != n:
            raise InvalidArgumentError("logging_dist", self.logging_dist.shape, f"({n}, K)")
        if n and (np.any(self.pscores <= 0) or np.any(self.pscores > 1)):
            raise InvalidArgumentError("pscores", float(self.pscores.min()), "propensities in (0, 1]")

    @property
    def n(self) -> int:
        return int(self.actions.shape[0])

    @property
    def n_actions(self) -> int:
        return int(self.logging_dist.shape[1])

    def action_mask(self) -> np.ndarray:
        """(n, K): which action slots exist for each event's segment."""
        sizes = np.array([len(a) for a in self.action_ids])
        return np.arange(self.n_actions)[None, :] < sizes[self.segment_index][:, None]


def logged_data(tester, test_id: str, *, include_sticky: bool = False) -> LoggedData:
    """The test's log as :class:`LoggedData`.

    Exposures without a reward count as reward 0 when the test's reward rule says
    ``implicit_zero`` and are left out otherwise; late rewards count as 0. Sticky repeats (not a
    fresh draw from the policy) are left out unless ``include_sticky``.
    """
    test = tester._load(test_id)
    implicit_zero = test.config.reward.implicit_zero
    with tester.log.read() as txn:
        rows = txn.events(test_id)
    segments = tuple(test.segments)
    action_ids = tuple(tuple(a.arm_id for a in test.arms[s]) for s in segments)
    k = max(len(a) for a in action_ids)
    acts, rews, ps, dists, ctxs, segs = [], [], [], [], [], []
    for r, out in rows:
        if r.sticky_of is not None and not include_sticky:
            continue
        if out is None and not implicit_zero:
            continue
        s = segments.index(r.segment)
        probs = list(r.probs)
        acts.append(action_ids[s].index(r.arm_id))
        rews.append(float(out.reward) if out is not None and out.counted else 0.0)
        ps.append(float(r.propensity))
        dists.append(probs + [0.0] * (k - len(probs)))
        ctxs.append(test.context_row(r.segment, r.features or ()))
        segs.append(s)
    n = len(acts)
    d = len(segments) + test.config.context_dim + 1
    return LoggedData(actions=np.asarray(acts, dtype=np.int64), rewards=np.asarray(rews, dtype=float),
                      pscores=np.asarray(ps, dtype=float), logging_dist=np.asarray(dists, dtype=float).reshape(n, k),
                      contexts=np.asarray(ctxs, dtype=float).reshape(n, d), segment_index=np.asarray(segs, dtype=np.int64),
                      segments=segments, action_ids=action_ids)


# ---------------------------------------------------------------------- candidate policies
def segment_policy(logged: LoggedData, table: np.ndarray) -> np.ndarray:
    """``action_dist`` for a policy given as a (S, K) table of probabilities per segment."""
    table = np.asarray(table, dtype=float)
    if table.shape != (len(logged.segments), logged.n_actions):
        raise InvalidArgumentError("policy table shape", table.shape, f"({len(logged.segments)}, {logged.n_actions})")
    if not np.allclose(table.sum(axis=1), 1.0):
        raise InvalidArgumentError("policy table rows", table.sum(axis=1).round(6).tolist(), "rows summing to 1")
    return table[logged.segment_index]


def greedy_policy(logged: LoggedData, best: Sequence[int] | np.ndarray) -> np.ndarray:
    """``action_dist`` of the deterministic policy showing action ``best[s]`` in segment s."""
    table = np.zeros((len(logged.segments), logged.n_actions))
    table[np.arange(len(logged.segments)), np.asarray(best, dtype=np.int64)] = 1.0
    return segment_policy(logged, table)


# ---------------------------------------------------------------------- estimators
def reward_model(logged: LoggedData, *, folds: int = 2, smoothing: float = 1.0, seed: int = 0) -> np.ndarray:
    """Cross-fitted estimate q(x_i, a) of the expected reward, (n, K): the per segment x action mean
    reward from the other folds, shrunk towards the fold's overall mean by ``smoothing``
    pseudo-observations. Cross-fitting keeps DR's correction term unbiased."""
    n, k = logged.n, logged.n_actions
    s_count = len(logged.segments)
    rng = np.random.default_rng(seed)
    fold = rng.integers(0, max(1, folds), size=n) if folds > 1 else np.zeros(n, dtype=np.int64)
    q = np.zeros((n, k))
    idx = logged.segment_index * k + logged.actions
    for f in range(max(1, folds)):
        train = fold != f if folds > 1 else np.ones(n, dtype=bool)
        test = fold == f
        sums = np.bincount(idx[train], weights=logged.rewards[train], minlength=s_count * k)
        cnts = np.bincount(idx[train], minlength=s_count * k)
        base = logged.rewards[train].mean() if train.any() else 0.0
        table = ((sums + smoothing * base) / (cnts + smoothing)).reshape(s_count, k)
        q[test] = table[logged.segment_index[test]]
    return q


def _check(logged: LoggedData, action_dist: np.ndarray) -> np.ndarray:
    action_dist = np.asarray(action_dist, dtype=float)
    if action_dist.ndim == 3 and action_dist.shape[2] == 1:
        action_dist = action_dist[:, :, 0]
    if action_dist.shape != (logged.n, logged.n_actions):
        raise InvalidArgumentError("action_dist shape", action_dist.shape, f"({logged.n}, {logged.n_actions})")
    if logged.n == 0:
        raise InvalidArgumentError("logged data", "0 events", "at least one logged exposure")
    return action_dist


def _stat(method: str, w: np.ndarray, r: np.ndarray, dm: np.ndarray | None) -> np.ndarray:
    """The estimator over the last axis of per-event arrays (vectorised over bootstrap rows)."""
    if method == "ips":
        return (w * r).mean(axis=-1)
    if method in ("snips", "replay"):
        den = w.sum(axis=-1)
        return np.where(den > 0, (w * r).sum(axis=-1) / np.where(den > 0, den, 1.0), np.nan)
    if method == "dr":
        return (dm + w * r).mean(axis=-1)  # r here is the residual r - q(x, a)
    raise InvalidArgumentError("method", method, "one of " + ", ".join(METHODS))


def estimate(logged: LoggedData, action_dist: np.ndarray, method: str = "snips", *, n_boot: int = 500,
             level: float = 0.95, seed: int = 0, q_hat: np.ndarray | None = None) -> Estimate:
    """One off-policy estimate of the candidate's value with a percentile bootstrap CI.

    Args:
        logged: the log.
        action_dist: the candidate's (n, K) (or (n, K, 1)) action probabilities per event.
        method: ``replay``, ``ips``, ``snips`` or ``dr``.
        n_boot: bootstrap resamples of the events.
        level: confidence level.
        seed: seeds the bootstrap, the replay draws and the reward model's folds.
        q_hat: (n, K) reward model for DR; cross-fitted :func:`reward_model` by default.

    Raises:
        InvalidArgumentError: shapes disagree, an unknown method, or an empty log.
    """
    if method not in METHODS:
        raise InvalidArgumentError("method", method, "one of " + ", ".join(METHODS))
    pi = _check(logged, action_dist)
    rng = np.random.default_rng(seed)
    n = logged.n
    rows = np.arange(n)
    r = logged.rewards
    dm = None
    note = ""
    if method == "replay":
        cdf = np.cumsum(pi, axis=1)
        pick = np.minimum((rng.random(n)[:, None] * cdf[:, -1:] >= cdf).sum(axis=1), pi.shape[1] - 1)
        w = (pick == logged.actions).astype(float)
        uniform = np.allclose(logged.logging_dist[rows, logged.actions] * logged.action_mask().sum(axis=1), 1.0)
        note = f"{int(w.sum())} of {n} events matched" + ("" if uniform else "; logging was not uniform: replay is biased")
    else:
        w = pi[rows, logged.actions] / logged.pscores
        if method == "dr":
            q = reward_model(logged, seed=seed) if q_hat is None else np.asarray(q_hat, dtype=float)
            if q.shape != pi.shape:
                raise InvalidArgumentError("q_hat shape", q.shape, str(pi.shape))
            dm = (pi * q).sum(axis=1)
            r = r - q[rows, logged.actions]
    value = float(_stat(method, w, r, dm))
    boots = []
    chunk = max(1, 4_000_000 // max(n, 1))
    for start in range(0, n_boot, chunk):
        b = min(chunk, n_boot - start)
        idx = rng.integers(0, n, size=(b, n))
        boots.append(_stat(method, w[idx], r[idx], None if dm is None else dm[idx]))
    boot = np.concatenate(boots) if boots else np.array([value])
    boot = boot[np.isfinite(boot)]
    lo, hi = (np.quantile(boot, [(1 - level) / 2, (1 + level) / 2]) if boot.size else (np.nan, np.nan))
    return Estimate(method=method, value=value, ci_low=float(lo), ci_high=float(hi), n=n, level=level, note=note)


def evaluate(logged: LoggedData, action_dist: np.ndarray, methods: Sequence[str] = METHODS, **kwargs) -> tuple[Estimate, ...]:
    """:func:`estimate` for each method."""
    return tuple(estimate(logged, action_dist, m, **kwargs) for m in methods)


# ---------------------------------------------------------------------- exports
def to_vw_text(logged: LoggedData, arm_tags: Sequence[Sequence[str]] | None = None) -> str:
    """The log in Vowpal Wabbit's ``cb_explore_adf`` text format: per event a ``shared`` line with
    the context, one line per action (``arm=<id>``), the logged action labelled
    ``0:cost:probability`` with cost = -reward, and a blank line between events."""
    out: list[str] = []
    for i in range(logged.n):
        s = int(logged.segment_index[i])
        tags = list(arm_tags[s]) if arm_tags is not None else [f"arm={vw_token(a)}" for a in logged.action_ids[s]]
        out.extend(adf_example(logged.contexts[i], tags, chosen=int(logged.actions[i]),
                               cost=-float(logged.rewards[i]), probability=float(logged.pscores[i])))
        out.append("")
    return "\n".join(out) + ("\n" if out else "")


@dataclass(frozen=True, eq=False)
class ObpArrays:
    """Open Bandit Pipeline-style arrays. ``pi_b`` is the logging policy (n, K, 1);
    ``action_dist`` the candidate's (n, K, 1) (``None`` until one is given)."""

    n_rounds: int
    n_actions: int
    action: np.ndarray
    reward: np.ndarray
    pscore: np.ndarray
    position: np.ndarray
    context: np.ndarray
    pi_b: np.ndarray
    action_dist: np.ndarray | None = None

    def bandit_feedback(self) -> dict[str, object]:
        """The ``bandit_feedback`` dict OBP's estimators read, at the boundary with that library."""
        return {"n_rounds": self.n_rounds, "n_actions": self.n_actions, "action": self.action, "reward": self.reward,
                "pscore": self.pscore, "position": self.position, "context": self.context, "pi_b": self.pi_b}


def to_obp(logged: LoggedData, action_dist: np.ndarray | None = None) -> ObpArrays:
    """The log (and optionally a candidate policy) as OBP arrays; one slot, so ``position`` is 0."""
    pi = None if action_dist is None else _check(logged, action_dist)[:, :, None]
    return ObpArrays(n_rounds=logged.n, n_actions=logged.n_actions, action=logged.actions.copy(),
                     reward=logged.rewards.copy(), pscore=logged.pscores.copy(),
                     position=np.zeros(logged.n, dtype=np.int64) if logged.positions is None else logged.positions,
                     context=logged.contexts.copy(), pi_b=logged.logging_dist[:, :, None].copy(), action_dist=pi)


def simulated_log(rates: np.ndarray, logging_table: np.ndarray, n: int, *, weights: np.ndarray | None = None,
                  seed: int = 0) -> LoggedData:
    """A log drawn from a known world: segment s with probability ``weights[s]``, action from
    ``logging_table[s]``, Bernoulli reward with ``rates[s, a]``. For tests and demos."""
    rates = np.asarray(rates, dtype=float)
    table = np.asarray(logging_table, dtype=float)
    s_count, k = rates.shape
    rng = np.random.default_rng(seed)
    w = np.full(s_count, 1.0 / s_count) if weights is None else np.asarray(weights, dtype=float) / np.sum(weights)
    seg = rng.choice(s_count, size=n, p=w)
    cdf = np.cumsum(table, axis=1)
    a = np.minimum((rng.random(n)[:, None] * cdf[seg, -1:] >= cdf[seg]).sum(axis=1), k - 1)
    r = (rng.random(n) < rates[seg, a]).astype(float)
    ctx = np.concatenate([np.eye(s_count)[seg], np.ones((n, 1))], axis=1)
    return LoggedData(actions=a, rewards=r, pscores=table[seg, a], logging_dist=table[seg], contexts=ctx,
                      segment_index=seg, segments=tuple(f"seg{i}" for i in range(s_count)),
                      action_ids=tuple(tuple(f"arm{j}" for j in range(k)) for _ in range(s_count)))
