"""Reframing a frame to the aspect ratios a catalogue needs, around its subject.

The subject is the faces a key frame carries (found by the frames stage) or, without faces, the
spectral-residual saliency centre. When the tightest crop at the target aspect would cut the subject,
the frame is extended with a blurred, darkened copy of itself instead of cropping into a face
(the ``classic`` preset's answer to outpainting).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from genart.errors import InvalidArgumentError
from genart.imaging import saliency_center
from genart.types import Box

# Output sizes per aspect: a 16:9 row tile, a 2:3 poster, square, 9:16 mobile, and a few more.
ASPECT_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (1280, 720),
    "2:3": (800, 1200),
    "1:1": (1024, 1024),
    "9:16": (720, 1280),
    "4:3": (1024, 768),
    "3:4": (768, 1024),
    "4:5": (864, 1080),
    "21:9": (1680, 720),
}


def aspect_ratio(aspect: str) -> float:
    """``"16:9"`` -> 1.777...; raises ``InvalidArgumentError`` for anything else."""
    try:
        w, h = (float(x) for x in aspect.split(":"))
        if w <= 0 or h <= 0:
            raise ValueError
    except ValueError:
        raise InvalidArgumentError("aspect", aspect, "W:H with positive numbers, e.g. 16:9") from None
    return w / h


@dataclass(frozen=True)
class Framing:
    """Where to cut: ``crop`` (x, y, w, h) in source pixels, possibly reaching outside the frame (``padded``)."""

    crop: tuple[int, int, int, int]
    subject: Box
    padded: bool


def subject_box(width: int, height: int, faces: Sequence[Box], rgb: np.ndarray | None = None) -> Box:
    """The region a crop must keep: the main faces with head-and-shoulders room, else the salient point."""
    if faces:
        largest = max(f.area for f in faces)
        main = [f for f in faces if f.area >= 0.2 * largest]
        x0 = min(f.x for f in main)
        y0 = min(f.y for f in main)
        x1 = max(f.x + f.w for f in main)
        y1 = max(f.y + f.h for f in main)
        fw, fh = x1 - x0, y1 - y0
        # hair above, chin and a bit of shoulder below, some air at the sides
        x0, x1 = x0 - 0.25 * fw / max(1, len(main)), x1 + 0.25 * fw / max(1, len(main))
        y0, y1 = y0 - 0.3 * fh, y1 + 0.25 * fh
    else:
        cx, cy = saliency_center(rgb) if rgb is not None else (0.5, 0.5)
        side = 0.3 * min(width, height)
        x0, y0 = cx * width - side / 2, cy * height - side / 2
        x1, y1 = x0 + side, y0 + side
    x0, y0 = max(0.0, x0), max(0.0, y0)
    x1, y1 = min(float(width), x1), min(float(height), y1)
    return Box(x0, y0, max(1.0, x1 - x0), max(1.0, y1 - y0))


def plan_framing(width: int, height: int, aspect: str, subject: Box, *, zoom: float = 1.0,
                 shift: tuple[float, float] = (0.0, 0.0)) -> Framing:
    """Choose the crop at ``aspect`` that keeps ``subject`` whole, placed on the upper third.

    Args:
        zoom: >1 crops tighter than the largest crop that fits (never tighter than the subject).
        shift: (-1..1, -1..1), moves the crop within its slack around the subject (variety).
    """
    r = aspect_ratio(aspect)
    if width / height > r:
        cw, ch = height * r, float(height)
    else:
        cw, ch = float(width), width / r
    cw, ch = cw / max(zoom, 1.0), ch / max(zoom, 1.0)
    padded = False
    if subject.w > cw or subject.h > ch:
        # the subject does not fit: grow the window (beyond the frame) until it does
        scale = max(subject.w / cw, subject.h / ch) * 1.05
        cw, ch = cw * scale, ch * scale
        padded = cw > width + 0.5 or ch > height + 0.5
    # target: subject centred horizontally, its centre at 40% of the height (headroom)
    x = subject.cx - cw / 2
    y = subject.cy - ch * 0.4
    # slack that keeps the subject inside
    lo_x, hi_x = subject.x + subject.w - cw, subject.x
    lo_y, hi_y = subject.y + subject.h - ch, subject.y
    x += shift[0] * 0.5 * (hi_x - lo_x) / 2
    y += shift[1] * 0.5 * (hi_y - lo_y) / 2
    x = min(max(x, lo_x), hi_x)
    y = min(max(y, lo_y), hi_y)
    if not padded:  # stay inside the frame when we can
        x = min(max(x, 0.0), width - cw)
        y = min(max(y, 0.0), height - ch)
    else:
        x = min(max(x, min(0.0, width - cw)), max(0.0, width - cw))
        y = min(max(y, min(0.0, height - ch)), max(0.0, height - ch))
    crop = (int(round(x)), int(round(y)), int(round(cw)), int(round(ch)))
    padded = crop[0] < 0 or crop[1] < 0 or crop[0] + crop[2] > width or crop[1] + crop[3] > height
    return Framing(crop=crop, subject=subject, padded=padded)


def render_framing(rgb: np.ndarray, framing: Framing, out_size: tuple[int, int]) -> np.ndarray:
    """Cut ``framing`` out of ``rgb`` and resize it to ``out_size`` (w, h); blur-extend where it leaves the frame."""
    import cv2

    h, w = rgb.shape[:2]
    x, y, cw, ch = framing.crop
    ow, oh = out_size
    if not framing.padded:
        region = rgb[y:y + ch, x:x + cw]
        interp = cv2.INTER_AREA if region.shape[1] > ow else cv2.INTER_LANCZOS4
        return cv2.resize(region, (ow, oh), interpolation=interp)
    sx, sy = ow / cw, oh / ch
    # background: the whole frame scaled to cover the canvas, blurred hard and darkened
    cover = max(ow / w, oh / h)
    bg = cv2.resize(rgb, (max(1, int(w * cover + 1)), max(1, int(h * cover + 1))), interpolation=cv2.INTER_AREA)
    bx, by = (bg.shape[1] - ow) // 2, (bg.shape[0] - oh) // 2
    bg = bg[by:by + oh, bx:bx + ow]
    k = max(3, int(0.08 * max(ow, oh)) | 1)
    bg = cv2.GaussianBlur(bg, (k, k), 0)
    bg = (bg.astype(np.float32) * 0.6).astype(np.uint8)
    # foreground: the part of the frame inside the window, at the same scale
    fx0, fy0 = max(0, x), max(0, y)
    fx1, fy1 = min(w, x + cw), min(h, y + ch)
    fg = rgb[fy0:fy1, fx0:fx1]
    tw, th = max(1, int(round((fx1 - fx0) * sx))), max(1, int(round((fy1 - fy0) * sy)))
    fg = cv2.resize(fg, (tw, th), interpolation=cv2.INTER_AREA if sx < 1 else cv2.INTER_LANCZOS4)
    px, py = int(round((fx0 - x) * sx)), int(round((fy0 - y) * sy))
    tw, th = min(tw, ow - px), min(th, oh - py)
    fg = fg[:th, :tw]
    # feather the seams so the extension reads as soft background, not a box
    feather = max(1, int(0.03 * max(ow, oh)))
    mask = np.ones((th, tw), np.float32)
    for side, touching in (("l", x < 0), ("r", x + cw > w), ("t", y < 0), ("b", y + ch > h)):
        if not touching:
            continue
        ramp = np.linspace(0.0, 1.0, min(feather, tw if side in "lr" else th), dtype=np.float32)
        if side == "l":
            mask[:, : ramp.size] *= ramp[None, :]
        elif side == "r":
            mask[:, tw - ramp.size:] *= ramp[::-1][None, :]
        elif side == "t":
            mask[: ramp.size, :] *= ramp[:, None]
        else:
            mask[th - ramp.size:, :] *= ramp[::-1][:, None]
    out = bg.astype(np.float32)
    region = out[py:py + th, px:px + tw]
    out[py:py + th, px:px + tw] = region * (1 - mask[..., None]) + fg.astype(np.float32) * mask[..., None]
    return np.clip(out, 0, 255).astype(np.uint8)


def output_size(aspect: str, crop_w: int, crop_h: int, max_upscale: float = 2.0) -> tuple[int, int]:
    """The catalogue size for ``aspect``, shrunk when it would upscale the crop more than ``max_upscale``."""
    if aspect in ASPECT_SIZES:
        ow, oh = ASPECT_SIZES[aspect]
    else:
        r = aspect_ratio(aspect)
        ow, oh = (1280, int(1280 / r)) if r >= 1 else (int(1280 * r), 1280)
    scale = min(1.0, max_upscale * max(crop_w / ow, crop_h / oh))
    return max(16, int(ow * scale) // 2 * 2), max(16, int(oh * scale) // 2 * 2)
