"""What an artwork shows (the facts of :data:`genart.bandit.preferences.FACTS`), measured from what the
frames stage found in its key frame and from its own pixels, and how strongly it was graded."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from genart.types import KeyFrame, Variant, stable_id
from genart.usecases._store import _review_store
from genart.usecases.runs import load_run

if TYPE_CHECKING:  # pragma: no cover
    from genart.store.db import Store


def _kept_faces(kf: KeyFrame, crop: tuple[int, int, int, int] | None) -> list[int]:
    """Indices of the key frame's faces a crop keeps (60 % of the face inside, as the ranking counts them)."""
    x, y, w, h = crop if crop is not None else (0, 0, kf.width, kf.height)
    kept = []
    for i, f in enumerate(kf.faces):
        ix = max(0.0, min(f.x + f.w, x + w) - max(f.x, x))
        iy = max(0.0, min(f.y + f.h, y + h) - max(f.y, y))
        if f.area > 0 and ix * iy >= 0.6 * f.area:
            kept.append(i)
    return kept


def lead_character(keyframes: Sequence[KeyFrame]) -> str | None:
    """The character seen most often across a run's key frames (its protagonist), if faces were clustered."""
    seen = Counter(p.character for kf in keyframes for p in kf.people if p.character)
    return seen.most_common(1)[0][0] if seen else None


def artwork_facts(kf: KeyFrame, crop: tuple[int, int, int, int] | None, aspect: str, rgb, *, grade_amount: float = 1.0,
                  titled: bool = False, generated: float = 0.0, lead: str | None = None,
                  clip: Sequence[float] | None = None) -> dict[str, float]:
    """The facts (:data:`genart.bandit.preferences.FACTS`) of an artwork cut from ``kf`` at ``crop``,
    from what the frames stage found in the key frame and the artwork's own pixels (``rgb``)."""
    from genart import imaging
    from genart.rank.features import face_presence

    kept = _kept_faces(kf, crop)
    n = len(kept)
    facts: dict[str, float] = {"face": float(n > 0), "close_up": face_presence(kf, crop), "two_shot": float(n == 2),
                               "group": float(n >= 3)}
    expr = [e for e in (kf.people[i].expression for i in kept if i < len(kf.people)) if e is not None]
    if expr:
        facts["expressive"] = float(max(expr))
    if lead is not None and kept:
        largest = max(kept, key=lambda i: kf.faces[i].area)
        who = kf.people[largest].character if largest < len(kf.people) else None
        facts["protagonist"] = float(who == lead)
    stats = imaging.features(rgb)
    facts["dark"] = 1.0 - stats["brightness"]
    facts["saturated"] = stats["saturation"]
    facts["warm"] = stats["warmth"]
    x, y, w, h = crop if crop is not None else (0, 0, kf.width, kf.height)
    covered = 0.0
    for r in kf.regions:
        b = r.box
        covered += max(0.0, min(b.x + b.w, x + w) - max(b.x, x)) * max(0.0, min(b.y + b.h, y + h) - max(b.y, y))
    facts["text"] = float(min(1.0, covered / max(1.0, w * h)))
    facts["title"] = float(titled)
    try:
        aw, ah = (float(v) for v in aspect.split(":"))
    except ValueError:
        aw = ah = 1.0
    facts["portrait"] = float(ah > aw * 1.05)
    facts["square"] = float(abs(aw - ah) <= 0.05 * max(aw, ah))
    facts["strong_grade"] = float(grade_amount)
    facts["generated"] = float(generated)
    for j, v in enumerate(clip or ()):
        facts[f"clip_{j + 1}"] = float(v)
    return facts


def _clip_facts(store: "Store", variants: Sequence[Variant], dims: int = 4) -> dict[str, list[float]]:
    """A fixed projection of each variant's CLIP image embedding (where the ranking stored one), so
    the same direction means the same on every title scored by that model."""
    import numpy as np
    from genart.imaging import load_rgb
    from genart.rank.embed import image_key
    from genart.store import learning_queries

    keys: dict[str, str] = {}
    for v in variants:
        if v.path is not None and Path(v.path).is_file():
            with load_rgb(v.path) as im:
                keys[v.id] = image_key(im)
    if not keys:
        return {}
    rows = learning_queries.embedding_vectors(store, keys.values())
    if not rows:
        return {}
    fp = Counter(fingerprint for _, fingerprint, _ in rows).most_common(1)[0][0]
    vecs = {key: np.frombuffer(vector, dtype="<f4").astype(float) for key, fingerprint, vector in rows
            if fingerprint == fp}
    dim = next(iter(vecs.values())).shape[0]
    proj = np.random.default_rng(int(stable_id("clip facts", fp, length=8), 16)).standard_normal((dim, dims))
    proj /= np.linalg.norm(proj, axis=0, keepdims=True)
    out = {}
    for vid, key in keys.items():
        e = vecs.get(key)
        if e is not None and np.linalg.norm(e) > 0:
            z = (e / np.linalg.norm(e)) @ proj * math.sqrt(dim)
            out[vid] = [float(v) for v in np.clip(z / 2.0, -1.0, 1.0)]
    return out


def variant_facts(out: str | Path, run_id: str, variant_ids: Sequence[str] | None = None, *,
                  db: str | None = None) -> dict[str, dict[str, float]]:
    """The facts of a run's variants (all, or ``variant_ids``), measured from the store.

    Raises:
        UnknownRunError: no such run.
    """
    run = load_run(out, run_id, db=db)  # raises UnknownRunError
    with _review_store(out, db) as store:
        return _variant_facts(store, run_id, variant_ids, keyframes=list(run.keyframes))


def _rgb(path: Path):
    from genart import imaging

    with imaging.load_rgb(path) as im:
        return imaging.to_array(im)


def _variant_facts(store: "Store", run_id: str, variant_ids: Sequence[str] | None,
                   keyframes: Sequence[KeyFrame]) -> dict[str, dict[str, float]]:
    kfs = {k.id: k for k in keyframes}
    wanted = None if variant_ids is None else set(variant_ids)
    variants = [v for v in store.variants(run_id, keyframes=kfs) if wanted is None or v.id in wanted]
    lead = lead_character(keyframes)
    clip = _clip_facts(store, variants)
    out: dict[str, dict[str, float]] = {}
    for v in variants:
        if v.path is None or not Path(v.path).is_file():
            continue
        p = v.params
        titled = p.title_status == "placed" or (p.title_status is None and bool(p.title))
        generated = max(p.synthetic_share, p.strength or 0.0 if p.method != "classic" else 0.0)
        out[v.id] = artwork_facts(v.keyframe, p.crop, p.aspect, _rgb(v.path), grade_amount=grade_strength(p),
                                  titled=titled, generated=generated, lead=lead, clip=clip.get(v.id))
    return out


GRADE_MARK = "@"  # a grade scaled by the loop is named "<grade>@<scale>" (kept in the variant's parameters)


def scaled_grade(profile, amount: float):
    """The profile with its grade at ``amount`` times its strength (every grade parameter acts
    linearly in the amount, see ``genart.generate.grade.apply_grade``), under its own version and a
    grade name that says so; the profile itself at 1."""
    if amount == 1.0:
        return profile
    g = profile.grade
    g = replace(g, name=f"{g.name}{GRADE_MARK}{amount:g}", exposure=g.exposure * amount, contrast=g.contrast * amount,
                saturation=g.saturation * amount, warmth=g.warmth * amount, tint=g.tint * amount,
                shadows_tint=tuple(v * amount for v in g.shadows_tint),
                highlights_tint=tuple(v * amount for v in g.highlights_tint), vignette=g.vignette * amount,
                fade=g.fade * amount)
    return replace(profile, grade=g, version=stable_id(profile.version, g.name, length=12))


def grade_strength(params) -> float:
    """How strongly a variant was graded: the generator's amount times the loop's scale of the grade."""
    name = params.grade or ""
    scale = 1.0
    if GRADE_MARK in name:
        try:
            scale = float(name.rsplit(GRADE_MARK, 1)[1])
        except ValueError:
            scale = 1.0
    return float(params.grade_amount) * scale
