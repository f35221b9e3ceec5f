"""Vowpal Wabbit's ``cb_explore_adf`` as a genart policy, and the text format it reads.

Each decision is a multi-line ADF example: a ``shared`` line with the member's context (segment
one-hot and numeric features, namespace ``s``) and one line per arm with the arm's features
(namespace ``a``: its id, its taste profile, its reduced embedding). ``-q sa`` crosses them so the
model can learn which artwork suits which member. VW returns the probability mass function it
explores with; genart mixes in the exploration floor and draws from the result, so the logged
propensity is exact. Costs are ``-reward`` (VW minimises cost).

``vowpalwabbit`` is optional: without it, :class:`VWModel` raises ``BackendUnavailableError``.
The text helpers here need nothing but the standard library.
"""

from __future__ import annotations

import re
from typing import Sequence

import numpy as np

from genart.errors import BackendUnavailableError, InvalidArgumentError

_BAD = re.compile(r"[\s:|]+")


def vw_token(text: str) -> str:
    """A feature name VW can read: no whitespace, ``:`` or ``|``."""
    return _BAD.sub("_", str(text)) or "_"


def _dense(prefix: str, values: Sequence[float] | np.ndarray) -> str:
    return " ".join(f"{prefix}{i}:{float(v):.6g}" for i, v in enumerate(values) if float(v) != 0.0)


def adf_example(context: Sequence[float] | np.ndarray, arm_tags: Sequence[str],
                arm_features: Sequence[Sequence[float]] | None = None, *, chosen: int | None = None,
                cost: float | None = None, probability: float | None = None) -> list[str]:
    """The lines of one ``cb_explore_adf`` example (no trailing blank line).

    Args:
        context: the shared features (segment one-hot, member features, bias).
        arm_tags: per action, its text tags (arm id, profile), already space separated tokens.
        arm_features: per action, numeric features (e.g. the reduced variant embedding).
        chosen, cost, probability: the label ``0:cost:probability`` on the chosen action's line,
            for a logged example; all ``None`` for a prediction.
    """
    lines = ["shared |s " + _dense("c", context)]
    for k, tags in enumerate(arm_tags):
        feats = _dense("e", arm_features[k]) if arm_features is not None else ""
        body = f"|a {tags} {feats}".rstrip()
        if chosen is not None and k == chosen:
            if cost is None or probability is None:
                raise InvalidArgumentError("cost, probability", (cost, probability), "both, for the chosen action")
            body = f"0:{float(cost):.6g}:{float(probability):.6g} {body}"
        lines.append(body)
    return lines


def import_vw():
    """Imports ``vowpalwabbit``.

    Raises:
        BackendUnavailableError: it is not installed or its native library will not load.
    """
    try:
        import vowpalwabbit
    except Exception as exc:  # ImportError, or an OSError from the native library
        raise BackendUnavailableError("Vowpal Wabbit", "vowpalwabbit", f"{type(exc).__name__}: {exc}") from exc
    return vowpalwabbit


class VWModel:
    """A ``cb_explore_adf`` workspace over a fixed list of arms."""

    name = "vw"

    def __init__(self, arm_tags: Sequence[str], arm_features: Sequence[Sequence[float]] | None = None,
                 args: str = "--epsilon 0.05", seed: int | None = None) -> None:
        vw = import_vw()
        self.arm_tags = [" ".join(vw_token(t) for t in tags.split()) for tags in arm_tags]
        self.arm_features = None if arm_features is None else [tuple(f) for f in arm_features]
        seed_arg = f" --random_seed {int(seed)}" if seed is not None else ""
        self.ws = vw.Workspace(f"--cb_explore_adf -q sa --quiet {args}{seed_arg}")

    @property
    def n_arms(self) -> int:
        return len(self.arm_tags)

    def _subset(self, mask_row: np.ndarray) -> tuple[np.ndarray, list[str], list[tuple[float, ...]] | None]:
        idx = np.flatnonzero(mask_row)
        tags = [self.arm_tags[k] for k in idx]
        feats = None if self.arm_features is None else [self.arm_features[k] for k in idx]
        return idx, tags, feats

    def probabilities(self, X: np.ndarray, mask: np.ndarray | None, rng: np.random.Generator) -> np.ndarray:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        n = X.shape[0]
        mask = np.ones((n, self.n_arms), dtype=bool) if mask is None else np.broadcast_to(mask, (n, self.n_arms))
        out = np.zeros((n, self.n_arms))
        for i in range(n):
            idx, tags, feats = self._subset(mask[i])
            pmf = np.asarray(self.ws.predict(adf_example(X[i], tags, feats)), dtype=float)
            out[i, idx] = pmf / pmf.sum()
        return out

    def update(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray, propensities: np.ndarray,
               mask: np.ndarray | None = None) -> None:
        X = np.atleast_2d(np.asarray(X, dtype=float))
        n = X.shape[0]
        mask = np.ones((n, self.n_arms), dtype=bool) if mask is None else np.broadcast_to(mask, (n, self.n_arms))
        for i in range(n):
            idx, tags, feats = self._subset(mask[i])
            chosen = int(np.flatnonzero(idx == int(arms[i]))[0])
            self.ws.learn(adf_example(X[i], tags, feats, chosen=chosen, cost=-float(rewards[i]),
                                      probability=float(propensities[i])))

    def close(self) -> None:
        finish = getattr(self.ws, "finish", None)
        if finish is not None:
            finish()
