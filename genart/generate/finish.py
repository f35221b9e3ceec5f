"""The finishing steps every generator shares: reframe to a catalogue aspect, grade, lay the title.

Faces travel with the pixels: a key frame's faces are in source pixels (``KeyFrame.width`` x
``height``); ``faces_in`` maps them to any resized copy, and ``faces_through`` maps them through a crop
to the output, so the title's safe zone is computed where the faces actually are.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

from genart.generate.grade import apply_grade
from genart.generate.reframe import Framing, output_size, plan_framing, render_framing, subject_box
from genart.generate.title import TitleLayout, lay_title
from genart.types import Box, Grade, KeyFrame

# (rgb, framing) -> (pixels of the whole window with the outside of the frame filled in, the mask of what
# was painted in [0, 1]), at any size of the window's aspect
Outpainter = Callable[[np.ndarray, Framing], "tuple[np.ndarray, np.ndarray]"]


def faces_in(kf: KeyFrame, width: int, height: int) -> list[Box]:
    """The key frame's faces in the pixels of a ``width`` x ``height`` copy of it."""
    if not kf.width or not kf.height:
        return list(kf.faces)
    return [f.scaled(width / kf.width, height / kf.height) for f in kf.faces]


def faces_through(faces: Sequence[Box], crop: tuple[int, int, int, int], size: tuple[int, int]) -> list[Box]:
    """Faces mapped through a crop window (x, y, w, h) resized to ``size``; those fully outside dropped."""
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
    pixels: np.ndarray
    framing: Framing
    size: tuple[int, int]
    reframe: str  # "crop" | "blur-extend" | "outpaint"
    title: TitleLayout | None


def finish(rgb: np.ndarray, faces: Sequence[Box], aspect: str, grade: Grade, amount: float, *, title: str = "",
           locale: str = "en-US", zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0),
           outpaint: Outpainter | None = None, max_upscale: float = 2.0, title_position: str = "bottom") -> Finished:
    """Reframe ``rgb`` to ``aspect`` around its subject, grade it, lay ``title`` clear of the faces.

    Where the crop must leave the frame to keep the subject whole, ``outpaint`` fills the outside
    (neural presets with an inpainting model); without one, a blurred extension of the frame does.
    """
    h, w = rgb.shape[:2]
    subject = subject_box(w, h, faces, rgb)
    framing = plan_framing(w, h, aspect, subject, zoom=zoom, shift=shift)
    size = output_size(aspect, framing.crop[2], framing.crop[3], max_upscale=max_upscale)
    if framing.padded and outpaint is not None:
        import cv2

        window, mask = outpaint(rgb, framing)
        # the frame's own pixels come from one resampling of the source, exactly as a plain crop's would
        base = render_framing(rgb, framing, size).astype(np.float32)
        painted = cv2.resize(window, size, interpolation=cv2.INTER_LINEAR).astype(np.float32)
        m = cv2.resize(mask.astype(np.float32), size, interpolation=cv2.INTER_LINEAR)[..., None]
        pixels = np.clip(painted * m + base * (1 - m) + 0.5, 0, 255).astype(np.uint8)
        how = "outpaint"
    else:
        pixels = render_framing(rgb, framing, size)
        how = "blur-extend" if framing.padded else "crop"
    pixels = apply_grade(pixels, grade, amount)
    layout = None
    if title.strip():
        pixels, layout = lay_title(pixels, title, locale, faces_through(faces, framing.crop, size),
                                   position=title_position)
    return Finished(pixels, framing, size, how, layout)
