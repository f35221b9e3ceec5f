"""Hand-off: ranked, approved variants become the arms of a bandit test, per audience segment.

The bandit stage knows arms, not images: an :class:`~genart.types.Arm` keeps the variant id (so
every decision traces back to the image, its prompt, seed and source frame), the image path, and
a cold-start prior taken from the ranking. Ranking totals are only comparable within one ranking,
so they are min-max scaled into ``prior_range`` (narrow by default, and worth only
``TestConfig.prior_weight`` pseudo-observations): the ranking breaks ties early, traffic decides.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Collection, Mapping, Sequence

import numpy as np

from genart.errors import InvalidArgumentError
from genart.types import Arm, RankedVariant

CONTROL_ARM_ID = "control"


def _order_key(rv: RankedVariant) -> tuple[float, float]:
    return (rv.rank if rv.rank is not None else math.inf, -rv.total)


def handoff(ranked: Sequence[RankedVariant], test_id: str, segments: Sequence[str] | Mapping[str, Sequence[str]],
            include_control: bool = True, control_image: Path | str | None = None, top_k: int | None = None,
            *, prior_range: tuple[float, float] = (0.4, 0.6), control_prior: float | None = None,
            approved: Collection[str] | None = None) -> list[Arm]:
    """Turns approved ranked variants into arms, one set per segment.

    Args:
        ranked: ranked variants (any profiles); rejected ones (``rv.rejected``) are skipped.
        test_id: the test the arms belong to.
        segments: segment names (each gets every kept variant), or a mapping from a segment to the
            profile ids whose variants it gets (a taste profile made for that audience).
        include_control: add the current artwork as a control arm (``arm_id == "control"``) per
            segment.
        control_image: the current artwork's path, if known.
        top_k: keep only the best ``top_k`` per profile (by rank, then total): the automatic
            hand-off when nobody reviewed; ``None`` keeps all approved ones.
        prior_range: the prior means the lowest and highest ranking totals map to.
        control_prior: the control's prior mean; the middle of ``prior_range`` by default.
        approved: ids of the variants a person approved. A variant the ranking marked ``needs_review``
            (a safety score in the doubtful band) becomes an arm only if its id is here: the automatic
            hand-off (``approved=None``) leaves every such variant out.

    Returns:
        Arms per segment in segment order; within a segment the variants best first, then the
        control. ``arm_id`` is the variant id.

    Raises:
        InvalidArgumentError: empty ``test_id`` or ``segments``, a bad ``top_k`` or prior, a
            segment left with no arm, or nothing approved to hand off.
    """
    if not isinstance(test_id, str) or not test_id:
        raise InvalidArgumentError("test_id", test_id, "a non-empty string")
    if isinstance(segments, str) or not segments:
        raise InvalidArgumentError("segments", segments, "a non-empty list of segment names or {segment: [profile ids]}")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError("top_k", top_k, "None or an integer >= 1")
    lo, hi = prior_range
    if not (0.0 < lo <= hi < 1.0):
        raise InvalidArgumentError("prior_range", prior_range, "(lo, hi) with 0 < lo <= hi < 1")
    mid = (lo + hi) / 2
    c_prior = mid if control_prior is None else float(control_prior)
    if not (0.0 < c_prior < 1.0):
        raise InvalidArgumentError("control_prior", control_prior, "a number strictly between 0 and 1")

    for rv in ranked:
        if not isinstance(rv, RankedVariant):
            raise InvalidArgumentError("ranked item", type(rv).__name__, "genart.types.RankedVariant values")
    cleared = set(approved or ())

    def waits(rv: RankedVariant) -> bool:  # flagged for a person, and no person approved it
        return bool(rv.needs_review) and rv.variant.id not in cleared

    held = [rv for rv in ranked if rv.rejected is None and waits(rv)]
    kept: dict[str, RankedVariant] = {}
    for rv in sorted((rv for rv in ranked if rv.rejected is None and not waits(rv)), key=_order_key):
        kept.setdefault(rv.variant.id, rv)  # a variant ranked for two profiles: its best place
    if top_k is not None:
        per_profile: dict[str, int] = {}
        chosen = {}
        for vid, rv in kept.items():
            n = per_profile.get(rv.profile_id, 0)
            if n < top_k:
                chosen[vid] = rv
                per_profile[rv.profile_id] = n + 1
        kept = chosen
    if not kept:
        waiting = f" ({len(held)} held back: marked needs_review and not approved by a person)" if held else ""
        raise InvalidArgumentError("ranked", f"{len(ranked)} variants{waiting}",
                                   "at least one approved (not rejected) RankedVariant")

    totals = np.array([rv.total for rv in kept.values()], dtype=float)
    finite = np.isfinite(totals)
    if finite.any() and np.ptp(totals[finite]) > 0:
        t_lo, t_hi = totals[finite].min(), totals[finite].max()
        priors = lo + (np.where(finite, totals, t_lo) - t_lo) / (t_hi - t_lo) * (hi - lo)
    else:
        priors = np.full(len(totals), mid)
    prior_of = dict(zip(kept, priors.tolist()))

    if isinstance(segments, Mapping):
        plan: dict[str, set[str] | None] = {str(seg): set(profiles) for seg, profiles in segments.items()}
    else:
        plan = {str(seg): None for seg in segments}
    arms: list[Arm] = []
    for seg, profiles in plan.items():
        if not seg:
            raise InvalidArgumentError("segment", seg, "a non-empty name")
        seg_arms = [Arm(test_id=test_id, arm_id=vid, segment=seg, variant_id=vid, image_path=rv.variant.path,
                        is_control=False, prior_mean=float(prior_of[vid]), profile_id=rv.profile_id)
                    for vid, rv in kept.items() if profiles is None or rv.profile_id in profiles]
        if include_control:
            seg_arms.append(Arm(test_id=test_id, arm_id=CONTROL_ARM_ID, segment=seg, variant_id=None,
                                image_path=Path(control_image) if control_image else None, is_control=True,
                                prior_mean=c_prior, profile_id=None))
        if not seg_arms:
            known = sorted({rv.profile_id for rv in kept.values()})
            raise InvalidArgumentError(f"segment '{seg}' profiles", sorted(profiles or ()),
                                       f"profile ids with approved variants: {', '.join(known)}")
        arms.extend(seg_arms)
    return arms


def arm_features(arms: Sequence[Arm], embeddings: Mapping[str, Sequence[float]] | None = None,
                 dims: int = 8) -> dict[str, tuple[float, ...]]:
    """Numeric features per arm id for the contextual policies: the profile one-hot, then the
    variant's embedding reduced to ``dims`` principal components (zeros for the control).

    Args:
        arms: the test's arms.
        embeddings: variant id -> embedding (e.g. the CLIP image embedding the ranking computed).
        dims: how many principal components to keep.

    Raises:
        InvalidArgumentError: embeddings of different lengths, or ``dims < 1``.
    """
    if dims < 1:
        raise InvalidArgumentError("dims", dims, "an integer >= 1")
    profiles = sorted({a.profile_id for a in arms if a.profile_id})
    reduced: dict[str, np.ndarray] = {}
    width = 0
    if embeddings:
        vids = sorted({a.variant_id for a in arms if a.variant_id and a.variant_id in embeddings})
        if vids:
            lengths = {len(embeddings[v]) for v in vids}
            if len(lengths) != 1:
                raise InvalidArgumentError("embeddings", sorted(lengths), "vectors of one length")
            E = np.asarray([embeddings[v] for v in vids], dtype=float)
            E = E - E.mean(axis=0, keepdims=True)
            _, sv, vt = np.linalg.svd(E, full_matrices=False)
            width = min(dims, vt.shape[0])
            Z = E @ vt[:width].T
            scale = np.abs(Z).max() or 1.0
            reduced = {v: Z[i] / scale for i, v in enumerate(vids)}
    out: dict[str, tuple[float, ...]] = {}
    for a in arms:
        onehot = [1.0 if a.profile_id == p else 0.0 for p in profiles]
        emb = reduced.get(a.variant_id or "", np.zeros(width))
        out[a.arm_id] = tuple(onehot) + tuple(float(x) for x in emb)
    return out
