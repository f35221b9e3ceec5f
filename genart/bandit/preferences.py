"""What each audience segment responds to, learned from the outcomes of every test of a store.

The bandit stage knows arms, not images: each arm carries the *facts* its artwork shows (a face, a
close-up, a two-shot, an expressive face, darkness, colour, text, aspect, grade, ..., measured by
:mod:`genart.learning` from the stored key frames and variants), and this module learns, per
segment, how those facts move the reward rate.

The model is a hierarchical Bayesian logistic regression, fitted by its Laplace approximation
(Newton's method on the log posterior, then a Gaussian around the mode with the negative Hessian
as precision), in numpy::

    logit P(reward | arm of test g, segment s) = alpha[s, g] + x . (w + delta[s])
    w ~ N(0, sigma_w^2)           what every audience responds to
    delta[s] ~ N(0, tau^2)        how segment s differs from everyone
    alpha[s, g] ~ N(m[s], sigma_a^2),  m[s] ~ N(logit(base), sigma_m^2)

A segment's taste ``w + delta[s]`` is shared by every title (test) it was shown, so what it
learned on one title is the prior for the next; each title keeps its own baseline ``alpha``
(some titles are clicked more than others whatever the artwork), and a new title's baseline is
``m[s]`` give or take ``sigma_a``. A segment that has seen little traffic borrows the shared
``w``. Observations are per arm: impressions and summed rewards (binomial; a fractional reward,
e.g. capped watch time, enters as a fractional success count).

It gives:

- :meth:`PreferenceModel.prior`: a Beta prior (mean and strength, in pseudo-observations matched
  to the model's predictive mean and variance) for a new arm before any traffic: the cold start;
- :meth:`PreferenceModel.predict`: predicted reward rate and interval per segment for fresh
  variants (to re-rank them per segment);
- :meth:`PreferenceModel.tastes`: per segment, how much each fact (and a few combinations, such
  as "an expressive close-up") moves the rate, in percentage points with a credible interval, and
  a sentence that says so;
- :meth:`PreferenceModel.sample_logits`: posterior draws for Thompson sampling over generation
  settings (:mod:`genart.bandit.loop`).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Mapping, Sequence

import numpy as np

from genart.errors import InvalidArgumentError


@dataclass(frozen=True)
class Fact:
    """One measured fact about an artwork: its name, what it means in words, and the two values an
    effect compares (``lo`` -> ``hi``: absent -> present for a yes/no fact)."""

    name: str
    label: str
    lo: float = 0.0
    hi: float = 1.0


FACTS: tuple[Fact, ...] = (
    Fact("face", "a face in the picture"),
    Fact("close_up", "a close-up (a face large in frame)", 0.25, 1.0),
    Fact("two_shot", "a two-shot (two people)"),
    Fact("group", "three or more people"),
    Fact("expressive", "an expressive face (vs a neutral one)", 0.2, 0.8),
    Fact("protagonist", "the title's most-seen character"),
    Fact("dark", "a dark picture (vs a bright one)", 0.35, 0.7),
    Fact("saturated", "saturated colour (vs muted)", 0.25, 0.65),
    Fact("warm", "a warm picture (vs a cool one)", 0.4, 0.65),
    Fact("text", "burned-in text in the frame", 0.0, 0.1),
    Fact("title", "the title on the artwork"),
    Fact("portrait", "a portrait crop (2:3, 9:16)"),
    Fact("square", "a square crop"),
    Fact("strong_grade", "a strong colour grade (vs a light one)", 0.65, 1.3),
    Fact("generated", "generated pixels (outpainting, img2img)", 0.0, 0.4),
    Fact("clip_1", "CLIP direction 1", -0.5, 0.5),
    Fact("clip_2", "CLIP direction 2", -0.5, 0.5),
    Fact("clip_3", "CLIP direction 3", -0.5, 0.5),
    Fact("clip_4", "CLIP direction 4", -0.5, 0.5),
)
FACT_NAMES: tuple[str, ...] = tuple(f.name for f in FACTS)
_BY_NAME = {f.name: f for f in FACTS}

# combinations a creative director asks about, each a set of facts at their "hi" (or named) values
COMBOS: tuple[tuple[str, Mapping[str, float]], ...] = (
    ("an expressive close-up", {"face": 1.0, "close_up": 1.0, "expressive": 0.8}),
    ("a two-shot of the couple", {"face": 1.0, "two_shot": 1.0}),
    ("a dark, muted picture", {"dark": 0.7, "saturated": 0.25}),
    ("bright, saturated colour", {"dark": 0.35, "saturated": 0.65}),
)


def fact_vector(facts: Mapping[str, float], names: Sequence[str] = FACT_NAMES) -> np.ndarray:
    """The facts as a vector in ``names`` order; an unmeasured fact is 0 (it then moves nothing)."""
    out = np.zeros(len(names))
    for i, n in enumerate(names):
        v = facts.get(n)
        if v is not None and math.isfinite(float(v)):
            out[i] = float(v)
    return out


@dataclass(frozen=True)
class Observation:
    """One arm's traffic: ``rewards`` successes (summed rewards in [0, 1]) out of ``trials``."""

    segment: str
    group: str  # the title (test) it was shown in
    facts: Mapping[str, float]
    trials: float
    rewards: float


@dataclass(frozen=True)
class Prior:
    """A Beta prior for a new arm: ``mean`` worth ``strength`` pseudo-observations, and the model's
    interval for the arm's rate."""

    mean: float
    strength: float
    low: float
    high: float


@dataclass(frozen=True)
class Effect:
    """How much a fact (or a combination) moves a segment's rate, in percentage points."""

    what: str  # a fact's name, or a combination's words
    label: str
    points: float
    low: float
    high: float
    prob_positive: float
    facts: tuple[str, ...] = ()  # the facts it sets


@dataclass(frozen=True)
class SegmentTaste:
    """What one segment responds to, with the evidence behind it."""

    segment: str
    baseline: float  # the segment's rate for an average arm of a new title
    trials: float
    titles: int
    effects: tuple[Effect, ...]  # every fact and combination, strongest evidence first
    summary: str  # one sentence: "comedy: +2.1 pts CTR for an expressive close-up (95% CI ...)"

    def to_json(self) -> dict[str, object]:
        return asdict(self)


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(x, dtype=float)))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return math.log(p / (1 - p))


class PreferenceModel:
    """The fitted model (see the module docstring). Build it with :meth:`fit`.

    Args to :meth:`fit` (hyper-parameters, on the logit scale): ``sigma_w`` how far a fact may move
    everyone's rate, ``tau`` how far a segment may differ from everyone, ``sigma_a`` how far a
    title's baseline may differ from its segment's, ``base`` the rate expected before any data.
    """

    def __init__(self, segments: tuple[str, ...], groups: tuple[tuple[str, str], ...], names: tuple[str, ...],
                 mode: np.ndarray, chol: np.ndarray, hyper: Mapping[str, float], trials: Mapping[str, float],
                 titles: Mapping[str, int], mean_facts: Mapping[str, np.ndarray], unit: str) -> None:
        self.segments = segments
        self.groups = groups  # (segment, group) of each alpha
        self.names = names
        self.mode = mode
        self._chol = chol  # lower Cholesky factor of the posterior precision
        self.hyper = dict(hyper)
        self.trials = dict(trials)
        self.titles = dict(titles)
        self.mean_facts = dict(mean_facts)
        self.unit = unit  # what the rate is, in words ("CTR", "play rate", ...)
        self._linv: np.ndarray | None = None

    # --- fitting -------------------------------------------------------------------------------------
    @classmethod
    def fit(cls, observations: Sequence[Observation], *, names: Sequence[str] = FACT_NAMES, sigma_w: float = 0.7,
            tau: float = 0.5, sigma_a: float = 0.5, sigma_m: float = 1.5, base: float = 0.05,
            unit: str = "CTR", max_iter: int = 50) -> "PreferenceModel":
        """The Laplace approximation of the posterior given the arms' traffic.

        Raises:
            InvalidArgumentError: a bad hyper-parameter, or an observation with rewards > trials.
        """
        for name, v in (("sigma_w", sigma_w), ("tau", tau), ("sigma_a", sigma_a), ("sigma_m", sigma_m)):
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise InvalidArgumentError(name, v, "a positive number (a prior's standard deviation on the logit scale)")
        if not 0 < base < 1:
            raise InvalidArgumentError("base", base, "a rate strictly between 0 and 1")
        obs = [o for o in observations if o.trials > 0]
        for o in obs:
            if not (0 <= o.rewards <= o.trials + 1e-9):
                raise InvalidArgumentError("observation", (o.segment, o.rewards, o.trials), "0 <= rewards <= trials")
        names = tuple(names)
        d = len(names)
        segments = tuple(sorted({o.segment for o in obs}))
        groups = tuple(sorted({(o.segment, o.group) for o in obs}))
        s_n, g_n = len(segments), len(groups)
        s_idx = {s: i for i, s in enumerate(segments)}
        g_idx = {g: i for i, g in enumerate(groups)}
        # parameters: w (d) | delta (S*d) | alpha (G) | m (S)
        o_w, o_d, o_a, o_m = 0, d, d + s_n * d, d + s_n * d + g_n
        p = o_m + s_n
        n = len(obs)
        Z = np.zeros((n, p))
        r = np.zeros(n)
        t = np.zeros(n)
        for i, o in enumerate(obs):
            x = fact_vector(o.facts, names)
            si = s_idx[o.segment]
            Z[i, o_w:o_w + d] = x
            Z[i, o_d + si * d:o_d + (si + 1) * d] = x
            Z[i, o_a + g_idx[(o.segment, o.group)]] = 1.0
            r[i], t[i] = min(o.rewards, o.trials), o.trials
        # prior precision (with the alpha - m coupling) and the prior mean's pull
        lam = np.zeros((p, p))
        lam[o_w:o_d, o_w:o_d] = np.eye(d) / sigma_w ** 2
        lam[o_d:o_a, o_d:o_a] = np.eye(s_n * d) / tau ** 2
        for gi, (seg, _) in enumerate(groups):
            a, m = o_a + gi, o_m + s_idx[seg]
            lam[a, a] += 1 / sigma_a ** 2
            lam[m, m] += 1 / sigma_a ** 2
            lam[a, m] -= 1 / sigma_a ** 2
            lam[m, a] -= 1 / sigma_a ** 2
        mu0 = _logit(base)
        lam[o_m:, o_m:] += np.eye(s_n) / sigma_m ** 2
        pull = np.zeros(p)
        pull[o_m:] = mu0 / sigma_m ** 2
        theta = np.zeros(p)
        theta[o_a:o_m] = mu0
        theta[o_m:] = mu0
        for _ in range(max_iter):
            eta = Z @ theta
            prob = _sigmoid(eta)
            grad = Z.T @ (r - t * prob) - lam @ theta + pull
            hess = (Z * (t * prob * (1 - prob))[:, None]).T @ Z + lam
            step = np.linalg.solve(hess, grad)
            theta = theta + step
            if np.abs(step).max() < 1e-8:
                break
        prob = _sigmoid(Z @ theta)
        hess = (Z * (t * prob * (1 - prob))[:, None]).T @ Z + lam
        chol = np.linalg.cholesky(hess + 1e-10 * np.eye(p))
        trials = {s: float(sum(o.trials for o in obs if o.segment == s)) for s in segments}
        titles = {s: len({o.group for o in obs if o.segment == s}) for s in segments}
        mean_facts = {}
        for s in segments:
            rows = [fact_vector(o.facts, names) for o in obs if o.segment == s]
            wts = np.array([o.trials for o in obs if o.segment == s])
            mean_facts[s] = np.average(np.array(rows), axis=0, weights=wts) if rows else np.zeros(d)
        hyper = dict(sigma_w=sigma_w, tau=tau, sigma_a=sigma_a, sigma_m=sigma_m, base=base)
        return cls(segments, groups, names, theta, chol, hyper, trials, titles, mean_facts, unit)

    # --- the posterior ------------------------------------------------------------------------------
    @property
    def dim(self) -> int:
        return len(self.names)

    def _draws(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """(n, P) draws of every parameter from the Laplace posterior N(mode, H^-1)."""
        if self._linv is None:
            # H = L L^T  =>  cov = L^-T L^-1, so z L^-1 (z standard normal rows) has that covariance
            self._linv = np.linalg.inv(self._chol)
        z = rng.standard_normal((n, self.mode.shape[0]))
        return self.mode[None, :] + z @ self._linv

    def _taste_and_base(self, segment: str, draws: np.ndarray, rng: np.random.Generator,
                        group: str | None = None, new_title: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """Per draw, the segment's taste (n, d) and the baseline logit of a title (n,): the test's own
        ``alpha`` for a group the model saw, else the segment's ``m`` plus a new title's spread (without
        it, ``new_title=False``: the segment's typical title)."""
        d = self.dim
        s_n = len(self.segments)
        n = int(draws.shape[0])
        w = draws[:, :d]
        sa = self.hyper["sigma_a"]
        if segment in self.segments:
            si = self.segments.index(segment)
            delta = draws[:, d + si * d:d + (si + 1) * d]
            o_a = d + s_n * d
            if group is not None and (segment, group) in self.groups:
                return w + delta, draws[:, o_a + self.groups.index((segment, group))]
            m = draws[:, o_a + len(self.groups) + si]
            return w + delta, m + (sa * rng.standard_normal(n) if new_title else 0.0)
        # a segment never seen: everyone's taste, give or take tau; the prior's baseline
        tau, sm = self.hyper["tau"], self.hyper["sigma_m"]
        delta = tau * rng.standard_normal((n, d))
        base = _logit(self.hyper["base"]) + math.sqrt(sm ** 2 + sa ** 2) * rng.standard_normal(n)
        return w + delta, base

    def coefficients(self, segment: str, *, level: float = 0.95) -> dict[str, tuple[float, float, float]]:
        """The segment's taste on the logit scale, per fact: (posterior mean, low, high) of
        ``w + delta[segment]`` (the Laplace posterior is Gaussian, so these are exact for it)."""
        from statistics import NormalDist

        d = self.dim
        if segment not in self.segments:
            raise InvalidArgumentError("segment", segment, "a segment the model has seen: " + ", ".join(self.segments))
        si = self.segments.index(segment)
        p = self.mode.shape[0]
        # a = e_w + e_delta: mean a.theta, variance a^T H^-1 a (two triangular solves per fact)
        A = np.zeros((p, d))
        A[:d] = np.eye(d)
        A[d + si * d:d + (si + 1) * d] = np.eye(d)
        half = np.linalg.solve(self._chol, A)  # L^-1 A, so var = ||L^-1 a||^2
        sd = np.sqrt((half ** 2).sum(axis=0))
        mean = A.T @ self.mode
        z = NormalDist().inv_cdf((1 + level) / 2)
        return {n: (float(m), float(m - z * s), float(m + z * s)) for n, m, s in zip(self.names, mean, sd)}

    def average_facts(self, segment: str) -> dict[str, float]:
        """The traffic-weighted average facts of the arms the segment was shown."""
        x = self.mean_facts.get(segment)
        return {} if x is None else {n: float(v) for n, v in zip(self.names, x)}

    def sample_logits(self, segment: str, facts: Sequence[Mapping[str, float]], n_draws: int,
                      rng: np.random.Generator, group: str | None = None) -> np.ndarray:
        """(n_draws, len(facts)) posterior draws of the logit of each artwork's rate in ``segment``."""
        X = np.stack([fact_vector(f, self.names) for f in facts]) if facts else np.zeros((0, self.dim))
        draws = self._draws(n_draws, rng)
        taste, base = self._taste_and_base(segment, draws, rng, group)
        return base[:, None] + taste @ X.T

    def _eta(self, segment: str, facts: Sequence[Mapping[str, float]], group: str | None = None
             ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and variance of each artwork's logit, one at a time (the Laplace posterior is
        Gaussian and the logit linear in the parameters, so these are exact for it)."""
        d, s_n = self.dim, len(self.segments)
        X = np.stack([fact_vector(f, self.names) for f in facts]) if facts else np.zeros((0, d))
        A = np.zeros((self.mode.shape[0], X.shape[0]))
        A[:d] = X.T
        sa, tau, sm = self.hyper["sigma_a"], self.hyper["tau"], self.hyper["sigma_m"]
        if segment in self.segments:
            si = self.segments.index(segment)
            A[d + si * d:d + (si + 1) * d] = X.T
            o_a = d + s_n * d
            if group is not None and (segment, group) in self.groups:
                A[o_a + self.groups.index((segment, group))] = 1.0
                extra, offset = np.zeros(X.shape[0]), np.zeros(X.shape[0])
            else:
                A[o_a + len(self.groups) + si] = 1.0
                extra, offset = np.full(X.shape[0], sa ** 2), np.zeros(X.shape[0])
        else:
            extra = tau ** 2 * (X ** 2).sum(axis=1) + sm ** 2 + sa ** 2
            offset = np.full(X.shape[0], _logit(self.hyper["base"]))
        half = np.linalg.solve(self._chol, A)  # L^-1 A: var = ||L^-1 a||^2
        return A.T @ self.mode + offset, (half ** 2).sum(axis=0) + extra

    def predict(self, segment: str, facts: Sequence[Mapping[str, float]], *, level: float = 0.95,
                n_draws: int = 4000, seed: int = 0, group: str | None = None) -> list[tuple[float, float, float]]:
        """(mean, low, high) of the predicted rate of each artwork in ``segment`` (a new title's unless
        ``group`` names a test the model saw)."""
        mean, var = self._eta(segment, facts, group)
        z = np.random.default_rng(seed).standard_normal((n_draws, 1))
        p = _sigmoid(mean[None, :] + z * np.sqrt(var)[None, :])
        lo, hi = np.quantile(p, [(1 - level) / 2, (1 + level) / 2], axis=0)
        return [(float(a), float(b), float(c)) for a, b, c in zip(p.mean(axis=0), lo, hi)]

    def rank(self, segment: str, facts: Mapping[str, Mapping[str, float]], **kw) -> list[tuple[str, float, float, float]]:
        """The artworks of ``facts`` (id -> facts) best first for ``segment``: (id, mean, low, high)."""
        ids = list(facts)
        pred = self.predict(segment, [facts[i] for i in ids], **kw)
        return sorted(((i, *pr) for i, pr in zip(ids, pred)), key=lambda x: -x[1])

    def prior(self, segment: str, facts: Mapping[str, float], *, min_strength: float = 2.0,
              max_strength: float = 500.0, n_draws: int = 4000, seed: int = 0) -> Prior:
        """A Beta prior for a new arm of a new title: the predictive mean, and a strength in
        pseudo-observations that matches the predictive variance (``m (1 - m) / v - 1``), clipped
        to ``[min_strength, max_strength]``."""
        m, v = self._eta(segment, [facts])
        p = _sigmoid(m[0] + math.sqrt(v[0]) * np.random.default_rng(seed).standard_normal(n_draws))
        mean = float(np.clip(p.mean(), 1e-4, 1 - 1e-4))
        var = float(p.var())
        strength = mean * (1 - mean) / var - 1.0 if var > 0 else max_strength
        lo, hi = np.quantile(p, [0.025, 0.975])
        return Prior(mean=mean, strength=float(np.clip(strength, min_strength, max_strength)), low=float(lo),
                     high=float(hi))

    # --- what a segment responds to -----------------------------------------------------------------
    def tastes(self, *, level: float = 0.95, n_draws: int = 4000, seed: int = 0) -> list[SegmentTaste]:
        """Per segment seen, every fact's and combination's effect (percentage points of the rate,
        from ``lo`` to ``hi`` with the other facts at the segment's average, for a typical title of
        the segment), strongest evidence first, and a sentence naming the largest whose ``level``
        interval excludes 0."""
        rng = np.random.default_rng(seed)
        draws = self._draws(n_draws, rng)
        out = []
        for seg in self.segments:
            taste, base = self._taste_and_base(seg, draws, rng, new_title=False)
            xbar = self.mean_facts[seg]
            ref = _sigmoid(base + taste @ xbar)
            effects = []
            cases: list[tuple[str, str, dict[int, float], dict[int, float]]] = []
            for j, name in enumerate(self.names):
                f = _BY_NAME.get(name, Fact(name, name))
                cases.append((name, f.label, {j: f.lo}, {j: f.hi}))
            for words, combo in COMBOS:
                idx = {self.names.index(k): v for k, v in combo.items() if k in self.names}
                if len(idx) == len(combo):
                    lo = {j: _BY_NAME[self.names[j]].lo for j in idx}
                    cases.append((words, words, lo, idx))
            for what, label, lo_set, hi_set in cases:
                involved = tuple(sorted(self.names[j] for j in hi_set))
                x_lo, x_hi = xbar.copy(), xbar.copy()
                for j, v in lo_set.items():
                    x_lo[j] = v
                for j, v in hi_set.items():
                    x_hi[j] = v
                diff = (_sigmoid(base + taste @ x_hi) - _sigmoid(base + taste @ x_lo)) * 100.0
                lo, hi = np.quantile(diff, [(1 - level) / 2, (1 + level) / 2])
                effects.append(Effect(what=what, label=label, points=float(diff.mean()), low=float(lo), high=float(hi),
                                      prob_positive=float((diff > 0).mean()), facts=involved))
            effects.sort(key=lambda e: -abs(e.prob_positive - 0.5))
            out.append(SegmentTaste(segment=seg, baseline=float(ref.mean()), trials=self.trials.get(seg, 0.0),
                                    titles=self.titles.get(seg, 0), effects=tuple(effects),
                                    summary=self._sentence(seg, effects, level)))
        return out

    def _sentence(self, segment: str, effects: Sequence[Effect], level: float) -> str:
        pct = int(round(level * 100))
        sure = [e for e in effects if (e.low > 0 or e.high < 0) and not e.what.startswith("clip_")]
        sure.sort(key=lambda e: -abs(e.points))
        evidence = f"{self.trials.get(segment, 0):,.0f} impressions over {self.titles.get(segment, 0)} title(s)"
        if not sure:
            return f"{segment}: no clear preference yet ({evidence})"
        chosen: list[Effect] = []
        for e in sure:  # the strongest first; a combination and its own parts say the same thing once
            if not any(set(e.facts) & set(c.facts) for c in chosen):
                chosen.append(e)
        parts = [f"{e.points:+.1f} pts {self.unit} for {e.label} ({pct}% CI {e.low:+.1f} to {e.high:+.1f})"
                 for e in chosen[:3]]
        return f"{segment}: " + "; ".join(parts) + f" ({evidence})"
