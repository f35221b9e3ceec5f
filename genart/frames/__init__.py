"""The frames stage: shots and key frames from a video, an image or a folder of stills.

``extract_keyframes`` is the one call the pipeline makes; ``analyse`` returns the same key frames
with the shots and cuts they were chosen from (``FramesResult``), for the ``frames`` command.

A video is decoded once, sequentially (``decode.VideoScan``): every frame goes, at about 256 px,
to PySceneDetect's detector (``shots``), and a few frames a second (``sample_fps``) are measured
at analysis size (exposure, contrast, sharpness, colourfulness, NIQE-like naturalness, faces with
their pose, rule of thirds, motion, title-card look, a perceptual hash) and then dropped, so
memory stays flat for a feature-length title. Selection runs on the measures alone (``select``),
and only the chosen frames are decoded again at full resolution, by seeking.

Importing this package is cheap: PyAV, OpenCV and PySceneDetect load when a function is called.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import TYPE_CHECKING

from genart.errors import EmptySourceError, InvalidArgumentError, MediaWarning, UnsupportedMediaError, warn
from genart.frames.decode import SourceInfo, probe_source
from genart.frames.faces import detect_faces, find_faces
from genart.progress import ProgressFn, report
from genart.types import FramesResult, KeyFrame, ScoreSet, Shot, stable_id

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from genart.frames.select import Candidate

__all__ = ["extract_keyframes", "analyse", "detect_faces", "find_faces", "probe_source", "SourceInfo",
           "FramesResult", "Shot"]

#: Long side of the analysis copy of each sampled frame (faces are searched on it; the other
#: measures use a 256-px copy of it).
SAMPLE_LONG_SIDE = 640
#: Consecutive samples of one shot whose hashes differ in at most this many bits share their faces
#: (a held shot: the detector would find the same faces again).
SAME_FRAME_BITS = 4


def _check_args(max_frames: object, sample_fps: object) -> None:
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 1:
        raise InvalidArgumentError("max_frames", max_frames, "an integer >= 1")
    if (isinstance(sample_fps, bool) or not isinstance(sample_fps, numbers.Real)
            or not math.isfinite(sample_fps) or sample_fps <= 0):
        raise InvalidArgumentError("sample_fps", sample_fps, "a number of frames per second > 0")


def extract_keyframes(source: "str | Path", max_frames: int = 4, *, sample_fps: float = 2.0,
                      progress: ProgressFn | None = None, detector: str = "content",
                      threshold: float | None = None) -> list[KeyFrame]:
    """Pick up to ``max_frames`` good, different key frames from ``source``, in time order.

    Args:
        source: a video file (anything FFmpeg reads), a single image, or a folder of stills
            (png/jpg/jpeg/webp/bmp/tif, taken in name order).
        max_frames: at most this many key frames are returned (fewer when the source has fewer
            distinct usable frames).
        sample_fps: candidate frames analysed per second of video (short clips get at least 16).
        progress: called as ``progress("frames", done, total)`` while frames are analysed.
        detector: PySceneDetect's ``"content"`` or ``"adaptive"`` detector for the shots.
        threshold: that detector's threshold (None: PySceneDetect's default).

    Returns:
        ``KeyFrame`` list sorted by ``t_s``, each with its full-resolution ``image`` (square
        pixels, upright), ``faces`` in its pixels, its ``shot`` (0-based) and ``scores`` by name:
        sharpness, exposure, contrast, colourfulness, brightness, naturalness (NIQE-like
        no-reference quality), faces (count), face_area, face_frontal, face_x, face_y, thirds,
        motion, blur, motion_blur, fade, title_card (the last four are penalties: 1 is bad) and
        quality (the combined score, 0-1). For stills ``t_s``, ``frame_index`` and ``shot`` are
        the still's index in the sorted folder and ``source`` is the still's own path (its id is
        made from that file's sha256); for a video ``source`` is the video's path.

    Raises:
        InvalidArgumentError: ``max_frames`` < 1, ``sample_fps`` <= 0, an unknown detector.
        SourceNotFoundError: ``source`` does not exist.
        UnsupportedMediaError: ``source`` is not a readable video or image.
        EmptySourceError: no images in the folder, no video stream, or no decodable frame.

    A damaged video yields the key frames found before the damage, with a ``RuntimeWarning``.
    """
    return list(analyse(source, max_frames, sample_fps=sample_fps, progress=progress, detector=detector,
                        threshold=threshold).keyframes)


def analyse(source: "str | Path", max_frames: int = 12, *, sample_fps: float = 2.0,
            progress: ProgressFn | None = None, detector: str = "content",
            threshold: float | None = None) -> FramesResult:
    """Shots, cuts and key frames of ``source`` (see ``extract_keyframes`` for the arguments).

    Returns:
        A ``FramesResult``: ``shots`` and ``cuts_s``/``cut_frames`` from PySceneDetect's detector
        over every frame, ``keyframes`` as ``extract_keyframes`` returns them.

    Raises:
        The errors of ``extract_keyframes``.
    """
    _check_args(max_frames, sample_fps)
    from genart.frames.shots import make_detector

    make_detector(detector, threshold=threshold)  # argument errors before any decoding
    info = probe_source(source)
    if info.kind == "video":
        return _from_video(info, int(max_frames), float(sample_fps), progress, detector, threshold)
    return _from_stills(info, int(max_frames), progress)


def _measure(idx: int, pts: "int | None", t_s: float, frame_index: int, rgb: "np.ndarray", *,
             motion: float = 0.0, prev: "Candidate | None" = None) -> "Candidate":
    """Measures of one sample (``rgb`` at analysis size); faces stay in the sample's pixels.

    ``prev``: the previous sample; when this one is the same picture (a held shot) its faces are
    reused instead of searched again.
    """
    from genart import imaging
    from genart.frames import quality as q
    from genart.frames.faces import largest_face_fraction
    from genart.frames.select import Candidate

    small = imaging.downscale(rgb)
    m = q.measure(small)
    h, w = rgb.shape[:2]
    phash = q.frame_hash(small)
    blank = q.is_black(m) or q.is_uniform(m)
    if blank:
        faces: tuple = ()
    elif prev is not None and prev.sample_size == (w, h) and q.hash_distance(phash, prev.phash) <= SAME_FRAME_BITS:
        faces = prev.faces
    else:
        faces = tuple(find_faces(rgb))
    area = largest_face_fraction([f.box for f in faces], w, h)
    face_sharp = q.region_sharpness(rgb, faces[0].box) if faces else 0.0
    card, overlay = q.card_score(rgb), q.overlay_score(rgb)
    if faces:  # the subject: the faces' joint centre, else what stands out (spectral-residual saliency)
        x0 = min(f.box.x for f in faces)
        x1 = max(f.box.x + f.box.w for f in faces)
        y0 = min(f.box.y for f in faces)
        y1 = max(f.box.y + f.box.h for f in faces)
        cx, cy = (x0 + x1) / 2 / w, (y0 + y1) / 2 / h
    elif blank:
        cx, cy = 0.5, 0.5
    else:
        cx, cy = imaging.saliency_center(small)
    return Candidate(
        index=idx, pts=pts, t_s=t_s, frame_index=frame_index, measures=m, phash=phash, thumb=q.thumb(small),
        faces=faces,
        face_area=area, sample_size=(w, h), shot=idx,
        naturalness=0.0 if blank else q.naturalness(rgb),
        thirds=q.thirds_score(cx, cy), title_card=max(card, overlay), overlay=overlay, motion=motion,
        face_sharpness=face_sharp,
    )


def _keyframe(c: "Candidate", digest: str, source: Path, image) -> KeyFrame:
    """A KeyFrame for a chosen candidate and its full-resolution ``image`` (faces scaled up to it)."""
    sw, sh = c.sample_size
    sx, sy = image.width / max(sw, 1), image.height / max(sh, 1)
    return KeyFrame(
        id=stable_id(digest, c.frame_index),
        source=str(source),
        t_s=float(c.t_s),
        frame_index=int(c.frame_index),
        shot=int(c.shot),
        width=image.width,
        height=image.height,
        scores=ScoreSet.of(c.scores()),
        faces=tuple(f.box.scaled(sx, sy) for f in c.faces),
        image=image,
    )


def _from_video(info: SourceInfo, max_frames: int, sample_fps: float, progress: ProgressFn | None,
                detector: str, threshold: float | None) -> FramesResult:
    from dataclasses import replace

    from genart.frames import quality as q
    from genart.frames.decode import VideoScan, expected_samples, file_sha256, grab_video_frames, sample_interval
    from genart.frames.select import select
    from genart.frames.shots import ShotTracker, detect_size, make_detector, shot_of

    expected = expected_samples(info, sample_fps)
    tracker = ShotTracker(make_detector(detector, threshold=threshold))
    scan = VideoScan(info, detect_size=detect_size(info.coded_width, info.coded_height),
                     interval_s=sample_interval(info, sample_fps), sample_long_side=SAMPLE_LONG_SIDE)
    cands: list = []
    prev_small = None
    for f in scan:
        tracker.push(f.index, f.t_s, f.small)
        if f.sample is not None:
            prev = cands[-1] if cands else None
            cands.append(_measure(len(cands), f.pts, f.t_s, f.index, f.sample,
                                  motion=q.motion_between(prev_small, f.small), prev=prev))
            report(progress, "frames", len(cands), max(expected, len(cands)))
        prev_small = f.small
    if not cands:
        raise EmptySourceError(info.path, "no decodable video frames")
    spans = tracker.finish(1.0 / max(info.fps, 1e-6))
    cuts = tracker.cuts
    cands = [replace(c, shot=shot_of(c.frame_index, cuts)) for c in cands]
    chosen = select(cands, max_frames, source=info.path,
                    shot_lengths={i: sp.end_s - sp.start_s for i, sp in enumerate(spans)})
    images = grab_video_frames(info, [c.pts for c in chosen], [c.t_s for c in chosen],
                               [c.frame_index for c in chosen])
    digest = file_sha256(info.path)
    report(progress, "frames", len(cands), len(cands))
    keyframes = tuple(_keyframe(c, digest, info.path, img) for c, img in zip(chosen, images))
    shots = tuple(Shot(i, s.start_s, s.end_s, s.start_frame, s.end_frame) for i, s in enumerate(spans))
    return FramesResult(
        source=str(info.path), kind="video", shots=shots, cuts_s=tuple(s.start_s for s in shots[1:]),
        cut_frames=tuple(cuts), keyframes=keyframes, fps=info.fps, n_frames=scan.decoded,
        duration_s=spans[-1].end_s if spans else 0.0, width=info.width, height=info.height,
        detector=detector, warnings=tuple(scan.messages),
    )


def _from_stills(info: SourceInfo, max_frames: int, progress: ProgressFn | None) -> FramesResult:
    import numpy as np

    from genart import imaging
    from genart.frames.decode import file_sha256, load_still
    from genart.frames.select import select

    cands = []
    messages = []
    n = len(info.paths)
    for i, path in enumerate(info.paths):
        try:
            still = load_still(path)
        except UnsupportedMediaError as exc:
            if n == 1:
                raise
            # one bad file in a folder of stills should not sink the run
            msg = f"skipping unreadable still: {exc.message}"
            messages.append(msg)
            warn(msg, MediaWarning, stacklevel=4)
            continue
        rgb = imaging.downscale(np.asarray(still), SAMPLE_LONG_SIDE)
        cands.append(_measure(i, None, float(i), i, rgb))
        report(progress, "frames", i + 1, n)
    if not cands:
        raise EmptySourceError(info.path, "no readable images")
    # each still is its own shot (``_measure`` numbers it), so the diverse pick is the best distinct stills
    chosen = select(cands, max_frames, source=info.path)
    keyframes = tuple(
        _keyframe(c, file_sha256(info.paths[c.index]), info.paths[c.index], load_still(info.paths[c.index]))
        for c in chosen
    )
    shots = tuple(Shot(c.index, float(c.index), float(c.index + 1), c.index, c.index + 1) for c in cands)
    return FramesResult(
        source=str(info.path), kind="stills", shots=shots, cuts_s=(), cut_frames=(), keyframes=keyframes,
        fps=info.fps, n_frames=len(cands), duration_s=float(n), width=info.width, height=info.height,
        warnings=tuple(messages),
    )
