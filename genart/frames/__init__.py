"""The frames stage: shots and key frames from a video, an image or a folder of stills.

``extract_keyframes`` is the one call the pipeline makes; ``analyse`` returns the same key frames
with everything they were chosen from (``FramesResult``: shots, cuts, transitions, bars,
characters, persistent logos), for the ``frames`` command.

A video is decoded once, sequentially (``decode.VideoScan``). Every frame goes, at about 256 px, to
PySceneDetect's detector (``shots``) and to the transition detector (``transitions``: fades,
dissolves, wipes). A few frames a second (``sample_fps``) are measured at analysis size and then
dropped, so memory stays flat for a feature-length title:

1. bars first (``borders``): the first samples are held back until the letterbox / pillarbox
   bars are known, and every sample is measured without them;
2. exposure, contrast, sharpness, colourfulness, NIQE-like naturalness, rule of thirds, motion,
   title-card look, a perceptual hash (``quality``);
3. real faces with their pose (``faces``: YuNet, checked, a quarter turn tried now and then), the
   68-point landmarks of each (``people``: eyes open, expression), linked into tracks;
4. burned-in text on a sparse sample (``text``: PP-OCRv4), and the edges that never move.

After the scan: transitions mark the samples inside them, text that persists across the title is
a logo, faces that flicker or sit inside a logo are dropped, and the selection (``select``) runs on
the measures alone. Only the chosen frames are decoded again at full resolution, by seeking; they
are cropped to the picture, read for text once more (a chosen frame that turns out to be a screen
of text is swapped for the next best), and the face tracks are embedded and clustered into
characters (``people``).

Importing this package is cheap: PyAV, OpenCV, onnxruntime, dlib and PySceneDetect load when a
function is called.
"""

from __future__ import annotations

import math
import numbers
import time
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Iterator, Mapping, Sequence

from genart.errors import EmptySourceError, InvalidArgumentError, MediaWarning, UnsupportedMediaError, warn
from genart.frames.decode import SourceInfo, probe_source
from genart.frames.faces import detect_faces, find_faces
from genart.progress import ProgressFn, report
from genart.types import Box, FaceFacts, FramesResult, KeyFrame, Region, ScoreSet, Shot, stable_id
from genart import imaging

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np
    from PIL import Image

    from genart.frames.borders import Bars
    from genart.frames.faces import Face
    from genart.frames.select import Candidate, Selection

__all__ = ["extract_keyframes", "analyse", "detect_faces", "find_faces", "probe_source", "SourceInfo",
           "FramesResult", "Shot"]

#: Long side of the analysis copy of each sampled frame (faces are searched on it; the other
#: measures use a 256-px copy of it).
SAMPLE_LONG_SIDE = 640
#: Consecutive samples of one shot whose hashes differ in at most this many bits share their faces
#: (a held shot: the detector would find the same faces again).
SAME_FRAME_BITS = 4
#: Every this many samples with a picture, the face detector also tries the frame turned a quarter
#: each way (a clip filmed on its side), on a copy ``ROTATION_CHECK_SIDE`` long; the orientation
#: that finds surer faces is kept.
ROTATION_CHECK_EVERY = 6
ROTATION_CHECK_SIDE = 320
#: Consecutive samples whose hashes differ in at most this many bits continue one scene: their
#: faces may be one track, their text may be borrowed.
SAME_SCENE_BITS = 32
BORROW_TEXT_BITS = 12
BORROW_TEXT_S = 1.5
#: A face under ``SURE_FACE`` seen in one sample but in none of its look-alike neighbours
#: (hashes within ``FLICKER_BITS``, ``FLICKER_S`` away) is a flicker of the detector, not a person.
SURE_FACE = 0.85
FLICKER_BITS = 10
FLICKER_S = 1.5
#: Read the text of at most one sample per this many seconds, however fast the picture changes.
MIN_READ_GAP_S = 1.0
#: Bright lettering in the subtitle zone counts this much towards the title-card look.
SUBTITLE_WEIGHT = 0.4
#: Chosen frames that turn out to be screens of text are swapped at most this many times.
SWAP_ROUNDS = 3


def _check_args(max_frames: object, sample_fps: object) -> None:
    if isinstance(max_frames, bool) or not isinstance(max_frames, numbers.Integral) or max_frames < 1:
        raise InvalidArgumentError("max_frames", max_frames, "an integer >= 1")
    if (isinstance(sample_fps, bool) or not isinstance(sample_fps, numbers.Real)
            or not math.isfinite(sample_fps) or sample_fps <= 0):
        raise InvalidArgumentError("sample_fps", sample_fps, "a number of frames per second > 0")


Cast = Mapping[str, "str | Path | Sequence[str | Path]"]


def extract_keyframes(source: "str | Path", max_frames: int = 4, *, sample_fps: float = 2.0,
                      progress: ProgressFn | None = None, detector: str = "content",
                      threshold: float | None = None, cast: Cast | None = None) -> list[KeyFrame]:
    """Pick up to ``max_frames`` good, different key frames from ``source``, in time order.

    Args:
        source: a video file (anything FFmpeg reads), a single image, or a folder of stills
            (png/jpg/jpeg/webp/bmp/tif, taken in name order).
        max_frames: at most this many key frames are returned (fewer when the source has fewer
            distinct usable frames; ``analyse`` says why in ``FramesResult.warnings``).
        sample_fps: candidate frames analysed per second of video (short clips get at least 16).
        progress: called as ``progress("frames", done, total)`` while frames are analysed.
        detector: PySceneDetect's ``"content"`` or ``"adaptive"`` detector for the shots.
        threshold: that detector's threshold (None: PySceneDetect's default).
        cast: casting notes: a name -> reference image path(s) of that person; a character whose
            face matches takes the name (``KeyFrame.people[i].character``).

    Returns:
        ``KeyFrame`` list sorted by ``t_s``, each with its full-resolution ``image`` (square
        pixels, upright, letterbox/pillarbox bars cropped away: ``active_area`` says where the
        picture lies in the source frame), ``faces`` in its pixels with ``people`` (one
        ``FaceFacts`` per face: confidence, eyes open, expression, pose, character), ``regions``
        (burned-in text, subtitles, logos, watermarks in its pixels), its ``shot`` (0-based) and
        ``scores`` by name: sharpness, exposure, contrast, colourfulness, brightness,
        naturalness (NIQE-like no-reference quality), faces (count), face_area, face_frontal,
        face_x, face_y, eyes_open, expression, characters (count), lead (1 when the title's lead
        is in it), text_share, thirds, motion, blur, motion_blur, fade, title_card, transition
        (the last five are penalties: 1 is bad) and quality (the combined score, 0-1). For stills
        ``t_s``, ``frame_index`` and ``shot`` are the still's index in the sorted folder and
        ``source`` is the still's own path (its id is made from that file's sha256); for a video
        ``source`` is the video's path.

    Raises:
        InvalidArgumentError: ``max_frames`` < 1, ``sample_fps`` <= 0, an unknown detector, a cast
            image without a face.
        SourceNotFoundError: ``source`` (or a cast image) does not exist.
        UnsupportedMediaError: ``source`` is not a readable video or image.
        EmptySourceError: no images in the folder, no video stream, or no decodable frame.

    A damaged video yields the key frames found before the damage, with a ``RuntimeWarning``.
    """
    return list(analyse(source, max_frames, sample_fps=sample_fps, progress=progress, detector=detector,
                        threshold=threshold, cast=cast).keyframes)


def analyse(source: "str | Path", max_frames: int = 12, *, sample_fps: float = 2.0,
            progress: ProgressFn | None = None, detector: str = "content",
            threshold: float | None = None, cast: Cast | None = None) -> FramesResult:
    """Shots, cuts, transitions, bars, characters and key frames of ``source`` (arguments as
    ``extract_keyframes``).

    Returns:
        A ``FramesResult``: ``shots`` and ``cuts_s``/``cut_frames`` from PySceneDetect's detector
        over every frame, ``transitions``, ``active_area``, ``characters`` (lead first),
        ``regions`` (persistent logos and watermarks), ``keyframes`` as ``extract_keyframes``
        returns them, and ``warnings`` (also why fewer key frames came back than were asked).

    Raises:
        The errors of ``extract_keyframes``.
    """
    _check_args(max_frames, sample_fps)
    from genart.frames.shots import make_detector

    make_detector(detector, threshold=threshold)  # argument errors before any decoding
    info = probe_source(source)
    from genart.frames import people

    refs = people.load_cast(cast) if cast else {}
    if info.kind == "video":
        return _from_video(info, int(max_frames), float(sample_fps), progress, detector, threshold, refs)
    return _from_stills(info, int(max_frames), progress, refs)


# --- timing -------------------------------------------------------------------------------------------
class _Timer:
    """Seconds spent per part of the analysis (``FramesResult.timings``).

    Parts are timed in CPU seconds of the analysing thread (``time.thread_time``), so a figure says
    what the part costs even on a machine shared with other work; ``wall`` and ``cpu`` close the list:
    the whole call's wall-clock seconds and its process CPU seconds (decoding thread included).
    """

    def __init__(self) -> None:
        self.spent: dict[str, float] = {}
        self.start = time.perf_counter()
        self.start_cpu = time.process_time()

    @contextmanager
    def __call__(self, name: str) -> Iterator[None]:
        t = time.thread_time()
        try:
            yield
        finally:
            self.spent[name] = self.spent.get(name, 0.0) + time.thread_time() - t

    def result(self) -> tuple[tuple[str, float], ...]:
        parts = {k: round(v, 4) for k, v in self.spent.items()}
        return tuple(parts.items()) + (("wall", round(time.perf_counter() - self.start, 4)),
                                       ("cpu", round(time.process_time() - self.start_cpu, 4)))


# --- one sample's measures ------------------------------------------------------------------------------
class _Analyst:
    """What one title's samples share while they are measured: the faces' orientation, the text
    reading schedule, the face tracks and the edge votes."""

    def __init__(self, *, stills: bool = False) -> None:
        from genart.frames import people, text
        from genart.frames.people import PeopleTracker
        from genart.frames.text import EdgeVotes

        self.timer = _Timer()
        self.stills = stills
        self.orient = 0
        self.since_check = ROTATION_CHECK_EVERY
        self.people = PeopleTracker() if people.available() else None
        self.edges = EdgeVotes()
        self.read_text = text.available()
        self.last_read: "tuple[float, int, int] | None" = None  # (t, hash, scene)

    def _faces(self, rgb: "np.ndarray") -> "tuple[Face, ...]":
        from genart.frames.faces import QUARTER_TURNS, ROTATION_MARGIN

        if self.stills:
            with self.timer("faces"):
                return tuple(find_faces(rgb, rotations=QUARTER_TURNS))
        self.since_check += 1
        with self.timer("faces"):
            faces = find_faces(rgb, rotations=(self.orient,))
            if self.since_check >= ROTATION_CHECK_EVERY:
                self.since_check = 0
                others = tuple(r for r in QUARTER_TURNS if r != self.orient)
                turned = find_faces(rgb, rotations=others, long_side=ROTATION_CHECK_SIDE)
                if turned and (sum(f.box.score for f in turned) - ROTATION_MARGIN
                               > sum(f.box.score for f in faces)):
                    roll = turned[0].roll
                    self.orient = 90 if roll > 60 else 270 if roll < -60 else 0
                    faces = find_faces(rgb, rotations=(self.orient,))
        return tuple(faces)

    def _should_read(self, t_s: float, phash: int, scene: int) -> bool:
        from genart.frames import quality as q
        from genart.frames.text import NEW_PICTURE_BITS, SCAN_INTERVAL_S

        if not self.read_text:
            return False
        if self.stills or self.last_read is None or scene != self.last_read[2]:
            return True
        gap = t_s - self.last_read[0]
        if gap < MIN_READ_GAP_S:
            return False
        return gap >= SCAN_INTERVAL_S or q.hash_distance(phash, self.last_read[1]) > NEW_PICTURE_BITS

    def measure(self, idx: int, pts: "int | None", t_s: float, frame_index: int, rgb: "np.ndarray", *,
                motion: float = 0.0, prev: "Candidate | None" = None, scene: int = 0) -> "Candidate":
        """Measures of one sample (``rgb`` at analysis size, bars already cropped); faces and text
        stay in the sample's pixels. ``prev``: the previous sample (a held shot reuses its faces);
        ``scene``: changes at every cut (faces are tracked and text borrowed within one)."""
        from genart.frames import quality as q
        from genart.frames.faces import largest_face_fraction
        from genart.frames.select import Candidate
        from genart.frames.text import detect_text, overlap

        with self.timer("measures"):
            small = imaging.downscale(rgb)
            m = q.measure(small)
            h, w = rgb.shape[:2]
            phash = q.frame_hash(small)
            blank = q.is_black(m) or q.is_uniform(m)
        same_scene = (prev is not None and prev.sample_size == (w, h) and scene == prev.shot
                      and q.hash_distance(phash, prev.phash) <= SAME_SCENE_BITS)
        if blank:
            faces: tuple = ()
        elif same_scene and prev is not None and q.hash_distance(phash, prev.phash) <= SAME_FRAME_BITS:
            faces = prev.faces
        else:
            faces = self._faces(rgb)
        looks: tuple = tuple(None for _ in faces)
        if faces and self.people is not None:
            with self.timer("landmarks"):
                got = self.people.observe(idx, t_s, rgb, faces, continues=same_scene)
            looks = tuple(None if lk is None else (lk.eyes_open, lk.expression) for lk in got)
        boxes: tuple = ()
        read = False
        if not blank and self._should_read(t_s, phash, scene):
            with self.timer("text"):
                boxes = tuple(b for b in detect_text(rgb) if not any(overlap(b, f.box) > 0.4 for f in faces))
            read = True
            self.last_read = (t_s, phash, scene)
        with self.timer("measures"):
            if not blank and not self.stills:
                self.edges.push(rgb, scene)
            area = largest_face_fraction([f.box for f in faces], w, h)
            face_sharp = q.region_sharpness(rgb, faces[0].box) if faces else 0.0
            card, (overlay, line) = q.card_score(rgb), q.overlay_band(rgb)
            if line > q.SUBTITLE_ZONE and self.read_text:
                # a subtitle line, not a title: the text detector records it as a region and the text
                # penalty weighs it; dropping every subtitled frame would empty a subtitled film
                overlay *= SUBTITLE_WEIGHT
            if faces:  # the subject: the faces' joint centre, else what stands out (spectral-residual saliency)
                cx, cy = _faces_centre(faces, w, h)
            elif blank:
                cx, cy = 0.5, 0.5
            else:
                cx, cy = imaging.saliency_center(small)
            natural = 0.0 if blank else q.naturalness(rgb)
        return Candidate(
            index=idx, pts=pts, t_s=t_s, frame_index=frame_index, measures=m, phash=phash, thumb=q.thumb(small),
            faces=faces, face_area=area, sample_size=(w, h), shot=scene, naturalness=natural,
            thirds=q.thirds_score(cx, cy), title_card=max(card, overlay), overlay=overlay, motion=motion,
            face_sharpness=face_sharp, face_keys=tuple(range(len(faces))), looks=looks, text_boxes=boxes,
            text_read=read,
        )


def _faces_centre(faces: "Sequence[Face]", w: int, h: int) -> tuple[float, float]:
    x0 = min(f.box.x for f in faces)
    x1 = max(f.box.x + f.box.w for f in faces)
    y0 = min(f.box.y for f in faces)
    y1 = max(f.box.y + f.box.h for f in faces)
    return (x0 + x1) / 2 / w, (y0 + y1) / 2 / h


# --- after the scan ------------------------------------------------------------------------------------
def _borrow_text(cands: "list[Candidate]") -> "list[Candidate]":
    """Unread samples take the text boxes of the nearest read sample of their scene that looks alike."""
    import bisect

    from genart.frames import quality as q

    reads = sorted((c for c in cands if c.text_read), key=lambda c: c.t_s)
    times = [r.t_s for r in reads]
    out = []
    for c in cands:
        if not c.text_read:
            lo, hi = bisect.bisect_left(times, c.t_s - BORROW_TEXT_S), bisect.bisect_right(times, c.t_s + BORROW_TEXT_S)
            near = [r for r in reads[lo:hi] if r.shot == c.shot and q.hash_distance(r.phash, c.phash) <= BORROW_TEXT_BITS]
            if near:
                c = replace(c, text_boxes=min(near, key=lambda r: abs(r.t_s - c.t_s)).text_boxes)
        out.append(c)
    return out


def _clean_faces(cands: "list[Candidate]", persistent: "list[Box]") -> "list[Candidate]":
    """Without faces that flicker (one sample, absent from look-alike neighbours) or lie inside a
    persistent logo or watermark (part of the channel's mark, not of the picture)."""
    from genart.frames import quality as q
    from genart.frames.faces import largest_face_fraction
    from genart.frames.text import iou, overlap

    out = []
    for i, c in enumerate(cands):
        if not c.faces:
            out.append(c)
            continue
        neighbours = [o for o in cands[max(0, i - 1):i] + cands[i + 1:i + 2]
                      if o.shot == c.shot and abs(o.t_s - c.t_s) <= FLICKER_S and o.sample_size == c.sample_size
                      and q.hash_distance(o.phash, c.phash) <= FLICKER_BITS]
        keep = []
        for k, f in enumerate(c.faces):
            if any(overlap(f.box, p) > 0.5 for p in persistent):
                continue
            if (f.box.score < SURE_FACE and neighbours
                    and not any(iou(f.box, g.box) >= 0.25 for o in neighbours for g in o.faces)):
                continue
            keep.append(k)
        if len(keep) != len(c.faces):
            faces = tuple(c.faces[k] for k in keep)
            w, h = c.sample_size
            c = replace(c, faces=faces, face_keys=tuple(c.face_keys[k] for k in keep),
                        looks=tuple(c.looks[k] for k in keep) if c.looks else (),
                        face_area=largest_face_fraction([f.box for f in faces], w, h))
        out.append(c)
    return out


def _with_text_share(cands: "list[Candidate]", persistent: "list[Box]") -> "list[Candidate]":
    from genart.frames.text import overlap, text_share

    out = []
    for c in cands:
        own = [b for b in c.text_boxes if not any(overlap(b, p) > 0.5 for p in persistent)]
        out.append(replace(c, text_share=text_share(own, *c.sample_size)))
    return out


@dataclass
class _Frame:
    """A chosen candidate's full-resolution picture (bars cropped) and what was read on it."""

    image: "Image.Image"
    regions: list[Region]
    text_share: float


def _read_keyframe(image: "Image.Image", persistent: "list[Box]") -> tuple[list[Region], float]:
    """The regions of a key frame (its own text lines, read, plus the title's persistent marks)."""
    import numpy as np

    from genart.frames import text

    rgb = np.asarray(image)
    lines = text.detect_text(rgb, text.KEYFRAME_LONG_SIDE)
    words = text.read_text(rgb, lines)
    return text.regions_for(lines, persistent, image.width, image.height, words)


def _choose(cands: "list[Candidate]", max_frames: int, *, source: Path, shot_lengths: "dict[int, float] | None",
            grab: "Callable[[list[Candidate]], list[Image.Image]]", persistent_kf: "Callable[[Candidate], list[Box]]",
            timer: _Timer) -> "tuple[Selection, dict[int, _Frame]]":
    """Select, grab the chosen frames, read them; swap any that turn out to be screens of text."""
    from genart.frames import text
    from genart.frames.select import TEXT_DROP, select_detailed

    excluded: set[int] = set()
    frames: dict[int, _Frame] = {}
    sel = None
    for _ in range(SWAP_ROUNDS + 1):
        pool = [c for c in cands if c.index not in excluded]
        if not pool:
            break
        new = select_detailed(pool, max_frames, source=source, shot_lengths=shot_lengths)
        if sel is not None and not new.chosen:
            break
        sel = new
        need = [c for c in sel.chosen if c.index not in frames]
        for c, img in zip(need, grab(need)):
            if text.available():
                with timer("text"):
                    regions, share = _read_keyframe(img, persistent_kf(c))
            else:
                regions, share = [], 0.0
            frames[c.index] = _Frame(img, regions, share)
        bad = {c.index for c in sel.chosen if frames[c.index].text_share >= TEXT_DROP}
        if not bad or len(bad) == len(sel.chosen) and len(pool) == len(sel.chosen):
            break
        excluded |= bad
    assert sel is not None  # cands is never empty here
    return sel, frames


class _Mapper:
    """From a sample's pixels (bars of the analysis cropped) to a key frame's (final bars cropped)."""

    def __init__(self, analysis: "Bars", final: "Bars", sample_size: tuple[int, int], kf_size: tuple[int, int]):
        sw, sh = sample_size
        fw = max(1, sw - final.left - final.right)
        fh = max(1, sh - final.top - final.bottom)
        self.dx, self.dy = analysis.left - final.left, analysis.top - final.top
        self.kx, self.ky = kf_size[0] / fw, kf_size[1] / fh
        self.w, self.h = kf_size

    def box(self, b: Box) -> Box:
        x0 = max(0.0, (b.x + self.dx) * self.kx)
        y0 = max(0.0, (b.y + self.dy) * self.ky)
        x1 = min(float(self.w), (b.x + b.w + self.dx) * self.kx)
        y1 = min(float(self.h), (b.y + b.h + self.dy) * self.ky)
        return Box(x0, y0, max(0.0, x1 - x0), max(0.0, y1 - y0), b.score)


def _keyframe(c: "Candidate", frame: _Frame, digest: str, source: Path, mapper: _Mapper,
              active: tuple[int, int, int, int], labels: dict[tuple[int, int], str], lead: str | None) -> KeyFrame:
    """A KeyFrame for a chosen candidate, its picture and facts moved into that picture's pixels."""
    from genart.frames.text import overlap

    faces, people = [], []
    for k, f in zip(c.face_keys, c.faces):
        box = mapper.box(f.box)
        if box.w < 2 or box.h < 2 or any(r.persistent and overlap(box, r.box) > 0.5 for r in frame.regions):
            continue
        faces.append(box)
        people.append((k, f))
    facts = []
    look_of = dict(zip(c.face_keys, c.looks)) if c.looks else {}
    for k, f in people:
        look = look_of.get(k)
        facts.append(FaceFacts(confidence=float(f.box.score), eyes_open=None if look is None else float(look[0]),
                               expression=None if look is None else float(look[1]), frontal=f.frontal,
                               roll=float(f.roll), character=labels.get((c.index, k))))
    chars = {p.character for p in facts if p.character}
    scores = dict(c.scores())
    scores.update({"faces": float(len(faces)), "text_share": frame.text_share, "characters": float(len(chars)),
                   "lead": 1.0 if lead is not None and lead in chars else 0.0})
    if len(faces) != len(c.faces):
        big = max(faces, key=lambda b: b.area, default=None)
        scores["face_area"] = big.area / max(1, frame.image.width * frame.image.height) if big else 0.0
    return KeyFrame(
        id=stable_id(digest, c.frame_index), source=str(source), t_s=float(c.t_s), frame_index=int(c.frame_index),
        shot=int(c.shot), width=frame.image.width, height=frame.image.height, scores=ScoreSet.of(scores),
        faces=tuple(faces), image=frame.image, active_area=active, regions=tuple(frame.regions),
        people=tuple(facts),
    )


def _warn(messages: list[str], msg: str | None) -> None:
    """Record ``msg`` on the result and warn the genart way (a run in progress records it too)."""
    if msg:
        messages.append(msg)
        warn(msg, MediaWarning, stacklevel=4)


def embed_budget(duration_s: float) -> int:
    """Face embeddings a title may spend (each costs 100-300 ms on a CPU): 5, plus one per 8 s."""
    return int(5 + max(0.0, duration_s) / 8.0)


# --- videos ---------------------------------------------------------------------------------------------
def _from_video(info: SourceInfo, max_frames: int, sample_fps: float, progress: ProgressFn | None,
                detector: str, threshold: float | None, refs: dict) -> FramesResult:
    from genart.frames import quality as q
    from genart.frames.borders import WARMUP, BarVotes
    from genart.frames.decode import (ScanFrame, VideoScan, expected_samples, file_sha256, grab_video_frames,
                                      sample_interval)
    from genart.frames.shots import ShotTracker, detect_size, make_detector, shot_of
    from genart.frames.text import merge_places, persistent_groups
    from genart.frames.transitions import TransitionTracker, inside

    expected = expected_samples(info, sample_fps)
    interval = sample_interval(info, sample_fps)
    tracker = ShotTracker(make_detector(detector, threshold=threshold))
    fades = TransitionTracker(info.fps)
    scan = VideoScan(info, detect_size=detect_size(info.coded_width, info.coded_height),
                     interval_s=interval, sample_long_side=SAMPLE_LONG_SIDE)
    analyst = _Analyst()
    timer = analyst.timer
    votes: BarVotes | None = None
    crop: Bars | None = None
    held: list[tuple[ScanFrame, np.ndarray, float, int]] = []  # waiting for the bars: (frame, sample, motion, scene)
    cands: list = []
    prev_small = None

    def measure(f: ScanFrame, sample: np.ndarray, motion: float, scene: int, area: tuple[int, int, int, int]) -> None:
        x, y, w, h = area  # the picture inside the bars, in the sample's pixels
        rgb = sample[y:y + h, x:x + w]
        prev = cands[-1] if cands else None
        cands.append(analyst.measure(len(cands), f.pts, f.t_s, f.index, rgb, motion=motion, prev=prev, scene=scene))
        report(progress, "frames", len(cands), max(expected, len(cands)))

    for f in scan:
        with timer("shots"):
            tracker.push(f.index, f.t_s, f.detector_copy())
        with timer("transitions"):
            fades.push(f.index, f.t_s, f.detector_copy())
        if f.sample is not None:
            if votes is None:
                votes = BarVotes(f.sample.shape[1], f.sample.shape[0])
            with timer("bars"):
                votes.push(f.sample)
            held.append((f, f.sample, q.motion_between(prev_small, f.small), len(tracker.cuts)))
            if crop is None and (votes.n >= WARMUP or len(held) >= 3 * WARMUP):
                crop = votes.bars()
            if crop is not None:
                for item in held:
                    measure(*item, crop.area(votes.width, votes.height))
                held = []
        prev_small = f.small
    if votes is None:  # not one sampled frame decoded
        raise EmptySourceError(info.path, "no decodable video frames")
    if crop is None:  # fewer samples than the warm-up: the bars the votes so far agree on
        crop = votes.bars()
    for item in held:
        measure(*item, crop.area(votes.width, votes.height))
    if not cands:
        raise EmptySourceError(info.path, "no decodable video frames")
    period = 1.0 / max(info.fps, 1e-6)
    spans = tracker.finish(period)
    cuts = tracker.cuts
    transitions = fades.finish(period)
    final = votes.bars()
    sw, sh = votes.width, votes.height
    active_bars = final.scaled(info.width / sw, info.height / sh, info.width, info.height)
    active = active_bars.area(info.width, info.height)

    def transition_at(t_s: float) -> str:
        tr = inside(t_s, transitions)
        return tr.kind if tr is not None else ""

    cands = [replace(c, shot=shot_of(c.frame_index, cuts), transition=transition_at(c.t_s)) for c in cands]
    cands = _borrow_text(cands)
    # persistent marks, in the pixels of the analysis samples
    reads = [(c.shot, list(c.text_boxes)) for c in cands if c.text_read]
    aw, ah = cands[0].sample_size
    places = merge_places(persistent_groups(reads, len(spans)) + analyst.edges.places(aw, ah))
    cands = _clean_faces(_with_text_share(cands, places), places)
    mapper = _Mapper(crop, final, (sw, sh), (active[2], active[3]))
    persistent_kf = [mapper.box(b) for b in places]
    # selection treats the picture after a dissolve or wipe as a new shot (PySceneDetect sees no cut there)
    shot_of_sample = {c.index: c.shot for c in cands}
    segments, seg_lengths = _segments(cands, spans, transitions)
    cands = [replace(c, shot=segments[c.index]) for c in cands]

    def grab(chosen: list) -> list:
        with timer("grab"):
            images = grab_video_frames(info, [c.pts for c in chosen], [c.t_s for c in chosen],
                                       [c.frame_index for c in chosen])
        x, y, w, h = active
        return [img if (w, h) == img.size else img.crop((x, y, x + w, y + h)) for img in images]

    sel, frames = _choose(cands, max_frames, source=info.path, shot_lengths=seg_lengths,
                          grab=grab, persistent_kf=lambda c: persistent_kf, timer=timer)
    characters, labels = _characters(analyst, sel.chosen, interval, spans[-1].end_s if spans else 0.0, refs)
    lead = characters[0].label if characters else None
    digest = file_sha256(info.path)
    report(progress, "frames", len(cands), len(cands))
    keyframes = tuple(_keyframe(replace(c, text_share=frames[c.index].text_share, shot=shot_of_sample[c.index]),
                                frames[c.index], digest, info.path, mapper, active, labels, lead)
                      for c in sel.chosen)
    shots = tuple(Shot(i, s.start_s, s.end_s, s.start_frame, s.end_frame) for i, s in enumerate(spans))
    messages = list(scan.messages)
    _warn(messages, sel.why)
    return FramesResult(
        source=str(info.path), kind="video", shots=shots, cuts_s=tuple(s.start_s for s in shots[1:]),
        cut_frames=tuple(cuts), keyframes=keyframes, fps=info.fps, n_frames=scan.decoded,
        duration_s=spans[-1].end_s if spans else 0.0, width=info.width, height=info.height,
        detector=detector, warnings=tuple(messages), active_area=active, transitions=tuple(transitions),
        characters=tuple(characters), regions=tuple(_persistent_regions(persistent_kf, active[2], active[3])),
        timings=timer.result(), asked=max_frames,
    )


def _segments(cands: "list[Candidate]", spans: list, transitions: list) -> tuple[dict[int, int], dict[int, float]]:
    """Each sample's segment (a shot, split where a transition ends) and each segment's length in seconds."""
    import bisect

    end = spans[-1].end_s if spans else max((c.t_s for c in cands), default=0.0)
    bounds = sorted({float(sp.start_s) for sp in spans} | {float(t.end_s) for t in transitions if t.end_s < end}
                    | {0.0})
    lengths = {k: (bounds[k + 1] if k + 1 < len(bounds) else end) - b for k, b in enumerate(bounds)}
    return {c.index: max(0, bisect.bisect_right(bounds, c.t_s) - 1) for c in cands}, lengths


def _persistent_regions(boxes: "list[Box]", width: int, height: int) -> list[Region]:
    from genart.frames.text import kind_of

    return [Region(b, kind_of(b, width, height, persistent=True, screen=False), "", True) for b in boxes]


def _characters(analyst: _Analyst, chosen: "list[Candidate]", interval_s: float, duration_s: float,
                refs: dict) -> tuple[list, dict[tuple[int, int], str]]:
    if analyst.people is None:
        return [], {}
    with analyst.timer("identity"):
        return analyst.people.characters(interval_s=interval_s, first=[c.index for c in chosen],
                                         budget=embed_budget(duration_s), cast=refs)


# --- stills ---------------------------------------------------------------------------------------------
def _from_stills(info: SourceInfo, max_frames: int, progress: ProgressFn | None, refs: dict) -> FramesResult:
    import numpy as np

    from genart.frames.borders import Bars
    from genart.frames.decode import file_sha256, load_still

    analyst = _Analyst(stills=True)
    cands = []
    messages: list[str] = []
    n = len(info.paths)
    for i, path in enumerate(info.paths):
        try:
            still = load_still(path)
        except UnsupportedMediaError as exc:
            if n == 1:
                raise
            # one bad file in a folder of stills should not sink the run
            _warn(messages, f"skipping unreadable still: {exc.message}")
            continue
        rgb = imaging.downscale(np.asarray(still), SAMPLE_LONG_SIDE)
        cands.append(analyst.measure(i, None, float(i), i, rgb, scene=i))
        report(progress, "frames", i + 1, n)
    if not cands:
        raise EmptySourceError(info.path, "no readable images")
    cands = _with_text_share(cands, [])
    # each still is its own shot (``measure`` numbers it), so the diverse pick is the best distinct stills

    def grab(chosen: list) -> list:
        return [load_still(info.paths[c.index]) for c in chosen]

    sel, frames = _choose(cands, max_frames, source=info.path, shot_lengths=None, grab=grab,
                          persistent_kf=lambda c: [], timer=analyst.timer)
    characters, labels = _characters(analyst, sel.chosen, 1.0, float(n), refs)
    lead = characters[0].label if characters else None
    keyframes = []
    for c in sel.chosen:
        frame = frames[c.index]
        w, h = frame.image.size
        mapper = _Mapper(Bars(), Bars(), c.sample_size, (w, h))
        keyframes.append(_keyframe(replace(c, text_share=frame.text_share), frame, file_sha256(info.paths[c.index]),
                                   info.paths[c.index], mapper, (0, 0, w, h), labels, lead))
    _warn(messages, sel.why)
    shots = tuple(Shot(c.index, float(c.index), float(c.index + 1), c.index, c.index + 1) for c in cands)
    return FramesResult(
        source=str(info.path), kind="stills", shots=shots, cuts_s=(), cut_frames=(), keyframes=tuple(keyframes),
        fps=info.fps, n_frames=len(cands), duration_s=float(n), width=info.width, height=info.height,
        warnings=tuple(messages), characters=tuple(characters), timings=analyst.timer.result(), asked=max_frames,
    )
