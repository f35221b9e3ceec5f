"""From measured candidates to key frames: shots, filters, near-duplicate removal, a diverse pick.

Pure functions over ``Candidate`` records (no pixels), so selection is cheap, testable on its own,
and the same for videos and folders of stills.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field, replace

import numpy as np

from genart.frames import quality as q
from genart.types import Box

#: Consecutive samples whose HSV histograms are further apart than this are always a cut.
CUT_THRESHOLD = 0.35
#: ... and a jump above ``SOFT_CUT_THRESHOLD`` is a cut when it is ``CUT_RATIO`` times the typical
#: jump around it (PySceneDetect's adaptive idea): a cut between two similar-looking shots stands out
#: from its quiet neighbours, while a busy action scene's jumps do not stand out from each other.
SOFT_CUT_THRESHOLD = 0.18
CUT_RATIO = 3.0
CUT_WINDOW = 4
#: Two key frames from one shot are at least this many seconds apart (when the shot allows).
MIN_GAP_S = 1.0
#: Frames under this fraction of the best frame's quality are picked only if nothing better is left.
QUALITY_FLOOR = 0.6


@dataclass(frozen=True)
class Candidate:
    """A sampled frame's measures, without its pixels."""

    index: int  # position among the samples
    pts: int | None
    t_s: float
    frame_index: int
    measures: q.FrameMeasures
    hist: np.ndarray = field(compare=False, repr=False)
    phash: int = 0
    faces: tuple[Box, ...] = ()  # in pixels of the analysed sample (``sample_size``)
    face_area: float = 0.0  # largest face over frame area (scale-free)
    sample_size: tuple[int, int] = (0, 0)  # (width, height) of the analysed sample
    shot: int = 0
    quality: float = 0.0


def assign_shots(cands: list[Candidate], threshold: float = CUT_THRESHOLD) -> list[Candidate]:
    """Number shots by cutting wherever consecutive samples' histograms jump.

    A simple detector on the sampled frames (PySceneDetect's content detector can replace it): it
    sees hard cuts between samples and misses slow dissolves, which is all shot diversity needs.
    """
    dists = [q.histogram_distance(a.hist, b.hist) for a, b in zip(cands, cands[1:])]
    out: list[Candidate] = []
    shot = 0
    for i, c in enumerate(cands):
        if i > 0 and is_cut(dists, i - 1, threshold):
            shot += 1
        out.append(replace(c, shot=shot))
    return out


def is_cut(dists: list[float], i: int, threshold: float = CUT_THRESHOLD) -> bool:
    """Whether jump ``i`` (between samples i and i+1) is a cut, given all the jumps of the clip."""
    d = dists[i]
    if d > threshold:
        return True
    if d <= SOFT_CUT_THRESHOLD:
        return False
    around = dists[max(0, i - CUT_WINDOW):i] + dists[i + 1:i + 1 + CUT_WINDOW]
    local = float(np.median(around)) if around else 0.0
    return d >= CUT_RATIO * local + 0.02


def drop_unusable(cands: list[Candidate]) -> tuple[list[Candidate], dict[str, int]]:
    """Without black, near-uniform and heavily blurred frames; the counts of each dropped."""
    dropped = {"black": 0, "uniform": 0, "blurred": 0}
    kept = []
    for c in cands:
        if q.is_black(c.measures):
            dropped["black"] += 1
        elif q.is_uniform(c.measures):
            dropped["uniform"] += 1
        else:
            kept.append(c)
    cutoff = q.blur_cutoff([c.measures.sharpness for c in kept])
    sharp = [c for c in kept if c.measures.sharpness >= cutoff]
    dropped["blurred"] = len(kept) - len(sharp)
    return sharp, dropped


def drop_near_duplicates(cands: list[Candidate], max_bits: int = q.NEAR_DUP_BITS) -> list[Candidate]:
    """Keep the best of each group of look-alikes (pHash within ``max_bits``), in quality order."""
    kept: list[Candidate] = []
    hashes: list[int] = []
    for c in sorted(cands, key=lambda c: (-c.quality, c.t_s)):
        if all(q.hash_distance(c.phash, h) > max_bits for h in hashes):
            kept.append(c)
            hashes.append(c.phash)
    return kept


def pick_diverse(cands: list[Candidate], max_frames: int, *, min_gap_s: float = MIN_GAP_S,
                 floor: float = QUALITY_FLOOR) -> list[Candidate]:
    """Best frame of each shot first (shots in order of their best frame), then round-robin; by time.

    Two frames of one shot must be ``min_gap_s`` apart, and frames under ``floor`` times the best
    quality are used only when the better ones run out, so diversity never buys a dark, soft frame
    over a good one.
    """
    if not cands:
        return []
    best = max(c.quality for c in cands)
    good = [c for c in cands if c.quality >= floor * best]
    weak = [c for c in cands if c.quality < floor * best]
    picked: list[Candidate] = []
    for pool in (good, weak):
        _round_robin(pool, picked, max_frames, min_gap_s)
    if len(picked) < max_frames:  # a long single shot: relax the gap rather than return too few
        _round_robin(good + weak, picked, max_frames, 0.0)
    return sorted(picked, key=lambda c: c.t_s)


def _round_robin(pool: list[Candidate], picked: list[Candidate], max_frames: int, min_gap_s: float) -> None:
    by_shot: dict[int, list[Candidate]] = {}
    for c in sorted(pool, key=lambda c: (-c.quality, c.t_s)):
        by_shot.setdefault(c.shot, []).append(c)
    queues = sorted(by_shot.values(), key=lambda lst: -lst[0].quality)
    taken = {c.index for c in picked}
    progressed = True
    while len(picked) < max_frames and progressed:
        progressed = False
        for lst in queues:
            if len(picked) >= max_frames:
                break
            for c in lst:
                if c.index in taken:
                    continue
                if any(p.shot == c.shot and abs(p.t_s - c.t_s) < min_gap_s for p in picked):
                    continue
                picked.append(c)
                taken.add(c.index)
                progressed = True
                break


def select(cands: list[Candidate], max_frames: int, *, source: object = "", cut_shots: bool = True) -> list[Candidate]:
    """The whole selection: shots (if ``cut_shots``), filters, de-duplication, diverse pick.

    When the filters leave nothing (an all-black clip, a single blank card) the best of the
    unfiltered frames are used with a warning: a weak key frame beats no run at all.
    """
    if cut_shots:
        cands = assign_shots(cands)
    usable, _dropped = drop_unusable(cands)
    if not usable:
        warnings.warn(
            f"every sampled frame is black, blank or blurred; using the best of them anyway: {source}",
            RuntimeWarning, stacklevel=3,
        )
        usable = cands
    return pick_diverse(drop_near_duplicates(usable), max_frames)
