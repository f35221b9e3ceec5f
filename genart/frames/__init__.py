"""The frames stage: key frames from a video, an image or a folder of stills.

``extract_keyframes`` is the one call the pipeline makes. A video is decoded once, sequentially, at
analysis size (about ``sample_fps`` frames a second); each sample is measured (exposure, contrast,
sharpness, colourfulness, faces, a perceptual hash, an HSV histogram) and then dropped, so memory
stays flat for a feature-length title. Selection runs on the measures alone, and only the chosen
frames are decoded again at full resolution, by seeking.

Importing this package is cheap: PyAV and OpenCV load when a function is called.
"""

from __future__ import annotations

import math
import numbers
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from genart.errors import EmptySourceError, InvalidArgumentError, UnsupportedMediaError
from genart.frames.decode import SourceInfo, probe_source
from genart.frames.faces import detect_faces
from genart.progress import ProgressFn, report
from genart.types import KeyFrame, ScoreSet, stable_id

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from genart.frames.select import Candidate

__all__ = ["extract_keyframes", "detect_faces", "probe_source", "SourceInfo"]

#: Long side of the copy faces are searched on during sampling (Haar's 24-px window is then ~9% of
#: a 16:9 frame's height: smaller faces do not make a thumbnail).
SAMPLE_LONG_SIDE = 480


def _check_args(max_frames: object, sample_fps: object) -> None:
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 1:
        raise InvalidArgumentError("max_frames", max_frames, "an integer >= 1")
    if (isinstance(sample_fps, bool) or not isinstance(sample_fps, numbers.Real)
            or not math.isfinite(sample_fps) or sample_fps <= 0):
        raise InvalidArgumentError("sample_fps", sample_fps, "a number of frames per second > 0")


def extract_keyframes(source: "str | Path", max_frames: int = 4, *, sample_fps: float = 2.0,
                      progress: ProgressFn | None = None) -> list[KeyFrame]:
    """Pick up to ``max_frames`` good, different key frames from ``source``, in time order.

    Args:
        source: a video file (anything FFmpeg reads), a single image, or a folder of stills
            (png/jpg/jpeg/webp/bmp/tif, taken in name order).
        max_frames: at most this many key frames are returned (fewer when the source has fewer
            distinct usable frames).
        sample_fps: candidate frames analysed per second of video (short clips get at least 16).
        progress: called as ``progress("frames", done, total)`` while frames are analysed.

    Returns:
        ``KeyFrame`` list sorted by ``t_s``, each with its full-resolution ``image``, ``faces`` in
        full-resolution pixels, and ``scores`` (sharpness, exposure, contrast, colourfulness,
        brightness, faces, face_area, quality). For stills ``t_s``, ``frame_index`` and ``shot`` are
        the still's index in the sorted folder and ``source`` is the still's own path (its id is
        made from that file's sha256); for a video ``source`` is the video's path.

    Raises:
        InvalidArgumentError: ``max_frames`` < 1 or ``sample_fps`` <= 0.
        SourceNotFoundError: ``source`` does not exist.
        UnsupportedMediaError: ``source`` is not a readable video or image.
        EmptySourceError: no images in the folder, no video stream, or no decodable frame.

    A damaged video yields the key frames found before the damage, with a ``RuntimeWarning``.
    """
    _check_args(max_frames, sample_fps)
    info = probe_source(source)
    if info.kind == "video":
        return _from_video(info, int(max_frames), float(sample_fps), progress)
    return _from_stills(info, int(max_frames), progress)


def _measure(idx: int, pts: "int | None", t_s: float, frame_index: int, rgb: "np.ndarray") -> "Candidate":
    """Measures of one sample (``rgb`` at ``SAMPLE_LONG_SIDE``); faces stay in the sample's pixels."""
    from genart import imaging
    from genart.frames import quality as q
    from genart.frames.faces import largest_face_fraction
    from genart.frames.select import Candidate

    small = imaging.downscale(rgb)
    m = q.measure(small)
    h, w = rgb.shape[:2]
    faces = () if q.is_black(m) or q.is_uniform(m) else tuple(detect_faces(rgb))
    area = largest_face_fraction(faces, w, h)
    return Candidate(
        index=idx, pts=pts, t_s=t_s, frame_index=frame_index, measures=m, hist=q.shot_histogram(small),
        phash=q.frame_hash(small), faces=faces, face_area=area, sample_size=(w, h),
        shot=idx, quality=q.composite_quality(m, len(faces), area),
    )


def _keyframe(c: "Candidate", digest: str, source: Path, image) -> KeyFrame:
    """A KeyFrame for a chosen candidate and its full-resolution ``image`` (faces scaled up to it)."""
    sw, sh = c.sample_size
    sx, sy = image.width / max(sw, 1), image.height / max(sh, 1)
    scores = {**c.measures.as_dict(), "faces": float(len(c.faces)), "face_area": c.face_area, "quality": c.quality}
    return KeyFrame(
        id=stable_id(digest, c.frame_index),
        source=str(source),
        t_s=float(c.t_s),
        frame_index=int(c.frame_index),
        shot=int(c.shot),
        width=image.width,
        height=image.height,
        scores=ScoreSet.of(scores),
        faces=tuple(b.scaled(sx, sy) for b in c.faces),
        image=image,
    )


def _from_video(info: SourceInfo, max_frames: int, sample_fps: float, progress: ProgressFn | None) -> list[KeyFrame]:
    from genart.frames.decode import expected_samples, file_sha256, grab_video_frames, iter_video_samples
    from genart.frames.select import select

    expected = expected_samples(info, sample_fps)
    cands = []
    for i, s in enumerate(iter_video_samples(info, sample_fps, SAMPLE_LONG_SIDE)):
        cands.append(_measure(i, s.pts, s.t_s, s.frame_index, s.rgb))
        report(progress, "frames", i + 1, max(expected, i + 1))
    if not cands:
        raise EmptySourceError(info.path, "no decodable video frames")
    chosen = select(cands, max_frames, source=info.path)
    images = grab_video_frames(info, [c.pts for c in chosen], [c.t_s for c in chosen])
    digest = file_sha256(info.path)
    report(progress, "frames", len(cands), len(cands))
    return [_keyframe(c, digest, info.path, img) for c, img in zip(chosen, images)]


def _from_stills(info: SourceInfo, max_frames: int, progress: ProgressFn | None) -> list[KeyFrame]:
    import numpy as np

    from genart import imaging
    from genart.frames.decode import file_sha256, load_still
    from genart.frames.select import select

    cands = []
    n = len(info.paths)
    for i, path in enumerate(info.paths):
        try:
            still = load_still(path)
        except UnsupportedMediaError as exc:
            if n == 1:
                raise
            # one bad file in a folder of stills should not sink the run
            warnings.warn(f"skipping unreadable still: {exc.message}", RuntimeWarning, stacklevel=3)
            continue
        rgb = imaging.downscale(np.asarray(still), SAMPLE_LONG_SIDE)
        cands.append(_measure(i, None, float(i), i, rgb))
        report(progress, "frames", i + 1, n)
    if not cands:
        raise EmptySourceError(info.path, "no readable images")
    # each still is its own shot, so the diverse pick is simply the best distinct stills
    chosen = select(cands, max_frames, source=info.path, cut_shots=False)
    return [
        _keyframe(c, file_sha256(info.paths[c.index]), info.paths[c.index], load_still(info.paths[c.index]))
        for c in chosen
    ]
