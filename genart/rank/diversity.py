"""Diversity: the top of each profile's list picked by maximal marginal relevance (Carbonell and
Goldstein, 1998), so the first places cover different frames and looks instead of k near-copies.

MMR picks, one at a time, the candidate maximising ``lam * relevance - (1 - lam) * max cos(candidate,
already picked)``; relevance is the combined total as it is (a weighted mean of scores on about
[0, 1], the scale of a cosine; not min-max stretched, which would turn a 0.01 lead into a big one).
The first pick is always the best total. Greedy MMR is prefix-consistent: its first 3 picks are the same whether
3 or 8 are asked for.

Embeddings: CLIP image embeddings for neural presets (the ones the scorers already computed); for
``classic``, ``FeatureEmbedder``: colour histogram + perceptual hash + a tiny luma layout.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genart.errors import InvalidArgumentError


def mmr_order(relevance: Sequence[float], embeddings: np.ndarray, k: int, lam: float = 0.5) -> list[int]:
    """Indices of the ``k`` candidates MMR picks, in pick order.

    Args:
        relevance: (N,) higher is better, on about the scale of a cosine ([0, 1]).
        embeddings: (N, D) vectors (L2-normalised here; cosine similarity).
        k: how many to pick (capped at N).
        lam: 1 = by relevance alone, 0 = by novelty alone.

    Raises:
        InvalidArgumentError: shapes disagree, ``k`` < 0 or ``lam`` outside [0, 1].
    """
    rel = np.asarray(relevance, np.float64)
    emb = np.asarray(embeddings, np.float64)
    n = len(rel)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise InvalidArgumentError("embeddings", emb.shape, f"({n}, D): one vector per candidate")
    if k < 0:
        raise InvalidArgumentError("k", k, "an integer >= 0")
    if not 0.0 <= lam <= 1.0:
        raise InvalidArgumentError("lam", lam, "a number in [0, 1]")
    if n == 0 or k == 0:
        return []
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = emb @ emb.T
    picked: list[int] = []
    max_sim = np.full(n, -np.inf)
    free = np.ones(n, dtype=bool)
    for _ in range(min(k, n)):
        redundancy = np.where(np.isfinite(max_sim), max_sim, 0.0)
        gain = lam * rel - (1.0 - lam) * redundancy
        gain[~free] = -np.inf
        i = int(np.argmax(gain))  # ties: the earliest candidate (callers sort by total first)
        picked.append(i)
        free[i] = False
        max_sim = np.maximum(max_sim, sim[i])
    return picked


def _phash_bits(grey: np.ndarray) -> np.ndarray:
    import cv2

    small = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    dct = cv2.dct(small)[:8, :8].ravel()[1:]
    return np.where(dct > np.median(dct), 1.0, -1.0)


class FeatureEmbedder:
    """A model-free image embedding for diversity: what a picture shows (perceptual hash, luma
    layout) and how it looks (HSV colour histogram). Unit vectors, one per image, batch-independent."""

    fingerprint = "features-v1"

    def embed_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        import cv2

        from genart import imaging

        rows = []
        for im in images:
            rgb = imaging.to_array(im)
            small = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
            hsv = cv2.cvtColor(small, cv2.COLOR_RGB2HSV)
            hist = cv2.calcHist([hsv], [0, 1, 2], None, [8, 3, 3], [0, 180, 0, 256, 0, 256]).ravel()
            hist = np.sqrt(hist / max(hist.sum(), 1.0))  # Hellinger: a unit vector
            grey = imaging.luma(small).astype(np.float32)
            bits = _phash_bits(grey)
            bits /= np.linalg.norm(bits)
            layout = cv2.resize(grey, (8, 8), interpolation=cv2.INTER_AREA).ravel()
            layout = layout - layout.mean()
            layout /= max(np.linalg.norm(layout), 1e-6)
            rows.append(np.concatenate([0.6 * hist, 0.6 * bits, 0.5 * layout]))
        if not rows:
            return np.zeros((0, 72 + 63 + 64), np.float32)
        x = np.stack(rows)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:  # pragma: no cover - interface only
        raise InvalidArgumentError("texts", list(texts)[:3], "nothing: the feature embedder embeds images only")
