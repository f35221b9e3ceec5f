"""Opening a source: probing, one sequential decode pass for analysis, and seeking back for key frames.

Why this shape: shot detection needs every frame but only at a couple of hundred pixels, quality
analysis needs a few frames a second at a few hundred pixels, and the key frames need full
resolution but only a handful of them. So a video is decoded once, sequentially, on a producer
thread (FFmpeg's frame threads where cores allow, see ``scan_threads``); the consumer asks swscale
for the small copies straight from YUV (never a full-size RGB frame) and runs the detector and the
measures while the next frames decode, which keeps both cores busy (scaling on the consumer side
measured 10-25% faster on two cores than on the decoding thread). The chosen key frames are then
decoded again at full resolution by seeking. Memory stays flat however long the title is.

Every frame that leaves this module has square pixels (the stream's sample aspect ratio applied)
and is upright (the display matrix applied), except the detector's copies, which only need to be
alike from frame to frame.

PyAV (FFmpeg) is imported inside the functions so ``import genart.frames`` stays cheap.
"""

from __future__ import annotations

import os
import queue
import threading
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np

from genart.errors import (
    EmptySourceError,
    ImageTooLargeError,
    MediaWarning,
    SourceNotFoundError,
    UnsupportedMediaError,
    warn,
)
from genart.imaging import load_rgb, open_image, sha256_file

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

IMAGE_EXTS = frozenset({".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"})

#: Frames analysed per second are raised so that even a short clip gets at least this many samples.
MIN_SAMPLES = 16
#: Decoded frames travel from the decoding thread to the analysis in batches of this many (one
#: queue hand-off, one GIL switch per batch, not per frame), at most ``QUEUE_BATCHES`` batches ahead.
BATCH_FRAMES = 8
QUEUE_BATCHES = 4


@dataclass(frozen=True)
class SourceInfo:
    """What a source is, found by opening it and decoding at most one frame.

    ``kind`` is ``"video"`` or ``"stills"``; ``paths`` holds the still images in order (one for a
    single image) and is empty for a video. For stills ``fps`` is 1 (a still per "second"),
    ``duration_s`` the count of stills, and ``width``/``height`` those of the first readable still.

    For a video ``width``/``height`` are the display size: square pixels (``sar``, the stream's
    sample aspect ratio, applied to the coded width) and ``rotation`` applied (the display-matrix
    rotation in degrees counterclockwise, 0 if none). ``coded_width``/``coded_height`` are the
    decoder's. ``fps`` is the average rate: exact for constant-rate video, a mean for variable rate
    (timestamps, not ``fps``, give every frame's time).
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
    sar: Fraction = Fraction(1)
    coded_width: int = 0
    coded_height: int = 0
    pix_fmt: str = ""

    @property
    def upright_size(self) -> tuple[int, int]:
        """(width, height) with square pixels but before rotation: what to ask the scaler for."""
        if self.rotation % 180:
            return self.height, self.width
        return self.width, self.height


@dataclass(frozen=True)
class Sample:
    """One decoded frame at analysis size, with where it sits in the source."""

    pts: int | None  # stream pts, for seeking back; None for stills
    t_s: float
    frame_index: int
    rgb: np.ndarray  # RGB uint8, square pixels, rotation applied


def _ffmpeg_error() -> type[BaseException]:
    import av

    return getattr(av, "FFmpegError", None) or av.error.FFmpegError


def list_stills(folder: Path) -> tuple[Path, ...]:
    """Image files directly in ``folder`` sorted by name (hidden files skipped)."""
    found = (p for p in folder.iterdir()
             if p.is_file() and p.suffix.lower() in IMAGE_EXTS and not p.name.startswith("."))
    return tuple(sorted(found, key=lambda p: p.name))


def _probe_image(path: Path) -> tuple[int, int] | None:
    """(width, height) if PIL can read ``path`` as an image, else None.

    Raises:
        ImageTooLargeError: the header declares more pixels than genart decodes (``genart.imaging``).
    """

    try:
        with open_image(path) as im:
            im.verify()
        with open_image(path) as im:
            return im.size
    except ImageTooLargeError:
        raise
    except (UnsupportedMediaError, OSError, SyntaxError, ValueError):
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
        EmptySourceError: a folder without images, or a media file without a video stream or
            without a single decodable frame.
    """
    path = Path(source).expanduser()
    if not path.exists():
        raise SourceNotFoundError(path)
    if path.is_dir():
        stills = list_stills(path)
        if not stills:
            raise EmptySourceError(path, "no images (png, jpg, jpeg, webp, bmp, tif) in folder")
        size, too_large = None, None
        for still in stills:  # the first readable still gives the size; one too large is skipped like a bad one
            try:
                size = _probe_image(still)
            except ImageTooLargeError as exc:
                too_large = too_large or exc
                continue
            if size is not None:
                break
        if size is None:
            if too_large is not None and len(stills) == 1:
                raise too_large
            raise EmptySourceError(path, f"none of the {len(stills)} image files in the folder is readable"
                                         + (f" ({too_large.message})" if too_large is not None else ""))
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


def _sar(stream) -> Fraction:
    """The stream's sample (pixel) aspect ratio; 1 when unset or absurd."""
    for owner in (stream, stream.codec_context):
        try:
            sar = owner.sample_aspect_ratio
        except Exception:  # pragma: no cover - older PyAV
            sar = None
        if sar and sar.numerator > 0 and sar.denominator > 0:
            value = Fraction(sar.numerator, sar.denominator)
            if Fraction(1, 4) <= value <= 4:
                return value
    return Fraction(1)


def display_size(coded_w: int, coded_h: int, sar: Fraction) -> tuple[int, int]:
    """(width, height) with square pixels: the coded width stretched by the sample aspect ratio."""
    return max(1, int(round(coded_w * sar))), coded_h


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
        sar = _sar(stream)
        rotation, cw, ch, pix_fmt = _first_frame(container, stream, path)
        w, h = display_size(cw, ch, sar)
        if rotation % 180:
            w, h = h, w
        return SourceInfo("video", path, (), fps, duration, n_frames, w, h, rotation, stream.codec_context.name,
                          sar, cw, ch, pix_fmt)


def _first_frame(container, stream, path: Path) -> tuple[int, int, int, str]:
    """(rotation, coded width, coded height, pixel format) of the first decodable frame.

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
            return _frame_rotation(frame, legacy), frame.width, frame.height, frame.format.name
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


def fit(w: int, h: int, long_side: int) -> tuple[int, int]:
    """(w, h) scaled so the long side is at most ``long_side``, kept even (swscale's fast paths)."""
    scale = min(1.0, long_side / max(w, h))
    return max(2, int(round(w * scale / 2)) * 2), max(2, int(round(h * scale / 2)) * 2)


def _open_stream(path: Path, *, fast: bool = False, threads: str = "AUTO"):  # -> (container, stream)
    """Open ``path`` for decoding with FFmpeg's ``threads`` (its thread type); ``fast`` also skips the
    in-loop deblocking.

    Skipping the loop filter (``skip_loop_filter=all``; honoured by H.264, HEVC, VP8, VP9) saves a
    fifth to a third of the decode time and changes pixels by a fraction of a grey level on average:
    invisible once a frame is scaled down to analysis size, so it is used for the analysis pass
    only, never for the key frames themselves.
    """
    import av

    container = av.open(str(path), metadata_errors="ignore")
    stream = container.streams.video[0]
    stream.thread_type = threads  # AUTO: frame + slice threads, FFmpeg picks the count
    if fast:
        stream.codec_context.options = {"skip_loop_filter": "all"}
    return container, stream


def sample_interval(info: SourceInfo, sample_fps: float) -> float:
    """Seconds between analysed frames: ``1/sample_fps``, shorter for short clips, never below a frame."""
    interval = 1.0 / sample_fps
    if info.duration_s > 0:
        interval = min(interval, info.duration_s / MIN_SAMPLES)
    return max(interval, 1.0 / max(info.fps, 1e-6))


def expected_samples(info: SourceInfo, sample_fps: float) -> int:
    """About how many samples ``VideoScan`` will yield (for progress totals)."""
    if info.duration_s <= 0:
        return 1
    return int(info.duration_s / sample_interval(info, sample_fps)) + 1


def scan_threads(width: int, height: int) -> str:
    """FFmpeg's thread type for the analysis pass: frame threads, except on two cores or fewer below 720p.

    There the consumer thread (scaling and the detector) needs the second core more than the decoder:
    measured on two cores, single-threaded decoding of 640x360 H.264 costs 90 ms of CPU for 89 ms of
    wall time, frame threads 120 ms for 82 ms, and the whole shot pass ran 7-10% faster single-threaded;
    at 1280x720 frame threads won by 10%.
    """
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return "AUTO" if cores > 2 or width * height >= 1280 * 720 else "SLICE"


@dataclass(frozen=True)
class ScanFrame:
    """One decoded frame of the analysis pass.

    ``index`` counts decoded frames from 0 (presentation order), so it is exact for variable
    frame rate too; ``t_s`` comes from the frame's own timestamp. ``small`` is the detector's copy
    (BGR, coded aspect, not rotated) or None when no detector size was asked for; ``sample`` is the
    analysis copy (RGB, square pixels, upright) on sampled frames only.
    """

    index: int
    t_s: float
    pts: int | None
    small: np.ndarray | None
    sample: np.ndarray | None

    def detector_copy(self) -> np.ndarray:
        """``small``, for the shot and transition trackers that every frame feeds.

        Raises:
            ValueError: the scan was made without ``detect_size`` (a caller's mistake, not the video's).
        """
        if self.small is None:
            raise ValueError(f"frame {self.index} has no detector copy: make the VideoScan with detect_size")
        return self.small


class VideoScan:
    """One sequential decode of a video on a background thread; iterate it for ``ScanFrame`` s.

    Args:
        info: the probed video.
        detect_size: (w, h) of the detector copy made of every frame, or None for none.
        interval_s: seconds between sampled frames (analysis copies), or None for none.
        sample_long_side: the long side of the analysis copies.
        fast: skip the in-loop deblocking filter while decoding (see ``_open_stream``).

    After the iteration ``decoded``, ``last_t`` and ``damaged`` say how it went. A decoding error
    part-way through ends the iteration with a ``RuntimeWarning`` (the caller keeps what decoded
    before it), and so does a clip that decodes noticeably shorter than its container says.
    """

    def __init__(self, info: SourceInfo, *, detect_size: tuple[int, int] | None = None,
                 interval_s: float | None = None, sample_long_side: int = 640, fast: bool = True) -> None:
        self.info = info
        self.detect_size = detect_size
        self.interval_s = interval_s
        self.sample_size = fit(*info.upright_size, sample_long_side)  # (w, h) before rotation
        self.fast = fast
        self.decoded = 0
        self.last_t = 0.0
        self.damaged: str | None = None
        self.messages: list[str] = []  # the warnings issued, for the caller's record

    def __iter__(self) -> Iterator[ScanFrame]:
        q: "queue.Queue[tuple]" = queue.Queue(maxsize=QUEUE_BATCHES)
        stop = threading.Event()
        worker = threading.Thread(target=self._produce, args=(q, stop), name="genart-decode", daemon=True)
        worker.start()
        scale = _Scaler(self)  # this thread's swscale contexts (the decoding thread has its own)
        try:
            while True:
                item = q.get()
                if item[0] == "frames":
                    for f in item[1]:
                        yield f if isinstance(f, ScanFrame) else scale(*f)
                    continue
                if item[0] == "error":
                    raise item[1]
                break  # "end"
        finally:
            stop.set()
            while worker.is_alive():  # unblock a producer waiting on a full queue
                try:
                    q.get_nowait()
                except queue.Empty:
                    worker.join(0.05)
            worker.join()
        self._warn()

    def _warn(self) -> None:
        info = self.info
        msg = None
        if self.damaged is not None:
            msg = (f"video damaged after {self.last_t:.2f} s (file may be truncated), using the "
                   f"{self.decoded} frames decoded before it: {info.path} ({self.damaged})")
        elif (self.decoded and info.duration_s > 2.0
              and self.last_t < info.duration_s - max(1.0, 0.1 * info.duration_s)):
            msg = (f"video ends early: decoded {self.last_t:.2f} s of {info.duration_s:.2f} s, file may be "
                   f"truncated: {info.path}")
        if msg is not None:
            self.messages.append(msg)
            warn(msg, MediaWarning, stacklevel=4)

    def _produce(self, q: "queue.Queue[tuple]", stop: threading.Event) -> None:
        def put(item: tuple) -> bool:
            while not stop.is_set():
                try:
                    q.put(item, timeout=0.1)
                    return True
                except queue.Full:
                    continue
            return False

        try:
            self._decode(put, stop, q.qsize)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer thread, raised there
            put(("error", exc))
            return
        put(("end",))

    def _decode(self, put, stop: threading.Event, backlog) -> None:
        info = self.info
        ffmpeg_error = _ffmpeg_error()
        try:
            container, stream = _open_stream(info.path, fast=self.fast,
                                             threads=scan_threads(info.coded_width or info.width,
                                                                  info.coded_height or info.height))
        except ffmpeg_error as exc:
            raise UnsupportedMediaError(info.path, str(exc)) from exc
        tb = float(stream.time_base) if stream.time_base is not None else 1.0 / info.fps
        start_pts = stream.start_time
        interval = self.interval_s
        eps = 0.25 / max(info.fps, 1e-6)
        next_t = 0.0
        t = 0.0
        # the consumer scales the frames (index, t, frame, sampled) while this thread decodes on; when
        # it falls behind (the queue nearly full: decoding is the cheap part, small frames), this
        # thread scales too, so neither core waits on the other
        scale = _Scaler(self)
        batch: list = []
        try:
            frames = container.decode(stream)
            while not stop.is_set():
                try:
                    frame = next(frames)
                except StopIteration:
                    break
                except ffmpeg_error as exc:
                    self.damaged = str(exc)
                    break
                if frame.pts is not None:
                    if start_pts is None:
                        start_pts = frame.pts
                    t = max(0.0, (frame.pts - start_pts) * tb)
                elif self.decoded:
                    t = t + 1.0 / info.fps
                index = self.decoded
                self.decoded += 1
                self.last_t = t
                sampled = interval is not None and t + eps >= next_t
                if sampled and interval is not None:
                    next_t = t + interval - eps
                job = (index, float(t), frame, sampled)
                batch.append(scale(*job) if backlog() >= QUEUE_BATCHES - 1 else job)
                if len(batch) >= BATCH_FRAMES:
                    if not put(("frames", batch)):
                        break
                    batch = []
            if batch:
                put(("frames", batch))
        finally:
            container.close()


class _Scaler:
    """A frame of the analysis pass scaled to what ``VideoScan`` yields (one swscale context per copy
    kind, made once; one ``_Scaler`` per thread)."""

    def __init__(self, scan: VideoScan) -> None:
        from av.video.reformatter import VideoReformatter

        self.detect_size, self.sample_size, self.rotation = scan.detect_size, scan.sample_size, scan.info.rotation
        self.small_fmt, self.sample_fmt = VideoReformatter(), VideoReformatter()

    def __call__(self, index: int, t: float, frame, sampled: bool) -> ScanFrame:
        small = sample = None
        if self.detect_size is not None:
            small = self.small_fmt.reformat(frame, self.detect_size[0], self.detect_size[1], "bgr24",
                                            interpolation="FAST_BILINEAR").to_ndarray()
        if sampled:
            sw, sh = self.sample_size  # square pixels, before rotation
            rgb = self.sample_fmt.reformat(frame, sw, sh, "rgb24", interpolation="AREA").to_ndarray()
            sample = _rotate(rgb, _frame_rotation(frame, self.rotation))
        return ScanFrame(index, t, frame.pts, small, sample)


def iter_video_samples(info: SourceInfo, sample_fps: float, long_side: int) -> Iterator[Sample]:
    """Decode ``info.path`` sequentially, yielding about ``sample_fps`` frames a second at ``long_side``.

    Short clips get at least ``MIN_SAMPLES`` samples (up to every frame). Damage part-way through
    stops the iteration with a ``RuntimeWarning`` instead of an exception.
    """
    scan = VideoScan(info, interval_s=sample_interval(info, sample_fps), sample_long_side=long_side)
    for f in scan:
        if f.sample is not None:
            yield Sample(f.pts, f.t_s, f.index, f.sample)


def to_display(frame, info: SourceInfo) -> np.ndarray:
    """A decoded frame as full-resolution RGB with square pixels, upright."""
    w, h = display_size(frame.width, frame.height, info.sar)
    if (w, h) == (frame.width, frame.height):
        arr = frame.to_ndarray(format="rgb24")
    else:
        arr = frame.to_ndarray(width=w, height=h, format="rgb24", interpolation="LANCZOS")
    return _rotate(arr, _frame_rotation(frame, info.rotation))


def grab_video_frames(info: SourceInfo, pts_list: "list[int | None]", t_list: list[float],
                      index_list: "list[int] | None" = None) -> "list[Image.Image]":
    """Full-resolution RGB frames at the given stream timestamps, by seeking (square pixels, upright).

    Each target is reached by seeking to the key frame before it and decoding forward; if seeking
    fails (some damaged or index-less files), or a frame has no timestamp, the file is decoded
    sequentially up to the frame's index (``index_list``) or time instead.
    """
    from PIL import Image

    ffmpeg_error = _ffmpeg_error()
    indices = index_list if index_list is not None else [None] * len(pts_list)
    order = sorted(range(len(pts_list)), key=lambda i: t_list[i])
    out: dict[int, Image.Image] = {}
    container, stream = _open_stream(info.path)
    try:
        for i in order:
            target = pts_list[i]
            arr = None
            if target is not None:
                try:
                    container.seek(int(target), stream=stream, backward=True, any_frame=False)
                    arr = _decode_until(container, stream, target, info, ffmpeg_error)
                except ffmpeg_error:
                    arr = None
            if arr is None:  # no pts or the seek missed: walk from the start
                container.close()
                container, stream = _open_stream(info.path)
                arr = _decode_sequential(container, stream, target, indices[i], t_list[i], info, ffmpeg_error)
            if arr is None:
                raise EmptySourceError(info.path, f"cannot decode the frame at {t_list[i]:.3f} s")
            out[i] = Image.fromarray(arr, "RGB")
    finally:
        container.close()
    return [out[i] for i in range(len(pts_list))]


def _decode_until(container, stream, target: int, info: SourceInfo, ffmpeg_error) -> np.ndarray | None:
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
    return to_display(best, info)


def _decode_sequential(container, stream, target: int | None, index: int | None, t_s: float, info: SourceInfo,
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
                if (index is not None and n - 1 >= index) or (index is None and (n - 1) / info.fps >= t_s - 1e-6):
                    break
    except ffmpeg_error:
        pass
    if best is None:
        return None
    return to_display(best, info)


def load_still(path: Path) -> "Image.Image":
    """A still as full-resolution RGB, EXIF orientation applied, within genart's pixel limit.

    Raises:
        ImageTooLargeError: more pixels than ``genart.imaging.max_image_pixels()`` (checked from the header).
        UnsupportedMediaError: not a readable image.
    """

    return load_rgb(path, upright=True)


@lru_cache(maxsize=64)
def _sha256_cached(path: str, size: int, mtime_ns: int) -> str:
    return sha256_file(path)


def file_sha256(path: Path) -> str:
    """sha256 of a file, cached per process by (path, size, mtime) so a title is hashed once."""
    st = path.stat()
    return _sha256_cached(str(path.resolve()), st.st_size, st.st_mtime_ns)
