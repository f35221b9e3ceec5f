"""Burned-in text and logos: PP-OCRv4 finds them, persistence across the title tells a logo from a caption.

Why PP-OCRv4 (the detection and recognition ONNX models inside the ``rapidocr-onnxruntime`` wheel,
Apache-2.0): a real pretrained text detector finds dark, coloured, small and slanted lettering that
the old bright-lettering heuristic (``quality.overlay_score``) cannot, at about 40-70 ms for a
512-px frame on one core. It runs through rapidocr's own ``TextDetector``/``TextRecognizer`` on this
project's onnxruntime, one thread (the decoder has the other core).

What it is used for:

- ``text_share``: how much of the picture is text (union of the boxes over the frame): credits, a
  title card, a computer screen full of UI text score high and are not key art;
- regions (``genart.types.Region``) on every key frame, so crops and titles keep clear of them;
- persistence: a box that comes back at the same place in most sampled frames, across shots, is a
  broadcaster's logo or a watermark (``persistent_groups``), not part of the picture. A graphic
  logo without letters is found the same way from edges that stay put while the shots change
  (``EdgeVotes``).

OCR runs on few frames: a sparse sample during the scan (``SCAN_INTERVAL_S`` apart, and whenever the
picture changed), then on the chosen key frames themselves. Recognition (what the text says) runs
on the key frames' regions only.
"""

from __future__ import annotations

import importlib.util
import threading
from functools import lru_cache
from pathlib import Path

import numpy as np

from genart.types import Box, Region

#: Long side of the copy the detector sees during the scan (moderate: subtitles and corner logos of
#: 360p-1080p video stay 10+ px tall) and on key frames.
SCAN_LONG_SIDE = 448
KEYFRAME_LONG_SIDE = 640
#: During the scan a sample of a shot is read when this long has passed since the last one read,
#: or when its picture changed (a hash ``NEW_PICTURE_BITS`` away).
SCAN_INTERVAL_S = 2.0
NEW_PICTURE_BITS = 20
#: Detector box score a text box needs (rapidocr's default 0.5 lets through foliage and grilles).
MIN_BOX_SCORE = 0.6
#: Boxes thinner than this share of the frame's short side are noise (and unreadable on a thumbnail).
MIN_TEXT_H = 0.015
#: A frame whose text (persistent logos left out) covers this share of the picture is a screen of text.
SCREEN_SHARE = 0.12
#: Persistence: a group of boxes is persistent when it is seen in this share of the read samples, in
#: at least ``PERSIST_MIN`` of them, and (titles with several shots) in two or more shots, with
#: boxes of one size (their widths within ``PERSIST_SIZE`` of each other: subtitles come back at
#: the same place too, but each line has its own length).
PERSIST_SHARE = 0.75
PERSIST_MIN = 3
PERSIST_SIZE = 0.15
#: Two boxes are the same place when their intersection over union reaches this.
SAME_PLACE = 0.4
#: At most this many regions per key frame are read by the recogniser; a reading counts when the
#: recogniser is this sure of it and it has two or more letters or digits.
MAX_READ = 8
MIN_READ = 0.6

_lock = threading.Lock()


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("rapidocr_onnxruntime")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "models"
    return d if d.is_dir() else None


def available() -> bool:
    """Whether the PP-OCRv4 models are installed (``rapidocr-onnxruntime``)."""
    d = _models_dir()
    return d is not None and (d / "ch_PP-OCRv4_det_infer.onnx").is_file()


def _engine_config(model: Path) -> dict:
    return {"model_path": str(model), "intra_op_num_threads": 1, "inter_op_num_threads": 1,
            "use_cuda": False, "use_dml": False}


@lru_cache(maxsize=1)
def _detector():
    """rapidocr's DB text detector on the PP-OCRv4 detection model, or None when not installed."""
    if not available():
        return None
    from rapidocr_onnxruntime.ch_ppocr_det import TextDetector

    cfg = _engine_config(_models_dir() / "ch_PP-OCRv4_det_infer.onnx")
    cfg.update({"limit_side_len": SCAN_LONG_SIDE, "limit_type": "max", "mean": [0.5] * 3, "std": [0.5] * 3,
                "thresh": 0.3, "box_thresh": MIN_BOX_SCORE, "max_candidates": 400, "unclip_ratio": 1.6,
                "use_dilation": True, "score_mode": "fast"})
    return TextDetector(cfg)


@lru_cache(maxsize=1)
def _recognizer():
    d = _models_dir()
    if d is None or not (d / "ch_PP-OCRv4_rec_infer.onnx").is_file():
        return None
    from rapidocr_onnxruntime.ch_ppocr_rec import TextRecognizer

    cfg = _engine_config(d / "ch_PP-OCRv4_rec_infer.onnx")
    cfg.update({"rec_img_shape": [3, 48, 320], "rec_batch_num": 6})
    return TextRecognizer(cfg)


def detect_text(rgb: np.ndarray, long_side: int = SCAN_LONG_SIDE) -> list[Box]:
    """Text lines in an RGB frame, as axis-aligned boxes in its own pixels (empty without the models).

    Args:
        rgb: (H, W, 3) uint8.
        long_side: the detector sees a copy at most this long (a multiple of 32 is used).
    """
    import cv2

    det = _detector()
    h, w = rgb.shape[:2]
    if det is None or h < 16 or w < 16:
        return []
    scale = min(1.0, long_side / max(h, w))
    small = rgb if scale >= 1.0 else cv2.resize(rgb, (max(1, round(w * scale)), max(1, round(h * scale))),
                                                interpolation=cv2.INTER_AREA)
    bgr = np.ascontiguousarray(small[:, :, ::-1])
    with _lock:  # one onnxruntime session, one caller at a time
        det.limit_side_len = max(32, long_side)
        polys, _ = det(bgr)
    if polys is None or len(polys) == 0:
        return []
    out = []
    min_h = MIN_TEXT_H * min(h, w)
    for poly in np.asarray(polys, dtype=np.float64):
        x0, y0 = poly.min(axis=0) / scale
        x1, y1 = poly.max(axis=0) / scale
        x0, y0 = max(0.0, x0), max(0.0, y0)
        x1, y1 = min(float(w), x1 + 1 / scale), min(float(h), y1 + 1 / scale)
        if y1 - y0 < min_h or x1 - x0 < min_h or not _line_like(x1 - x0, y1 - y0, h):
            continue
        out.append(Box(x0, y0, x1 - x0, y1 - y0, 1.0))
    return out


def _line_like(w: float, h: float, frame_h: int) -> bool:
    """Whether a box has the shape of a line (or a column) of text: the detector also outlines a cup, a
    face or a cluster of lights as one big squarish "line", which lettering never is."""
    ratio = w / max(h, 1e-6)
    return not (0.6 < ratio < 1.6 and h > 0.08 * frame_h)


def read_text(rgb: np.ndarray, boxes: "list[Box]") -> "list[str | None]":
    """What the recogniser reads in each box of ``rgb``: "" where it reads nothing sure, None where it
    did not try (past the first ``MAX_READ`` boxes, or without the model)."""
    rec = _recognizer()
    if rec is None or not boxes:
        return [None for _ in boxes]
    h, w = rgb.shape[:2]
    crops, idx = [], []
    for i, b in enumerate(boxes[:MAX_READ]):
        x0, y0 = max(0, int(b.x) - 2), max(0, int(b.y) - 2)
        x1, y1 = min(w, int(round(b.x + b.w)) + 2), min(h, int(round(b.y + b.h)) + 2)
        if x1 - x0 < 4 or y1 - y0 < 4:
            continue
        crop = np.ascontiguousarray(rgb[y0:y1, x0:x1, ::-1])
        if crop.shape[0] > 1.5 * crop.shape[1]:  # vertical text, as rapidocr turns it
            crop = np.ascontiguousarray(np.rot90(crop))
        crops.append(crop)
        idx.append(i)
    texts: "list[str | None]" = [None for _ in boxes]
    if crops:
        with _lock:
            res, _ = rec(crops)
        for i, (text, conf) in zip(idx, res):
            words = str(text).strip()
            texts[i] = words if conf >= MIN_READ and sum(ch.isalnum() for ch in words) >= 2 else ""
    return texts


def text_share(boxes: "list[Box]", width: int, height: int) -> float:
    """Share of a ``width`` x ``height`` frame covered by the union of ``boxes`` (0-1)."""
    if not boxes or width <= 0 or height <= 0:
        return 0.0
    s = 128 / max(width, height)
    gw, gh = max(1, round(width * s)), max(1, round(height * s))
    mask = np.zeros((gh, gw), bool)
    for b in boxes:
        x0, y0 = int(b.x * s), int(b.y * s)
        x1, y1 = int(np.ceil((b.x + b.w) * s)), int(np.ceil((b.y + b.h) * s))
        mask[max(0, y0):min(gh, y1), max(0, x0):min(gw, x1)] = True
    return float(mask.mean())


def iou(a: Box, b: Box) -> float:
    iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if iw <= 0 or ih <= 0:
        return 0.0
    inter = iw * ih
    return float(inter / max(a.area + b.area - inter, 1e-9))


def overlap(a: Box, b: Box) -> float:
    """Intersection over the area of ``a``."""
    iw = min(a.x + a.w, b.x + b.w) - max(a.x, b.x)
    ih = min(a.y + a.h, b.y + b.h) - max(a.y, b.y)
    if iw <= 0 or ih <= 0:
        return 0.0
    return float(iw * ih / max(a.area, 1e-9))


def union_box(boxes: "list[Box]") -> Box:
    x0 = min(b.x for b in boxes)
    y0 = min(b.y for b in boxes)
    x1 = max(b.x + b.w for b in boxes)
    y1 = max(b.y + b.h for b in boxes)
    return Box(x0, y0, x1 - x0, y1 - y0, 1.0)


def persistent_groups(reads: "list[tuple[int, list[Box]]]", n_shots: int) -> list[Box]:
    """Places where text comes back across the title: each as the mean box of its sightings.

    Args:
        reads: per read sample, (its shot, its text boxes), all in one coordinate frame.
        n_shots: how many shots the title has (a logo must cross a cut when there are cuts).

    Each box joins the group whose running box it overlaps most (IoU at least ``SAME_PLACE``),
    compared with every group at once, so a feature film's thousands of reads group in a second.
    """
    n = len(reads)
    if n < PERSIST_MIN:
        return []
    sums = np.zeros((0, 4))  # per group: sum of x0, y0, x1, y1 of its members
    count = np.zeros(0)
    widths: list[list[float]] = []
    samples: list[set[int]] = []
    shots: list[set[int]] = []
    for i, (shot, boxes) in enumerate(reads):
        for b in boxes:
            xy = np.array([b.x, b.y, b.x + b.w, b.y + b.h])
            g = -1
            if len(count):
                mean = sums / count[:, None]
                iw = np.minimum(mean[:, 2], xy[2]) - np.maximum(mean[:, 0], xy[0])
                ih = np.minimum(mean[:, 3], xy[3]) - np.maximum(mean[:, 1], xy[1])
                inter = np.clip(iw, 0, None) * np.clip(ih, 0, None)
                areas = (mean[:, 2] - mean[:, 0]) * (mean[:, 3] - mean[:, 1])
                ious = inter / np.maximum(areas + b.area - inter, 1e-9)
                k = int(np.argmax(ious))
                g = k if ious[k] >= SAME_PLACE else -1
            if g < 0:
                sums = np.vstack([sums, xy])
                count = np.append(count, 1.0)
                widths.append([b.w])
                samples.append({i})
                shots.append({shot})
            else:
                sums[g] += xy
                count[g] += 1
                widths[g].append(b.w)
                samples[g].add(i)
                shots[g].add(shot)
    out = []
    for g in range(len(count)):
        w = np.asarray(widths[g])
        steady = float(w.std()) <= PERSIST_SIZE * float(w.mean())
        if len(samples[g]) >= max(PERSIST_MIN, PERSIST_SHARE * n) and (n_shots < 2 or len(shots[g]) >= 2) and steady:
            x0, y0, x1, y1 = sums[g] / count[g]
            out.append(Box(float(x0), float(y0), float(x1 - x0), float(y1 - y0), 1.0))
    return merge_places(out)


def merge_places(boxes: "list[Box]") -> list[Box]:
    """Boxes that touch or overlap as one: two lines of one logo, a place found both as text and as edges."""
    out: list[Box] = []
    for b in sorted(boxes, key=lambda b: -b.area):
        pad = 0.5 * min(b.w, b.h)
        grown = Box(b.x - pad, b.y - pad, b.w + 2 * pad, b.h + 2 * pad)
        for i, o in enumerate(out):
            if overlap(grown, o) > 0:
                out[i] = union_box([o, b])
                break
        else:
            out.append(b)
    return out


def kind_of(box: Box, width: int, height: int, *, persistent: bool, screen: bool) -> str:
    """What a region is, from where it sits: a corner logo, a watermark, a subtitle, a screen, text."""
    cx, cy = box.cx / max(width, 1), box.cy / max(height, 1)
    if persistent:
        corner = (cx < 0.3 or cx > 0.7) and (cy < 0.3 or cy > 0.7)
        return "logo" if corner or min(cx, 1 - cx, cy, 1 - cy) < 0.12 else "watermark"
    if screen:
        return "screen"
    if cy > 0.68 and abs(cx - 0.5) < 0.2 and box.w > 2 * box.h:
        return "subtitle"
    return "text"


def regions_for(boxes: "list[Box]", persistent: "list[Box]", width: int, height: int,
                texts: "list[str | None] | None" = None) -> tuple[list[Region], float]:
    """A key frame's regions from its text boxes and the title's persistent places (same pixels).

    ``texts``: the recogniser's reading of each box (``read_text``); a box outside the persistent
    places that reads as nothing ("") is not kept: the detector alone also outlines foliage, grilles
    and lights. Boxes not read (None) are kept.

    Returns:
        (regions, text share without the persistent ones).
    """
    texts = list(texts) if texts is not None else [None for _ in boxes]
    own = [(b, t or "") for b, t in zip(boxes, texts) if not any(overlap(b, p) > 0.5 for p in persistent)
           and t != ""]
    share = text_share([b for b, _ in own], width, height)
    screen = share >= SCREEN_SHARE
    regions = [Region(b, kind_of(b, width, height, persistent=False, screen=screen), t, False) for b, t in own]
    for p in persistent:
        words = " ".join(t for b, t in zip(boxes, texts) if t and overlap(b, p) > 0.5)
        regions.append(Region(p, kind_of(p, width, height, persistent=True, screen=False), words, True))
    return regions, share


class EdgeVotes:
    """Where edges stay put while the picture changes: graphic logos and watermarks without letters.

    Each usable sample votes with its strong edges on a small grid of the active picture; after the
    scan, cells with an edge in nearly every vote, from two or more shots, form the logo candidates.
    """

    GRID_W = 160

    def __init__(self) -> None:
        self.votes: np.ndarray | None = None
        self.n = 0
        self.shots: set[int] = set()

    def push(self, rgb: np.ndarray, shot_key: int) -> None:
        import cv2

        h, w = rgb.shape[:2]
        gw = self.GRID_W
        gh = max(4, round(gw * h / max(w, 1)))
        grey = cv2.resize(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY), (gw, gh), interpolation=cv2.INTER_AREA)
        edges = cv2.Canny(grey, 60, 150) > 0
        if self.votes is None or self.votes.shape != edges.shape:
            if self.votes is not None:
                return  # the active area changed size: keep the first
            self.votes = np.zeros(edges.shape, np.int32)
        self.votes += cv2.dilate(edges.astype(np.uint8), np.ones((2, 2), np.uint8)).astype(bool)
        self.n += 1
        self.shots.add(shot_key)

    def places(self, width: int, height: int, *, min_share: float = 0.95) -> list[Box]:
        """Boxes (pixels of a ``width`` x ``height`` frame) of persistent edge clusters near the edges."""
        import cv2

        if self.votes is None or self.n < 6 or len(self.shots) < 2:
            return []
        mask: np.ndarray = (self.votes >= min_share * self.n).astype(np.uint8)
        if not mask.any():
            return []
        mask = cv2.dilate(mask, np.ones((3, 3), np.uint8))
        n, _labels, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=8)
        gh, gw = mask.shape
        sx, sy = width / gw, height / gh
        out = []
        for i in range(1, n):
            x, y, bw, bh, area = (int(v) for v in stats[i])
            if area < 30 or bw * bh > 0.06 * gw * gh or min(bw, bh) < 5 or max(bw, bh) > 5 * min(bw, bh):
                continue  # a logo is a compact mark, not a line along the frame (a border, a strip)
            if area < 0.2 * bw * bh:
                continue
            cx, cy = (x + bw / 2) / gw, (y + bh / 2) / gh
            if not ((cx < 0.3 or cx > 0.7) and (cy < 0.3 or cy > 0.7)):  # bugs sit in a corner
                continue
            out.append(Box(x * sx, y * sy, bw * sx, bh * sy, 1.0))
        return out
