"""Ranking from measured image features: the ``classic`` preset's scorer (no model weights).

- affinity: how close the variant's measured look (brightness, warmth, saturation, contrast,
  sharpness, faces) is to the profile's visual targets, 1 = on target;
- fidelity: the variant still shows its source frame: normalised cross-correlation of high-passed luma
  between the variant and the part of the key frame it was cut from (a grade barely moves it; a
  different picture drops it towards 0);
- quality (``TechnicalScorer``, used by every preset): sharpness, exposure, noise.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genart import imaging
from genart.types import KeyFrame, ScoreSet, TasteProfile, Variant

TARGET_FEATURES = ("brightness", "warmth", "saturation", "contrast", "sharpness", "faces")


def _open_rgb(image, path) -> np.ndarray:
    if image is not None:
        return imaging.to_array(image)
    if path is None:
        raise ValueError("variant has neither pixels nor a path")
    return imaging.to_array(imaging.load_rgb(path))  # within genart's pixel limit


def face_presence(kf: KeyFrame, crop: tuple[int, int, int, int] | None) -> float:
    """0 with no face in the crop; rises to 1 as the largest kept face fills ~6% of the picture."""
    if not kf.faces:
        return 0.0
    if crop is None:
        crop = (0, 0, kf.width, kf.height)
    x, y, w, h = crop
    best = 0.0
    for f in kf.faces:
        ix = max(0.0, min(f.x + f.w, x + w) - max(f.x, x))
        iy = max(0.0, min(f.y + f.h, y + h) - max(f.y, y))
        if ix * iy >= 0.6 * f.area:  # the face is kept, not cut
            best = max(best, f.area / float(w * h))
    return float(min(1.0, np.sqrt(best) * 4.0))


def _ncc(a: np.ndarray, b: np.ndarray) -> float:
    a = a - a.mean()
    b = b - b.mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    return float((a * b).sum() / den) if den > 1e-9 else 0.0


def structural_fidelity(variant_rgb: np.ndarray, source_rgb: np.ndarray, crop: tuple[int, int, int, int] | None,
                        size: int = 64) -> float:
    """NCC of high-passed luma, at ``size`` px, between the variant and the region of the source it shows.

    About 0.99 for a crop and grade of the true source, about 0.1 for a different picture.
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
    def structure(x: np.ndarray) -> np.ndarray:
        # high-pass luma: edges and texture, not the light's layout, which grades and vignettes change
        g = imaging.luma(cv2.resize(x, (size, size), interpolation=cv2.INTER_AREA))
        return g - cv2.GaussianBlur(g, (0, 0), size / 16)

    return _ncc(structure(src), structure(var))


class FeatureScorer:
    """Affinity to the profile's visual targets and structural fidelity; satisfies ``Scorer``."""

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

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        out = []
        targets = profile.targets
        for v in variants:
            rgb = _open_rgb(v.image, v.path)
            feats = self.measure(v, rgb)
            gaps = [abs(feats[name] - getattr(targets, name)) for name in TARGET_FEATURES]
            affinity = 1.0 - float(np.mean(gaps))
            fidelity = structural_fidelity(rgb, self._source(v.keyframe), v.params.crop)
            out.append(ScoreSet.of({"affinity": affinity, "fidelity": fidelity}))
        return out


class TechnicalScorer:
    """Technical quality of any image (sharpness, exposure, noise), 1 = clean; satisfies ``Scorer``."""

    names = ("quality",)

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        out = []
        for v in variants:
            rgb = _open_rgb(v.image, v.path)
            quality = 0.4 * imaging.sharpness(rgb) + 0.4 * imaging.exposure_quality(imaging.downscale(rgb)) \
                + 0.2 * (1.0 - imaging.noise(rgb))
            out.append(ScoreSet.of({"quality": quality}))
        return out
