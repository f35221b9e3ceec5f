"""Finishing on tensors: the crop and resize, the grade and the title of ``genart.generate.finish`` as
batched torch ops on whatever device the images are on, so the batch job can keep a variant on the
accelerator from its latents to its encoded bytes (on the H100 the CPU doing this per image bounded the
job at 2.8% of the card's peak: ``benchmarks/GPU_NOTES.md``).

It follows ``genart.generate.finish.finish`` step by step: the planning is the CPU path's own
(``plan_row`` calls ``plan_framing`` with the same arguments, the title's ``plan_title`` with the same
saliency map), and only the pixel work runs on the tensors. Images travel as float32 NCHW in 8-bit
levels (0..255), rounded wherever the CPU path holds uint8, so the two paths agree within a level or two
(``genart.generate.delivery.finish_max_abs_diff``; tested on real frames for every profile and every aspect).

- **Resize**: OpenCV's ``INTER_AREA`` (downscale) and ``INTER_LANCZOS4`` (upscale), chosen as
  ``render_framing`` chooses them, as tap tables per axis with OpenCV's own coefficients, borders and
  rounding (Lanczos in its 11-bit fixed point). Each output pixel is a weighted sum of K source pixels:
  a dense product on the CPU, K ``index_select`` + multiply-adds on CUDA (exact float32 work: no TF32,
  which ``optimise_pipeline`` turns on there), memory of the output only.
- **Grade**: ``genart.generate.grade.apply_grade``'s steps in its order, with every row's own
  parameters as (N, 1, 1, 1) tensors, so one call grades rows of different profiles.
- **Title**: placed by ``plan_title`` on the CPU from the graded picture's 160 px saliency map (the
  thumbnail is made on the device: 160 x h x 3 bytes cross over, not the picture); its treatment (plate,
  scrim, shadow, outline) and letters are drawn once per (layout, opacity, image size) by
  ``title.draw_title`` itself on flat backgrounds and fitted, per pixel and channel, as
  ``out = background * transmittance + colour`` (least squares over five backgrounds: the drawing is
  an "over" composite, affine in the background). Compositing is then one multiply-add on the title's
  region; the opacity is chosen from the graded pixels on the device (``title.needed_alpha`` of their
  99th-percentile luminance), as ``draw_title`` chooses it.
- **Watermark**: ``provenance.embed_watermark`` on a host copy (CPU numpy), the result sent back, so the
  device's JPEG and the CLIP embedding see the delivered picture.

Not here yet (part B of issue #21): framings that leave the frame (the mirrored fill, outpainting):
``RowPlan.on_device`` is False for them and callers finish those rows with ``finish`` on the CPU; and
the watermark's DWT on the device.

torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from dataclasses import dataclass, replace
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from genart.generate.finish import Finished, faces_through, finish
from genart.generate.reframe import Framing, plan_framing, upscale_of
from genart.generate.title import (
    DEFAULT_SAFE,
    TitleLayout,
    alpha_basis,
    draw_title,
    needed_alpha,
    plan_title,
    title_region,
)
from genart.types import Box, Grade, TitleStyle
from genart.imaging import saliency_map
from genart.provenance import embed_watermark

if TYPE_CHECKING:  # pragma: no cover
    import torch

SALIENCY_SIDE = 64  # ``genart.imaging.saliency_center`` looks at a 64x64 INTER_AREA copy
SALIENCY_MAP_WIDTH = 160  # ``genart.imaging.saliency_map`` (where a title may go) at 160 px wide, INTER_AREA
PLATE_BACKGROUNDS = (0, 64, 128, 192, 255)  # flat backgrounds a plate is drawn on to fit its layer
_PLATE_CACHE_SIZE = 256


# --- resampling: OpenCV's INTER_AREA and INTER_LANCZOS4 as tap tables --------------------------------
@dataclass(frozen=True)
class Taps:
    """One axis of a resize: output pixel ``i`` is ``sum_k weight[i, k] * source[index[i, k]]``."""

    index: np.ndarray  # (out, K) int64, clamped into the source (OpenCV replicates the border)
    weight: np.ndarray  # (out, K) float32
    half_up: bool  # round x.5 up (OpenCV's fixed-point paths) instead of to even (its float paths)


def _area_decimate(src: int, dst: int) -> list[list[tuple[int, float]]]:
    """OpenCV's ``computeResizeAreaTab``: each output pixel averages the source cells it covers,
    partial cells by their covered fraction."""
    scale = src / dst
    rows = []
    for dx in range(dst):
        f1 = dx * scale
        f2 = f1 + scale
        cell = min(scale, src - f1)
        s1, s2 = math.ceil(f1), math.floor(f2)
        s2 = min(s2, src - 1)
        s1 = min(s1, s2)
        row = []
        if s1 - f1 > 1e-3:
            row.append((s1 - 1, (s1 - f1) / cell))
        row += [(s, 1.0 / cell) for s in range(s1, s2)]
        if f2 - s2 > 1e-3:
            row.append((s2, min(min(f2 - s2, 1.0), cell) / cell))
        rows.append(row)
    return rows


def _fixed_point(c: np.ndarray) -> np.ndarray:
    """OpenCV's 8-bit resize coefficients: 11 fractional bits (``INTER_RESIZE_COEF_BITS``)."""
    return np.round(c.astype(np.float32) * 2048.0) / 2048.0


def _lanczos4(src: int, dst: int) -> list[list[tuple[int, float]]]:
    """OpenCV's ``interpolateLanczos4``: 8 taps, sinc(x) sinc(x/4), normalised, in fixed point."""
    scale = src / dst
    rows = []
    for dx in range(dst):
        fx = np.float32((dx + 0.5) * scale - 0.5)
        sx = math.floor(fx)
        fx = float(np.float32(fx - sx))
        d = [fx + 3 - i for i in range(8)]
        if any(abs(v) < 1e-6 for v in d):
            c = np.array([1.0 if abs(v) < 1e-6 else 0.0 for v in d], np.float32)
        else:
            c = np.array([math.sin(math.pi * v) * math.sin(math.pi * v / 4) / (math.pi * v * math.pi * v / 4) for v in d],
                         np.float32)
            c = c / np.float32(c.sum())
        rows.append([(sx - 3 + i, float(w)) for i, w in enumerate(_fixed_point(c))])
    return rows


def _area_linear(src: int, dst: int) -> list[list[tuple[int, float]]]:
    """OpenCV's INTER_AREA where an axis does not shrink: linear, with its area-mode offsets. Within a
    level of OpenCV, whose vector code rounds this one in steps; the catalogue's sizes never need it
    (a crop wider than its output is also taller, see ``output_size``)."""
    scale, inv = src / dst, dst / src
    rows = []
    for dx in range(dst):
        sx = math.floor(dx * scale)
        fx = float(np.float32((dx + 1) - (sx + 1) * inv))
        fx = 0.0 if fx <= 0 else fx - math.floor(fx)
        if sx < 0:
            sx, fx = 0, 0.0
        if sx >= src - 1:
            sx, fx = src - 1, 0.0
        c = _fixed_point(np.array([1.0 - fx, fx], np.float32))
        rows.append([(sx, float(c[0])), (sx + 1, float(c[1]))])
    return rows


@lru_cache(maxsize=512)
def taps(src: int, dst: int, kind: str) -> Taps:
    """The tap table of one axis: ``kind`` is ``area`` (both axes shrink), ``area-linear`` (INTER_AREA
    on an image that does not shrink on both axes) or ``lanczos4``."""
    if kind == "area":
        rows, half_up = _area_decimate(src, dst), False
    elif kind == "area-linear":
        rows, half_up = _area_linear(src, dst), True
    elif kind == "lanczos4":
        rows, half_up = _lanczos4(src, dst), True
    else:  # pragma: no cover - internal
        raise ValueError(f"unknown resize kind {kind!r}")
    k = max(len(r) for r in rows)
    index = np.zeros((dst, k), np.int64)
    weight = np.zeros((dst, k), np.float32)
    for i, row in enumerate(rows):
        for j, (s, w) in enumerate(row):
            index[i, j] = min(max(s, 0), src - 1)
            weight[i, j] = w
    return Taps(index, weight, half_up)


def resize_kinds(src: tuple[int, int], dst: tuple[int, int]) -> tuple[str, str, bool]:
    """(x kind, y kind, round half up) for resizing ``src`` (w, h) to ``dst`` (w, h) as
    ``render_framing`` does: INTER_AREA when the width shrinks, else INTER_LANCZOS4."""
    (sw, sh), (dw, dh) = src, dst
    if sw > dw:
        if sh >= dh:
            # OpenCV's integer-ratio fast path rounds half up; its fractional path rounds to even
            return "area", "area", sw % dw == 0 and sh % dh == 0
        return "area-linear", "area-linear", True
    return "lanczos4", "lanczos4", True


_DEVICE_TAPS: "OrderedDict[tuple, tuple[Any, Any, Taps]]" = OrderedDict()  # (tensor, tensor or None, its table)
_DEVICE_LOCK = threading.Lock()


def _on_device(t: Taps, device: Any) -> tuple[Any, Any]:
    import torch

    key = (id(t), str(device))
    with _DEVICE_LOCK:
        hit = _DEVICE_TAPS.get(key)
        if hit is None:
            hit = (torch.from_numpy(t.index).to(device), torch.from_numpy(t.weight).to(device), t)
            _DEVICE_TAPS[key] = hit
            while len(_DEVICE_TAPS) > 512:
                _DEVICE_TAPS.popitem(last=False)
        return hit[0], hit[1]


def _dense(t: Taps, src: int, device: Any) -> "torch.Tensor":
    """The tap table as an (out, src) matrix (taps on the same source pixel at a border add up)."""
    import torch

    key = (id(t), src, str(device), "dense")
    with _DEVICE_LOCK:
        hit = _DEVICE_TAPS.get(key)
    if hit is None:
        m = np.zeros((t.index.shape[0], src), np.float64)
        np.add.at(m, (np.repeat(np.arange(t.index.shape[0]), t.index.shape[1]), t.index.ravel()), t.weight.ravel())
        hit = (torch.from_numpy(m.astype(np.float32)).to(device), None, t)
        with _DEVICE_LOCK:
            _DEVICE_TAPS[key] = hit
            while len(_DEVICE_TAPS) > 512:
                _DEVICE_TAPS.popitem(last=False)
    return hit[0]


def contraction(device: Any) -> str:
    """How tap tables are applied on ``device``: ``matmul`` (a dense product: the CPU's BLAS makes it
    the fastest there) or ``taps`` (K gathers and multiply-adds in float32: on CUDA, where
    ``optimise_pipeline`` lets float32 matrix products run in TF32, whose 10-bit mantissa would cost
    a level here and there). Both give the same sums (tested on the CPU)."""
    return "matmul" if getattr(device, "type", str(device)) == "cpu" else "taps"


def _apply(x: "torch.Tensor", t: Taps, dim: int, how: str | None = None) -> "torch.Tensor":
    how = how or contraction(x.device)
    if how == "matmul":
        m = _dense(t, x.shape[dim], x.device)
        if dim == x.dim() - 1:
            return x @ m.T
        return m @ x
    index, weight = _on_device(t, x.device)
    shape = [1] * x.dim()
    shape[dim] = index.shape[0]
    out = x.index_select(dim, index[:, 0]).mul_(weight[:, 0].view(shape))
    for k in range(1, index.shape[1]):  # taps in order, as OpenCV sums them
        out = out.addcmul_(x.index_select(dim, index[:, k]), weight[:, k].view(shape))
    return out


def _round(x: "torch.Tensor", half_up: bool) -> "torch.Tensor":
    import torch

    return torch.floor(x + 0.5) if half_up else torch.round(x)


def resize_levels(x: "torch.Tensor", size: tuple[int, int], how: str | None = None) -> "torch.Tensor":
    """A batch (N, C, H, W) of 8-bit levels resized to ``size`` (w, h) as ``render_framing`` resizes a
    crop with OpenCV (width first, then height), rounded and clamped to 0..255.

    ``how``: ``matmul`` or ``taps`` (default: ``contraction`` of the device)."""
    h, w = x.shape[-2:]
    if (w, h) == tuple(size):
        return x
    kx, ky, half_up = resize_kinds((w, h), size)
    out = _apply(x, taps(w, size[0], kx), x.dim() - 1, how)
    out = _apply(out, taps(h, size[1], ky), x.dim() - 2, how)
    return _round(out, half_up).clamp_(0, 255)


def area_levels(x: "torch.Tensor", size: tuple[int, int]) -> "torch.Tensor":
    """``cv2.resize(..., size, interpolation=INTER_AREA)`` of a batch (N, C, H, W) of levels, rounded."""
    h, w = x.shape[-2:]
    if (w, h) == tuple(size):
        return x
    if w >= size[0] and h >= size[1]:
        kind, half_up = "area", w % size[0] == 0 and h % size[1] == 0
    else:
        kind, half_up = "area-linear", True
    out = _apply(x, taps(w, size[0], kind), x.dim() - 1)
    return _round(_apply(out, taps(h, size[1], kind), x.dim() - 2), half_up).clamp_(0, 255)


def _host_uint8(x: "torch.Tensor") -> np.ndarray:
    import torch

    return x.to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def saliency_thumbs(x: "torch.Tensor") -> np.ndarray:
    """(N, 64, 64, 3) uint8 host copies of a batch, as ``saliency_center`` makes them with INTER_AREA:
    all the CPU needs to place the subject of a frame without faces."""
    return _host_uint8(area_levels(x, (SALIENCY_SIDE, SALIENCY_SIDE)))


def saliency_map_thumb(x: "torch.Tensor") -> np.ndarray:
    """The (h, 160, 3) uint8 host copy of one picture (3, H, W) that ``saliency_map`` computes its map on."""
    h, w = x.shape[-2:]
    size = (SALIENCY_MAP_WIDTH, max(1, int(round(h * SALIENCY_MAP_WIDTH / max(1, w)))))
    return _host_uint8(area_levels(x[None], size))[0]


# --- the grade ----------------------------------------------------------------------------------------
_VIGNETTE: "OrderedDict[tuple, Any]" = OrderedDict()


def _vignette_base(h: int, w: int, device: Any) -> "torch.Tensor":
    """clip(r^2 / 2, 0, 1) ** 1.2 in float64 (``grade._vignette`` before its strength), per size and device."""
    import torch

    key = (h, w, str(device))
    with _DEVICE_LOCK:
        hit = _VIGNETTE.get(key)
        if hit is None:
            ys, xs = np.ogrid[0:h, 0:w]
            r2 = ((xs - w / 2) / (w / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
            hit = torch.from_numpy(np.clip(r2 / 2, 0, 1) ** 1.2).to(device)
            _VIGNETTE[key] = hit
            while len(_VIGNETTE) > 32:
                _VIGNETTE.popitem(last=False)
        return hit


def grade_levels(x: "torch.Tensor", grades: Sequence[Grade], amounts: Sequence[float]) -> "torch.Tensor":
    """``apply_grade`` on a batch (N, 3, H, W) of 8-bit levels, row ``i`` with ``grades[i]`` at
    ``amounts[i]``; returns rounded levels. A step no row needs is skipped, as ``apply_grade`` skips it."""
    import torch

    n, _, h, w = x.shape
    dev = x.device

    def col(values: Sequence[float], channels: int = 1) -> torch.Tensor:
        return torch.tensor(values, dtype=torch.float32, device=dev).view(n, channels, 1, 1)

    k = [float(a) for a in amounts]
    a = x / 255.0
    if any(g.exposure for g in grades):
        a *= col([2.0 ** (g.exposure * kk) for g, kk in zip(grades, k)])
    if any(g.warmth or g.tint for g in grades):
        a *= col([v for g, kk in zip(grades, k) for v in (1 + 0.12 * g.warmth * kk + 0.03 * g.tint * kk,
                                                          1 - 0.08 * g.tint * kk,
                                                          1 - 0.12 * g.warmth * kk + 0.03 * g.tint * kk)], 3)
    a.clamp_(0.0, 1.0)

    def luma(t: torch.Tensor) -> torch.Tensor:
        lum = 0.299 * t[:, 0:1]
        lum += 0.587 * t[:, 1:2]
        lum += 0.114 * t[:, 2:3]
        return lum

    if any(g.saturation for g in grades):
        lum = luma(a)
        a -= lum
        a *= col([1.0 + g.saturation * kk for g, kk in zip(grades, k)])
        a += lum
    if any(g.contrast for g in grades):
        c = [g.contrast * kk for g, kk in zip(grades, k)]
        a -= 0.5
        if any(v > 0 for v in c):  # an S-curve that keeps black and white and steepens the mids
            steep = a * col([1 + 2 * v if v > 0 else 1.0 for v in c])
            steep.tanh_()
            steep /= col([float(np.float32(2 * np.tanh(0.5 * (1 + 2 * v)))) if v > 0 else 1.0 for v in c])
            if all(v > 0 for v in c):
                a = steep
            else:
                a = torch.where(col([v > 0 for v in c]) > 0, steep, a * col([1 + v if v <= 0 else 1.0 for v in c]))
        else:  # flatten towards mid-grey
            a *= col([1 + v for v in c])
        a += 0.5
    a.clamp_(0.0, 1.0)
    if any(any(g.shadows_tint) or any(g.highlights_tint) for g in grades):
        lum = luma(a)
        for weight, tints in (((1 - lum) ** 2, [g.shadows_tint for g in grades]),
                              (lum ** 2, [g.highlights_tint for g in grades])):
            t = weight * col([float(v) for tint in tints for v in tint], 3)
            t *= col(k)
            t *= 2
            a += t
    if any(g.fade for g in grades):
        f = [0.12 * g.fade * kk for g, kk in zip(grades, k)]
        a *= col([1 - v for v in f])
        a += col(f)
    if any(g.vignette for g in grades):
        strength = torch.tensor([float(0.45 * g.vignette * kk) for g, kk in zip(grades, k)], dtype=torch.float64,
                                device=dev).view(n, 1, 1, 1)
        a *= (1 - strength * _vignette_base(h, w, dev)).to(torch.float32)
    a.clamp_(0.0, 1.0)
    a *= 255.0
    a += 0.5
    return torch.floor(a)  # the CPU path's truncating cast of non-negative values


# --- titles: plates drawn once, composited on the device ----------------------------------------------
@dataclass(frozen=True)
class TitlePlate:
    """A title's treatment and letters as a layer over ``region`` (x0, y0, x1, y1) of the output:
    ``out = background * transmit + colour`` per pixel and channel (levels)."""

    region: tuple[int, int, int, int]
    transmit: Any  # (3, h, w) float32 tensor
    colour: Any  # (3, h, w) float32 tensor
    plate_alpha: float = 0.0  # the opacity draw_title reports for it (TitleLayout.plate_alpha)


_PLATES: "OrderedDict[tuple, tuple[np.ndarray, np.ndarray, float]]" = OrderedDict()
_PLATES_ON_DEVICE: "OrderedDict[tuple, tuple[Any, Any, float]]" = OrderedDict()
_PLATE_LOCK = threading.Lock()


def _plate_key(layout: TitleLayout, locale: str, width: int, height: int, alpha: float) -> tuple:
    """What a plate's pixels depend on: not where the box is, only where it sits in its region (the
    region is clipped at the image's edges) and the image width (the plate's blur scales with it)."""
    x, y, bw, bh = layout.box
    x0, y0, x1, y1 = title_region(layout, width, height)
    tx, ty, tw, th = layout.text_box
    return (layout.text, layout.lines, layout.font, layout.font_px, layout.script, layout.treatment,
            tuple(layout.color), round(float(layout.cap_px), 6), bw, bh, tx - x, ty - y, tw, th,
            x - x0, y - y0, x1 - x, y1 - y, width, locale, round(float(alpha), 6))


def plate_layers(layout: TitleLayout, locale: str, width: int, height: int, alpha: float
                 ) -> tuple[np.ndarray, np.ndarray, float]:
    """(transmittance, colour, the opacity ``draw_title`` reports), the first two (h, w, 3) float32 over
    ``title_region``: ``draw_title`` drawn on flat backgrounds and fitted by least squares (cached per
    plate; see the module doc)."""

    key = _plate_key(layout, locale, width, height, alpha)
    with _PLATE_LOCK:
        hit = _PLATES.get(key)
        if hit is not None:
            _PLATES.move_to_end(key)
            return hit
    x0, y0, x1, y1 = title_region(layout, width, height)
    bgs = np.array(PLATE_BACKGROUNDS, np.float64)
    drawn = []
    reported = float(alpha)
    for b in PLATE_BACKGROUNDS:
        flat = np.full((height, width, 3), b, np.uint8)
        out, done = draw_title(flat, layout, locale, alpha=alpha)
        drawn.append(out[y0:y1, x0:x1].astype(np.float64))
        reported = done.plate_alpha
    r = np.stack(drawn)  # (B, h, w, 3)
    bm = bgs.mean()
    db = (bgs - bm).reshape(-1, 1, 1, 1)
    transmit = (db * (r - r.mean(axis=0))).sum(axis=0) / float((db ** 2).sum())
    colour = r.mean(axis=0) - transmit * bm
    hit = (transmit.astype(np.float32), colour.astype(np.float32), reported)
    with _PLATE_LOCK:
        _PLATES[key] = hit
        while len(_PLATES) > _PLATE_CACHE_SIZE:
            _PLATES.popitem(last=False)
    return hit


def title_plate(layout: TitleLayout, locale: str, width: int, height: int, alpha: float, device: Any) -> TitlePlate:
    """The treatment of ``layout`` at opacity ``alpha`` on a ``width`` x ``height`` output, on ``device``."""
    import torch

    key = _plate_key(layout, locale, width, height, alpha) + (str(device),)
    with _PLATE_LOCK:
        hit = _PLATES_ON_DEVICE.get(key)
    if hit is None:
        transmit, colour, reported = plate_layers(layout, locale, width, height, alpha)
        on_dev = [torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1))).to(device) for a in (transmit, colour)]
        hit = (on_dev[0], on_dev[1], reported)
        with _PLATE_LOCK:
            _PLATES_ON_DEVICE[key] = hit
            while len(_PLATES_ON_DEVICE) > _PLATE_CACHE_SIZE:
                _PLATES_ON_DEVICE.popitem(last=False)
    return TitlePlate(title_region(layout, width, height), hit[0], hit[1], hit[2])


def composite_plate(x: "torch.Tensor", plate: TitlePlate) -> "torch.Tensor":
    """``x`` (3, H, W) levels with ``plate`` laid over its region, rounded (a new tensor)."""
    x0, y0, x1, y1 = plate.region
    out = x.clone()
    region = out[:, y0:y1, x0:x1]
    region.mul_(plate.transmit).add_(plate.colour)
    region.copy_(_round(region, True).clamp_(0, 255))
    return out


def luminance_p99(x: "torch.Tensor", box: tuple[int, int, int, int]) -> "torch.Tensor":
    """The 99th percentile of the WCAG relative luminance of ``x`` (3, H, W levels) in ``box`` (x, y, w, h),
    as ``draw_title`` measures it (``numpy.percentile``'s linear interpolation): a 0-d tensor."""
    import torch

    bx, by, bw, bh = box
    c = x[:, by:by + bh, bx:bx + bw] / 255.0
    if c.numel() == 0:
        return torch.ones((), device=x.device)
    lin = torch.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lum = 0.2126 * lin[0] + 0.7152 * lin[1] + 0.0722 * lin[2]
    return torch.quantile(lum.flatten(), 0.99)


# --- plans and the batch ------------------------------------------------------------------------------
@dataclass(frozen=True)
class TitleAsk:
    """A title to place on a finished picture: ``plan_title``'s arguments but the picture's own saliency
    (its map comes from the graded pixels, so the title is placed inside ``finish_batch``)."""

    text: str
    locale: str = "en-US"
    style: TitleStyle | None = None
    faces: tuple[Box, ...] = ()  # in output pixels
    regions: tuple[Box, ...] = ()
    safe: tuple[float, float, float, float] = DEFAULT_SAFE


@dataclass(frozen=True)
class RowPlan:
    """What to do with one image: planned on the CPU (``plan_row``), done by ``finish_batch``."""

    framing: Framing  # crop (x, y, w, h) in source pixels
    size: tuple[int, int]  # output (w, h): the aspect's delivery size
    grade: Grade
    amount: float
    title: TitleAsk | None = None
    watermark: str | None = None  # the imperceptible watermark's payload

    @property
    def on_device(self) -> bool:
        """False where the crop leaves the frame: that fill is the CPU's ``finish`` until part B."""
        return not self.framing.padded


def plan_row(width: int, height: int, faces: Sequence[Box], aspect: str, grade: Grade, amount: float, *,
             size: tuple[int, int], title: str = "", locale: str = "en-US", style: TitleStyle | None = None,
             regions: Sequence[Box] = (), safe: tuple[float, float, float, float] = DEFAULT_SAFE,
             zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0), max_upscale: float = 1.5,
             max_synthetic: float = 0.08, watermark: str | None = None, thumb: np.ndarray | None = None) -> RowPlan:
    """The plan ``finish`` makes for a ``width`` x ``height`` image (the same calls, the same arguments;
    ``max_synthetic`` is the limit ``finish`` uses: its ``max_outpaint`` where the preset outpaints).

    Args:
        thumb: the image's ``saliency_thumbs`` copy: where there are no faces the subject is its salient
            point, and this is all ``saliency_center`` reads of the pixels.
    """
    framing = plan_framing(width, height, aspect, list(faces), zoom=zoom, shift=shift, regions=regions,
                           out_width=size[0], max_upscale=max_upscale, max_synthetic=max_synthetic, rgb=thumb)
    ask = None
    if title.strip():
        ask = TitleAsk(title, locale, style, tuple(faces_through(faces, framing.crop, size)),
                       tuple(faces_through(regions, framing.crop, size)), (safe[0], safe[1], safe[2], safe[3]))
    return RowPlan(framing, (size[0], size[1]), grade, float(amount), ask, watermark)


@dataclass(frozen=True)
class RowResult:
    pixels: Any  # (3, h, w) uint8 tensor on the batch's device
    title: TitleLayout | None  # with the treatment's opacity, as ``draw_title`` returns it
    title_status: str | None = None  # None (no title asked for) | "placed" | "skipped"
    title_reason: str | None = None
    host: np.ndarray | None = None  # the (h, w, 3) host copy, where one was made (the watermark's)

    def finished(self, plan: RowPlan) -> Finished:
        """The ``Finished`` record ``finish`` would return for this row (its pixels fetched if need be)."""
        pixels = self.host if self.host is not None else to_host(self.pixels)
        return Finished(pixels, plan.framing, plan.size, "crop", self.title, synthetic_share=0.0,
                        upscale=upscale_of(plan.framing, plan.size), title_status=self.title_status,
                        title_reason=self.title_reason, watermark=plan.watermark)


def finish_batch(x: "torch.Tensor", plans: Sequence[RowPlan]) -> list[RowResult]:
    """Crop, resize, grade, title and watermark a batch (N, 3, H, W) of 8-bit levels, row ``i`` by ``plans[i]``.

    Rows sharing a crop size and an output size are resized together, every row is graded in one call
    per output size; then the titles are placed on the CPU from 160 px thumbnails of the graded rows and
    composited row by row on their regions (one host sync for all the opacities); the watermark is
    embedded on a host copy. The pixels stay on ``x``'s device.

    Raises:
        ValueError: a plan whose crop leaves the frame (``RowPlan.on_device`` is False), or a count of
            plans that is not the batch's.
    """
    import torch

    if len(plans) != x.shape[0]:
        raise ValueError(f"{len(plans)} plans for a batch of {x.shape[0]} images")
    if not all(p.on_device for p in plans):
        raise ValueError("a framing that leaves the frame is finished on the CPU (genart.generate.finish)")
    out: list[Any] = [None] * len(plans)
    by_size: dict[tuple, list[int]] = {}
    for i, p in enumerate(plans):
        by_size.setdefault(p.size, []).append(i)
    for size, rows in by_size.items():
        by_crop: dict[tuple[int, int], list[int]] = {}
        for i in rows:
            by_crop.setdefault(plans[i].framing.crop[2:], []).append(i)
        resized = {}
        for (cw, ch), idx in by_crop.items():
            crops = torch.stack([x[i, :, plans[i].framing.crop[1]:plans[i].framing.crop[1] + ch,
                                   plans[i].framing.crop[0]:plans[i].framing.crop[0] + cw] for i in idx])
            for i, r in zip(idx, resize_levels(crops, size)):
                resized[i] = r
        graded = grade_levels(torch.stack([resized[i] for i in rows]), [plans[i].grade for i in rows],
                              [plans[i].amount for i in rows])
        for i, g in zip(rows, graded):
            out[i] = g
    layouts: list[TitleLayout | None] = [None] * len(plans)
    status: list[str | None] = [None] * len(plans)
    reasons: list[str | None] = [None] * len(plans)
    placed: list[tuple[int, TitleLayout, TitleAsk]] = []  # (row, its layout, what it asked)
    for i, p in enumerate(plans):
        if p.title is None:
            continue
        t = p.title
        plan = plan_title(p.size[0], p.size[1], t.text, t.locale, t.faces, style=t.style, regions=t.regions,
                          saliency=saliency_map(saliency_map_thumb(out[i])), safe=t.safe)
        if isinstance(plan, str):
            status[i], reasons[i] = "skipped", plan
        else:
            status[i], layouts[i] = "placed", plan
            placed.append((i, plan, t))
    if placed:
        bases = [alpha_basis(lay) for _, lay, _ in placed]
        l_max = torch.stack([luminance_p99(out[i], box) for (i, _, _), (box, _) in zip(placed, bases)]).tolist()
        for (i, lay, ask), (_, start), lm in zip(placed, bases, l_max):
            p = plans[i]
            alpha = needed_alpha(float(lm), lay.color, start)
            plate = title_plate(lay, ask.locale, p.size[0], p.size[1], alpha, x.device)
            out[i] = composite_plate(out[i], plate)
            layouts[i] = replace(lay, plate_alpha=plate.plate_alpha)
    results = []
    for i, (t, p) in enumerate(zip(out, plans)):
        pixels, host = t.to(torch.uint8), None
        if p.watermark:
            host = np.ascontiguousarray(embed_watermark(to_host(pixels), p.watermark))
            pixels = torch.from_numpy(host.transpose(2, 0, 1).copy()).to(x.device)
        results.append(RowResult(pixels, layouts[i], status[i], reasons[i], host))
    return results


# --- host side ----------------------------------------------------------------------------------------
def to_levels(rgb: Sequence[np.ndarray] | np.ndarray, device: Any = "cpu") -> "torch.Tensor":
    """uint8 (H, W, 3) images of one size as a (N, 3, H, W) float32 batch of levels on ``device``."""
    import torch

    if isinstance(rgb, np.ndarray):
        arr = rgb[None] if rgb.ndim == 3 else rgb
    else:
        arr = np.stack(list(rgb))
    t = torch.from_numpy(np.array(arr, copy=not arr.flags.writeable or not arr.flags.c_contiguous)).to(device)
    return t.permute(0, 3, 1, 2).to(torch.float32)


def to_host(pixels: "torch.Tensor") -> np.ndarray:
    """A (3, h, w) uint8 tensor as a contiguous (h, w, 3) uint8 array on the host."""
    return np.ascontiguousarray(pixels.permute(1, 2, 0).cpu().numpy())


def finish_image(rgb: np.ndarray, faces: Sequence[Box], aspect: str, grade: Grade, amount: float, *,
                 size: tuple[int, int], title: str = "", locale: str = "en-US", style: TitleStyle | None = None,
                 regions: Sequence[Box] = (), safe: tuple[float, float, float, float] = (0.05, 0.05, 0.05, 0.05),
                 zoom: float = 1.0, shift: tuple[float, float] = (0.0, 0.0), outpaint: Any = None,
                 max_upscale: float = 1.5, max_synthetic: float = 0.08, max_outpaint: float = 0.35,
                 watermark: str | None = None, device: Any = "cpu") -> Finished:
    """``finish`` (same arguments, same result within 2 levels) through the tensor path on ``device``;
    a framing that leaves the frame through ``finish`` itself."""

    x = to_levels(rgb, device)
    h, w = rgb.shape[:2]
    thumb = None if faces else saliency_thumbs(x)[0]
    limit = max_outpaint if outpaint is not None else max_synthetic
    plan = plan_row(w, h, faces, aspect, grade, amount, size=size, title=title, locale=locale, style=style,
                    regions=regions, safe=safe, zoom=zoom, shift=shift, max_upscale=max_upscale, max_synthetic=limit,
                    watermark=watermark, thumb=thumb)
    if not plan.on_device:
        return finish(rgb, faces, aspect, grade, amount, size=size, title=title, locale=locale, style=style,
                      regions=regions, safe=safe, zoom=zoom, shift=shift, outpaint=outpaint, max_upscale=max_upscale,
                      max_synthetic=max_synthetic, max_outpaint=max_outpaint, watermark=watermark)
    (row,) = finish_batch(x, [plan])
    return row.finished(plan)
