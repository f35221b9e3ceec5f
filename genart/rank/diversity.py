"""Diversity: each profile's list placed one variant at a time by maximal marginal relevance (Carbonell
and Goldstein, 1998), so the first places cover different frames and looks instead of near-copies, and
the number the list follows (``rank_score``) says how much diversity moved each variant.

Why not MMR on raw totals: totals are weighted means whose spread in a list is hundredths, while a
cosine similarity varies by tenths, so ``lam * total - (1 - lam) * similarity`` let similarity decide
almost everything (a rocket placed above a far better portrait). Here relevance is normalised by the
list's own spread before the trade-off, and similarity is read on the embedder's own scale:

- ``spread`` = the standard deviation of the totals (at least ``MIN_SPREAD``), ``margin`` =
  ``spread * (1 - lam) / lam``: the largest amount diversity may take off a distinct variant's total;
- a candidate's redundancy is its highest similarity to what is already placed: below the embedder's
  ``unrelated`` level it costs nothing, between that and ``near_copy`` it costs up to ``margin``
  (linearly), and at or above ``near_copy`` it is a near-copy, placed after every distinct variant.

So diversity breaks near-ties (totals within ``margin``) and removes near-copies, but a distinct
variant whose total is more than ``margin`` higher is never placed below a worse one.
``rank_score = total - penalty``; greedy placement makes it non-increasing down the list (a candidate's
penalty can only grow as more is placed, and the best of a shrinking set can only fall).

Embeddings: CLIP image embeddings for neural presets (the ones the scorers already computed); for
``classic``, ``FeatureEmbedder``: colour histogram + perceptual hash + a tiny luma layout.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from genart.errors import InvalidArgumentError
from genart import imaging

MIN_SPREAD = 0.01  # totals closer than a hundredth are a tie however tightly the list is spread
DEFAULT_SIMILARITY = (0.5, 0.95)  # (unrelated, near-copy) for an embedder that does not say


@dataclass(frozen=True)
class Placement:
    """Where diversity put each candidate, best first.

    order: candidate indices in their place order.
    rank_scores: per place, ``total - penalty`` (non-increasing).
    penalties: per place, what diversity took off the candidate's total (0 for the first).
    similar_to: per place, the earlier place (0-based) the candidate is most similar to (None: first).
    similarity: per place, that similarity (cosine).
    near_copy: per place, whether the candidate is a near-copy of an earlier one.
    margin: the most diversity takes off a distinct variant (in units of the total).
    """

    order: tuple[int, ...]
    rank_scores: tuple[float, ...]
    penalties: tuple[float, ...]
    similar_to: tuple[int | None, ...]
    similarity: tuple[float, ...]
    near_copy: tuple[bool, ...]
    margin: float


def similarity_levels(embedder: object) -> tuple[float, float]:
    """``(unrelated, near_copy)`` cosines of an embedder: its ``similarity_levels`` attribute (a wrapper
    such as ``CachingEmbedder`` passes its inner model's on), else ``DEFAULT_SIMILARITY``."""
    for obj in (embedder, getattr(embedder, "inner", None)):
        levels = getattr(obj, "similarity_levels", None)
        if levels is not None:
            return float(levels[0]), float(levels[1])
    return DEFAULT_SIMILARITY


def diverse_order(totals: Sequence[float], embeddings: np.ndarray, lam: float = 0.6,
                  levels: tuple[float, float] = DEFAULT_SIMILARITY, k: int | None = None) -> Placement:
    """Place candidates best first, one at a time, trading total against redundancy (see the module).

    Args:
        totals: (N,) combined totals, higher is better.
        embeddings: (N, D) vectors (L2-normalised here; cosine similarity).
        lam: 1 = by total alone; smaller lets diversity move variants further (``margin``).
        levels: ``(unrelated, near_copy)``: similarities at which redundancy starts to cost, and at
            which a candidate counts as a near-copy.
        k: how many places are picked one at a time (None: all); past them each candidate is scored
            against those ``k`` picks and the rest follow by that score (cheaper for long lists).

    Raises:
        InvalidArgumentError: shapes disagree, ``lam`` outside (0, 1], ``levels`` not increasing in
            [-1, 1], or ``k`` below 0.
    """
    rel = np.asarray(totals, np.float64)
    emb = np.asarray(embeddings, np.float64)
    n = len(rel)
    if emb.ndim != 2 or emb.shape[0] != n:
        raise InvalidArgumentError("embeddings", emb.shape, f"({n}, D): one vector per candidate")
    if not 0.0 < lam <= 1.0:
        raise InvalidArgumentError("lam", lam, "a number in (0, 1]")
    lo, hi = float(levels[0]), float(levels[1])
    if not -1.0 <= lo < hi <= 1.0:
        raise InvalidArgumentError("levels", levels, "(unrelated, near_copy) with -1 <= unrelated < near_copy <= 1")
    if k is not None and k < 0:
        raise InvalidArgumentError("k", k, "None or an integer >= 0")
    if n == 0:
        return Placement((), (), (), (), (), (), 0.0)
    spread = max(float(rel.std()), MIN_SPREAD)
    margin = spread * (1.0 - lam) / lam
    # a near-copy goes below every distinct variant (unless lam = 1: by total alone)
    copy_penalty = float(rel.max() - rel.min()) + margin + MIN_SPREAD if lam < 1.0 else 0.0
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)
    sim = emb @ emb.T

    def penalty(s: np.ndarray) -> np.ndarray:
        # non-decreasing in s: what keeps rank_score non-increasing down the list
        part = margin * np.clip((s - lo) / (hi - lo), 0.0, 1.0)
        return np.where(s >= hi, copy_penalty, part)

    order: list[int] = []
    scores: list[float] = []
    pens: list[float] = []
    near: list[int | None] = []
    sims: list[float] = []
    best_sim = np.full(n, -np.inf)
    best_at = np.full(n, -1)
    free = np.ones(n, dtype=bool)
    steps = n if k is None else min(k, n)
    for _ in range(steps):
        pen = np.where(np.isfinite(best_sim), penalty(np.where(np.isfinite(best_sim), best_sim, lo)), 0.0)
        gain = np.where(free, rel - pen, -np.inf)
        i = int(np.argmax(gain))  # ties: the earliest candidate (callers sort by total, then id)
        order.append(i)
        scores.append(float(gain[i]))
        pens.append(float(pen[i]))
        near.append(int(best_at[i]) if best_at[i] >= 0 else None)
        sims.append(float(best_sim[i]) if np.isfinite(best_sim[i]) else 0.0)
        free[i] = False
        place = len(order) - 1
        closer = sim[i] > best_sim
        best_at = np.where(closer, place, best_at)
        best_sim = np.where(closer, sim[i], best_sim)
    if free.any():  # past the k picks: each scored against them, in that score's order
        pen = np.where(np.isfinite(best_sim), penalty(np.where(np.isfinite(best_sim), best_sim, lo)), 0.0)
        rest = sorted(np.flatnonzero(free).tolist(), key=lambda j: (-(rel[j] - pen[j]), j))
        for j in rest:
            order.append(j)
            scores.append(float(rel[j] - pen[j]))
            pens.append(float(pen[j]))
            near.append(int(best_at[j]) if best_at[j] >= 0 else None)
            sims.append(float(best_sim[j]) if np.isfinite(best_sim[j]) else 0.0)
    copies = tuple(s >= hi and at is not None for s, at in zip(sims, near))
    return Placement(tuple(order), tuple(scores), tuple(pens), tuple(near), tuple(sims), copies, margin)


def placement_note(place: int, by_total: int, similar_to: int | None, similarity: float, penalty: float,
                   near_copy: bool) -> str | None:
    """Why diversity put a variant where it is, in words (places 0-based here, shown 1-based), or None
    when it changed nothing a reader would see (no move, and less than 0.0005 off the total).

    "diversity: a near-copy of #1 (similarity 0.93), moved from #2 to #6";
    "diversity: similar to #1 (similarity 0.62), 0.008 off its total".
    """
    if similar_to is None or (place <= by_total and penalty < 5e-4):
        return None
    what = "a near-copy of" if near_copy else "similar to"
    head = f"diversity: {what} #{similar_to + 1} (similarity {similarity:.2f})"
    if place > by_total:
        return f"{head}, moved from #{by_total + 1} to #{place + 1}"
    return f"{head}, {penalty:.3f} off its total"


def _phash_bits(grey: np.ndarray) -> np.ndarray:
    import cv2

    small = cv2.resize(grey.astype(np.float32), (32, 32), interpolation=cv2.INTER_AREA)
    dct = cv2.dct(small)[:8, :8].ravel()[1:]
    return np.where(dct > np.median(dct), 1.0, -1.0)


class FeatureEmbedder:
    """A model-free image embedding for diversity: what a picture shows (perceptual hash, luma
    layout) and how it looks (HSV colour histogram). Unit vectors, one per image, batch-independent."""

    fingerprint = "features-v1"
    # measured on real clips: variants of different frames 0.3-0.45, of one frame (other aspect) 0.5-0.75,
    # frames of one static shot and small re-crops 0.9 and above
    similarity_levels = (0.4, 0.9)

    def embed_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        import cv2

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
