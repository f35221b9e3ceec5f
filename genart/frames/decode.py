"""Opening a source: probing, sampled decoding for analysis, and seeking back for full-resolution frames.

Why two passes over a video: analysis needs every sampled frame but only at a few hundred pixels, the
key frames need full resolution but only a handful of them. Decoding once sequentially at analysis
size and then seeking to the chosen timestamps keeps memory flat however long the title is.

PyAV (FFmpeg) is imported inside the functions so ``import genart.frames`` stays cheap.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from genart.errors import EmptySourceError, SourceNotFoundError, UnsupportedMediaError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

#: Frames analysed per second are raised so that even a short clip gets at least this many samples.
MIN_SAMPLES = 16


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, found without decoding it.

    ``kind`` is ``"video"`` or ``"stills"``; ``paths`` holds the still images in order (one for a
    single image) and is empty for a video. For stills ``fps`` is 1 (a still per "second"),
    ``duration_s`` the count of stills, and ``width``/``height`` those of the first readable still.
    ``rotation`` is the display-matrix rotation of a video in degrees counterclockwise (0 if none).
    """

    kind: str
    path: Path
    paths: tuple[Path, ...]
    fps: float
    duration_s: float
    n_frames: int
    width: int
    height: int
    rotation: int = 0
    codec: str = ""


@dataclass(frozen=True)
class Sample:
    """One decoded frame at analysis size, with where it sits in the source."""

    pts: int | None  # stream pts, for seeking back; None for stills
    t_s: float
    frame_index: int
    rgb: np.ndarray  # RGB uint8 at ``sample_long_side``, rotation applied


def _ffmpeg_error() -> type[BaseException]:
    import av

    return getattr(av, "FFmpegError", None) or av.error.FFmpegError


def list_stills(folder: Path) -> tuple[Path, ...]:
    """Image files directly in ``folder`` sorted by name (hidden files skipped)."""
    found = (p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))
    return tuple(sorted(found, key=lambda p: p.name))


def _probe_image(path: Path) -> tuple[int, int] | None:
    """(width, height) if PIL can read ``path`` as an image, else None."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
        with Image.open(path) as im:
            return im.size
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        return None


def probe_source(source: "str | Path") -> SourceInfo:
    """Say what ``source`` is: a video, a single image or a folder of stills.

    Args:
        source: a video file FFmpeg can read, an image file, or a folder of png/jpg/jpeg/webp/bmp/tif.

    Returns:
        A ``SourceInfo``; for a video the numbers come from the container, so a damaged file may
        hold fewer frames than ``n_frames`` says.

    Raises:
        SourceNotFoundError: the path does not exist.
        UnsupportedMediaError: the file is neither a readable video nor an image.
        EmptySourceError: a folder without images, or a media file without a video stream.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceNotFoundError(path)
    if path.is_dir():
        stills = list_stills(path)
        if not stills:
            raise EmptySourceError(path, "no images (png, jpg, jpeg, webp, bmp, tif) in folder")
        size = next((sz for sz in map(_probe_image, stills) if sz is not None), None)
        if size is None:
            raise EmptySourceError(path, f"none of the {len(stills)} image files in the folder is readable")
        return SourceInfo("stills", path, stills, 1.0, float(len(stills)), len(stills), size[0], size[1])
    if not path.is_file():
        raise UnsupportedMediaError(path, "not a regular file")
    if path.stat().st_size == 0:
        raise EmptySourceError(path, "empty file")
    if path.suffix.lower() in IMAGE_EXTS:
        size = _probe_image(path)
        if size is None:
            raise UnsupportedMediaError(path, "not a readable image")
        return SourceInfo("stills", path, (path,), 1.0, 1.0, 1, size[0], size[1])
    info = _probe_video(path)
    if info is not None:
        return info
    size = _probe_image(path)  # an image under an unusual extension
    if size is not None:
        return SourceInfo("stills", path, (path,), 1.0, 1.0, 1, size[0], size[1])
    raise UnsupportedMediaError(path, "FFmpeg cannot open it and it is not an image")


def _probe_video(path: Path) -> SourceInfo | None:
    """SourceInfo for a video, None when FFmpeg cannot open the file at all."""
    import av

    try:
        container = av.open(str(path), metadata_errors="ignore")
    except (_ffmpeg_error(), UnicodeDecodeError, ValueError):
        return None
    with container:
        if not container.streams.video:
            if not container.streams.audio:
                raise UnsupportedMediaError(path, f"no audio or video streams in '{container.format.name}' data")
            raise EmptySourceError(path, "no video stream")
        stream = container.streams.video[0]
        if stream.codec_context is None or not stream.codec_context.name:
            raise UnsupportedMediaError(path, "video stream with no decoder")
        fps = float(stream.average_rate or stream.guessed_rate or stream.base_rate or 0) or 25.0
        if stream.duration is not None and stream.time_base is not None:
            duration = float(stream.duration * stream.time_base)
        elif container.duration is not None:
            duration = container.duration / 1_000_000
        else:
            duration = 0.0
        n_frames = int(stream.frames or round(duration * fps))
        rotation, w, h = _first_frame(container, stream, path)
        if rotation % 180:
            w, h = h, w
        return SourceInfo("video", path, (), fps, duration, n_frames, w, h, rotation, stream.codec_context.name)


def _first_frame(container, stream, path: Path) -> tuple[int, int, int]:
    """(rotation, coded width, coded height) of the first decodable frame.

    The display matrix is per-frame side data in PyAV (streams have only a setter), and decoding one
    frame also proves the stream decodes at all. Stream metadata ``rotate`` (old FFmpeg) is the
    fallback; it is clockwise, the display-matrix convention (ours) counterclockwise.
    """
    try:
        legacy = _norm_rotation(-float(stream.metadata.get("rotate", 0)))
    except (TypeError, ValueError):
        legacy = 0
    ffmpeg_error = _ffmpeg_error()
    try:
        for frame in container.decode(stream):
            return _frame_rotation(frame, legacy), frame.width, frame.height
    except ffmpeg_error as exc:
        raise EmptySourceError(path, f"no decodable video frames ({exc})") from exc
    raise EmptySourceError(path, "no decodable video frames")


def _norm_rotation(deg: float) -> int:
    """Nearest multiple of 90 in (-180, 180]."""
    r = int(round(deg / 90.0)) * 90 % 360
    return r - 360 if r > 180 else r


def _frame_rotation(frame: object, default: int) -> int:
    try:
        rot = frame.rotation  # type: ignore[attr-defined]
    except Exception:  # older PyAV or no side data
        return default
    return _norm_rotation(rot) if rot else default


def _rotate(arr: np.ndarray, rotation: int) -> np.ndarray:
    """Apply a counterclockwise ``rotation`` (multiple of 90) as FFmpeg's autorotate would."""
    k = (rotation // 90) % 4
    return np.ascontiguousarray(np.rot90(arr, k)) if k else arr


def _fit(w: int, h: int, long_side: int) -> tuple[int, int]:
    scale = min(1.0, long_side / max(w, h))
    # even sizes keep swscale on its fast paths for yuv420p
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


def _open_stream(path: Path):  # -> (container, stream)
    import av

    container = av.open(str(path), metadata_errors="ignore")
    stream = container.streams.video[0]
    stream.thread_type = "AUTO"  # frame + slice threads; FFmpeg picks the count
    return container, stream


def sample_interval(info: SourceInfo, sample_fps: float) -> float:
    """Seconds between analysed frames: ``1/sample_fps``, shorter for short clips, never below a frame."""
    interval = 1.0 / sample_fps
    if info.duration_s > 0:
        interval = min(interval, info.duration_s / MIN_SAMPLES)
    return max(interval, 1.0 / max(info.fps, 1e-6))


def expected_samples(info: SourceInfo, sample_fps: float) -> int:
    """About how many samples ``iter_video_samples`` will yield (for progress totals)."""
    if info.duration_s <= 0:
        return 1
    return int(info.duration_s / sample_interval(info, sample_fps)) + 1


def iter_video_samples(info: SourceInfo, sample_fps: float, long_side: int) -> Iterator[Sample]:
    """Decode ``info.path`` sequentially, yielding about ``sample_fps`` frames a second at ``long_side``.

    Short clips get at least ``MIN_SAMPLES`` samples (up to every frame). Damage part-way through
    stops the iteration with a ``warnings.warn`` instead of an exception, so the caller keeps what
    decoded before it; a clip that decodes noticeably shorter than its container says also warns.
    """
    path = info.path
    interval = sample_interval(info, sample_fps)
    ffmpeg_error = _ffmpeg_error()
    try:
        container, stream = _open_stream(path)
    except ffmpeg_error as exc:
        raise UnsupportedMediaError(path, str(exc)) from exc
    tb = float(stream.time_base) if stream.time_base is not None else 1.0 / info.fps
    start_pts = stream.start_time
    next_t = 0.0
    decoded = 0
    last_t = 0.0
    eps = 0.25 / max(info.fps, 1e-6)
    try:
        frames = container.decode(stream)
        while True:
            try:
                frame = next(frames)
            except StopIteration:
                break
            except ffmpeg_error as exc:
                warnings.warn(
                    f"video damaged after {last_t:.2f} s, using the frames decoded before it: {path} ({exc})",
                    RuntimeWarning, stacklevel=3,
                )
                break
            decoded += 1
            if frame.pts is not None:
                if start_pts is None:
                    start_pts = frame.pts
                t = (frame.pts - start_pts) * tb
            else:
                t = (decoded - 1) / info.fps
            last_t = t
            if t + eps < next_t:
                continue
            if t < 0:  # pre-roll frames before the stream's start
                continue
            rot = _frame_rotation(frame, info.rotation)
            fw, fh = frame.width, frame.height
            sw, sh = _fit(fw, fh, long_side)
            rgb = frame.to_ndarray(width=sw, height=sh, format="rgb24", interpolation="AREA")
            rgb = _rotate(rgb, rot)
            yield Sample(frame.pts, float(t), int(round(t * info.fps)), rgb)
            next_t = t + interval - eps
    finally:
        container.close()
    if decoded and info.duration_s > 2.0 and last_t < info.duration_s - max(1.0, 0.1 * info.duration_s):
        warnings.warn(
            f"video ends early: decoded {last_t:.2f} s of {info.duration_s:.2f} s, file may be truncated: {path}",
            RuntimeWarning, stacklevel=3,
        )


def grab_video_frames(info: SourceInfo, pts_list: "list[int | None]", t_list: list[float]) -> "list[Image.Image]":
    """Full-resolution RGB frames at the given stream timestamps, by seeking (rotation applied).

    Each target is reached by seeking to the key frame before it and decoding forward; if seeking
    fails (some damaged or index-less files), the file is decoded sequentially instead.
    """
    from PIL import Image

    ffmpeg_error = _ffmpeg_error()
    order = sorted(range(len(pts_list)), key=lambda i: t_list[i])
    out: dict[int, Image.Image] = {}
    container, stream = _open_stream(info.path)
    tb = float(stream.time_base) if stream.time_base is not None else 1.0 / info.fps
    try:
        for i in order:
            target = pts_list[i]
            arr = None
            if target is not None:
                try:
                    container.seek(int(target), stream=stream, backward=True, any_frame=False)
                    arr = _decode_until(container, stream, target, info, tb, ffmpeg_error)
                except ffmpeg_error:
                    arr = None
            if arr is None:  # no pts or the seek missed: walk from the start
                container.close()
                container, stream = _open_stream(info.path)
                arr = _decode_sequential(container, stream, target, t_list[i], info, ffmpeg_error)
            if arr is None:
                raise EmptySourceError(info.path, f"cannot decode the frame at {t_list[i]:.3f} s")
            out[i] = Image.fromarray(arr, "RGB")
    finally:
        container.close()
    return [out[i] for i in range(len(pts_list))]


def _decode_until(container, stream, target: int, info: SourceInfo, tb: float, ffmpeg_error) -> np.ndarray | None:
    """After a seek: the frame whose pts is ``target`` (or the last one before it); None if the seek overshot."""
    best = None
    try:
        for frame in container.decode(stream):
            if frame.pts is None:
                continue
            if frame.pts > target:
                break
            best = frame
            if frame.pts == target:
                break
    except ffmpeg_error:
        pass
    if best is None:
        return None
    return _rotate(best.to_ndarray(format="rgb24"), _frame_rotation(best, info.rotation))


def _decode_sequential(container, stream, target: int | None, t_s: float, info: SourceInfo,
                       ffmpeg_error) -> np.ndarray | None:
    best = None
    n = 0
    try:
        for frame in container.decode(stream):
            n += 1
            if target is not None and frame.pts is not None:
                if frame.pts > target:
                    break
                best = frame
                if frame.pts == target:
                    break
            else:
                best = frame
                if (n - 1) / info.fps >= t_s - 1e-6:
                    break
    except ffmpeg_error:
        pass
    if best is None:
        return None
    return _rotate(best.to_ndarray(format="rgb24"), _frame_rotation(best, info.rotation))


def load_still(path: Path) -> "Image.Image":
    """A still as full-resolution RGB, EXIF orientation applied."""
    from PIL import Image, ImageOps, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im = ImageOps.exif_transpose(im)
            return im.convert("RGB")
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise UnsupportedMediaError(path, f"not a readable image: {exc}") from exc


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    from genart.imaging import sha256_file

    return sha256_file(path)


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per process by (path, size, mtime) so a title is hashed once."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)
