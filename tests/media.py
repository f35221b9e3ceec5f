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
import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import Iterable, Sequence

import numpy as np
import pytest

#: The real third-party videos and photos beside the checkout (see its ATTRIBUTION.md); never copied in.
MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"


def media_required() -> bool:
    """True in CI (``CI`` set, or ``GENART_REQUIRE_MEDIA=1`` as .ci/run sets): missing media is a failure there."""
    return bool(os.environ.get("CI")) or os.environ.get("GENART_REQUIRE_MEDIA") == "1"


def need_media(*paths: "str | Path") -> None:
    """Skip the calling test when a real-media path is missing, on a developer's machine; fail it in CI.

    Without the media a contract test over real pictures proves nothing, and in CI a quiet skip would
    read as a pass, so there the test fails and names what is missing.
    """
    missing = [str(p) for p in (paths or (MEDIA,)) if not Path(p).exists()]
    if not missing:
        return
    msg = f"real media not found: {', '.join(missing)} (../shared/media sits beside the checkout)"
    if media_required():
        pytest.fail(msg + "; CI / GENART_REQUIRE_MEDIA=1 needs it", pytrace=False)
    pytest.skip(msg)


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


# --- transitions, bars, text, faces: synthetic scenes with known ground truth ----------------------
FPS_DEFAULT = 24


def blend(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """``a`` dissolved ``alpha`` (0-1) of the way into ``b``."""
    return np.clip(a.astype(np.float32) * (1 - alpha) + b.astype(np.float32) * alpha, 0, 255).astype(np.uint8)


def wipe(a: np.ndarray, b: np.ndarray, alpha: float) -> np.ndarray:
    """``b`` wiped in from the left over ``a``, ``alpha`` (0-1) of the width done."""
    out = a.copy()
    x = int(round(alpha * a.shape[1]))
    out[:, :x] = b[:, :x]
    return out


def make_transition_clip(path: "str | Path", kind: str, *, fps: int = FPS_DEFAULT, size: tuple[int, int] = (320, 180),
                         hold: int = 36, length: int = 24) -> tuple[Path, tuple[int, int]]:
    """Shot A for ``hold`` frames, a ``kind`` transition ("fade", "dissolve" or "wipe") of ``length``
    frames into shot B, then B for ``hold`` frames. A fade goes out to black for ``length`` frames,
    holds black for 6 and comes back in for ``length``. Both shots pan, every frame is stamped.

    Returns:
        (path, (first, end)) frames ``[first, end)`` of the clip that are inside the transition.
    """
    w, h = size
    frames = []

    def shot(seed: int, i: int) -> np.ndarray:
        return texture(seed, size, i)

    for i in range(hold):
        frames.append(shot(11, i))
    first = len(frames)
    if kind == "fade":
        for i in range(length):
            frames.append(blend(shot(11, hold + i), np.zeros((h, w, 3), np.uint8), (i + 1) / (length + 1)))
        frames += [np.zeros((h, w, 3), np.uint8)] * 6
        for i in range(length):
            frames.append(blend(np.zeros((h, w, 3), np.uint8), shot(12, i), (i + 1) / (length + 1)))
    else:
        mix = blend if kind == "dissolve" else wipe
        for i in range(length):
            frames.append(mix(shot(11, hold + i), shot(12, i), (i + 1) / (length + 1)))
    end = len(frames)
    for i in range(hold):
        frames.append(shot(12, length + i))
    out = [stamp(f.copy(), n) for n, f in enumerate(frames)]
    write_video(path, out, fps)
    return Path(path), (first, end)


def bars_around(picture: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """``picture`` centred on a black frame of ``size`` (w, h): pillarbox, letterbox or windowbox."""
    w, h = size
    ph, pw = picture.shape[:2]
    out = np.zeros((h, w, 3), np.uint8)
    y, x = (h - ph) // 2, (w - pw) // 2
    out[y:y + ph, x:x + pw] = picture
    return out


def face_photo(name: str, media: Path, side: int) -> np.ndarray:
    """The face (with some hair and shoulders) of a real photo in ``media/images``, ``side`` px square."""
    from PIL import Image

    from genart.frames.faces import find_faces

    im = Image.open(media / "images" / name).convert("RGB")
    rgb = np.asarray(im)
    faces = find_faces(rgb)
    if not faces:
        raise ValueError(f"no face in {name}")
    b = max(faces, key=lambda f: f.box.area).box
    s = 1.8 * max(b.w, b.h)
    x0, y0 = int(max(0, b.cx - s / 2)), int(max(0, b.cy - s / 2))
    crop = im.crop((x0, y0, int(min(im.width, x0 + s)), int(min(im.height, y0 + s))))
    return np.asarray(crop.resize((side, side), Image.Resampling.LANCZOS))


def paste(background: np.ndarray, picture: np.ndarray, x: int, y: int) -> np.ndarray:
    """``picture`` pasted into a copy of ``background`` with its top-left at (x, y) (clipped)."""
    out = background.copy()
    h, w = picture.shape[:2]
    bh, bw = out.shape[:2]
    x0, y0, x1, y1 = max(0, x), max(0, y), min(bw, x + w), min(bh, y + h)
    if x1 > x0 and y1 > y0:
        out[y0:y1, x0:x1] = picture[y0 - y:y1 - y, x0 - x:x1 - x]
    return out


def soft_background(seed: int, size: tuple[int, int]) -> np.ndarray:
    """A smooth, contrasty, colourful backdrop (blurred texture): a set, not a pattern a detector could read."""
    import cv2

    w, h = size
    rng = np.random.default_rng(seed)
    cell = max(4, w // 12)
    big = texture(seed, (w + 2 * cell, h + 2 * cell))  # its own block grid: no edge shared with another seed
    dx, dy = (int(v) for v in rng.integers(0, cell, 2))
    return cv2.GaussianBlur(np.ascontiguousarray(big[dy:dy + h, dx:dx + w]), (0, 0), 3)


def put_text(arr: np.ndarray, text: str, org: tuple[int, int], scale: float, *, colour=(245, 245, 245),
             outline: bool = True, thickness: int = 2) -> np.ndarray:
    """Lettering drawn into ``arr`` (in place) at ``org`` (its baseline's left end), outlined in black."""
    import cv2

    if outline:
        cv2.putText(arr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), thickness + 3, cv2.LINE_AA)
    cv2.putText(arr, text, org, cv2.FONT_HERSHEY_SIMPLEX, scale, colour, thickness, cv2.LINE_AA)
    return arr


#: Where ``make_logo_clip`` puts its corner logo, (x, y, w, h) in its 480x270 frames.
LOGO_BOX = (392, 14, 74, 34)


def draw_logo(arr: np.ndarray) -> np.ndarray:
    """A broadcaster's bug in the top-right corner (``LOGO_BOX``): white letters on a dark plate."""
    import cv2

    x, y, w, h = LOGO_BOX
    cv2.rectangle(arr, (x, y), (x + w, y + h), (20, 30, 90), -1)
    put_text(arr, "GTV", (x + 8, y + h - 9), 0.75, outline=False)
    return arr


SUBTITLES = ("Where were you last night?", "I told you, I was at home.", "Nobody saw you there.",
             "Then nobody was looking.")


def make_logo_clip(path: "str | Path", *, shots: int = 4, seconds: float = 2.5, fps: int = 12,
                   size: tuple[int, int] = (480, 270), subtitles: bool = True) -> Clip:
    """Shots of soft backdrops with a persistent corner logo (``LOGO_BOX``) and, in every other shot,
    a burned-in subtitle line at the bottom centre (``SUBTITLES``)."""
    w, h = size
    n = int(round(seconds * fps))
    frames = []
    for k in range(shots):
        bg = soft_background(40 + k, size)
        for i in range(n):
            arr = np.roll(bg, i, axis=1).copy()
            if subtitles and k % 2 == 0:
                text = SUBTITLES[k % len(SUBTITLES)]
                put_text(arr, text, (w // 2 - 8 * len(text) // 2 * 2 // 2 - 100, h - 28), 0.7)
            draw_logo(arr)
            frames.append(stamp(arr, len(frames)))
    write_video(path, frames, fps)
    bounds = tuple((k * n, (k + 1) * n) for k in range(shots))
    return Clip(Path(path), fps, len(frames), w, h, tuple(a for a, _ in bounds[1:]),
                tuple("texture" for _ in bounds), bounds)


def make_people_clip(path: "str | Path", media: Path, shots: Sequence[tuple[str, int, int, int]], *,
                     seconds: float = 2.0, fps: int = 12, size: tuple[int, int] = (480, 270),
                     turn: int = 0, corner: "str | None" = None) -> Clip:
    """One shot per (photo, x, y, side): that photo's face pasted on a backdrop of its own, drifting
    a pixel a frame. ``turn``: every frame turned by that many quarter turns (counterclockwise)
    before writing, with no rotation metadata (a clip filmed on its side). ``corner``: a photo whose
    face sits small in the top-left corner of every shot (a presenter's picture in a channel's bug).
    """
    n = int(round(seconds * fps))
    bug = face_photo(corner, media, 44) if corner else None
    frames = []
    for k, (name, x, y, side) in enumerate(shots):
        face = face_photo(name, media, side)
        bg = soft_background(60 + k, size)
        for i in range(n):
            arr = paste(bg, face, x + i // 2, y)
            if bug is not None:
                arr = paste(arr, bug, 8, 8)
            arr = stamp(arr, len(frames))
            frames.append(np.ascontiguousarray(np.rot90(arr, turn)) if turn else arr)
    write_video(path, frames, fps)
    bounds = tuple((k * n, (k + 1) * n) for k in range(len(shots)))
    h, w = frames[0].shape[:2]
    return Clip(Path(path), fps, len(frames), w, h, tuple(a for a, _ in bounds[1:]),
                tuple("texture" for _ in bounds), bounds)
