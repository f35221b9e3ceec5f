"""Reframing a frame to a catalogue aspect around its subject, so the result looks finished.

The subject is the faces a key frame carries (found by the frames stage) or, without faces, the
spectral-residual saliency centre. The crop is chosen in this order, the first that works winning:

1. the largest crop at the aspect inside the frame that keeps the whole subject (every main face with
   head-and-shoulders room): no synthetic pixels;
2. a window a little larger than the frame, keeping the whole subject, when the part outside the frame
   is at most ``max_synthetic`` of the picture (``FinishSpec.max_synthetic``, 8%: a margin of about 4%
   on each of two sides, no wider than the 5% safe margin the title keeps anyway, and narrow enough that
   the mirrored and softened fill reads as a continuation of the picture, not as a copy of it);
3. the same two for the lead face alone (the largest) with its head-and-shoulders room, placed so no
   other face is cut in two; then for a close-up of the lead face (a little air around it);
4. last resort (a face wider than the frame at that aspect): the largest crop inside the frame, centred
   on the lead face, cutting through its sides: never a picture that is mostly fill.

With an inpainting model (``outpaint``) step 2 may go up to ``max_outpaint``: the model paints the
outside. Without one the outside is filled seamlessly: the frame mirrored at its edge (continuous there,
so no seam), blurred more and more with the distance from the edge, so the mirror image dissolves into
soft background instead of repeating the picture.

Within the slack a crop has around its subject, it keeps clear of the key frame's ``regions`` (burned-in
text, logos), zooming in a little when that is the only way and the upscale stays within bounds. A crop
is never enlarged past ``max_upscale`` for variety's sake (the seeded zoom is capped); where even the
largest crop needs more, the factor is recorded (``GenerationParams.upscale``).

Every step is plain numpy/OpenCV on uint8 or float32 arrays, deterministic, so a batched tensor
reimplementation can match it within rounding.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from genart.errors import InvalidArgumentError
from genart.imaging import saliency_center
from genart.types import Box


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
    """Where to cut: ``crop`` (x, y, w, h) in source pixels, possibly reaching outside the frame (``padded``).

    ``synthetic_share`` is the part of the window outside the frame (what a fill or an outpainting makes);
    ``keeps`` says what the crop was chosen to keep whole: ``"subject"`` (every main face with
    head-and-shoulders room, or the salient point), ``"lead"`` (the largest face alone: the others did not
    fit), ``"face"`` (a close-up of the lead face) or ``"cut"`` (the face is wider than the frame allows at
    this aspect: a crop through it).
    """

    crop: tuple[int, int, int, int]
    subject: Box
    padded: bool
    synthetic_share: float = 0.0
    keeps: str = "subject"


def _main_faces(faces: Sequence[Box]) -> list[Box]:
    if not faces:
        return []
    largest = max(f.area for f in faces)
    return [f for f in faces if f.area >= 0.2 * largest]


def subject_box(width: int, height: int, faces: Sequence[Box], rgb: np.ndarray | None = None) -> Box:
    """The region a crop must keep: the main faces with head-and-shoulders room, else the salient point."""
    main = _main_faces(faces)
    if main:
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


def synthetic_share(width: int, height: int, crop: tuple[int, int, int, int]) -> float:
    """The part of a crop window that lies outside a ``width`` x ``height`` frame."""
    x, y, cw, ch = crop
    iw = max(0, min(width, x + cw) - max(0, x))
    ih = max(0, min(height, y + ch) - max(0, y))
    return float(1.0 - (iw * ih) / max(1, cw * ch))


def _overlap(a: tuple[float, float, float, float], b: Box) -> float:
    ax, ay, aw, ah = a
    w = min(ax + aw, b.x + b.w) - max(ax, b.x)
    h = min(ay + ah, b.y + b.h) - max(ay, b.y)
    return max(0.0, w) * max(0.0, h)


def _cut(a: tuple[float, float, float, float], faces: Sequence[Box]) -> float:
    """How much of the faces a window cuts through (inside in part, not whole): 0 when each is fully in or out."""
    total = 0.0
    for f in faces:
        inside = _overlap(a, f)
        if 0.0 < inside < f.area - 1e-6:
            total += min(inside, f.area - inside) / max(1.0, f.area)
    return total


def _place(width: int, height: int, cw: float, ch: float, subject: Box, shift: tuple[float, float],
           others: Sequence[Box], regions: Sequence[Box], inside: bool) -> tuple[float, float, float]:
    """(x, y, cost) of a ``cw`` x ``ch`` window holding ``subject``: near the target (subject centred
    across, its centre at 40% of the height, moved by ``shift``), cutting no face in ``others`` and
    covering as little of ``regions`` as it can; inside the frame when ``inside``."""
    tx = subject.cx - cw / 2
    ty = subject.cy - ch * 0.4
    lo_x, hi_x = subject.x + subject.w - cw, subject.x
    lo_y, hi_y = subject.y + subject.h - ch, subject.y
    tx += shift[0] * 0.5 * (hi_x - lo_x) / 2
    ty += shift[1] * 0.5 * (hi_y - lo_y) / 2
    if not inside:  # where the window is larger than the frame, the fill is split evenly: two thin strips
        tx = (width - cw) / 2 if cw > width else tx
        ty = (height - ch) / 2 if ch > height else ty
    if inside:
        lo_x, hi_x = max(lo_x, 0.0), min(hi_x, width - cw)
        lo_y, hi_y = max(lo_y, 0.0), min(hi_y, height - ch)
    else:  # keep the frame's own pixels spread over the window: the window never leaves more than it must
        lo_x, hi_x = max(lo_x, min(0.0, width - cw)), min(hi_x, max(0.0, width - cw))
        lo_y, hi_y = max(lo_y, min(0.0, height - ch)), min(hi_y, max(0.0, height - ch))
    if hi_x < lo_x:
        lo_x = hi_x = (lo_x + hi_x) / 2
    if hi_y < lo_y:
        lo_y = hi_y = (lo_y + hi_y) / 2
    tx, ty = min(max(tx, lo_x), hi_x), min(max(ty, lo_y), hi_y)
    if not others and not regions:
        return tx, ty, 0.0
    xs = sorted(set(np.linspace(lo_x, hi_x, 13).tolist() + [tx]))
    ys = sorted(set(np.linspace(lo_y, hi_y, 9).tolist() + [ty]))
    span = max(1.0, cw + ch)
    best = (tx, ty, float("inf"))
    for y in ys:
        for x in xs:
            win = (x, y, cw, ch)
            cost = 10.0 * _cut(win, others) + 4.0 * sum(_overlap(win, r) / max(1.0, r.area) for r in regions)
            cost += (abs(x - tx) + abs(y - ty)) / span  # then: as near the target as it can be
            if cost < best[2]:
                best = (x, y, cost)
    return best


def plan_framing(width: int, height: int, aspect: str, subject: Box | Sequence[Box], *, zoom: float = 1.0,
                 shift: tuple[float, float] = (0.0, 0.0), regions: Sequence[Box] = (), out_width: int | None = None,
                 max_upscale: float = 1.5, max_synthetic: float = 0.08, rgb: np.ndarray | None = None) -> Framing:
    """Choose the crop at ``aspect`` (see the module doc for the order of preference).

    Args:
        subject: the faces (``Box``es, in source pixels; the main ones are kept whole), or a ready subject box.
        zoom: >1 crops tighter than the largest crop that fits (never tighter than the subject, and never
            so tight that the crop is enlarged past ``max_upscale`` to ``out_width``).
        shift: (-1..1, -1..1), moves the crop within its slack around the subject (variety).
        regions: text and logo boxes (source pixels) the crop keeps out where it can.
        out_width: the delivery width, for the upscale cap (default: no cap on the zoom).
        max_synthetic: the largest share of the window that may lie outside the frame before the crop
            keeps only the lead face (and, failing that, the smallest window around it is taken).
        rgb: the frame, for the saliency centre when there are no faces.
    """
    r = aspect_ratio(aspect)
    if isinstance(subject, Box):
        faces: list[Box] = []
        subjects = [(subject, "subject")]
    else:
        faces = _main_faces(subject)
        subjects = [(subject_box(width, height, faces, rgb), "subject")]
        if faces:
            lead = max(faces, key=lambda f: f.area)
            if len(faces) > 1:
                subjects.append((subject_box(width, height, [lead], rgb), "lead"))
            # a close-up: the lead face with a little air, then the face alone (no head-and-shoulders room)
            for air in (0.1, 0.0):
                m = air * max(lead.w, lead.h)
                x0, y0 = max(0.0, lead.x - m), max(0.0, lead.y - m)
                x1, y1 = min(float(width), lead.x + lead.w + m), min(float(height), lead.y + lead.h + m)
                subjects.append((Box(x0, y0, x1 - x0, y1 - y0), "face"))
    all_faces = list(subject) if not isinstance(subject, Box) else []
    cw0, ch0 = (height * r, float(height)) if width / height > r else (float(width), width / r)
    z = max(zoom, 1.0)
    if out_width:  # never enlarge past max_upscale for variety's sake
        z = min(z, max(1.0, cw0 * max_upscale / out_width))
    cw_z = cw0 / z

    def framing(x: float, y: float, cw: float, ch: float, s: Box, keeps: str, inside: bool = False) -> Framing:
        w_, h_ = max(1, int(round(cw))), max(1, int(round(cw / r)))
        if inside:  # rounding must not push an inside crop one pixel past the frame
            w_, h_ = min(w_, width), min(h_, height)
            if abs(w_ / h_ - r) > 0.5 / h_ + 0.5 / w_:
                w_, h_ = (w_, max(1, int(w_ / r))) if w_ / r <= height else (max(1, int(h_ * r)), h_)
            x, y = min(max(x, 0.0), width - w_), min(max(y, 0.0), height - h_)
        crop = (int(round(x)), int(round(y)), w_, h_)
        share = synthetic_share(width, height, crop)
        padded = crop[0] < 0 or crop[1] < 0 or crop[0] + crop[2] > width or crop[1] + crop[3] > height
        return Framing(crop=crop, subject=s, padded=padded, synthetic_share=round(share, 4) if padded else 0.0,
                       keeps=keeps)

    for s, keeps in subjects:
        others = all_faces
        need = max(s.w, s.h * r)  # the narrowest window at the aspect holding the subject
        if need <= cw0 + 0.5:  # 1: inside the frame
            cw = min(cw0, max(cw_z, need))
            x, y, _ = _place(width, height, cw, cw / r, s, shift, others, regions, inside=True)
            f = framing(x, y, cw, cw / r, s, keeps, inside=True)
            return _clear_of_regions(f, width, height, r, regions, others, shift, out_width, max_upscale)
        cw = need * 1.05  # 2: a window reaching past the frame
        x, y, _ = _place(width, height, cw, cw / r, s, shift, others, regions, inside=False)
        f = framing(x, y, cw, cw / r, s, keeps)
        if f.synthetic_share <= max_synthetic:
            return f
    # 4: even the lead face alone is wider than the frame at this aspect: the largest crop inside the frame,
    # centred on it (through the face's sides), rather than a picture that is mostly fill
    s = subjects[-1][0]
    cw = min(cw0, max(cw_z, 1.0))
    x, y = s.cx - cw / 2, s.cy - cw / r * 0.5
    return framing(x, y, cw, cw / r, s, "cut", inside=True)


def _clear_of_regions(f: Framing, width: int, height: int, r: float, regions: Sequence[Box], others: Sequence[Box],
                      shift: tuple[float, float], out_width: int | None, max_upscale: float) -> Framing:
    """``f``, or a slightly tighter crop (still holding the subject, within the upscale cap) that keeps the
    text and logo regions out where ``f`` could not."""
    if not regions or not any(_overlap(f.crop, g) > 0 for g in regions):
        return f
    s = f.subject
    cw = float(f.crop[2])
    floor = max(s.w, s.h * r, (out_width / max_upscale) if out_width else 0.0)
    for k in (1.05, 1.1, 1.15, 1.2, 1.3, 1.4, 1.5):
        c = cw / k
        if c < floor:
            break
        x, y, _ = _place(width, height, c, c / r, s, shift, others, regions, inside=True)
        crop = (int(round(x)), int(round(y)), int(round(c)), max(1, int(round(c / r))))
        if not any(_overlap(crop, g) > 0 for g in regions):
            return Framing(crop=crop, subject=s, padded=False, synthetic_share=0.0, keeps=f.keeps)
    return f


def upscale_of(framing: Framing, out_size: tuple[int, int]) -> float:
    """Output pixels per source pixel along each side: > 1 means the crop was enlarged."""
    return round(out_size[0] / max(1, framing.crop[2]), 3)


def render_framing(rgb: np.ndarray, framing: Framing, out_size: tuple[int, int]) -> np.ndarray:
    """Cut ``framing`` out of ``rgb`` and resize it to ``out_size`` (w, h); fill where it leaves the frame.

    The fill mirrors the frame at its edges (``BORDER_REFLECT_101``: the values are continuous across the
    edge, so there is no seam) and blends towards a blurred copy with the distance from the edge, reaching
    it at 60% of the fill's width: the mirror image dissolves instead of repeating the picture.
    """
    import cv2

    h, w = rgb.shape[:2]
    x, y, cw, ch = framing.crop
    ow, oh = out_size
    if not framing.padded:
        region = rgb[y:y + ch, x:x + cw]
        interp = cv2.INTER_AREA if region.shape[1] > ow else cv2.INTER_LANCZOS4
        return cv2.resize(region, (ow, oh), interpolation=interp)
    # the outermost pixel row or column of a picture is often not the picture (a scan's or an encoder's edge
    # line): where the fill starts, one is left out and mirrored over
    lt, tt, rt, bt = int(x < 0), int(y < 0), int(x + cw > w), int(y + ch > h)
    rgb = rgb[tt:h - bt, lt:w - rt]
    x, y = x - lt, y - tt
    h, w = rgb.shape[:2]
    left, top = max(0, -x), max(0, -y)
    right, bottom = max(0, x + cw - w), max(0, y + ch - h)
    # a reflection can reach at most one frame's width (height) past each edge: pad in rounds for more
    src = rgb
    while left or top or right or bottom:
        step = [min(v, s - 1) for v, s in ((top, src.shape[0]), (bottom, src.shape[0]), (left, src.shape[1]),
                                           (right, src.shape[1]))]
        src = cv2.copyMakeBorder(src, step[0], step[1], step[2], step[3], cv2.BORDER_REFLECT_101)
        top, bottom, left, right = top - step[0], bottom - step[1], left - step[2], right - step[3]
    px, py = x + max(0, -x), y + max(0, -y)  # where the window starts in the padded source
    window = src[py:py + ch, px:px + cw]
    interp = cv2.INTER_AREA if cw > ow else cv2.INTER_LANCZOS4
    sharp = cv2.resize(window, (ow, oh), interpolation=interp)
    # distance (output pixels) of each pixel from the frame, and the widest the fill gets
    sx, sy = ow / cw, oh / ch
    fx0, fy0 = (max(0, x) - x) * sx, (max(0, y) - y) * sy
    fx1, fy1 = (min(w, x + cw) - x) * sx, (min(h, y + ch) - y) * sy
    xs = np.arange(ow, dtype=np.float32) + 0.5
    ys = np.arange(oh, dtype=np.float32) + 0.5
    dx = np.maximum(np.maximum(fx0 - xs, xs - fx1), 0.0)
    dy = np.maximum(np.maximum(fy0 - ys, ys - fy1), 0.0)
    reach = max(1.0, float(dx.max()), float(dy.max()))
    ramp = np.clip(np.maximum(dx[None, :], dy[:, None]) / (0.6 * reach), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep: starts flat at the edge, so no crease in the blend either
    sigma = max(1.0, 0.5 * reach)
    soft = cv2.GaussianBlur(sharp, (0, 0), sigma, borderType=cv2.BORDER_REFLECT_101)
    out = sharp.astype(np.float32)
    out += (soft.astype(np.float32) - out) * ramp[..., None]
    return np.clip(out + 0.5, 0, 255).astype(np.uint8)
