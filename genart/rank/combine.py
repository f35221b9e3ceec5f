"""The combined ranking: every score named, weighted by the profile, misleading or unsafe variants
rejected with the reason, and the top places picked for diversity (MMR)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from genart.errors import InvalidArgumentError
from genart.rank.base import Scorer
from genart.rank.diversity import mmr_order
from genart.types import RankedVariant, ScoreSet, TasteProfile, Variant

DEFAULT_WEIGHTS = {"affinity": 1.0, "fidelity": 0.5, "quality": 0.3}


@dataclass(frozen=True)
class RankOptions:
    """How a preset ranks beyond its scorers (from ``RankSpec``; built by ``pipeline.load_stages``).

    diversity: an embedder (``embed_images``) whose vectors MMR compares; None = order by total only.
    diverse_k: how many top places MMR picks when the caller asks for no ``top_k``.
    mmr_lambda: MMR's trade-off, 1 = total only (0.5: a near-copy of a pick needs a clearly better total).
    extra_weights: weights for scores the profile's own weights do not name (aesthetic, legibility).
    """

    diversity: object | None = None
    diverse_k: int = 8
    mmr_lambda: float = 0.5
    extra_weights: ScoreSet = ScoreSet()


def combined_total(scores: ScoreSet, weights: ScoreSet, extra: ScoreSet | None = None) -> float:
    """Weighted mean of the scores weighted by the profile (else ``DEFAULT_WEIGHTS``), plus ``extra``
    weights for scores the profile does not name. Scores nobody weights (safety gates) count 0."""
    w = dict(extra.as_dict()) if extra is not None else {}
    w.update(weights.as_dict() or DEFAULT_WEIGHTS)
    num = sum(w[name] * scores[name] for name in w if name in scores)
    den = sum(w[name] for name in w if name in scores)
    return num / den if den > 0 else 0.0


def explain(scores: ScoreSet, weights: ScoreSet, extra: ScoreSet | None = None) -> list[tuple[str, float, float, float]]:
    """Why a variant got its total: ``(name, score, weight, share of the total)`` per score, largest share
    first; the shares add up to the total. Scores with weight 0 (safety gates) are listed with share 0."""
    w = dict(extra.as_dict()) if extra is not None else {}
    w.update(weights.as_dict() or DEFAULT_WEIGHTS)
    den = sum(w[name] for name in w if name in scores)
    rows = [(name, value, w.get(name, 0.0), (w.get(name, 0.0) * value / den) if den > 0 else 0.0)
            for name, value in scores.items]
    return sorted(rows, key=lambda r: (-abs(r[3]), r[0]))


def _images_of(variants: Sequence[Variant]) -> list:
    from genart.rank.clip import _open_image

    return [_open_image(v.image, v.path, "variant", v.id) for v in variants]


def _with_pixels(variants: Sequence[Variant]) -> list[Variant]:
    """The variants with their images in memory: stored ones decoded once (on the CPU threads) instead
    of once per scorer. The ranking returns the caller's own variants, not these."""
    from dataclasses import replace

    from genart.rank.clip import _open_image
    from genart.workers import pmap

    def load(v: Variant) -> Variant:
        if v.image is not None or v.path is None:  # in memory, or nothing to read (a scorer needing pixels says so)
            return v
        return replace(v, image=_open_image(None, v.path, "variant", v.id))

    return pmap(load, variants)


@dataclass(frozen=True)
class Scored:
    """What the scorers said about one variant: its scores, and its vector for diversity (MMR) when the
    preset ranks for diversity. Computed once, while the pixels are at hand (``score_variants``)."""

    scores: ScoreSet
    embedding: np.ndarray | None = None


def score_variants(variants: Sequence[Variant], profile: TasteProfile, scorers: Sequence[Scorer],
                   options: RankOptions | None = None) -> list[Scored]:
    """Every scorer's scores for each variant (and its diversity vector). Each variant is scored on its
    own, so a set may be scored in parts, as the batch job does while the next images generate."""
    merged = [ScoreSet() for _ in variants]
    loaded = _with_pixels(variants)  # each stored PNG decoded once, for every scorer
    for scorer in scorers:
        for i, s in enumerate(scorer.score(loaded, profile)):
            merged[i] = merged[i].merged(s)
    vectors: Sequence[np.ndarray | None] = [None] * len(variants)
    if options is not None and options.diversity is not None and len(variants):
        vectors = list(np.asarray(options.diversity.embed_images(_images_of(loaded)), np.float64))
    return [Scored(s, e) for s, e in zip(merged, vectors, strict=True)]


def rank_for_profile(variants: Sequence[Variant], profile: TasteProfile, scorers: Sequence[Scorer], *,
                     fidelity_threshold: float, top_k: int | None = None,
                     options: RankOptions | None = None, scored: Mapping[str, Scored] | None = None
                     ) -> list[RankedVariant]:
    """Score ``variants`` for ``profile`` with every scorer, combine, reject, and order best first.

    A variant whose fidelity is below ``fidelity_threshold`` is rejected as misleading, and one a
    scorer's ``reject(scores)`` gate refuses (safety) as unsafe: it keeps its scores and the reason,
    gets no rank, and sorts after every accepted variant.

    With ``options.diversity``, the first ``top_k`` (else ``options.diverse_k``) places are picked
    by MMR over the accepted variants' embeddings; the places after follow by total.

    ``scored``: what ``score_variants`` said already, by variant id; only the other variants are scored.

    Raises:
        InvalidArgumentError: ``top_k`` below 1.
        ValueError: a scorer produced a non-finite score.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError("top_k", top_k, "a positive integer or None")
    given = scored or {}
    per: list[Scored | None] = [given.get(v.id) for v in variants]
    todo = [i for i, p in enumerate(per) if p is None]
    for i, p in zip(todo, score_variants([variants[i] for i in todo], profile, scorers, options), strict=True):
        per[i] = p
    diverse = options is not None and options.diversity is not None
    if diverse and any(p.embedding is None for p in per):
        raise ValueError("scores given without the diversity vectors this ranking needs")
    extra = options.extra_weights if options is not None else None
    gates = [g for g in (getattr(s, "reject", None) for s in scorers) if callable(g)]
    rows = []
    for v, p in zip(variants, per, strict=True):
        s = p.scores
        for name, value in s.items:
            if not math.isfinite(value):
                raise ValueError(f"scorer produced a non-finite '{name}' for variant {v.id}")
        total = combined_total(s, profile.weights, extra)
        reasons = []
        fid = s.get("fidelity")
        if fid is not None and fid < fidelity_threshold:
            reasons.append(f"fidelity {fid:.3f} below the preset's threshold {fidelity_threshold:.3f}: "
                           "misrepresents the source frame")
        reasons += [r for r in (g(s) for g in gates) if r]
        rows.append((v, s, total, "; ".join(reasons) or None, p.embedding))
    accepted = sorted((r for r in rows if r[3] is None), key=lambda r: (-r[2], r[0].id))
    rejected = sorted((r for r in rows if r[3] is not None), key=lambda r: (-r[2], r[0].id))
    if diverse and len(accepted) > 1:
        k = top_k or options.diverse_k
        emb = np.stack([r[4] for r in accepted])
        picks = mmr_order([r[2] for r in accepted], emb, k, options.mmr_lambda)
        chosen = set(picks)
        accepted = [accepted[i] for i in picks] + [r for i, r in enumerate(accepted) if i not in chosen]
    if top_k is not None:
        accepted = accepted[:top_k]
    out = [RankedVariant(variant=v, profile_id=profile.id, scores=s, total=t, rank=i + 1)
           for i, (v, s, t, _, _) in enumerate(accepted)]
    out += [RankedVariant(variant=v, profile_id=profile.id, scores=s, total=t, rank=None, rejected=why)
            for v, s, t, why, _ in rejected]
    return out
