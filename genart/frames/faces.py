"""Face detection: YuNet (libfacedetection, via the ``yuface`` wheel) first, OpenCV's Haar cascades as fallback.

Why YuNet: it is a small CNN from the libfacedetection project whose weights are compiled into the
``yuface`` wheel's shared library (no file to fetch, nothing unpickled), it runs in about 10 ms on
a 320-px frame on one core, and it finds what Haar cannot: turned heads, dim stage lighting and
CG characters (Elephants Dream: Haar none, YuNet the characters' faces). It also gives five
landmarks (eyes, nose tip, mouth corners), from which ``Face.frontal`` says how squarely a face
looks at the camera.

The Haar path (frontal cascade, each box confirmed by OpenCV's eye cascade) is used when
``yuface`` cannot be imported (it has wheels for Linux and Windows, CPython < 3.12 only); it misses
profile, dim and CG faces and says so once with a ``RuntimeWarning``. With neither (an OpenCV 5
build, whose core no longer has the cascades, and no ``yuface``) no faces are detected, and a
``RuntimeWarning`` says so once: the frames and artwork stages go on without face signals.

Which faces are real (``plausible``, ``required_confidence``): YuNet's score alone lets through
boxes on glassware, textures, dark backgrounds and animals at 0.6-0.75, and a head on its side is
found by the upright detector as a squashed "profile" with the wrong box. So a face must also
have the landmark geometry of a face (nose between the eyes and the mouth, mouth under the eyes,
spacing in human proportions, measured along the eye-to-mouth axis so that profiles pass), and
faces that are very large or very small for the frame need a surer score (real close-ups score
0.85-0.95; the 0.6 boxes that fill a frame were a cat and the moon). With ``rotations`` the
detector also runs on the frame turned a quarter each way and keeps the orientation whose faces
are surest, so a sideways face in a clip filmed on its side is found with its real box and a
``roll`` of about 90 degrees. The frames stage adds what needs more than one frame (a face seen in
one sample but not in its look-alike neighbours, a face inside a persistent logo) and dlib's
68-point landmarks and identity (``genart.frames.people``).

Detectors load once per process.
"""

from __future__ import annotations

import ctypes
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from genart.errors import BackendUnavailableError, InvalidArgumentError, MediaWarning, warn
from genart.types import Box

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

#: Detection runs on a copy with at most this long side; boxes are scaled back.
FACE_LONG_SIDE = 640
CASCADE_FILE = "haarcascade_frontalface_default.xml"
EYE_CASCADE_FILE = "haarcascade_eye.xml"
BACKENDS = ("yunet", "haar")
#: What ``resolve_backend`` answers when no detector can run here.
NO_DETECTOR = "none"
#: YuNet confidence (0-1) a box needs: real faces score 0.75-0.95, texture and hands 0.2-0.55.
MIN_CONFIDENCE = 0.6
#: Faces whose side is over ``BIG_FACE`` or under ``SMALL_FACE`` of the frame's short side need
#: ``SURE_CONFIDENCE``: a real close-up is found with 0.85+, a tiny face at 0.6 is usually texture.
BIG_FACE = 0.45
SMALL_FACE = 0.08
SURE_CONFIDENCE = 0.72
#: Rotations (degrees counterclockwise) tried by ``find_faces(rotations=...)``; another orientation
#: wins only with this much more summed confidence than the upright one.
QUARTER_TURNS = (0, 90, 270)
ROTATION_MARGIN = 0.04


@dataclass(frozen=True)
class Face:
    """A detected face: its box, how frontal it is, and its landmarks when the detector gives them.

    ``frontal`` is 1 for a face looking straight at the camera, falling towards 0 as the head
    turns to profile (nose tip off the eyes' midline, eyes closing up); None when unknown.
    ``landmarks`` are (x, y) of right eye, left eye, nose tip, right and left mouth corner.
    """

    box: Box
    frontal: float | None = None
    landmarks: tuple[tuple[float, float], ...] = ()
    roll: float = 0.0  # degrees the face is turned clockwise in the picture (90: lying with its top to the right)

    def scaled(self, sx: float, sy: float | None = None) -> "Face":
        sy = sx if sy is None else sy
        return Face(self.box.scaled(sx, sy), self.frontal, tuple((x * sx, y * sy) for x, y in self.landmarks),
                    self.roll)

    def shifted(self, dx: float, dy: float) -> "Face":
        b = self.box
        return Face(Box(b.x + dx, b.y + dy, b.w, b.h, b.score), self.frontal,
                    tuple((x + dx, y + dy) for x, y in self.landmarks), self.roll)


# --- YuNet (libfacedetection) ------------------------------------------------------------------------
@lru_cache(maxsize=1)
def _yunet():
    """The ``yuface`` module, or None when it is not installed."""
    try:
        import yuface
    except ImportError:
        return None
    return yuface


@lru_cache(maxsize=1)
def _omp_set_num_threads():
    """libgomp's ``omp_set_num_threads`` of the copy bundled with yuface, or None.

    libfacedetection parallelises with OpenMP over all cores; on a shared two-core machine that
    made each call 5-10 times slower (threads waiting on each other and on the decoder), so
    detection runs on one thread: the calling one.
    """
    yf = _yunet()
    if yf is None:
        return None
    libs = Path(yf.__file__).resolve().parent.parent / "yuface.libs"
    for lib in sorted(libs.glob("libgomp*.so*")) if libs.is_dir() else ():
        try:
            fn = ctypes.CDLL(str(lib)).omp_set_num_threads
        except (OSError, AttributeError):  # pragma: no cover
            continue
        fn.argtypes = [ctypes.c_int]
        return fn
    return None


_local = threading.local()


def _single_thread() -> None:
    if getattr(_local, "omp_set", False):
        return
    fn = _omp_set_num_threads()
    if fn is not None:
        fn(1)  # the OpenMP setting is per calling thread
    _local.omp_set = True


def _frontal(box: Box, pts: list[tuple[float, float]]) -> float:
    """1 for a frontal face, towards 0 for a profile: nose tip off the eyes' midline, eyes close together."""
    (rx, ry), (lx, ly), nx = pts[0], pts[1], pts[2][0]
    eye_dist = float(np.hypot(lx - rx, ly - ry))
    if eye_dist <= 1e-6 or box.w <= 0:
        return 0.0
    yaw = abs(nx - (rx + lx) / 2) / (eye_dist / 2)  # 0 frontal, ~1 when the nose is over an eye
    spread = min(1.0, (eye_dist / box.w) / 0.38)  # eyes about 0.38 of the box width apart face-on
    return float(max(0.0, min(1.0, (1.0 - min(1.0, yaw)) * spread)))


def _yunet_faces(rgb: np.ndarray, min_confidence: float) -> list[Face]:
    yf = _yunet()
    _single_thread()
    bgr = np.ascontiguousarray(rgb[:, :, ::-1])
    rows = np.asarray(yf.yuface.detect(bgr)).reshape(-1, 16)
    h, w = rgb.shape[:2]
    faces = []
    for row in rows.astype(np.float64):
        conf = row[0] / 100.0
        if conf < min_confidence:
            continue
        x, y, bw, bh = row[1:5]
        x0, y0 = max(0.0, x), max(0.0, y)
        x1, y1 = min(float(w), x + bw), min(float(h), y + bh)
        if x1 - x0 < 2 or y1 - y0 < 2:
            continue
        box = Box(x0, y0, x1 - x0, y1 - y0, float(conf))
        pts = [(float(row[5 + 2 * i]), float(row[6 + 2 * i])) for i in range(5)]
        faces.append(Face(box, _frontal(Box(x, y, bw, bh), pts), tuple(pts)))
    return faces


def geometry(box: Box, pts: "tuple[tuple[float, float], ...] | list[tuple[float, float]]") -> float | None:
    """The face's roll in degrees when the five landmarks have a face's geometry, else None.

    Measured along the axis from the eyes' midpoint to the mouth's (its length ``D`` stays put when
    the head turns to profile, the eye distance does not): the nose lies between the eyes and the
    mouth and near that axis, eyes and mouth are spaced in human proportions, and ``D`` fits the box.
    """
    if len(pts) < 5:
        return None
    p = np.asarray(pts, dtype=np.float64)
    eyes = (p[0] + p[1]) / 2
    mouth = (p[3] + p[4]) / 2
    axis = mouth - eyes
    d = float(np.hypot(*axis))
    if d < 2.0:
        return None
    u = axis / d
    n = p[2] - eyes
    along = float(n @ u) / d
    across = abs(float(n[0] * u[1] - n[1] * u[0])) / d
    eye_d = float(np.hypot(*(p[1] - p[0]))) / d
    mouth_w = float(np.hypot(*(p[4] - p[3]))) / d
    size = d / max(box.w, box.h, 1e-6)
    if not (0.15 <= along <= 0.95 and across <= 0.9 and 0.2 <= eye_d <= 1.7 and 0.25 <= mouth_w <= 1.6
            and 0.18 <= size <= 0.8):
        return None
    if eye_d >= 0.6:  # frontal enough for the eye line to mean something: across the axis, not along it
        e = (p[1] - p[0]) / max(float(np.hypot(*(p[1] - p[0]))), 1e-6)
        if abs(float(e @ u)) > 0.5:
            return None
    return float(np.degrees(np.arctan2(-u[0], u[1])))


def required_confidence(box: Box, width: int, height: int, floor: float = MIN_CONFIDENCE) -> float:
    """The YuNet score a face of this size needs in a ``width`` x ``height`` frame (see ``SURE_CONFIDENCE``)."""
    side = max(box.w, box.h) / max(1, min(width, height))
    return max(floor, SURE_CONFIDENCE) if side > BIG_FACE or side < SMALL_FACE else floor


def _turn_back(face: Face, k: int, w: int, h: int) -> Face:
    """A face found on ``np.rot90(img, k)`` (k = 1 or 3), in the pixels of ``img`` (``w`` x ``h``)."""
    def pt(x: float, y: float) -> tuple[float, float]:
        return (w - y, x) if k == 1 else (y, h - x)

    b = face.box
    corners = [pt(b.x, b.y), pt(b.x + b.w, b.y + b.h)]
    x0, x1 = sorted(c[0] for c in corners)
    y0, y1 = sorted(c[1] for c in corners)
    return Face(Box(x0, y0, x1 - x0, y1 - y0, b.score), face.frontal, tuple(pt(x, y) for x, y in face.landmarks),
                face.roll)


# --- Haar -----------------------------------------------------------------------------------------
def _haar_available() -> bool:
    """Whether this OpenCV has the cascade classifier and its files (4.x; OpenCV 5 moved them out)."""
    import cv2

    folder = getattr(getattr(cv2, "data", None), "haarcascades", None)
    return hasattr(cv2, "CascadeClassifier") and bool(folder) and Path(str(folder), CASCADE_FILE).is_file()


@lru_cache(maxsize=4)
def _cascade(name: str = CASCADE_FILE):
    import cv2

    path = cv2.data.haarcascades + name  # type: ignore[attr-defined]  # cv2.data is absent from its stubs
    cascade = cv2.CascadeClassifier(path)
    if cascade.empty():  # pragma: no cover - a broken OpenCV install
        raise RuntimeError(f"cannot load OpenCV cascade: {path}")
    return cascade


def _has_an_eye(grey: np.ndarray, box: Box) -> bool:
    """Whether the eye cascade finds an eye in the upper part of ``box``.

    The frontal-face cascade also fires on hands, microphones, the back of a head and dark noise;
    an eye inside the box removes nearly all of those.
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


def _haar_faces(grey: np.ndarray, min_side: int, min_neighbors: int, verify_eyes: bool) -> list[Face]:
    import cv2

    # no histogram equalisation: on dark film frames it turns noise and texture into "faces"
    rects, _levels, weights = _cascade().detectMultiScale3(
        grey, scaleFactor=1.1, minNeighbors=min_neighbors, minSize=(min_side, min_side),
        flags=cv2.CASCADE_SCALE_IMAGE, outputRejectLevels=True,
    )
    if len(rects) == 0:
        return []
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    boxes = [Box(float(x), float(y), float(bw), float(bh), float(s))
             for (x, y, bw, bh), s in zip(np.asarray(rects).reshape(-1, 4), weights)]
    boxes = _suppress_overlaps(boxes)
    if verify_eyes:
        boxes = [b for b in boxes if _has_an_eye(grey, b)]
    return [Face(b, None) for b in boxes]  # the frontal cascade says nothing finer about pose


# --- the public calls -------------------------------------------------------------------------------
_warned_fallback = False
_warned_none = False


def resolve_backend(backend: str | None) -> str:
    """``backend`` checked, or the best one installed when None (``NO_DETECTOR`` when none is)."""
    global _warned_fallback, _warned_none
    if backend is None:
        if _yunet() is not None:
            return "yunet"
        if not _haar_available():
            if not _warned_none:
                import cv2

                _warned_none = True
                warn(f"no face detector: yuface is not installed and OpenCV {cv2.__version__} has no Haar "
                     "cascades; faces are not detected (pip install 'opencv-python-headless<5', or yuface)",
                     MediaWarning, stacklevel=3)
            return NO_DETECTOR
        if not _warned_fallback:
            _warned_fallback = True
            warn("yuface is not installed: faces come from OpenCV's Haar cascades, which miss turned, "
                 "dim and CG faces (pip install yuface)", MediaWarning, stacklevel=3)
        return "haar"
    if backend not in BACKENDS:
        raise InvalidArgumentError("backend", backend, " or ".join(repr(b) for b in BACKENDS))
    if backend == "yunet" and _yunet() is None:
        raise BackendUnavailableError("the YuNet face detector", "yuface")
    if backend == "haar" and not _haar_available():
        import cv2

        raise BackendUnavailableError("OpenCV's Haar cascades", "opencv-python-headless<5",
                                      f"OpenCV {cv2.__version__} has none")
    return backend


def _as_rgb(image: "Image.Image | np.ndarray") -> np.ndarray:
    if hasattr(image, "convert"):
        return np.asarray(image.convert("RGB"))
    arr = np.asarray(image)
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        return np.repeat(arr[:, :, None], 3, axis=2)
    return arr[..., :3]


def find_faces(image: "Image.Image | np.ndarray", *, long_side: int = FACE_LONG_SIDE, min_face_frac: float = 0.05,
               min_rel_size: float = 0.35, min_confidence: float = MIN_CONFIDENCE, backend: str | None = None,
               min_neighbors: int = 5, verify_eyes: bool = True, rotations: "tuple[int, ...]" = (0,),
               verify: bool = True) -> list[Face]:
    """Real faces in ``image`` with pose, in its own pixel coordinates, largest first.

    Args:
        image: a PIL image or an RGB/grey array (H, W[, C]).
        long_side: the detector runs on a copy at most this long (faces smaller than
            ``min_face_frac`` of the short side are dropped anyway, so more pixels add only time).
        min_face_frac: smallest face side as a fraction of the image's short side.
        min_rel_size: drop faces whose side is below this fraction of the largest face's side: a
            thumbnail is about its prominent faces, not the crowd behind them.
        min_confidence: YuNet's score a face needs (0-1).
        backend: ``"yunet"``, ``"haar"``, or None for YuNet when installed, else Haar, else none (a
            warning, and no faces).
        min_neighbors, verify_eyes: Haar only: OpenCV's vote threshold, and whether an eye must be
            found inside each box.
        rotations: YuNet only: quarter turns to try (degrees counterclockwise, from ``QUARTER_TURNS``);
            the orientation whose faces are surest wins (by ``ROTATION_MARGIN`` over upright).
        verify: drop YuNet boxes without a face's landmark geometry, and large or tiny boxes under
            ``required_confidence`` (False: every box over ``min_confidence``, as detected).

    Returns:
        ``Face`` list; ``box.score`` is the detector's confidence (YuNet 0-1; Haar's level weight);
        ``roll`` is the face's turn in the picture (YuNet).

    Raises:
        InvalidArgumentError: an unknown backend.
        BackendUnavailableError: ``backend="yunet"`` without ``yuface`` installed, or ``"haar"`` on an
            OpenCV without the cascades.
    """
    import cv2

    chosen = resolve_backend(backend)
    if chosen == NO_DETECTOR:
        return []
    rgb = _as_rgb(image)
    h, w = rgb.shape[:2]
    if h < 24 or w < 24:
        return []
    scale = min(1.0, long_side / max(h, w))
    if scale < 1.0:
        small = cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)
    else:
        small = np.ascontiguousarray(rgb)
    sh, sw = small.shape[:2]
    min_side = max(10 if chosen == "yunet" else 24, int(round(min_face_frac * min(sh, sw))))
    if chosen == "yunet":
        faces = _oriented_yunet(small, min_confidence, rotations, verify)
    else:
        grey = cv2.cvtColor(small, cv2.COLOR_RGB2GRAY)
        faces = _haar_faces(grey, min_side, min_neighbors, verify_eyes)
    faces = [f for f in faces if max(f.box.w, f.box.h) >= min_side]
    if not faces:
        return []
    sx, sy = w / sw, h / sh
    faces = [f.scaled(sx, sy) for f in faces]
    faces.sort(key=lambda f: f.box.area, reverse=True)
    biggest = max(faces[0].box.w, faces[0].box.h)
    return [f for f in faces if max(f.box.w, f.box.h) >= min_rel_size * biggest]


def _real_faces(rgb: np.ndarray, min_confidence: float, verify: bool) -> list[Face]:
    """YuNet's faces on ``rgb`` that pass the checks, each with its roll."""
    h, w = rgb.shape[:2]
    out = []
    for f in _yunet_faces(rgb, min_confidence):
        roll = geometry(f.box, f.landmarks)
        if verify and (roll is None or f.box.score < required_confidence(f.box, w, h, min_confidence)):
            continue
        out.append(Face(f.box, f.frontal, f.landmarks, roll or 0.0))
    return out


def _oriented_yunet(rgb: np.ndarray, min_confidence: float, rotations: "tuple[int, ...]",
                    verify: bool) -> list[Face]:
    """The faces of the orientation (of ``rotations``) whose real faces are surest, in ``rgb``'s pixels."""
    h, w = rgb.shape[:2]
    best: list[Face] = []
    best_score = -1.0
    for deg in rotations or (0,):
        k = {0: 0, 90: 1, 270: 3}.get(int(deg) % 360)
        if k is None:
            raise InvalidArgumentError("rotations", rotations, "quarter turns from (0, 90, 270)")
        img = rgb if k == 0 else np.ascontiguousarray(np.rot90(rgb, k))
        faces = _real_faces(img, min_confidence, verify)
        if k:
            faces = [_turn_back(f, k, w, h) for f in faces]
            faces = [Face(f.box, f.frontal, f.landmarks, geometry(f.box, f.landmarks) or f.roll) for f in faces]
        score = sum(f.box.score for f in faces) - (0.0 if k == 0 else ROTATION_MARGIN)
        if faces and score > best_score:
            best, best_score = faces, score
    return best


def detect_faces(image: "Image.Image | np.ndarray", *, long_side: int = FACE_LONG_SIDE,
                 min_face_frac: float = 0.05, min_neighbors: int = 5, min_rel_size: float = 0.35,
                 verify_eyes: bool = True, backend: str | None = None,
                 min_confidence: float = MIN_CONFIDENCE) -> list[Box]:
    """Faces in ``image`` as boxes in its own pixel coordinates, largest first (see ``find_faces``).

    Returns:
        ``Box`` list; ``score`` is the detector's confidence, larger is surer.
    """
    return [f.box for f in find_faces(image, long_side=long_side, min_face_frac=min_face_frac,
                                      min_rel_size=min_rel_size, min_confidence=min_confidence, backend=backend,
                                      min_neighbors=min_neighbors, verify_eyes=verify_eyes)]


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
