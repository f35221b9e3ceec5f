"""Per-frame measures for picking key frames: what to drop, how good the rest are, and their fingerprints.

All measures run on a small analysis copy (``genart.imaging.ANALYSIS_LONG_SIDE`` px) and reuse the
shared features of ``genart.imaging`` so a frame's sharpness here means the same as in ranking.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from genart import imaging

#: Mean luma under this is a black frame (fade-outs, black slugs between reels).
BLACK_LUMA = 0.06
#: ``imaging.contrast`` (std of luma / 0.25) under this is a near-uniform frame (fade, blank card).
UNIFORM_CONTRAST = 0.06
#: A frame whose sharpness is under this fraction of the clip's median sharpness is heavily blurred.
BLUR_FRACTION = 0.6
#: Two frames whose perceptual hashes differ in at most this many of 64 bits are near-duplicates.
NEAR_DUP_BITS = 10

#: Weights of the composite quality. They sum to 1, so ``quality`` is in [0, 1]. Sharpness and
#: exposure lead because a soft or badly exposed frame cannot be rescued by generation; faces get a
#: bonus because artwork with a readable face wins more clicks than artwork without one.
QUALITY_WEIGHTS = {
    "sharpness": 0.30,
    "exposure": 0.25,
    "contrast": 0.20,
    "colourfulness": 0.10,
    "face": 0.15,
}
#: Largest-face area (fraction of the frame) at which the face bonus is full: a close-up.
FULL_FACE_AREA = 0.04


@dataclass(frozen=True)
class FrameMeasures:
    brightness: float
    contrast: float
    sharpness: float
    exposure: float
    colourfulness: float

    def as_dict(self) -> dict[str, float]:
        return {
            "sharpness": self.sharpness,
            "exposure": self.exposure,
            "contrast": self.contrast,
            "colourfulness": self.colourfulness,
            "brightness": self.brightness,
        }


def measure(small: np.ndarray) -> FrameMeasures:
    """The quality measures of an RGB uint8 analysis copy."""
    small = imaging.downscale(small)
    return FrameMeasures(
        brightness=imaging.brightness(small),
        contrast=imaging.contrast(small),
        sharpness=imaging.sharpness(small),
        exposure=imaging.exposure_quality(small),
        colourfulness=imaging.colourfulness(small),
    )


def is_black(m: FrameMeasures) -> bool:
    return m.brightness < BLACK_LUMA


def is_uniform(m: FrameMeasures) -> bool:
    return m.contrast < UNIFORM_CONTRAST


def blur_cutoff(sharpness_values: "list[float] | np.ndarray") -> float:
    """Sharpness below which a frame counts as heavily blurred for this clip."""
    if len(sharpness_values) == 0:
        return 0.0
    return float(np.median(np.asarray(sharpness_values, dtype=np.float64)) * BLUR_FRACTION)


def face_term(n_faces: int, face_area: float) -> float:
    """0 without faces; 0.5 for any face, rising to 1 for a close-up (``FULL_FACE_AREA``)."""
    if n_faces <= 0:
        return 0.0
    return 0.5 + 0.5 * min(1.0, face_area / FULL_FACE_AREA)


def composite_quality(m: FrameMeasures, n_faces: int, face_area: float) -> float:
    """The weighted sum of ``QUALITY_WEIGHTS``, in [0, 1]."""
    w = QUALITY_WEIGHTS
    return float(
        w["sharpness"] * m.sharpness
        + w["exposure"] * m.exposure
        + w["contrast"] * m.contrast
        + w["colourfulness"] * m.colourfulness
        + w["face"] * face_term(n_faces, face_area)
    )


def shot_histogram(small: np.ndarray) -> np.ndarray:
    """HSV histogram (hue 32, saturation 16, value 16 bins, each part summing to 1) for cut detection."""
    import cv2

    hsv = cv2.cvtColor(imaging.downscale(small, 128), cv2.COLOR_RGB2HSV)
    parts = []
    for ch, bins, top in ((0, 32, 180), (1, 16, 256), (2, 16, 256)):
        hist = cv2.calcHist([hsv], [ch], None, [bins], [0, top]).reshape(-1).astype(np.float32)
        parts.append(hist / max(float(hist.sum()), 1.0))
    return np.concatenate(parts)


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Hellinger (Bhattacharyya) distance over the H, S and V parts: 0 same, 1 disjoint."""
    bounds = ((0, 32), (32, 48), (48, 64))
    total = 0.0
    for lo, hi in bounds:
        bc = float(np.sqrt(a[lo:hi] * b[lo:hi]).sum())
        total += float(np.sqrt(max(0.0, 1.0 - min(1.0, bc))))
    return total / len(bounds)


def frame_hash(image: "np.ndarray | object") -> int:
    """64-bit perceptual hash (imagehash's pHash) of an image or RGB array, as an int."""
    import imagehash
    from PIL import Image

    pil = Image.fromarray(imaging.downscale(imaging.to_array(image)))
    bits = imagehash.phash(pil).hash.reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_distance(a: int, b: int) -> int:
    """Hamming distance between two 64-bit hashes."""
    return int((a ^ b).bit_count())
