"""Contextual policies in numpy: disjoint linear models per arm, LinUCB and linear Thompson sampling.

A context row ``x`` (segment one-hot, the member's numeric features, a bias) gets, per arm k, a
ridge estimate ``theta_k = A_k^-1 b_k`` and a variance ``x^T A_k^-1 x``:

- LinUCB (Li et al. 2010): score = ``x.theta_k + alpha * sqrt(x^T A_k^-1 x)``; the arm with the
  highest score (ties split) has probability 1 before the exploration floor.
- LinTS (Agrawal & Goyal 2013): for one row, ``x.theta_k`` with ``theta_k ~ N(theta_hat_k,
  v^2 A_k^-1)`` is exactly ``N(x.theta_hat_k, v^2 x^T A_k^-1 x)``, so the sampled scores are drawn
  per (row, arm) without sampling d-dimensional vectors. P(arm k best | x) is estimated by
  Monte-Carlo with ``mc_samples`` draws and the decision is drawn from it (exact logged
  propensities, as for Beta Thompson sampling).

Updates are batched: ``A_k += X_k^T X_k``, ``b_k += X_k^T r_k``, then all K inverses at once.
"""

from __future__ import annotations

import numpy as np

from genart.errors import InvalidArgumentError


def context_vector(segment_index: int, n_segments: int, features: np.ndarray | tuple[float, ...] = ()) -> np.ndarray:
    """One context row: one-hot segment, then the numeric features, then a bias of 1."""
    x = np.zeros(n_segments + len(features) + 1)
    x[segment_index] = 1.0
    x[n_segments:n_segments + len(features)] = np.asarray(features, dtype=float)
    x[-1] = 1.0
    return x


class LinearState:
    """Per-arm ridge regression statistics for K arms over d context features."""

    def __init__(self, n_arms: int, dim: int, ridge: float = 1.0) -> None:
        if n_arms < 1 or dim < 1:
            raise InvalidArgumentError("linear state shape", (n_arms, dim), "n_arms >= 1 and dim >= 1")
        self.A = np.repeat(np.eye(dim)[None] * ridge, n_arms, axis=0)
        self.b = np.zeros((n_arms, dim))
        self.A_inv = np.linalg.inv(self.A)
        self.theta = np.zeros((n_arms, dim))

    @property
    def n_arms(self) -> int:
        return self.b.shape[0]

    @property
    def dim(self) -> int:
        return self.b.shape[1]

    def update(self, X: np.ndarray, arms: np.ndarray, rewards: np.ndarray) -> None:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.dim:
            raise InvalidArgumentError("context rows", X.shape, f"(n, {self.dim})")
        arms = np.asarray(arms, dtype=np.int64)
        rewards = np.asarray(rewards, dtype=float)
        touched = np.unique(arms)
        for k in touched:
            sel = arms == k
            Xk = X[sel]
            self.A[k] += Xk.T @ Xk
            self.b[k] += Xk.T @ rewards[sel]
        self.A_inv[touched] = np.linalg.inv(self.A[touched])
        self.theta[touched] = np.einsum("kde,ke->kd", self.A_inv[touched], self.b[touched])

    def mean_var(self, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(n, K) predicted means and variances ``x^T A_k^-1 x``."""
        X = np.asarray(X, dtype=float)
        mean = X @ self.theta.T
        var = np.einsum("nd,kde,ne->nk", X, self.A_inv, X)
        return mean, np.maximum(var, 0.0)


def _mask_rows(mask: np.ndarray | None, shape: tuple[int, int]) -> np.ndarray:
    return np.ones(shape, dtype=bool) if mask is None else np.broadcast_to(np.asarray(mask, dtype=bool), shape)


class LinUCB:
    name = "linucb"

    def __init__(self, alpha: float = 1.0) -> None:
        self.alpha = float(alpha)

    def probabilities(self, state: LinearState, X: np.ndarray, mask: np.ndarray | None,
                      rng: np.random.Generator) -> np.ndarray:
        mean, var = state.mean_var(X)
        m = _mask_rows(mask, mean.shape)
        score = np.where(m, mean + self.alpha * np.sqrt(var), -np.inf)
        best = m & np.isclose(score, score.max(axis=-1, keepdims=True), rtol=0.0, atol=1e-12)
        return best / best.sum(axis=-1, keepdims=True)


class LinTS:
    name = "lints"

    def __init__(self, v: float = 0.5, mc_samples: int = 1000) -> None:
        self.v = float(v)
        self.mc_samples = int(mc_samples)

    def probabilities(self, state: LinearState, X: np.ndarray, mask: np.ndarray | None,
                      rng: np.random.Generator) -> np.ndarray:
        mean, var = state.mean_var(X)
        n, k = mean.shape
        m = _mask_rows(mask, mean.shape)
        sd = self.v * np.sqrt(var)
        out = np.zeros((n, k))
        chunk = max(1, 2_000_000 // max(1, self.mc_samples * k))
        for start in range(0, n, chunk):
            sl = slice(start, start + chunk)
            draws = mean[sl][None] + sd[sl][None] * rng.standard_normal((self.mc_samples, mean[sl].shape[0], k))
            draws = np.where(m[sl][None], draws, -np.inf)
            best = draws.argmax(axis=-1)  # (M, rows)
            rows = best.shape[1]
            idx = best + (np.arange(rows) * k)[None, :]
            out[sl] = np.bincount(idx.ravel(), minlength=rows * k).reshape(rows, k) / float(self.mc_samples)
        return out
