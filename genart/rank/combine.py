"""The combined ranking: every score named and weighted, misleading or unsafe variants rejected with the
reason, doubtful ones kept but marked for a person's review, and the list placed for diversity.

Each accepted row carries ``total`` (the weighted mean of its scores, explained line by line in
``explanation``: value x weight = contribution, the weights sum to 1, the contributions to the total)
and ``rank_score``, the number the displayed order follows: the total less what diversity took off
(``genart.rank.diversity``), with ``placed_by`` saying so in words wherever diversity moved a row.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from genart.errors import InvalidArgumentError
from genart.rank.base import ImageEmbedder, Scorer
from genart.rank.diversity import diverse_order, placement_note, similarity_levels
from genart.rank.reasons import pair
from genart.types import Contribution, RankedVariant, ScoreSet, TasteProfile, Variant
from genart.workers import pmap

DEFAULT_WEIGHTS = {"affinity": 1.0, "fidelity": 0.5, "quality": 0.3}
DEFAULT_LAMBDA = 0.6


@dataclass(frozen=True)
class RankOptions:
    """How a preset ranks beyond its scorers (from ``RankSpec``; built by ``pipeline.load_rankers``).

    diversity: an embedder (``embed_images``) whose vectors diversity compares; None = order by total.
    diverse_k: how many places are picked one at a time (None: all; past them, scored against those).
    mmr_lambda: diversity's trade-off, 1 = total only; a profile's own ``mmr_lambda`` wins. At 0.6 a
        distinct variant can lose at most 2/3 of the list's standard deviation of totals to diversity.
    extra_weights: weights for scores the profile's own weights do not name (aesthetic, legibility).
    similarity: (unrelated, near-copy) cosines for diversity; None: the embedder's ``similarity_levels``.
    """

    diversity: ImageEmbedder | None = None
    diverse_k: int | None = None
    mmr_lambda: float = DEFAULT_LAMBDA
    extra_weights: ScoreSet = ScoreSet()
    similarity: tuple[float, float] | None = None


def _weights(scores: ScoreSet, weights: ScoreSet, extra: ScoreSet | None) -> dict[str, float]:
    """The weight of each score present: the profile's (else ``DEFAULT_WEIGHTS``) over ``extra``."""
    w = dict(extra.as_dict()) if extra is not None else {}
    w.update(weights.as_dict() or DEFAULT_WEIGHTS)
    return {name: w.get(name, 0.0) for name in scores}


def combined_total(scores: ScoreSet, weights: ScoreSet, extra: ScoreSet | None = None) -> float:
    """Weighted mean of the scores weighted by the profile (else ``DEFAULT_WEIGHTS``), plus ``extra``
    weights for scores the profile does not name. Scores nobody weights (safety gates) count 0."""
    return sum(c.contribution for c in explain(scores, weights, extra))


def explain(scores: ScoreSet, weights: ScoreSet, extra: ScoreSet | None = None) -> tuple[Contribution, ...]:
    """Why a variant got its total, one ``Contribution`` per score, largest contribution first.

    ``weight`` is the score's share of the weighting (the shares of the weighted scores sum to 1), so
    ``value * weight == contribution`` and the contributions add up to the total. Scores with weight 0
    (the safety gates' probabilities) are listed with contribution 0.
    """
    w = _weights(scores, weights, extra)
    den = sum(w.values())
    rows = [Contribution(name, float(value), w[name] / den if den > 0 else 0.0,
                         w[name] * float(value) / den if den > 0 else 0.0) for name, value in scores.items]
    return tuple(sorted(rows, key=lambda c: (-abs(c.contribution), -c.weight, c.score)))


def _images_of(variants: Sequence[Variant]) -> list:
    from genart.rank.clip import _open_image

    return [_open_image(v.image, v.path, "variant", v.id) for v in variants]


def _with_pixels(variants: Sequence[Variant]) -> list[Variant]:
    """The variants with their images in memory: stored ones decoded once (on the CPU threads) instead
    of once per scorer. The ranking returns the caller's own variants, not these."""
    from dataclasses import replace

    from genart.rank.clip import _open_image

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


def untitled_reason(variant: Variant, profile: TasteProfile) -> str | None:
    """Why an untitled variant may not compete, or None: finishing's own rule,
    ``TasteProfile.may_compete`` (the title was asked for but skipped on an aspect in the profile's
    ``title_style.required_for``), put in words for the rejected row."""
    if profile.may_compete(variant.params):
        return None
    p = variant.params
    why = f" ({p.title_reason})" if p.title_reason else ""
    return (f"untitled: {p.aspect} artwork for {profile.id} must carry the title and none could be placed{why}; "
            "it does not compete with titled variants")


def fidelity_reason(fidelity: float | None, threshold: float) -> str | None:
    """The reason a variant misrepresents its source frame, or None."""
    if fidelity is None or fidelity >= threshold:
        return None
    value, line = pair(fidelity, threshold, 3)
    return f"fidelity {value} below the preset's threshold {line}: misrepresents the source frame"


def rank_for_profile(variants: Sequence[Variant], profile: TasteProfile, scorers: Sequence[Scorer], *,
                     fidelity_threshold: float, top_k: int | None = None,
                     options: RankOptions | None = None, scored: Mapping[str, Scored] | None = None
                     ) -> list[RankedVariant]:
    """Score ``variants`` for ``profile`` with every scorer, combine, gate, and place best first.

    Rejected (no rank, sorted after every accepted variant, scores and reason kept): fidelity below
    ``fidelity_threshold`` (misleading), a scorer's ``reject(scores)`` gate (unsafe), and an untitled
    variant of an aspect the profile requires a title for. Kept but marked ``needs_review`` (a person
    must look before it reaches an audience): a scorer's ``review(scores)`` gate (the doubtful band).

    With ``options.diversity`` the accepted variants are placed by ``diversity.diverse_order`` with
    the profile's ``mmr_lambda`` (else the preset's); ``rank_score`` is what the order follows and
    ``placed_by`` says where diversity moved a variant. Without it, ``rank_score == total``.

    ``scored``: what ``score_variants`` said already, by variant id; only the other variants are scored.

    Raises:
        InvalidArgumentError: ``top_k`` below 1.
        ValueError: a scorer produced a non-finite score.
    """
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError("top_k", top_k, "a positive integer or None")
    given = scored or {}
    known: list[Scored | None] = [given.get(v.id) for v in variants]
    todo = [i for i, p in enumerate(known) if p is None]
    fresh = dict(zip(todo, score_variants([variants[i] for i in todo], profile, scorers, options), strict=True))
    per: list[Scored] = [p if p is not None else fresh[i] for i, p in enumerate(known)]
    diversity = options if options is not None and options.diversity is not None else None
    if diversity is not None and any(p.embedding is None for p in per):
        raise ValueError("scores given without the diversity vectors this ranking needs")
    extra = options.extra_weights if options is not None else None
    gates = [g for g in (getattr(s, "reject", None) for s in scorers) if callable(g)]
    reviews = [g for g in (getattr(s, "review", None) for s in scorers) if callable(g)]
    rows = []
    for v, p in zip(variants, per, strict=True):
        s = p.scores
        for name, value in s.items:
            if not math.isfinite(value):
                raise ValueError(f"scorer produced a non-finite '{name}' for variant {v.id}")
        why = explain(s, profile.weights, extra)
        total = sum(c.contribution for c in why)
        reasons = [r for r in [fidelity_reason(s.get("fidelity"), fidelity_threshold)] + [g(s) for g in gates]
                   + [untitled_reason(v, profile)] if r]
        doubts = [r for r in (g(s) for g in reviews) if r]
        rows.append((v, s, total, "; ".join(reasons) or None, p.embedding, why, "; ".join(doubts) or None))
    accepted = sorted((r for r in rows if r[3] is None), key=lambda r: (-r[2], r[0].id))
    rejected = sorted((r for r in rows if r[3] is not None), key=lambda r: (-r[2], r[0].id))
    scores_of = [r[2] for r in accepted]
    notes: list[str | None] = [None] * len(accepted)
    if diversity is not None and len(accepted) > 1:
        lam = profile.mmr_lambda if profile.mmr_lambda is not None else diversity.mmr_lambda
        k = diversity.diverse_k if top_k is None or diversity.diverse_k is None else max(top_k, diversity.diverse_k)
        vectors = [r[4] for r in accepted if r[4] is not None]  # all of them: checked above
        placed = diverse_order(scores_of, np.stack(vectors), lam,
                               diversity.similarity or similarity_levels(diversity.diversity), k)
        notes = [placement_note(place, i, placed.similar_to[place], placed.similarity[place],
                                placed.penalties[place], placed.near_copy[place])
                 for place, i in enumerate(placed.order)]
        accepted = [accepted[i] for i in placed.order]
        scores_of = list(placed.rank_scores)
    if top_k is not None:
        accepted = accepted[:top_k]
    out = [RankedVariant(variant=v, profile_id=profile.id, scores=s, total=t, rank=i + 1, rank_score=scores_of[i],
                         explanation=why, placed_by=notes[i], needs_review=doubt)
           for i, (v, s, t, _, _, why, doubt) in enumerate(accepted)]
    out += [RankedVariant(variant=v, profile_id=profile.id, scores=s, total=t, rank=None, rejected=reason,
                          explanation=why, needs_review=doubt)
            for v, s, t, reason, _, why, doubt in rejected]
    return out
