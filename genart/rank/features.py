"""Ranking from measured image features: the ``classic`` preset's scorer (no model weights), and the
technical quality every preset uses.

- affinity (``FeatureScorer``): how well what the frame shows matches what the profile's audience
  wants (``TasteProfile.wants``: faces, a two-shot, eyes, expression, who is in it, darkness, colour,
  motion, a screen; ``content``), with the graded picture's look against the profile's visual
  ``targets`` as one term (``look``). A measure the frames stage did not provide drops out of the
  weighted mean instead of counting as a miss, so key frames without face facts still rank;
- fidelity (``FeatureScorer``): the variant still shows its source frame: normalised
  cross-correlation of high-passed luma between the variant and the part of the key frame it was
  cut from, on the pixels genart did not deliberately add (the title plate and the synthetic fill
  are masked out, ``honest_mask``): a grade, a title or padding barely move it; a different picture
  drops it towards 0;
- quality (``TechnicalScorer``): sharpness, exposure and noise, lowered for what a designer sees at
  once: an enlargement past 1.5x, synthetic fill, burned-in text in the crop, a frame taken
  mid-transition (``designer_factors``).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from genart import imaging
from genart.rank.registry import ScorerContext, fidelity_check, register_scorer
from genart.types import WANT_TERMS, Box, FaceFacts, KeyFrame, ScoreSet, TasteProfile, Variant, Wants

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

TARGET_FEATURES = ("brightness", "warmth", "saturation", "contrast", "sharpness", "faces")
# how much of a region's area counts as burned-in text: overlays fully; a screen in the scene (a monitor,
# a phone) is part of the picture and reads as a shape at thumbnail size, so a quarter
TEXT_KINDS = {"text": 1.0, "logo": 1.0, "watermark": 1.0, "subtitle": 1.0, "screen": 0.25}
MOTION_FULL = 0.06  # the frames stage's motion (mean absolute change per sample) at which a frame moves fast
UPSCALE_FREE = 1.5  # enlargement that does not show (ARTWORK.md)


def _open_rgb(image: Image.Image | None, path: str | Path | None) -> np.ndarray:
    return imaging.to_array(imaging.pixels_of(image, path, "variant"))  # one loader, one error family


def crop_of(variant: Variant) -> tuple[int, int, int, int]:
    """The window of the key frame the variant shows (x, y, w, h in key-frame pixels; may leave it)."""
    kf = variant.keyframe
    return variant.params.crop or (0, 0, kf.width, kf.height)


def _overlap(box: Box, crop: tuple[int, int, int, int]) -> float:
    x, y, w, h = crop
    ix = max(0.0, min(box.x + box.w, x + w) - max(box.x, x))
    iy = max(0.0, min(box.y + box.h, y + h) - max(box.y, y))
    return ix * iy


def face_confidence(kf: KeyFrame, i: int) -> float:
    """How sure we are that face ``i`` is a real face, 0-1: the frames stage's ``FaceFacts.confidence``
    (after its false-face checks) when it gives one, else from the detector's own score (YuNet: a box
    at its 0.6 acceptance line counts half, 0.85 and above fully). False faces (glassware, texture)
    sit near the line, so they steer affinity less than faces the detector is sure of."""
    if i < len(kf.people):
        return float(np.clip(kf.people[i].confidence, 0.0, 1.0))
    return float(np.clip(0.5 + (kf.faces[i].score - 0.6) / 0.5, 0.0, 1.0))


def faces_kept(kf: KeyFrame, crop: tuple[int, int, int, int] | None = None
               ) -> list[tuple[Box, FaceFacts | None, float]]:
    """The key frame's faces the crop keeps whole (60% of the face inside), largest first, each with its
    facts (None when the frames stage gave none) and its confidence."""
    crop = crop or (0, 0, kf.width, kf.height)
    out = []
    for i, f in enumerate(kf.faces):
        if f.area > 0 and _overlap(f, crop) >= 0.6 * f.area:
            out.append((f, kf.people[i] if i < len(kf.people) else None, face_confidence(kf, i)))
    return sorted(out, key=lambda t: -t[0].area)


def face_presence(kf: KeyFrame, crop: tuple[int, int, int, int] | None) -> float:
    """0 with no face in the crop; rises to 1 as the largest kept face fills ~6% of the picture, scaled
    by how sure the detector is that it is a face."""
    if crop is None:
        crop = (0, 0, kf.width, kf.height)
    kept = faces_kept(kf, crop)
    if not kept:
        return 0.0
    f, _, conf = kept[0]
    return float(min(1.0, np.sqrt(f.area / float(crop[2] * crop[3])) * 4.0) * conf)


def two_shot(kept: Sequence[tuple[Box, FaceFacts | None, float]]) -> float:
    """0-1: two faces of similar size close together (a couple, a confrontation), the best pair of the
    three largest. Close: centres within 2 face widths count fully (an embrace, a kiss), a medium two-shot
    of people side by side (3-4 widths) about half, 6 or more not at all; similar: the
    smaller at least half the larger's area (a face in the background is not a two-shot); and every other
    face as large halves it (three faces are a group, six an audience)."""
    best = 0.0
    top = list(kept[:3])
    for a in range(len(top)):
        for b in range(a + 1, len(top)):
            fa, _, ca = top[a]
            fb, _, cb = top[b]
            width = (fa.w + fb.w) / 2
            dist = float(np.hypot(fa.cx - fb.cx, fa.cy - fb.cy)) / max(width, 1e-6)
            close = float(np.clip((6.0 - dist) / 4.0, 0.0, 1.0))
            small = min(fa.area, fb.area)
            similar = float(np.clip(small / max(fa.area, fb.area, 1e-6) / 0.5, 0.0, 1.0))
            # every other face as large as the pair's smaller half halves it: a crowd is not a couple
            others = sum(1 for i, (f, _, c) in enumerate(kept) if i not in (a, b) and f.area >= 0.5 * small and c >= 0.5)
            best = max(best, close * similar * ca * cb * 0.5 ** others)
    return best


def _text_regions_measured(kf: KeyFrame) -> bool:
    """Whether the frames stage looked for text and screens in this frame (regions found, or its share)."""
    return bool(kf.regions) or any(k in kf.scores for k in ("text_share", "text"))


def text_share(kf: KeyFrame, crop: tuple[int, int, int, int] | None = None) -> float:
    """The share of the crop covered by burned-in text, logos, watermarks and subtitles (0-1; a screen in
    the scene counts a quarter of its area, ``TEXT_KINDS``).

    From the key frame's ``regions`` when there are any; else the frames stage's whole-frame text
    share score, else its title-card look (a card of lettering), else 0."""
    crop = crop or (0, 0, kf.width, kf.height)
    if kf.regions:
        area = sum(TEXT_KINDS.get(r.kind, 1.0) * _overlap(r.box, crop) for r in kf.regions)
        return float(min(1.0, area / max(1.0, crop[2] * crop[3])))
    for key in ("text_share", "text"):
        if key in kf.scores:
            return float(np.clip(kf.scores[key], 0.0, 1.0))
    return float(np.clip(kf.scores.get("title_card", 0.0), 0.0, 1.0))


def transition(kf: KeyFrame) -> float:
    """How much the key frame is mid-transition (fade, dissolve, wipe), 0-1: the frames stage's
    ``transition`` score when it gives one, else its fade penalty."""
    return float(np.clip(kf.scores.get("transition", kf.scores.get("fade", 0.0)), 0.0, 1.0))


def _source_region(source_rgb: np.ndarray, kf: KeyFrame, crop: tuple[int, int, int, int]) -> np.ndarray:
    h, w = source_rgb.shape[:2]
    sx, sy = w / max(kf.width, 1), h / max(kf.height, 1)
    x, y, cw, ch = crop
    x0, y0 = max(0, int(x * sx)), max(0, int(y * sy))
    x1, y1 = min(w, int(np.ceil((x + cw) * sx))), min(h, int(np.ceil((y + ch) * sy)))
    return source_rgb[y0:y1, x0:x1] if x1 - x0 >= 2 and y1 - y0 >= 2 else source_rgb


def content(variant: Variant, source_rgb: np.ndarray | None = None) -> dict[str, float | None]:
    """What the variant's crop of its key frame shows, on the scales of ``Wants`` (None: not measured).

    people: faces kept by the crop, each counted by its confidence; face_size: ``face_presence``;
    two_shot: ``two_shot``; eyes_open: the mean over the kept faces, expression: the largest (both from
    ``FaceFacts``); darkness: 1 - mean luma and colour:
    colourfulness of the source frame's crop (before any grade); motion: the frames stage's motion,
    1 = fast; screen: 1 when a "screen" region is mostly inside the crop.
    """
    kf = variant.keyframe
    crop = crop_of(variant)
    kept = faces_kept(kf, crop)
    facts = [p for _, p, _ in kept if p is not None]
    eyes = [p.eyes_open for p in facts if p.eyes_open is not None]
    expr = [p.expression for p in facts if p.expression is not None]
    out: dict[str, float | None] = {
        "people": float(sum(c for _, _, c in kept)),
        "face_size": face_presence(kf, crop),
        "two_shot": two_shot(kept),
        "eyes_open": float(np.mean(eyes)) if eyes else None,
        "expression": float(max(expr)) if expr else None,
        "motion": float(min(1.0, kf.scores["motion"] / MOTION_FULL)) if "motion" in kf.scores else None,
        "screen": None,
        "darkness": None,
        "colour": None,
    }
    if _text_regions_measured(kf):
        out["screen"] = float(any(r.kind == "screen" and _overlap(r.box, crop) >= 0.5 * r.box.area
                                  for r in kf.regions))
    if source_rgb is not None:
        small = imaging.downscale(_source_region(source_rgb, kf, crop))
        out["darkness"] = 1.0 - imaging.brightness(small)
        out["colour"] = imaging.colourfulness(small)
    return out


def casting(variant: Variant, profile: TasteProfile) -> float | None:
    """Whether the frame shows who the profile's audience wants (its ``casting``: the lead, a pair, a named
    character), from the frames stage's ``genart.casting.casting_match``; None where the profile asks for
    nobody or this checkout's frames stage cannot tell who is on screen."""
    want = getattr(profile, "casting", None)
    if not want:
        return None
    try:
        from genart.casting import casting_match
    except ImportError:  # a frames stage without identities
        return None
    return casting_match(variant.keyframe, want)


def want_matches(wants: Wants, measured: dict[str, float | None], look: float) -> dict[str, float]:
    """Each weighted want's match in [0, 1] (1 = what the audience wants), the unmeasured left out.

    people: ``exp(-d)`` with ``d`` the distance of the confidence-weighted face count from the wanted
    (fewest, most); casting: the measure itself (1 = who the audience wants is there); every other
    want: ``1 - |measure - target|``.
    """
    w = wants.weights.as_dict()
    out: dict[str, float] = {}
    if w.get("look", 0.0) > 0:
        out["look"] = look
    for name in WANT_TERMS[1:]:
        if w.get(name, 0.0) <= 0:
            continue
        value = measured.get(name)
        if value is None:
            continue
        if name == "casting":
            out[name] = float(value)
        elif name == "people":
            lo, hi = wants.people
            d = max(lo - value, value - hi, 0.0)
            out[name] = float(np.exp(-d))
        else:
            out[name] = float(1.0 - min(1.0, abs(value - getattr(wants, name))))
    return out


def wanted_affinity(wants: Wants, matches: dict[str, float]) -> float:
    """The weighted mean of the measured wants' matches (``look`` alone when nothing else is measured)."""
    w = wants.weights.as_dict()
    den = sum(w[n] for n in matches)
    return float(sum(w[n] * m for n, m in matches.items()) / den) if den > 0 else 0.5


# --- fidelity on what genart did not add ---------------------------------------------------------------
def _in_frame_window(variant: Variant, vw: int, vh: int) -> tuple[tuple[int, int, int, int], tuple[int, int, int, int]]:
    """(the key frame's pixels inside the crop, x0 y0 x1 y1) and (where they sit in the variant, x0 y0 x1 y1)."""
    kf = variant.keyframe
    x, y, cw, ch = crop_of(variant)
    ix0, iy0, ix1, iy1 = max(0, x), max(0, y), min(kf.width, x + cw), min(kf.height, y + ch)
    sx, sy = vw / cw, vh / ch
    vx0, vy0 = int(round((ix0 - x) * sx)), int(round((iy0 - y) * sy))
    vx1, vy1 = max(vx0 + 1, int(round((ix1 - x) * sx))), max(vy0 + 1, int(round((iy1 - y) * sy)))
    return (ix0, iy0, ix1, iy1), (vx0, vy0, min(vw, vx1), min(vh, vy1))


def honest_mask(variant: Variant, vw: int, vh: int) -> np.ndarray:
    """(vh, vw) bool: the variant's pixels that should still show the source frame.

    False on what genart added on purpose: the title's plate (``params.title_box``, widened by the
    plate's soft edge), the synthetic fill outside the source frame, and the feathered seam where
    the fill meets the frame (3% of the long side, as ``generate.reframe`` feathers it)."""
    mask = np.zeros((vh, vw), bool)
    (ix0, iy0, ix1, iy1), (vx0, vy0, vx1, vy1) = _in_frame_window(variant, vw, vh)
    x, y, cw, ch = crop_of(variant)
    kf = variant.keyframe
    feather = int(np.ceil(0.03 * max(vw, vh)))
    if x < 0:
        vx0 += feather
    if y < 0:
        vy0 += feather
    if x + cw > kf.width:
        vx1 -= feather
    if y + ch > kf.height:
        vy1 -= feather
    if vx1 > vx0 and vy1 > vy0:
        mask[vy0:vy1, vx0:vx1] = True
    return mask & ~title_mask(variant, vw, vh)


def title_mask(variant: Variant, vw: int, vh: int) -> np.ndarray:
    """(vh, vw) bool: the title's plate (``params.title_box``) widened by its soft edge (2% of the long
    side, more than ``generate.title`` blurs it); all False for an untitled variant."""
    mask = np.zeros((vh, vw), bool)
    box = variant.params.title_box
    if box is not None:
        bx, by, bw, bh = box
        pad = int(np.ceil(0.02 * max(vw, vh)))
        mask[max(0, by - pad):max(0, by + bh + pad), max(0, bx - pad):max(0, bx + bw + pad)] = True
    return mask


def synthetic_share(variant: Variant) -> float:
    """The share of the variant not from the source frame: what finishing recorded, or (for variants made
    before it recorded one) the part of the crop outside the key frame."""
    kf = variant.keyframe
    x, y, cw, ch = crop_of(variant)
    inside = max(0, min(kf.width, x + cw) - max(0, x)) * max(0, min(kf.height, y + ch) - max(0, y))
    geometric = 1.0 - inside / max(1.0, float(cw * ch))
    return float(max(variant.params.synthetic_share, geometric))


def upscale(variant: Variant) -> float:
    """Output pixels per source pixel: what finishing recorded, or the crop's enlargement to the output."""
    x, y, cw, ch = crop_of(variant)
    p = variant.params
    measured = max(p.width / max(cw, 1), p.height / max(ch, 1)) if p.crop is not None else 1.0
    return float(max(p.upscale, measured))


def _ncc(a: np.ndarray, b: np.ndarray, m: np.ndarray | None = None) -> float:
    if m is not None:
        a, b = a[m], b[m]
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 0.0


def structural_fidelity(variant_rgb: np.ndarray, source_rgb: np.ndarray, crop: tuple[int, int, int, int] | None,
                        size: int = 64, mask: np.ndarray | None = None) -> float:
    """NCC of high-passed luma, at ``size`` px, between the variant and the region of the source it shows.

    ``mask`` ((H, W) bool in the variant's pixels, ``honest_mask``): only its True pixels count, and the
    high-pass is a normalised convolution over them, so a title's edges cannot leak into their
    neighbours. About 0.99 for a crop and grade of the true source, about 0.1 for a different picture.
    """
    import cv2

    sh, sw = source_rgb.shape[:2]
    vh, vw = variant_rgb.shape[:2]
    if crop is None:
        crop = (0, 0, sw, sh)
    x, y, cw, ch = crop
    ix0, iy0, ix1, iy1 = max(0, x), max(0, y), min(sw, x + cw), min(sh, y + ch)
    if ix1 - ix0 < 4 or iy1 - iy0 < 4:
        return 0.0
    src = source_rgb[iy0:iy1, ix0:ix1]
    # the same region inside the variant (padding lies outside it)
    sx, sy = vw / cw, vh / ch
    vx0, vy0 = int((ix0 - x) * sx), int((iy0 - y) * sy)
    vx1, vy1 = max(vx0 + 1, int((ix1 - x) * sx)), max(vy0 + 1, int((iy1 - y) * sy))
    var = variant_rgb[vy0:vy1, vx0:vx1]
    m = None
    if mask is not None:
        part = mask[vy0:vy1, vx0:vx1].astype(np.float32)
        m = cv2.resize(part, (size, size), interpolation=cv2.INTER_AREA) > 0.99
        if m.sum() < size * size // 16:  # too little left to compare: the whole window, unmasked
            m = None
    sigma = size / 16

    def structure(x: np.ndarray) -> np.ndarray:
        # high-pass luma: edges and texture, not the light's layout, which grades and vignettes change
        g = imaging.luma(cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA))
        if m is None:
            return g - cv2.GaussianBlur(g, (0, 0), sigma)
        w = m.astype(np.float32)
        low = cv2.GaussianBlur(g * w, (0, 0), sigma) / np.maximum(cv2.GaussianBlur(w, (0, 0), sigma), 1e-6)
        return g - low

    return _ncc(structure(src), structure(var), m)


def untitled_view(variant_rgb: np.ndarray, source_rgb: np.ndarray, variant: Variant) -> np.ndarray | None:
    """The variant with its title plate replaced by the source frame's pixels at that place (where the
    crop is inside the frame; mid-grey where it is not), for a fidelity that ignores the title; None
    when the variant carries no title box."""
    import cv2

    box = variant.params.title_box
    if box is None:
        return None
    vh, vw = variant_rgb.shape[:2]
    kf = variant.keyframe
    x, y, cw, ch = crop_of(variant)
    h, w = source_rgb.shape[:2]
    # the source resampled onto the variant's grid (the crop window, outside the frame grey)
    fx, fy = w / max(kf.width, 1), h / max(kf.height, 1)
    m = np.array([[cw * fx / vw, 0, x * fx], [0, ch * fy / vh, y * fy]], np.float32)
    back = cv2.warpAffine(source_rgb, m, (vw, vh), flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                          borderMode=cv2.BORDER_CONSTANT, borderValue=(128, 128, 128))
    out = variant_rgb.copy()
    swap = title_mask(variant, vw, vh)
    out[swap] = back[swap]
    return out


class FeatureScorer:
    """Affinity to what the profile's audience wants and structural fidelity; satisfies ``Scorer``."""

    names = ("affinity", "fidelity")

    def __init__(self) -> None:
        self._sources: dict[str, np.ndarray] = {}

    def _source(self, kf: KeyFrame) -> np.ndarray:
        if kf.id not in self._sources:
            self._sources[kf.id] = _open_rgb(kf.image, kf.path)
        return self._sources[kf.id]

    @staticmethod
    def measure(variant: Variant, rgb: np.ndarray | None = None) -> dict[str, float]:
        """The variant's measured look, in the units of ``VisualTargets``."""
        rgb = _open_rgb(variant.image, variant.path) if rgb is None else rgb
        feats = imaging.features(rgb)
        feats["faces"] = face_presence(variant.keyframe, variant.params.crop)
        return feats

    def matches(self, variant: Variant, profile: TasteProfile, rgb: np.ndarray | None = None) -> dict[str, float]:
        """Each measured want's match for ``variant`` (see ``want_matches``): why its affinity is what it is."""
        rgb = _open_rgb(variant.image, variant.path) if rgb is None else rgb
        feats = self.measure(variant, rgb)
        targets = profile.targets
        look = 1.0 - float(np.mean([abs(feats[name] - getattr(targets, name)) for name in TARGET_FEATURES]))
        measured = {**content(variant, self._source(variant.keyframe)), "casting": casting(variant, profile)}
        return want_matches(profile.wants, measured, look)

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        out = []
        for v in variants:
            rgb = _open_rgb(v.image, v.path)
            affinity = wanted_affinity(profile.wants, self.matches(v, profile, rgb))
            fidelity = structural_fidelity(rgb, self._source(v.keyframe), v.params.crop,
                                           mask=honest_mask(v, rgb.shape[1], rgb.shape[0]))
            out.append(ScoreSet.of({"affinity": affinity, "fidelity": fidelity}))
        return out


def designer_factors(variant: Variant) -> dict[str, float]:
    """What a designer sees at once, each as a factor in (0, 1] on technical quality (1 = no fault).

    upscale: past 1.5x the enlargement shows (2x: 0.75, 2.5x: 0.5); synthetic: fill that is not the
    source frame (a blurred extension costs more than an outpainting model's: 30% blur fill 0.82);
    text: burned-in text, logos or a screen in the crop (10% of the picture: 0.7); transition: a frame
    mid-fade or dissolve (fully: 0.3).
    """
    up = upscale(variant)
    share = synthetic_share(variant)
    blur_fill = (variant.params.reframe or "").startswith("blur")
    kf = variant.keyframe
    return {
        "upscale": float(1.0 - min(0.5, max(0.0, up - UPSCALE_FREE) * 0.5)),
        "synthetic": float(1.0 - (0.6 if blur_fill or variant.params.reframe is None else 0.3) * share),
        "text": float(1.0 - min(0.6, 3.0 * text_share(kf, crop_of(variant)))),
        "transition": float(1.0 - 0.7 * transition(kf)),
    }


class TechnicalScorer:
    """Technical quality of any image (sharpness, exposure, noise), 1 = clean, times the designer's
    ``designer_factors``; satisfies ``Scorer``. Exposure is judged against the profile's own target
    brightness, so a thriller's intended night is not marked down as underexposed (clipping still is)."""

    names = ("quality",)

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        out = []
        for v in variants:
            rgb = _open_rgb(v.image, v.path)
            exposure = imaging.exposure_quality(imaging.downscale(rgb), profile.targets.brightness)
            base = 0.4 * imaging.sharpness(rgb) + 0.4 * exposure + 0.2 * (1.0 - imaging.noise(rgb))
            out.append(ScoreSet.of({"quality": float(base * np.prod(list(designer_factors(v).values())))}))
        return out


@register_scorer("features", checks=lambda spec: (fidelity_check(
    "structural NCC of the variant with its source frame, title plate and synthetic fill masked",
    spec.ranker.fidelity_threshold),))
def _feature_scorer(ctx: ScorerContext) -> FeatureScorer:
    """Affinity to the profile's measured targets and fidelity to the frame, without any model."""
    return FeatureScorer()


@register_scorer("technical")
def _technical_scorer(ctx: ScorerContext) -> TechnicalScorer:
    """Sharpness, exposure and enlargement of the picture itself: every preset can run it."""
    return TechnicalScorer()
