"""A short demo clip built offline from scikit-image's bundled public-domain photos.

``make demo`` and first-time users need a real video with cuts and faces without fetching anything
(``../shared/media`` exists only beside the team's checkout). Each photo becomes a shot with a slow
Ken Burns zoom and pan; shots meet in hard cuts, so the frames stage has shots, faces and motion
to work on and the cut positions are known exactly.

The photos are files inside the installed ``skimage`` package (``skimage/data/*.png``): the loaders
used here read them from the wheel and never call pooch. PyAV and OpenCV load inside the function.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np

from genart.errors import InvalidArgumentError, MediaWarning, warn

#: (title, skimage.data loader, zoom start, zoom end, pan from (x, y), pan to (x, y)); pan is the
#: crop centre as fractions of the photo. Faces first and last so a 4-frame pick finds them.
SHOTS: tuple[tuple[str, str, float, float, tuple[float, float], tuple[float, float]], ...] = (
    ("astronaut", "astronaut", 1.00, 1.25, (0.50, 0.45), (0.45, 0.35)),
    ("coffee", "coffee", 1.05, 1.30, (0.45, 0.55), (0.55, 0.50)),
    ("cat", "chelsea", 1.00, 1.20, (0.55, 0.45), (0.45, 0.50)),
    ("rocket", "rocket", 1.20, 1.00, (0.50, 0.50), (0.50, 0.40)),
    ("camera man", "camera", 1.00, 1.30, (0.50, 0.50), (0.45, 0.35)),
)
#: The encoders the clip may be written with: H.264 where PyAV has it, else MPEG-4 Part 2.
DemoCodec = Literal["libx264", "mpeg4"]
DEMO_CODECS: tuple[DemoCodec, ...] = ("libx264", "mpeg4")


@dataclass(frozen=True)
class DemoClip:
    """What ``make_demo_clip`` wrote: the file, its frame count and where each shot starts.

    ``cut_frames`` are the indices of the first frame of every shot after the first; ``titles``
    names the shots in order. ``codec`` is ``"libx264"`` or, where PyAV lacks it, ``"mpeg4"``.
    """

    path: Path
    fps: int
    n_frames: int
    cut_frames: tuple[int, ...]
    titles: tuple[str, ...]
    width: int = 640
    height: int = 360
    codec: str = "libx264"

    @property
    def shot_starts(self) -> tuple[int, ...]:
        return (0, *self.cut_frames)

    def shot_of(self, frame_index: int) -> int:
        """The shot a frame belongs to (0-based)."""
        return sum(1 for c in self.cut_frames if frame_index >= c)


def _photo(loader: str) -> np.ndarray:
    """A bundled skimage photo as RGB uint8."""
    from skimage import data

    arr = np.asarray(getattr(data, loader)())
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    return np.ascontiguousarray(arr[:, :, :3].astype(np.uint8))


def _ken_burns(photo: np.ndarray, n: int, size: tuple[int, int], zoom: tuple[float, float],
               start: tuple[float, float], end: tuple[float, float]):
    """``n`` frames of ``size`` (w, h) panning and zooming across ``photo``, eased in and out."""
    import cv2

    ph, pw = photo.shape[:2]
    out_w, out_h = size
    aspect = out_w / out_h
    # the widest crop of the output's aspect that fits the photo, at zoom 1
    base_w = min(pw, ph * aspect)
    base_h = base_w / aspect
    for i in range(n):
        a = i / max(1, n - 1)
        a = a * a * (3 - 2 * a)  # smoothstep: no jolt at the start and end of a shot
        z = zoom[0] + (zoom[1] - zoom[0]) * a
        cw, ch = base_w / z, base_h / z
        cx = (start[0] + (end[0] - start[0]) * a) * pw
        cy = (start[1] + (end[1] - start[1]) * a) * ph
        x0 = float(np.clip(cx - cw / 2, 0, pw - cw))
        y0 = float(np.clip(cy - ch / 2, 0, ph - ch))
        # sub-pixel crop via an affine warp, so the motion is smooth rather than 1-px steps
        m = np.array([[out_w / cw, 0, -x0 * out_w / cw], [0, out_h / ch, -y0 * out_h / ch]], dtype=np.float64)
        yield cv2.warpAffine(photo, m, (out_w, out_h), flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)


def _pick_codec(wanted: str | None = None) -> DemoCodec:
    import av

    if wanted is not None:
        for codec in DEMO_CODECS:
            if wanted == codec:
                return codec
        raise InvalidArgumentError("codec", wanted, "'libx264', 'mpeg4' or None (libx264 if PyAV has it)")
    if "libx264" in av.codecs_available:
        try:
            av.codec.Codec("libx264", "w")
            return "libx264"
        except Exception:  # registered but not usable for encoding
            pass
    warn("PyAV has no libx264 encoder; writing the demo clip as MPEG-4 Part 2 (mpeg4) instead",
         MediaWarning, stacklevel=3)
    return "mpeg4"


def make_demo_clip(out_path: "str | Path", *, fps: int = 24, seconds_per_shot: float = 1.5,
                   size: tuple[int, int] = (640, 360), codec: str | None = None) -> DemoClip:
    """Write the demo clip: one Ken Burns shot per bundled photo, hard cuts between them.

    Args:
        out_path: where to write the ``.mp4`` (parent folders are created).
        fps: frames per second (integer, so cuts fall on exact frames).
        seconds_per_shot: length of every shot.
        size: (width, height), both even (yuv420p needs even sizes).
        codec: ``"libx264"`` or ``"mpeg4"``; None picks libx264 when PyAV has it, else mpeg4
            with a ``RuntimeWarning``.

    Returns:
        A ``DemoClip`` describing the file.

    Raises:
        InvalidArgumentError: a non-positive fps or shot length, an odd or tiny size, an unknown codec.
    """
    import av

    if isinstance(fps, bool) or not isinstance(fps, int) or fps < 1:
        raise InvalidArgumentError("fps", fps, "an integer >= 1")
    per_shot = int(round(seconds_per_shot * fps))
    if per_shot < 2:
        raise InvalidArgumentError("seconds_per_shot", seconds_per_shot, f"at least 2 frames' worth at {fps} fps")
    w, h = (int(v) for v in size)
    if w < 32 or h < 32 or w % 2 or h % 2:
        raise InvalidArgumentError("size", size, "(width, height), even numbers of at least 32")
    codec = _pick_codec(codec)
    out = Path(out_path)
    out.parent.mkdir(parents=True, exist_ok=True)

    container = av.open(str(out), mode="w")
    try:
        stream = container.add_stream(codec, rate=fps)
        stream.width, stream.height = w, h
        stream.pix_fmt = "yuv420p"
        if codec == "libx264":
            stream.options = {"crf": "20", "preset": "fast"}
        else:
            stream.bit_rate = 2_500_000
        n = 0
        cuts = []
        for k, (_title, loader, z0, z1, p0, p1) in enumerate(SHOTS):
            if k:
                cuts.append(n)
            for rgb in _ken_burns(_photo(loader), per_shot, (w, h), (z0, z1), p0, p1):
                frame = av.VideoFrame.from_ndarray(rgb, format="rgb24")
                frame.pts = n
                for packet in stream.encode(frame):
                    container.mux(packet)
                n += 1
        for packet in stream.encode():
            container.mux(packet)
    finally:
        container.close()
    return DemoClip(out, fps, n, tuple(cuts), tuple(s[0] for s in SHOTS), w, h, codec)


def main(argv: "list[str] | None" = None) -> int:
    """``python -m genart.demo [OUT.mp4]``: write the demo clip and say where it is."""
    import sys

    args = sys.argv[1:] if argv is None else argv
    clip = make_demo_clip(args[0] if args else "demo/demo.mp4")
    print(f"{clip.path}: {clip.n_frames} frames at {clip.fps} fps, {clip.width}x{clip.height} {clip.codec}, "
          f"cuts at frames {', '.join(map(str, clip.cut_frames))} ({', '.join(clip.titles)})")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
