"""Shot boundaries with PySceneDetect's detectors, fed from genart's own single decode.

PySceneDetect is used as a library of detectors (its ``SceneDetector`` interface: one
``process_frame`` per frame, ``post_process`` at the end), not as a video reader: genart decodes
once (``decode.VideoScan``), hands every frame to the detector at the size PySceneDetect's own
``SceneManager`` would use (long side about 256 px), and uses the same decode for the quality
samples. The detector and its thresholds are PySceneDetect's, so the cuts are the ones its
``detect()`` finds (see ``benchmarks/frames.py``).

scenedetect 0.6.x is required: its base install needs no OpenCV wheel of its own (0.7 pulls the
GUI ``opencv-python`` next to the project's ``opencv-python-headless``, two copies of ``cv2``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Callable

from genart.errors import InvalidArgumentError
from genart.frames.decode import VideoScan

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from genart.frames.decode import SourceInfo

DETECTORS = ("content", "adaptive")
#: PySceneDetect's default: a shot is at least this many frames long (shorter ones merge).
MIN_SCENE_LEN = 15
#: The long side PySceneDetect's SceneManager scales frames to before detection.
DETECT_LONG_SIDE = 256


@dataclass(frozen=True)
class ShotSpan:
    """One shot: frames ``[start_frame, end_frame)`` and seconds ``[start_s, end_s)``."""

    start_frame: int
    end_frame: int
    start_s: float
    end_s: float


def detect_size(width: int, height: int) -> tuple[int, int]:
    """The detector's frame size for a (coded) ``width`` x ``height`` video, as PySceneDetect computes it."""
    from scenedetect.scene_manager import compute_downscale_factor

    factor = compute_downscale_factor(max(width, height), DETECT_LONG_SIDE)
    if factor <= 1:
        return width, height
    return max(1, round(width / factor)), max(1, round(height / factor))


def make_detector(kind: str = "content", *, threshold: float | None = None, min_scene_len: int | None = None):
    """A fresh PySceneDetect detector.

    Args:
        kind: ``"content"`` (``ContentDetector``: a cut where the HSV difference between two
            frames passes ``threshold``, default 27) or ``"adaptive"`` (``AdaptiveDetector``: a cut
            where that difference stands out from its neighbours' by ``threshold``, default 3;
            steadier through camera moves).
        threshold: the detector's own threshold; None for PySceneDetect's default.
        min_scene_len: the shortest shot in frames (PySceneDetect's default 15).

    Raises:
        InvalidArgumentError: an unknown ``kind`` or a non-positive threshold or length.
    """
    from scenedetect.detectors import AdaptiveDetector, ContentDetector

    if kind not in DETECTORS:
        raise InvalidArgumentError("detector", kind, " or ".join(repr(d) for d in DETECTORS))
    if threshold is not None and not (isinstance(threshold, (int, float)) and threshold > 0):
        raise InvalidArgumentError("threshold", threshold, "a number > 0")
    msl = MIN_SCENE_LEN if min_scene_len is None else min_scene_len
    if isinstance(msl, bool) or not isinstance(msl, int) or msl < 1:
        raise InvalidArgumentError("min_scene_len", min_scene_len, "an integer >= 1 (frames)")
    if kind == "content":
        return ContentDetector(min_scene_len=msl, **({"threshold": float(threshold)} if threshold else {}))
    return AdaptiveDetector(min_scene_len=msl, **({"adaptive_threshold": float(threshold)} if threshold else {}))


class ShotTracker:
    """Feeds a PySceneDetect detector frame by frame and keeps each frame's time, for the shot list.

    Frame numbers are the decode order (0, 1, 2, ...), as in PySceneDetect; times are the frames'
    own timestamps, so a variable-frame-rate cut lands at its real time.
    """

    def __init__(self, detector) -> None:
        self.detector = detector
        self.cuts: list[int] = []
        self.times: list[float] = []

    def push(self, index: int, t_s: float, bgr: "np.ndarray") -> None:
        self.times.append(t_s)
        self.cuts += self.detector.process_frame(index, bgr)

    def finish(self, frame_period_s: float) -> list[ShotSpan]:
        """The shots, once every frame was pushed; ``frame_period_s`` is the last frame's length."""
        n = len(self.times)
        self.cuts += self.detector.post_process(n)
        cuts = sorted({c for c in self.cuts if 0 < c < n})
        self.cuts = cuts
        return spans(cuts, self.times, frame_period_s)


def spans(cuts: list[int], times: list[float], frame_period_s: float) -> list[ShotSpan]:
    """Shots between ``cuts`` over frames with timestamps ``times``; an empty clip has no shot."""
    n = len(times)
    if n == 0:
        return []
    bounds = [0, *cuts, n]
    end_t = times[-1] + frame_period_s
    out = []
    for a, b in zip(bounds, bounds[1:]):
        out.append(ShotSpan(a, b, float(times[a]), float(times[b] if b < n else end_t)))
    return out


def shot_of(frame_index: int, cuts: list[int]) -> int:
    """Which shot (0-based) a frame is in, given the sorted cut frames."""
    import bisect

    return bisect.bisect_right(cuts, frame_index)


def detect_shots(info: "SourceInfo", *, detector: str = "content", threshold: float | None = None,
                 min_scene_len: int | None = None,
                 progress: Callable[[int], None] | None = None) -> tuple[list[ShotSpan], list[int]]:
    """The shot pass alone: one decode at detector size, PySceneDetect's detector on every frame.

    Returns:
        (shots, cut frames).
    """

    tracker = ShotTracker(make_detector(detector, threshold=threshold, min_scene_len=min_scene_len))
    scan = VideoScan(info, detect_size=detect_size(info.coded_width or info.width, info.coded_height or info.height))
    for f in scan:
        tracker.push(f.index, f.t_s, f.detector_copy())
        if progress is not None and f.index % 64 == 0:
            progress(f.index)
    shots = tracker.finish(1.0 / max(info.fps, 1e-6))
    return shots, tracker.cuts
