"""Synthetic test videos written with PyAV, with cuts at known frames and the frame number stamped in.

A plain helper module (not a conftest): tests import it as ``from tests.media import ...``.

Each shot is a blocky random texture with its own dominant hue that pans slowly, so shots differ in
colour (a cut is real) and in structure (their perceptual hashes differ), and every frame is sharp
and contrasty (nothing is dropped as blank or blurred unless a test asks for it). A strip along the
bottom carries the frame number in binary, so a test can check that the frame a key frame's
``frame_index`` names is the frame its pixels came from.
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np

STAMP_BITS = 10
STAMP_H = 12  # height of the frame-number strip, in pixels


@dataclass(frozen=True)
class Clip:
    """A written synthetic clip and its ground truth."""

    path: Path
    fps: int
    n_frames: int
    width: int
    height: int
    cut_frames: tuple[int, ...]  # first frame of every shot after the first
    kinds: tuple[str, ...]  # per segment: "texture", "black", "blurred", "static"
    segments: tuple[tuple[int, int], ...]  # [start, end) frames of each segment

    def segment_of(self, frame_index: int) -> int:
        for i, (a, b) in enumerate(self.segments):
            if a <= frame_index < b:
                return i
        raise ValueError(f"frame {frame_index} outside the clip (0..{self.n_frames - 1})")


def write_video(path: "str | Path", frames: Iterable[np.ndarray], fps: int = 24, *, codec: str = "libx264",
                container_options: dict[str, str] | None = None, crf: int = 18, rotation: int = 0,
                pix_fmt: str = "yuv420p", sar: "Fraction | None" = None,
                times_ms: "Sequence[int] | None" = None) -> int:
    """Encode RGB uint8 frames (H, W, 3) to ``path``; returns the number written.

    ``rotation`` (degrees counterclockwise) is written as the stream's display matrix, as phones do;
    ``sar`` as the sample (pixel) aspect ratio, as anamorphic DVD and broadcast video do;
    ``times_ms`` gives every frame's own timestamp in milliseconds (variable frame rate).
    """

    import av

    frames = iter(frames)
    first = next(frames)
    h, w = first.shape[:2]
    n = 0
    with av.open(str(path), mode="w", options=container_options or {}) as container:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = pix_fmt
        if times_ms is not None:
            stream.time_base = Fraction(1, 1000)
            stream.codec_context.time_base = Fraction(1, 1000)
        if sar is not None:
            stream.codec_context.sample_aspect_ratio = Fraction(sar)
        if rotation:
            stream.set_display_rotation(rotation)
        if codec == "libx264":
            stream.options = {"crf": str(crf), "preset": "veryfast"}
        else:
            stream.bit_rate = 4_000_000
        for arr in _chain(first, frames):
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(arr), format="rgb24")
            frame.pts = n if times_ms is None else int(times_ms[n])
            for packet in stream.encode(frame):
                container.mux(packet)
            n += 1
        for packet in stream.encode():
            container.mux(packet)
    return n


def _chain(first, rest):
    yield first
    yield from rest


def texture(seed: int, size: tuple[int, int], shift: int = 0, *, blocks: int = 12) -> np.ndarray:
    """A blocky random texture, dominant hue chosen by ``seed``, panned ``shift`` pixels to the left."""
    w, h = size
    rng = np.random.default_rng(seed)
    hue = (seed * 0.618034) % 1.0
    cell = max(4, w // blocks)
    gw, gh = (w + 2 * cell) // cell + 2, h // cell + 2
    cols = np.empty((gh, gw, 3), dtype=np.uint8)
    for y in range(gh):
        for x in range(gw):
            hh = (hue + rng.uniform(-0.06, 0.06)) % 1.0
            s = rng.uniform(0.35, 1.0)
            v = rng.choice([0.15, 0.45, 0.75, 0.95])
            cols[y, x] = [int(c * 255) for c in colorsys.hsv_to_rgb(hh, s, v)]
    big = np.repeat(np.repeat(cols, cell, axis=0), cell, axis=1)
    shift = shift % (big.shape[1] - w)
    return np.ascontiguousarray(big[:h, shift:shift + w])


def stamp(arr: np.ndarray, n: int) -> np.ndarray:
    """Write ``n`` in binary into a strip along the bottom (light = 1, dark = 0), in place."""
    h, w = arr.shape[:2]
    bw = w // STAMP_BITS
    arr[h - STAMP_H:, :] = 128
    # light grey, not white: white bars would read as burned-in lettering (frames.quality.overlay_score)
    for bit in range(STAMP_BITS):
        if (n >> bit) & 1:
            arr[h - STAMP_H + 2:h - 2, bit * bw + 2:(bit + 1) * bw - 2] = 200
        else:
            arr[h - STAMP_H + 2:h - 2, bit * bw + 2:(bit + 1) * bw - 2] = 40
    return arr


def read_stamp(image: "np.ndarray | object") -> int:
    """The frame number stamped by ``stamp`` (works on a decoded, lossy frame)."""
    arr = np.asarray(image.convert("L")) if hasattr(image, "convert") else np.asarray(image)
    if arr.ndim == 3:
        arr = arr.mean(axis=2)
    h, w = arr.shape[:2]
    bw = w // STAMP_BITS
    n = 0
    for bit in range(STAMP_BITS):
        patch = arr[h - STAMP_H + 4:h - 4, bit * bw + 4:(bit + 1) * bw - 4]
        if patch.mean() > 128:
            n |= 1 << bit
    return n


def make_clip(path: "str | Path", segments: Sequence[tuple[str, int]], *, fps: int = 24,
              size: tuple[int, int] = (320, 180), codec: str = "libx264", seed: int = 1,
              container_options: dict[str, str] | None = None, rotation: int = 0, pix_fmt: str = "yuv420p",
              sar: "object | None" = None, times_ms: "Sequence[int] | None" = None) -> Clip:
    """Write a clip of ``segments``: (kind, frames) with kind "texture" (a new shot), "static" (a shot
    that does not move), "black" (a black slug) or "blurred" (a heavily blurred shot).

    Every segment boundary is a hard cut; the frame number is stamped in every frame (a static
    shot carries the number of its first frame throughout). ``size`` is the coded size; with a
    ``sar`` the picture shows ``sar`` times wider. ``pix_fmt``, ``sar`` and ``times_ms`` go to
    ``write_video``.
    """
    import cv2

    w, h = size
    bounds = []
    start = 0
    for _kind, n in segments:
        bounds.append((start, start + n))
        start += n

    def frames():
        idx = 0
        for k, (kind, n) in enumerate(segments):
            for i in range(n):
                if kind == "black":
                    arr = np.zeros((h, w, 3), dtype=np.uint8)
                elif kind == "static":
                    arr = texture(seed + k, size)
                else:
                    arr = texture(seed + k, size, i)
                # a static shot keeps the number of its first frame: its frames are truly identical
                arr = stamp(arr.copy(), bounds[k][0] if kind == "static" else idx)
                if kind == "blurred":  # the whole frame, stamp included (its number is then unreadable)
                    arr = cv2.GaussianBlur(arr, (0, 0), 12)
                yield arr
                idx += 1

    n = write_video(path, frames(), fps, codec=codec, container_options=container_options, rotation=rotation,
                    pix_fmt=pix_fmt, sar=sar, times_ms=times_ms)
    cuts = tuple(a for a, _ in bounds[1:])
    return Clip(Path(path), fps, n, w, h, cuts, tuple(k for k, _ in segments), tuple(bounds))


def make_stills(folder: "str | Path", seeds: Sequence[int], size: tuple[int, int] = (320, 240)) -> list[Path]:
    """Write textured PNG stills named ``still_00.png`` ... into ``folder``."""
    from PIL import Image

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for i, s in enumerate(seeds):
        p = folder / f"still_{i:02d}.png"
        Image.fromarray(texture(s, size)).save(p)
        out.append(p)
    return out
