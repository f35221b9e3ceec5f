"""Per-frame measures for picking key frames: what to drop, how good the rest are, and their fingerprints.

Visual quality (exposure, contrast, sharpness, colourfulness from ``genart.imaging``, so a frame's
sharpness here means the same as in ranking), a no-reference quality score (``naturalness``:
NIQE's idea, patch statistics of mean-subtracted contrast-normalised coefficients compared with
those of pristine photos, here scikit-image's bundled ones), composition (``thirds_score``) and
context (``title_card_score``, ``motion_between``, ``region_sharpness`` for faces), plus the
fingerprints for de-duplication (pHash, a 32x18 thumbnail). ``shot_histogram`` and
``histogram_distance`` are kept for callers that compare frames by colour; shots themselves come
from PySceneDetect (``frames.shots``).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genart import imaging

if TYPE_CHECKING:
    from PIL import Image

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


def frame_hash(image: "np.ndarray | Image.Image") -> int:
    """64-bit perceptual hash (imagehash's pHash) of an image or RGB array, as an int."""
    import imagehash
    from PIL import Image

    pil = Image.fromarray(imaging.downscale(imaging.to_array(image)))
    bits = imagehash.phash(pil).hash.reshape(-1)
    return int("".join("1" if b else "0" for b in bits), 2)


def hash_distance(a: int, b: int) -> int:
    """Hamming distance between two 64-bit hashes."""
    return int((a ^ b).bit_count())


# --- no-reference quality: NIQE-like naturalness ----------------------------------------------------
#: The natural-scene-statistics features are computed on a copy with this long side, in patches of
#: ``NIQE_PATCH`` px (and on a half-size copy in patches of half that).
NIQE_LONG_SIDE = 384
NIQE_PATCH = 48
#: Photos scikit-image ships in its wheel (public domain or CC0): the "pristine" corpus whose patch
#: statistics a good frame should share (NIQE's idea; its authors used 125 photos, these are 14).
PRISTINE_PHOTOS = ("astronaut.png", "brick.png", "camera.png", "chelsea.png", "coffee.png", "coins.png",
                   "grass.png", "gravel.png", "hubble_deep_field.jpg", "motorcycle_left.png",
                   "motorcycle_right.png", "rocket.jpg", "moon.png", "retina.jpg")
#: A NIQE distance of this much maps ``naturalness`` to 0.5 (the distance of a typical sharp,
#: clean film frame is 3-6; blurred, blocky or noisy ones 8-20).
NIQE_HALF = 8.0

_ALPHAS = np.arange(0.2, 10.0, 0.001)


def _gamma(x: np.ndarray) -> np.ndarray:
    from math import lgamma

    return np.exp(np.vectorize(lgamma)(x))


_G1, _G2, _G3 = _gamma(1 / _ALPHAS), _gamma(2 / _ALPHAS), _gamma(3 / _ALPHAS)
_RHO = _G1 * _G3 / (_G2 ** 2)  # decreasing in alpha


def _alpha_from_rho(rho: np.ndarray) -> np.ndarray:
    """Generalised-Gaussian shape from the moment ratio E[x^2]/E[|x|]^2 (table look-up)."""
    idx = np.clip(np.searchsorted(-_RHO, -np.asarray(rho)), 0, len(_ALPHAS) - 1)
    return _ALPHAS[idx]


def _mscn(grey: np.ndarray) -> np.ndarray:
    """Mean-subtracted contrast-normalised coefficients (BRISQUE/NIQE's first step)."""
    import cv2

    mu = cv2.GaussianBlur(grey, (7, 7), 7 / 6)
    var = cv2.GaussianBlur(grey * grey, (7, 7), 7 / 6) - mu * mu
    return (grey - mu) / (np.sqrt(np.abs(var)) + 1.0)


def _patch_features(grey: np.ndarray, patch: int) -> tuple[np.ndarray, np.ndarray]:
    """(features (n_patches, 18), patch sharpness (n_patches,)) of one scale."""
    import cv2

    m = _mscn(grey)
    mu = cv2.GaussianBlur(grey, (7, 7), 7 / 6)
    sigma = np.sqrt(np.abs(cv2.GaussianBlur(grey * grey, (7, 7), 7 / 6) - mu * mu))
    h, w = m.shape
    ph, pw = h // patch, w // patch
    if ph == 0 or pw == 0:
        return np.zeros((0, 18)), np.zeros(0)

    def blocks(a: np.ndarray) -> np.ndarray:
        a = a[:ph * patch, :pw * patch]
        return a.reshape(ph, patch, pw, patch).swapaxes(1, 2).reshape(ph * pw, -1)

    feats = []
    x = blocks(m)
    e2 = (x * x).mean(axis=1)
    e1 = np.abs(x).mean(axis=1)
    feats += [_alpha_from_rho(e2 / np.maximum(e1 * e1, 1e-12)), e2]
    shifted = (np.roll(m, -1, axis=1), np.roll(m, -1, axis=0),
               np.roll(np.roll(m, -1, axis=0), -1, axis=1), np.roll(np.roll(m, -1, axis=0), 1, axis=1))
    for s in shifted:
        p = blocks(m * s)
        neg, pos = p < 0, p > 0
        sl = np.sqrt((np.where(neg, p * p, 0).sum(1)) / np.maximum(neg.sum(1), 1))
        sr = np.sqrt((np.where(pos, p * p, 0).sum(1)) / np.maximum(pos.sum(1), 1))
        gamma_hat = sl / np.maximum(sr, 1e-12)
        r_hat = (np.abs(p).mean(1) ** 2) / np.maximum((p * p).mean(1), 1e-12)
        rhat_norm = r_hat * (gamma_hat ** 3 + 1) * (gamma_hat + 1) / np.maximum((gamma_hat ** 2 + 1) ** 2, 1e-12)
        # AGGD shape: solve G(2/a)^2 / (G(1/a) G(3/a)) = rhat_norm, i.e. 1/rho = rhat_norm
        alpha = _alpha_from_rho(1.0 / np.maximum(rhat_norm, 1e-12))
        g1, g2 = _gamma(1 / alpha), _gamma(2 / alpha)
        mean = (sr - sl) * (g2 / g1)
        feats += [alpha, mean, sl * sl, sr * sr]
    return np.stack(feats, axis=1), blocks(sigma).mean(axis=1)


def niqe_features(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(36 features per patch, patch sharpness) of an RGB uint8 image, NIQE's two scales."""
    import cv2

    grey = imaging.luma(imaging.downscale(rgb, NIQE_LONG_SIDE)).astype(np.float32) * 255.0
    f1, sharp = _patch_features(grey, NIQE_PATCH)
    half = cv2.resize(grey, (max(1, grey.shape[1] // 2), max(1, grey.shape[0] // 2)), interpolation=cv2.INTER_AREA)
    f2, _ = _patch_features(half, NIQE_PATCH // 2)
    n = min(len(f1), len(f2))
    return np.concatenate([f1[:n], f2[:n]], axis=1), sharp[:n]


@lru_cache(maxsize=1)
def pristine_model() -> tuple[np.ndarray, np.ndarray]:
    """(mean, covariance) of the sharpest patches of the pristine photos (built once per process)."""
    import importlib.util

    from PIL import Image

    spec = importlib.util.find_spec("skimage")
    folder = Path(next(iter(spec.submodule_search_locations))) / "data" if spec and spec.submodule_search_locations else None
    feats = []
    for name in PRISTINE_PHOTOS:
        path = folder / name if folder else None
        if path is None or not path.is_file():
            continue
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
        f, sharp = niqe_features(rgb)
        if len(f):
            feats.append(f[sharp >= 0.75 * sharp.max()])
    if not feats:  # pragma: no cover - scikit-image is a dependency of genart
        raise RuntimeError("scikit-image's bundled photos are missing: cannot build the NIQE pristine model")
    allf = np.concatenate(feats)
    return allf.mean(axis=0), np.cov(allf, rowvar=False)


def niqe(rgb: np.ndarray) -> float:
    """NIQE-like distance of an image from the pristine model: 0 is natural, larger is worse."""
    mu_p, cov_p = pristine_model()
    f, _ = niqe_features(rgb)
    if len(f) < 2:
        return float(NIQE_HALF)
    mu, cov = f.mean(axis=0), np.cov(f, rowvar=False)
    d = mu_p - mu
    return float(np.sqrt(max(0.0, d @ np.linalg.pinv((cov_p + cov) / 2) @ d)))


def naturalness(rgb: np.ndarray) -> float:
    """The no-reference quality score in [0, 1]: 1 natural and clean, 0.5 at ``NIQE_HALF``."""
    return float(1.0 / (1.0 + niqe(rgb) / NIQE_HALF))


# --- composition and context --------------------------------------------------------------------------
def thirds_score(cx: float, cy: float) -> float:
    """1 when the subject's centre (fractions of width and height) sits on a rule-of-thirds point,
    falling to 0 at the frame's centre (as far from every power point as a subject usually gets)."""
    d = min(float(np.hypot(cx - px, cy - py)) for px in (1 / 3, 2 / 3) for py in (1 / 3, 2 / 3))
    return float(max(0.0, 1.0 - d / np.hypot(1 / 6, 1 / 6)))


def title_card_score(rgb: np.ndarray) -> float:
    """How much a frame is a title card or carries a title: the larger of ``card_score`` and ``overlay_score``."""
    return max(card_score(rgb), overlay_score(rgb))


def card_score(rgb: np.ndarray) -> float:
    """How much a frame looks like a card: a flat, one-colour background with a little sharp detail.

    Intertitles, credits and empty backdrops score near 1; footage near 0.
    """
    import cv2

    grey = imaging.luma(imaging.downscale(rgb)).astype(np.float32) * 255.0
    mu = cv2.blur(grey, (7, 7))
    sd = np.sqrt(np.maximum(cv2.blur(grey * grey, (7, 7)) - mu * mu, 0.0))
    flat = float((sd < 3.0).mean())
    hist = np.bincount(np.clip(grey // 8, 0, 31).astype(np.int32).ravel(), minlength=32) / grey.size
    peak = float(np.sort(hist)[-2:].sum())  # the background's share (two bins: a gradient or grain)
    detail = float((sd > 40).mean())
    score = float(np.clip((flat - 0.55) / 0.3, 0, 1) * np.clip((peak - 0.5) / 0.3, 0, 1))
    return score if detail > 0.003 else 0.3 * score


#: ``overlay_score``: share of a 9-row band's pixels that are hard edges of near-white, neutral
#: strokes, at which a frame starts to count as titled, and the span over which the score reaches 1.
#: Footage (also black-and-white film) stays at or under 0.05; a film's white title lettering reaches
#: 0.08-0.12.
OVERLAY_BAND_START = 0.06
OVERLAY_BAND_SPAN = 0.04


def overlay_score(rgb: np.ndarray) -> float:
    """How much a frame carries bright lettering laid over the picture (``overlay_band``'s score)."""
    return overlay_band(rgb)[0]


#: Lettering whose densest line lies below this share of the frame's height sits where subtitles do.
SUBTITLE_ZONE = 0.72


def overlay_band(rgb: np.ndarray) -> tuple[float, float]:
    """(score, where): how much a frame carries bright lettering laid over the picture (a burned-in
    title or caption), and the height of its densest line as a share of the frame (0 top, 1 bottom).

    Graphic white text has what footage rarely has at once: near-white, colour-neutral, thin
    strokes with very hard edges, packed into horizontal bands (lines of letters). Dark or coloured lettering
    is not recognised (that needs a text detector).
    """
    import cv2

    small = imaging.downscale(rgb, 384)
    f = small.astype(np.float32) / 255.0
    mx, mn = f.max(axis=2), f.min(axis=2)
    white = ((mn > 0.85) & ((mx - mn) < 0.12)).astype(np.uint8)
    grey = (imaging.luma(small) * 255).astype(np.uint8)
    gx = cv2.Sobel(grey, cv2.CV_32F, 1, 0)
    gy = cv2.Sobel(grey, cv2.CV_32F, 0, 1)
    # strokes, not areas: brighter than everything within 5 px (a white top-hat), so white walls,
    # shirts, skies and highlights do not count, letters up to ~10 px thick at 384 px do
    tophat = cv2.morphologyEx(grey, cv2.MORPH_TOPHAT, cv2.getStructuringElement(cv2.MORPH_RECT, (11, 11)))
    ring = np.ones((3, 3), np.uint8)
    strokes = ((np.hypot(gx, gy) > 250) & cv2.dilate(white, ring).astype(bool)
               & cv2.dilate((tophat > 60).astype(np.uint8), ring).astype(bool))
    band = np.convolve(strokes.mean(axis=1), np.ones(9) / 9, mode="same")
    score = float(np.clip((band.max() - OVERLAY_BAND_START) / OVERLAY_BAND_SPAN, 0.0, 1.0))
    return score, float((int(np.argmax(band)) + 0.5) / max(1, len(band)))


def motion_between(prev_small: "np.ndarray | None", small: "np.ndarray | None") -> float:
    """Mean absolute change between two consecutive detector frames (any 3-channel uint8), 0-1."""
    if prev_small is None or small is None or prev_small.shape != small.shape:
        return 0.0
    return float(np.abs(small.astype(np.int16) - prev_small.astype(np.int16)).mean() / 255.0)


def region_sharpness(rgb: np.ndarray, box) -> float:
    """``imaging.sharpness`` of a box's pixels, scaled down to 96 px wide so faces of any size compare
    (small faces are measured as they are: enlarging would blur them)."""
    import cv2

    h, w = rgb.shape[:2]
    x0, y0 = max(0, int(box.x)), max(0, int(box.y))
    x1, y1 = min(w, int(round(box.x + box.w))), min(h, int(round(box.y + box.h)))
    if x1 - x0 < 4 or y1 - y0 < 4:
        return 0.0
    crop = np.ascontiguousarray(rgb[y0:y1, x0:x1])
    if x1 - x0 > 96:
        crop = cv2.resize(crop, (96, max(4, int(round(96 * (y1 - y0) / (x1 - x0))))), interpolation=cv2.INTER_AREA)
    return imaging.sharpness(crop)


#: Side of the tiny grey thumbnail compared by ``thumb_distance``.
THUMB_SIZE = (32, 18)


def thumb(small: np.ndarray) -> bytes:
    """A 32x18 grey thumbnail: what moved between two frames of a held shot, which pHash ignores."""
    import cv2

    grey = (imaging.luma(small) * 255).astype(np.uint8)
    return cv2.resize(grey, THUMB_SIZE, interpolation=cv2.INTER_AREA).tobytes()


def thumb_distance(a: bytes, b: bytes) -> float:
    """Mean absolute difference of two ``thumb`` s, 0-1 (1 when either is missing)."""
    if not a or not b or len(a) != len(b):
        return 1.0
    x = np.frombuffer(a, np.uint8).astype(np.int16)
    y = np.frombuffer(b, np.uint8).astype(np.int16)
    return float(np.abs(x - y).mean() / 255.0)


#: ``picture_distance`` tries shifts of up to this many thumbnail pixels (of 32 x 18) each way: a
#: pan or a drift of about an eighth of the frame between two samples is still the same picture.
SHIFT_X, SHIFT_Y = 4, 2


def picture_distance(a: bytes, b: bytes) -> float:
    """How different two ``thumb`` s are as pictures: mean absolute difference of their contrast-
    normalised grey values at the best small shift (0 same picture; ~1.1 unrelated; 2 when missing).

    Why not ``thumb_distance``: the same animal shot twice, once darker, differs by its brightness
    everywhere, and three frames of a slow pan differ by a shift; as pictures they are one.
    """
    if not a or not b or len(a) != len(b):
        return 2.0
    w, h = THUMB_SIZE
    x = np.frombuffer(a, np.uint8).astype(np.float32).reshape(h, w)
    y = np.frombuffer(b, np.uint8).astype(np.float32).reshape(h, w)
    x = (x - x.mean()) / max(float(x.std()), 4.0)
    y = (y - y.mean()) / max(float(y.std()), 4.0)
    best = float("inf")
    for dy in range(-SHIFT_Y, SHIFT_Y + 1):
        for dx in range(-SHIFT_X, SHIFT_X + 1):
            xa = x[max(0, dy):h + min(0, dy), max(0, dx):w + min(0, dx)]
            yb = y[max(0, -dy):h + min(0, -dy), max(0, -dx):w + min(0, -dx)]
            best = min(best, float(np.abs(xa - yb).mean()))
    return best
