"""The combined ranking: every score named, weighted by the profile, misleading variants rejected."""

from __future__ import annotations

import math
from typing import Sequence

from genart.errors import InvalidArgumentError
from genart.rank.base import Scorer
from genart.types import RankedVariant, ScoreSet, TasteProfile, Variant

DEFAULT_WEIGHTS = {"affinity": 1.0, "fidelity": 0.5, "quality": 0.3}


def combined_total(scores: ScoreSet, weights: ScoreSet) -> float:
    """Weighted mean of the scores the profile weights (scores it does not weight count 0)."""
    w = weights.as_dict() or DEFAULT_WEIGHTS
    num = sum(w[name] * scores[name] for name in w if name in scores)
    den = sum(w[name] for name in w if name in scores)
    return num / den if den > 0 else 0.0


def rank_for_profile(variants: Sequence[Variant], profile: TasteProfile, scorers: Sequence[Scorer], *,
                     fidelity_threshold: float, top_k: int | None = None) -> list[RankedVariant]:
    """Score ``variants`` for ``profile`` with every scorer, combine, reject, and order best first.

    A variant whose fidelity is below ``fidelity_threshold`` is rejected as misleading: it keeps its
    scores and the reason, gets no rank, and sorts after every accepted variant.

    Raises:
        InvalidArgumentError: ``top_k`` below 1.
    """
    if top_k is not None and top_k < 1:
        raise InvalidArgumentError("top_k", top_k, "a positive integer or None")
    merged = [ScoreSet() for _ in variants]
    for scorer in scorers:
        for i, s in enumerate(scorer.score(variants, profile)):
            merged[i] = merged[i].merged(s)
    rows = []
    for v, s in zip(variants, merged):
        for name, value in s.items:
            if not math.isfinite(value):
                raise ValueError(f"scorer produced a non-finite '{name}' for variant {v.id}")
        total = combined_total(s, profile.weights)
        reason = None
        fid = s.get("fidelity")
        if fid is not None and fid < fidelity_threshold:
            reason = f"fidelity {fid:.3f} below the preset's threshold {fidelity_threshold:.3f}: misrepresents the source frame"
        rows.append((v, s, total, reason))
    accepted = sorted((r for r in rows if r[3] is None), key=lambda r: (-r[2], r[0].id))
    rejected = sorted((r for r in rows if r[3] is not None), key=lambda r: (-r[2], r[0].id))
    if top_k is not None:
        accepted = accepted[:top_k]
    out = [RankedVariant(variant=v, profile_id=profile.id, scores=s, total=t, rank=i + 1)
           for i, (v, s, t, _) in enumerate(accepted)]
    out += [RankedVariant(variant=v, profile_id=profile.id, scores=s, total=t, rank=None, rejected=why)
            for v, s, t, why in rejected]
    return out
