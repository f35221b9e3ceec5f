"""Face detection with OpenCV's Haar cascade (shipped inside opencv-python, so no weights to fetch).

Haar is dated but real, CPU-cheap and needs nothing outside the wheel; a DNN detector can replace
``detect_faces`` later behind the same signature. The cascade is loaded once per process.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING

import numpy as np

from genart.types import Box

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: Detection runs on a grey copy with at most this long side; boxes are scaled back.
FACE_LONG_SIDE = 640
CASCADE_FILE = "haarcascade_frontalface_default.xml"
EYE_CASCADE_FILE = "haarcascade_eye.xml"


@lru_cache(maxsize=4)
def _cascade(name: str = CASCADE_FILE):
    import cv2

    path = cv2.data.haarcascades + name
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # pragma: no cover - a broken OpenCV install
        raise RuntimeError(f"cannot load OpenCV cascade: {path}")
    return cascade


def _has_an_eye(grey: np.ndarray, box: Box) -> bool:
    """Whether the eye cascade finds an eye in the upper part of ``box`` (full-resolution ``grey``).

    The frontal-face cascade also fires on hands, microphones, the back of a head and dark noise;
    an eye inside the box removes nearly all of those. It also drops faces too dim or soft to show
    an eye, which would make poor artwork anyway.
    """
    import cv2

    h, w = grey.shape[:2]
    x0, y0 = max(0, int(box.x)), max(0, int(box.y))
    x1, y1 = min(w, int(round(box.x + box.w))), min(h, int(round(box.y + box.h * 0.65)))
    if x1 - x0 < 8 or y1 - y0 < 8:
        return False
    crop = grey[y0:y1, x0:x1]
    scale = 120.0 / (x1 - x0)
    interp = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    crop = cv2.resize(crop, (120, max(8, int(round((y1 - y0) * scale)))), interpolation=interp)
    eyes = _cascade(EYE_CASCADE_FILE).detectMultiScale(crop, scaleFactor=1.1, minNeighbors=3, minSize=(14, 14))
    return len(eyes) > 0


def _grey(image: "Image.Image | np.ndarray") -> np.ndarray:
    if hasattr(image, "convert"):
        return np.asarray(image.convert("L"))
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.astype(np.uint8, copy=False)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    rgb = arr[..., :3].astype(np.float32)
    return (0.299 * rgb[..., 0] + 0.587 * rgb[..., 1] + 0.114 * rgb[..., 2] + 0.5).astype(np.uint8)


def detect_faces(image: "Image.Image | np.ndarray", *, long_side: int = FACE_LONG_SIDE,
                 min_face_frac: float = 0.06, min_neighbors: int = 5, min_rel_size: float = 0.35,
                 verify_eyes: bool = True) -> list[Box]:
    """Frontal faces in ``image``, as boxes in its own pixel coordinates, largest first.

    Args:
        image: a PIL image or an RGB/grey array (H, W[, C]).
        long_side: the detector runs on a copy at most this long (faces smaller than
            ``min_face_frac`` of the short side are ignored anyway, so more pixels add only time).
        min_face_frac: smallest face side as a fraction of the image's short side (at least 24 px
            on the detection copy, the cascade's own window).
        min_neighbors: OpenCV's vote threshold; higher means fewer false positives.
        min_rel_size: drop boxes whose side is below this fraction of the largest box's side. A
            thumbnail is about its prominent faces, and Haar's false positives are mostly small
            patches of texture beside a real face (e.g. a tie or a hand).
        verify_eyes: keep only boxes in which OpenCV's eye cascade finds an eye (see
            ``_has_an_eye``); costs about a millisecond per box.

    Returns:
        ``Box`` list; ``score`` is the cascade's confidence (level weight), larger is surer.
    """
    import cv2

    grey = _grey(image)
    h, w = grey.shape[:2]
    if h < 24 or w < 24:
        return []
    scale = min(1.0, long_side / max(h, w))
    small = grey if scale >= 1.0 else cv2.resize(grey, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                  interpolation=cv2.INTER_AREA)
    # no histogram equalisation: on dark film frames it turns noise and texture into "faces"
    sh, sw = small.shape[:2]
    min_side = max(24, int(round(min_face_frac * min(sh, sw))))
    rects, _levels, weights = _cascade().detectMultiScale3(
        small, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(min_side, min_side),
        flags=cv2.CASCADE_SCALE_IMAGE, outputRejectLevels=True,
    )
    if len(rects) == 0:
        return []
    sx, sy = w / sw, h / sh
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    boxes = [
        Box(float(x), float(y), float(bw), float(bh), float(s)).scaled(sx, sy)
        for (x, y, bw, bh), s in zip(np.asarray(rects).reshape(-1, 4), weights)
    ]
    boxes = _suppress_overlaps(boxes)
    if verify_eyes:
        boxes = [b for b in boxes if _has_an_eye(grey, b)]
        if not boxes:
            return []
    boxes.sort(key=lambda b: b.area, reverse=True)
    biggest = max(boxes[0].w, boxes[0].h)
    return [b for b in boxes if max(b.w, b.h) >= min_rel_size * biggest]


def _suppress_overlaps(boxes: list[Box], max_overlap: float = 0.15) -> list[Box]:
    """Keep the surer of two boxes that share more than ``max_overlap`` of the smaller one.

    OpenCV groups hits of similar size only, so a chin or collar box nested in a face survives it.
    """
    kept: list[Box] = []
    for b in sorted(boxes, key=lambda b: b.score, reverse=True):
        if all(_overlap(b, k) <= max_overlap for k in kept):
            kept.append(b)
    return kept


def _overlap(a: Box, b: Box) -> float:
    """Intersection area over the smaller box's area."""
    iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if iw <= 0 or ih <= 0:
        return 0.0
    return iw * ih / max(min(a.area, b.area), 1e-9)


def largest_face_fraction(boxes: "list[Box] | tuple[Box, ...]", width: int, height: int) -> float:
    """Area of the largest face over the frame's area (0 without faces)."""
    if not boxes or width <= 0 or height <= 0:
        return 0.0
    return float(max(b.area for b in boxes) / (width * height))
