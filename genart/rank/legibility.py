"""Legibility at thumbnail size: does the picture still read at 160 px wide, as on a phone's rail?

Measured on the variant downscaled to 160 px wide (area filter, as a browser would):

- contrast: RMS contrast of luma (a muddy, flat picture reads as a grey tile);
- subject: edge strength inside the salient region (spectral-residual saliency), i.e. whether the thing
  the picture is about keeps crisp outlines once small;
- clutter: the share of strong edges outside that region (a busy background fights the subject and the
  title).

``legibility = 0.4 contrast + 0.4 subject + 0.2 (1 - clutter)``, each in [0, 1], 1 = reads well.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from genart import imaging
from genart.types import ScoreSet, TasteProfile, Variant

THUMB_WIDTH = 160


def thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    height = max(1, int(round(h * width / w)))
    interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


def legibility_parts(rgb: np.ndarray, width: int = THUMB_WIDTH) -> dict[str, float]:
    """(contrast, subject, clutter) of ``rgb`` seen ``width`` px wide, each in [0, 1]."""
    import cv2

    small = thumbnail(np.ascontiguousarray(rgb[..., :3]), width)
    g = imaging.luma(small).astype(np.float32)
    if g.max() > 1.5:
        g = g / 255.0
    h, w = g.shape
    contrast = float(min(1.0, g.std() / 0.3))
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy) / 4.0  # 1 = a black-to-white step
    cx, cy = imaging.saliency_center(small)
    bw, bh = max(4, int(w * 0.5)), max(4, int(h * 0.5))
    x0 = int(np.clip(cx * w - bw / 2, 0, w - bw))
    y0 = int(np.clip(cy * h - bh / 2, 0, h - bh))
    inside = np.zeros_like(mag, dtype=bool)
    inside[y0 : y0 + bh, x0 : x0 + bw] = True
    # mean of the strongest 10% of edges in the subject region: outlines, not the area's average
    sub = np.sort(mag[inside].ravel())[::-1]
    top = sub[: max(1, len(sub) // 10)].mean()
    subject = float(min(1.0, top / 0.6))
    strong = mag > 0.12
    outside = ~inside
    clutter = float(min(1.0, (strong & outside).sum() / max(1, outside.sum()) / 0.5))
    return {"contrast": contrast, "subject": subject, "clutter": clutter}


def legibility(rgb: np.ndarray, width: int = THUMB_WIDTH) -> float:
    p = legibility_parts(rgb, width)
    return 0.4 * p["contrast"] + 0.4 * p["subject"] + 0.2 * (1.0 - p["clutter"])


class LegibilityScorer:
    """``legibility`` of each variant at 160 px wide; satisfies ``Scorer``."""

    names = ("legibility",)

    def __init__(self, width: int = THUMB_WIDTH) -> None:
        self.width = width

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        from genart.rank.features import _open_rgb

        return [ScoreSet.of({"legibility": float(legibility(_open_rgb(v.image, v.path), self.width))})
                for v in variants]
