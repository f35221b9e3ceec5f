"""The finishing steps every generator shares, in this order: reframe (choose the crop) -> fill (what
lies outside the frame: a seamless mirrored fill, or the preset's outpainting) -> resize to the delivery
size -> grade -> title (plate/scrim/shadow/outline composite) -> watermark (generated images only).

Each step is deterministic and works on plain arrays, so a batched reimplementation can match it.

Faces and text regions travel with the pixels: a key frame's boxes are in its own pixels
(``KeyFrame.width`` x ``height``); ``faces_in`` / ``regions_in`` map them to any resized copy, and
``faces_through`` maps boxes through a crop to the output, so the title's safe zone is computed where
the faces and the burned-in text actually are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from genart.generate.grade import apply_grade
from genart.generate.reframe import Framing, plan_framing, render_framing, upscale_of
from genart.generate.title import TitleLayout, lay_title
from genart.types import Box, Grade, KeyFrame, TitleStyle
from genart.imaging import saliency_map
from genart.provenance import embed_watermark

# (rgb, framing) -> (pixels of the whole window with the outside of the frame filled in, the mask of what
# was painted in [0, 1]), at any size of the window's aspect
Outpainter = Callable[[np.ndarray, Framing], "tuple[np.ndarray, np.ndarray]"]


def faces_in(kf: KeyFrame, width: int, height: int) -> list[Box]:
    """The key frame's faces in the pixels of a ``width`` x ``height`` copy of it."""
    if not kf.width or not kf.height:
        return list(kf.faces)
    return [f.scaled(width / kf.width, height / kf.height) for f in kf.faces]


def regions_in(kf: KeyFrame, width: int, height: int) -> list[Box]:
    """The key frame's text and logo regions in the pixels of a ``width`` x ``height`` copy of it."""
    boxes = [r.box for r in kf.regions]
    if not kf.width or not kf.height:
        return boxes
    return [b.scaled(width / kf.width, height / kf.height) for b in boxes]


def faces_through(faces: Sequence[Box], crop: tuple[int, int, int, int], size: tuple[int, int]) -> list[Box]:
    """Boxes mapped through a crop window (x, y, w, h) resized to ``size``; those fully outside dropped."""
    x, y, cw, ch = crop
    sx, sy = size[0] / cw, size[1] / ch
    out = []
    for f in faces:
        b = Box((f.x - x) * sx, (f.y - y) * sy, f.w * sx, f.h * sy, f.score)
        if b.x + b.w > 0 and b.y + b.h > 0 and b.x < size[0] and b.y < size[1]:
            out.append(b)
    return out


@dataclass(frozen=True)
class Finished:
    """A finished picture and the facts a variant records about it (``GenerationParams``)."""

    pixels: np.ndarray
    framing: Framing
    size: tuple[int, int]
    reframe: str  # "crop" | "mirror-fill" | "outpaint"
    title: TitleLayout | None
    synthetic_share: float = 0.0
    upscale: float = 1.0
    title_status: str | None = None  # None (no title asked for) | "placed" | "skipped"
    title_reason: str | None = None
    watermark: str | None = None


def finish(rgb: np.ndarray, faces: Sequence[Box], aspect: str, grade: Grade, amount: float, *,
           size: tuple[int, int], title: str = "", locale: str = "en-US", style: TitleStyle | None = None,
           regions: Sequence[Box] = (), safe: tuple[float, float, float, float] = (0.05, 0.05, 0.05, 0.05),
           zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0), outpaint: Outpainter | None = None,
           max_upscale: float = 1.5, max_synthetic: float = 0.08, max_outpaint: float = 0.35,
           watermark: str | None = None) -> Finished:
    """Reframe ``rgb`` to ``aspect`` at the delivery ``size``, grade it, lay ``title``, watermark it.

    Args:
        faces, regions: faces and text/logo boxes in ``rgb``'s pixels.
        size: the aspect's delivery size (``FinishSpec.size``): every variant of an aspect has it.
        safe: the aspect's title safe zone (``FinishSpec.safe_zone``).
        outpaint: the preset's inpainting model; it may paint up to ``max_outpaint`` of the picture,
            where a mirrored fill may make at most ``max_synthetic``.
        watermark: the payload of the imperceptible watermark (generated images); None: none.
    """
    import cv2

    h, w = rgb.shape[:2]
    limit = max_outpaint if outpaint is not None else max_synthetic
    framing = plan_framing(w, h, aspect, list(faces), zoom=zoom, shift=shift, regions=regions, out_width=size[0],
                           max_upscale=max_upscale, max_synthetic=limit, rgb=rgb)
    if framing.padded and outpaint is not None:
        window, mask = outpaint(rgb, framing)
        # the frame's own pixels come from one resampling of the source, exactly as a plain crop's would
        base = render_framing(rgb, framing, size).astype(np.float32)
        painted = cv2.resize(window, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
        m = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[..., None]
        pixels = np.clip(painted * m + base * (1 - m) + 0.5, 0, 255).astype(np.uint8)
        how = "outpaint"
    else:
        pixels = render_framing(rgb, framing, size)
        how = "mirror-fill" if framing.padded else "crop"
    pixels = apply_grade(pixels, grade, amount)
    layout: TitleLayout | None = None
    status = reason = None
    if title.strip():
        out_faces = faces_through(faces, framing.crop, size)
        out_regions = faces_through(regions, framing.crop, size)
        pixels, plan = lay_title(pixels, title, locale, out_faces, style=style, regions=out_regions,
                                 saliency=saliency_map(pixels), safe=safe)
        if isinstance(plan, str):
            status, reason = "skipped", plan
        else:
            status, layout = "placed", plan
    mark = None
    if watermark:
        pixels = embed_watermark(pixels, watermark)
        mark = watermark
    return Finished(pixels, framing, size, how, layout, synthetic_share=framing.synthetic_share,
                    upscale=upscale_of(framing, size), title_status=status, title_reason=reason, watermark=mark)
