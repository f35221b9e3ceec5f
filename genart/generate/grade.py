"""Colour looks: a profile's grade applied to any image, at a chosen strength.

Float32 numpy on linear-ish sRGB values; each ``Grade`` field scales with ``amount`` so a strength
ladder gives gentler and stronger versions of the same look.
"""

from __future__ import annotations

import numpy as np

from genart.types import Grade


def apply_grade(rgb: np.ndarray, grade: Grade, amount: float = 1.0) -> np.ndarray:
    """Return a graded copy of ``rgb`` (uint8 H x W x 3)."""
    a = rgb.astype(np.float32) / 255.0
    k = float(amount)
    if grade.exposure:
        a = a * (2.0 ** (grade.exposure * k))
    if grade.warmth or grade.tint:
        w, t = grade.warmth * k, grade.tint * k
        a = a * np.array([1 + 0.12 * w + 0.03 * t, 1 - 0.08 * t, 1 - 0.12 * w + 0.03 * t], dtype=np.float32)
    a = np.clip(a, 0.0, 1.0)
    lum = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2])[..., None]
    if grade.saturation:
        a = lum + (a - lum) * (1.0 + grade.saturation * k)
    if grade.contrast:
        c = grade.contrast * k
        centred = a - 0.5
        if c > 0:  # an S-curve that keeps black and white where they are and steepens the mids
            a = 0.5 + np.tanh(centred * (1 + 2 * c)) / (2 * np.tanh(0.5 * (1 + 2 * c)))
        else:  # flatten towards mid-grey
            a = 0.5 + centred * (1 + c)
    a = np.clip(a, 0.0, 1.0)
    if any(grade.shadows_tint) or any(grade.highlights_tint):
        lum = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2])[..., None]
        a = a + (1 - lum) ** 2 * np.array(grade.shadows_tint, dtype=np.float32) * k * 2
        a = a + lum**2 * np.array(grade.highlights_tint, dtype=np.float32) * k * 2
    if grade.fade:
        f = 0.12 * grade.fade * k
        a = f + a * (1 - f)
    if grade.vignette:
        h, w = a.shape[:2]
        ys, xs = np.ogrid[0:h, 0:w]
        r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
        a = a * (1 - 0.45 * grade.vignette * k * np.clip(r2 / 2, 0, 1) ** 1.2)[..., None].astype(np.float32)
    return (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
