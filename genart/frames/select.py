"""From measured candidates to key frames: filters, clip-relative penalties, de-duplication, a diverse pick.

Pure functions over ``Candidate`` records (no pixels), so selection is cheap, testable on its own,
and the same for videos and folders of stills. Shots come from PySceneDetect (``frames.shots``)
and are already on the candidates.

How a frame is judged (AVA's three families: visual quality, context, composition):
    quality = base x (1 - fade penalty) x (1 - title-card penalty) x (1 - motion-blur penalty)
              x (1 - text penalty)
    base    = weighted sum of ``BASE_WEIGHTS`` (each term in [0, 1], weights sum to 1)
Black and near-uniform frames, frames inside a transition (fade, dissolve, wipe: however sharp),
screens of text, frames far softer than the clip's sharp ones and title cards are dropped
outright, unless nothing else is left. The fade penalty compares a frame with its shot's *steady*
frames (outside transitions, not black), so a shot that fades out is not judged against a median
pulled down by its own dark half.

Coverage: look-alikes are one picture (``quality.picture_distance``: brightness and small shifts
do not make a new picture); a long shot is sampled across its length when the distinct pictures
run out (``COVER_SHOT_S``), so a single 80-second take still yields the frames asked for; and
``Selection.why`` says in words why fewer came back than were asked.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from genart.errors import MediaWarning, warn
from genart.frames import quality as q
from genart.frames.faces import Face
from genart.types import Box

#: Two key frames from one shot are at least this many seconds apart.
MIN_GAP_S = 1.0
#: ... and their perceptual hashes differ in more than this many of 64 bits (across shots the
#: near-duplicate rule, ``quality.NEAR_DUP_BITS``, applies): a slow pan or a held close-up gives
#: one key frame, not five of the same picture.
WITHIN_SHOT_BITS = 20
#: Frames whose hashes are alike still count as different when their 32x18 thumbnails differ by
#: more than this (mean absolute, 0-1): actors moving across a locked-off camera. Within a shot
#: ``WITHIN_SHOT_MOVE`` is asked for.
MOVED = 0.03
WITHIN_SHOT_MOVE = 0.05
#: A shot gives one key frame, plus one for every this many seconds it lasts.
SECONDS_PER_EXTRA = 4.0
#: Frames under this fraction of the best frame's quality are never picked (fewer key frames are
#: returned instead); a shot's first key frame may go down to ``SHOT_FLOOR`` (the face bonus alone
#: can put a faceless shot's best frame at 60% of a close-up's).
QUALITY_FLOOR = 0.6
SHOT_FLOOR = 0.45
#: A frame with a title-card score at or above this is dropped (unless nothing else is left).
TITLE_DROP = 0.5
#: Titles fade in and out: a frame within this many seconds of a frame of its shot with lettering
#: over the picture is taken as titled too (times ``TITLE_SPREAD``), which catches the half-transparent lettering of the fades.
TITLE_SPREAD_S = 2.0
TITLE_SPREAD = 0.9
#: A face whose own sharpness (``quality.region_sharpness``) is under this is blurred (moving or out
#: of focus); sharp faces measure 0.7-1, a head turning fast 0.3-0.45.
FACE_SHARP = 0.55
#: Mean absolute luma change to the previous frame at which motion counts as fast (0-1 units).
MOTION_FULL = 0.06
#: ``quality.picture_distance`` under which two frames are one picture: across shots (the same
#: animal twice, one darker) and within a shot (a slow pan, a held close-up).
SAME_PICTURE = 0.3
WITHIN_SHOT_PICTURE = 0.42
#: ... tried across shots only for hashes at most this many bits apart (brightness leaves pHash alone;
#: unrelated frames are about 32 apart), so a feature film's thousands of samples compare quickly.
ALIKE_BITS = 26
#: Share of the picture covered by text at which a frame is a screen of text (credits, UI) and dropped;
#: below it the text penalty grows with the share (subtitles cost a little, half a screen a lot).
TEXT_DROP = 0.12
TEXT_PENALTY = 0.6
#: Shots at least this long are sampled across their length when distinct pictures run out; frames
#: so picked must differ at least this much (``picture_distance``) and be spread in time.
COVER_SHOT_S = 12.0
COVER_DIFFERENT = 0.12

#: Weights of the base quality. Sharpness and exposure lead because a soft or badly exposed frame
#: cannot be rescued by generation; faces get a large share because artwork with a readable, frontal
#: face wins more clicks than artwork without one; naturalness (NIQE-like) catches blocking, noise
#: and smear that the Laplacian alone misreads as detail.
BASE_WEIGHTS = {
    "sharpness": 0.20,
    "exposure": 0.16,
    "contrast": 0.10,
    "colourfulness": 0.08,
    "naturalness": 0.14,
    "face": 0.22,
    "thirds": 0.10,
}
#: How much each penalty (0-1) can take off the base quality.
PENALTY_WEIGHTS = {"fade": 0.6, "title_card": 0.7, "motion_blur": 0.6, "text": TEXT_PENALTY}


@dataclass(frozen=True)
class Candidate:
    """A sampled frame's measures, without its pixels."""

    index: int  # position among the samples
    pts: int | None
    t_s: float
    frame_index: int
    measures: q.FrameMeasures
    phash: int = 0
    thumb: bytes = b""  # ``quality.thumb``: a 32x18 grey copy
    faces: tuple[Face, ...] = ()  # in pixels of the analysed sample (``sample_size``)
    face_area: float = 0.0  # largest face over frame area (scale-free)
    sample_size: tuple[int, int] = (0, 0)  # (width, height) of the analysed sample
    shot: int = 0
    naturalness: float = 0.0
    thirds: float = 0.0
    title_card: float = 0.0  # max(card look, bright lettering over the picture)
    overlay: float = 0.0  # bright lettering alone (``quality.overlay_score``)
    motion: float = 0.0
    face_sharpness: float = 0.0  # sharpness of the largest face's own pixels (0 without faces)
    face_keys: tuple[int, ...] = ()  # each face's index as first detected (the people tracker's key)
    looks: tuple["tuple[float, float] | None", ...] = ()  # per face (eyes_open, expression), None unmeasured
    text_boxes: tuple[Box, ...] = field(default=(), compare=False)  # text lines (sample pixels)
    text_read: bool = False  # the text detector ran on this sample (else its boxes were borrowed)
    text_share: float = 0.0  # share of the picture that is text, persistent logos left out
    transition: str = ""  # the kind of the transition this frame is inside ("" none)
    # set by ``score``: clip-relative penalties and the final quality
    blur: float = 0.0
    fade: float = 0.0
    motion_blur: float = 0.0
    quality: float = 0.0

    def scores(self) -> dict[str, float]:
        """Every score by name (the face position is the largest face's centre, 0-1 of the frame)."""
        w, h = self.sample_size
        big = self.faces[0] if self.faces else None
        look = self.looks[0] if self.looks else None
        return {
            **self.measures.as_dict(),
            "naturalness": self.naturalness,
            "faces": float(len(self.faces)),
            "face_area": self.face_area,
            "face_frontal": float(big.frontal) if big is not None and big.frontal is not None else 0.0,
            "face_x": float(big.box.cx / w) if big is not None and w else 0.0,
            "face_y": float(big.box.cy / h) if big is not None and h else 0.0,
            "face_sharpness": self.face_sharpness,
            "eyes_open": float(look[0]) if look is not None else 0.0,
            "expression": float(look[1]) if look is not None else 0.0,
            "text_share": self.text_share,
            "transition": 1.0 if self.transition else 0.0,
            "thirds": self.thirds,
            "motion": self.motion,
            "blur": self.blur,
            "motion_blur": self.motion_blur,
            "fade": self.fade,
            "title_card": self.title_card,
            "quality": self.quality,
        }


def face_term(faces: "tuple[Face, ...]", face_area: float, face_sharpness: float = 1.0) -> float:
    """0 without faces; 0.4 for any face, up to 1 for a sharp, frontal close-up (``quality.FULL_FACE_AREA``).

    A face smeared by motion (its own sharpness under 0.3) keeps only 30% of the term: the
    frame-wide sharpness misses a blurred head in front of a sharp background.
    """
    if not faces:
        return 0.0
    frontal = faces[0].frontal
    term = 0.4 + 0.35 * min(1.0, face_area / q.FULL_FACE_AREA) + 0.25 * (0.5 if frontal is None else frontal)
    return term * (0.3 + 0.7 * float(np.clip((face_sharpness - 0.3) / 0.5, 0.0, 1.0)))


def base_quality(c: Candidate) -> float:
    w = BASE_WEIGHTS
    m = c.measures
    return float(
        w["sharpness"] * m.sharpness + w["exposure"] * m.exposure + w["contrast"] * m.contrast
        + w["colourfulness"] * m.colourfulness + w["naturalness"] * c.naturalness
        + w["face"] * face_term(c.faces, c.face_area, c.face_sharpness) + w["thirds"] * c.thirds
    )


def score(cands: list[Candidate]) -> list[Candidate]:
    """Candidates with their clip-relative penalties and final ``quality`` set.

    ``blur``: how far a frame is below the clip's sharp frames (its 75th-percentile sharpness);
    ``motion_blur``: that blur, weighted up when the frame moves fast, or the blur of its largest
    face when that is worse; ``fade``: how much darker and
    flatter a frame is than its shot's typical frame (fade-ins, fade-outs, dips to black);
    ``title_card`` is raised near titled frames of the same shot (``TITLE_SPREAD_S``).
    """
    if not cands:
        return []
    usable = [c.measures.sharpness for c in cands if not (q.is_black(c.measures) or q.is_uniform(c.measures))]
    ref = float(np.percentile(usable, 75)) if usable else 1.0
    by_shot: dict[int, list[Candidate]] = {}
    for c in cands:
        by_shot.setdefault(c.shot, []).append(c)
    med = {s: steady_reference(cs) for s, cs in by_shot.items()}
    out = []
    for c in cands:
        near = [o.overlay for o in by_shot[c.shot] if abs(o.t_s - c.t_s) <= TITLE_SPREAD_S]
        c = replace(c, title_card=max(c.title_card, TITLE_SPREAD * max(near, default=0.0)))
        m = c.measures
        blur = float(np.clip(1.0 - m.sharpness / max(ref, 1e-6), 0.0, 1.0))
        motion_blur = blur * (0.5 + 0.5 * min(1.0, c.motion / MOTION_FULL))
        if c.faces:  # a smeared face in front of a sharp background: the frame-wide measure misses it
            motion_blur = max(motion_blur, 0.8 * float(np.clip((FACE_SHARP - c.face_sharpness) / 0.25, 0.0, 1.0)))
        mb, mc = med[c.shot]
        dark = max(0.0, (mb - m.brightness) / max(mb, 1e-3))
        flat = max(0.0, (mc - m.contrast) / max(mc, 1e-3))
        fade = float(np.clip(1.5 * min(dark, flat), 0.0, 1.0)) if dark > 0.15 else 0.0
        c = replace(c, blur=blur, motion_blur=float(motion_blur), fade=fade)
        pw = PENALTY_WEIGHTS
        text = min(1.0, c.text_share / TEXT_DROP)
        quality = (base_quality(c) * (1 - pw["fade"] * fade) * (1 - pw["title_card"] * c.title_card)
                   * (1 - pw["motion_blur"] * motion_blur) * (1 - pw["text"] * text))
        if c.transition:  # only ever used when nothing else is left
            quality *= 0.2
        out.append(replace(c, quality=float(np.clip(quality, 0.0, 1.0))))
    return out


def steady_reference(cands: list[Candidate]) -> tuple[float, float]:
    """(brightness, contrast) a shot's frames are judged against: the median of its steady frames.

    Steady: outside every transition and not black. Without any (a shot that is all fade), the
    upper quartile of all its frames, which a fade's dark half cannot pull down.
    """
    steady = [c for c in cands if not c.transition and not q.is_black(c.measures)]
    if steady:
        return (float(np.median([c.measures.brightness for c in steady])),
                float(np.median([c.measures.contrast for c in steady])))
    return (float(np.percentile([c.measures.brightness for c in cands], 75)),
            float(np.percentile([c.measures.contrast for c in cands], 75)))


def drop_unusable(cands: list[Candidate]) -> tuple[list[Candidate], dict[str, int]]:
    """Without black, near-uniform, mid-transition, heavily blurred frames, screens of text and title
    cards; the counts of each dropped."""
    dropped = {"black": 0, "uniform": 0, "transition": 0, "title_card": 0, "text": 0, "blurred": 0}
    kept = []
    for c in cands:
        if q.is_black(c.measures):
            dropped["black"] += 1
        elif q.is_uniform(c.measures):
            dropped["uniform"] += 1
        elif c.transition:
            dropped["transition"] += 1
        elif c.title_card >= TITLE_DROP:
            dropped["title_card"] += 1
        elif c.text_share >= TEXT_DROP:
            dropped["text"] += 1
        else:
            kept.append(c)
    cutoff = q.blur_cutoff([c.measures.sharpness for c in kept])
    sharp = [c for c in kept if c.measures.sharpness >= cutoff]
    dropped["blurred"] = len(kept) - len(sharp)
    return sharp, dropped


def same_picture(a: Candidate, b: Candidate, *, max_bits: int = q.NEAR_DUP_BITS, picture: float = SAME_PICTURE) -> bool:
    """Whether two frames are one picture: hashes alike and nothing moved, or alike as pictures
    (``quality.picture_distance``: brightness and small shifts set aside)."""
    bits = q.hash_distance(a.phash, b.phash)
    if bits <= max_bits and q.thumb_distance(a.thumb, b.thumb) <= MOVED:
        return True
    # unrelated pictures differ in about half of the 64 bits: across shots only closer pairs are worth
    # the shifts (within a shot a pan over sky or water moves the hash a lot and the picture little)
    return (bits <= ALIKE_BITS or a.shot == b.shot) and q.picture_distance(a.thumb, b.thumb) < picture


def drop_near_duplicates(cands: list[Candidate], max_bits: int = q.NEAR_DUP_BITS) -> list[Candidate]:
    """Keep the best of each group of look-alikes (``same_picture``), in quality order."""
    kept: list[Candidate] = []
    for c in sorted(cands, key=lambda c: (-c.quality, c.t_s)):
        if not any(same_picture(c, k, max_bits=max_bits) for k in kept):
            kept.append(c)
    return kept


def pick_diverse(cands: list[Candidate], max_frames: int, *, min_gap_s: float = MIN_GAP_S,
                 floor: float = QUALITY_FLOOR, shot_floor: float = SHOT_FLOOR, within_shot_bits: int = WITHIN_SHOT_BITS,
                 shot_lengths: "dict[int, float] | None" = None) -> list[Candidate]:
    """Best frame of each shot first (shots in order of their best frame), then round-robin; by time.

    A shot gives at most ``1 + length / SECONDS_PER_EXTRA`` frames (``shot_lengths`` in seconds;
    unlimited when not given), two frames of one shot must be ``min_gap_s`` apart and differ in
    more than ``within_shot_bits`` hash bits, and frames under ``floor`` times the best quality
    (``shot_floor`` for a shot's first frame) are not used, so diversity never buys a dark, soft frame over a good one: fewer key frames come back
    instead.
    """
    if not cands:
        return []
    best = max(c.quality for c in cands)
    good = [c for c in cands if c.quality >= shot_floor * best]
    caps = {s: 1 + int(length / SECONDS_PER_EXTRA + 1e-6) for s, length in (shot_lengths or {}).items()}
    by_shot: dict[int, list[Candidate]] = {}
    for c in sorted(good, key=lambda c: (-c.quality, c.t_s)):
        by_shot.setdefault(c.shot, []).append(c)
    queues = sorted(by_shot.values(), key=lambda lst: -lst[0].quality)
    picked: list[Candidate] = []
    progressed = True
    while len(picked) < max_frames and progressed:
        progressed = False
        for lst in queues:
            if len(picked) >= max_frames:
                break
            for c in lst:
                same = [p for p in picked if p.shot == c.shot]
                if c in picked or len(same) >= caps.get(c.shot, max_frames):
                    continue
                if same and c.quality < floor * best:
                    continue
                if any(abs(p.t_s - c.t_s) < min_gap_s or (q.hash_distance(p.phash, c.phash) <= within_shot_bits
                                                          and q.thumb_distance(p.thumb, c.thumb) <= WITHIN_SHOT_MOVE)
                       or q.picture_distance(p.thumb, c.thumb) < WITHIN_SHOT_PICTURE
                       for p in same):
                    continue
                picked.append(c)
                progressed = True
                break
    return sorted(picked, key=lambda c: c.t_s)


def cover_long_shots(picked: list[Candidate], pool: list[Candidate], max_frames: int,
                     shot_lengths: "dict[int, float] | None", *, floor: float = SHOT_FLOOR) -> list[Candidate]:
    """More frames from long shots, spread across their length, while fewer than ``max_frames`` are picked.

    A long take (an interview, a landscape held for a minute) is several pictures over its length
    even when every frame looks alike at a glance: the frames added here lie in the parts of the
    shot furthest in time from what is already picked, still differ (``COVER_DIFFERENT``) from
    every pick of their shot, and meet the quality floor.
    """
    lengths = shot_lengths or {}
    long = {s for s, n in lengths.items() if n >= COVER_SHOT_S}
    if len(picked) >= max_frames or not long or not pool:
        return picked
    best = max(c.quality for c in pool)
    picked = list(picked)
    while len(picked) < max_frames:
        choice, choice_gap = None, 0.0
        for c in pool:
            if c.shot not in long or c in picked or c.quality < floor * best:
                continue
            same = [p for p in picked if p.shot == c.shot]
            gap = min((abs(p.t_s - c.t_s) for p in same), default=lengths[c.shot])
            min_gap = lengths[c.shot] / (2 * (len(same) + 2))
            if gap < max(MIN_GAP_S, min_gap):
                continue
            if any(q.picture_distance(p.thumb, c.thumb) < COVER_DIFFERENT
                   and q.hash_distance(p.phash, c.phash) <= 4 for p in same):
                continue
            score_ = gap * (0.5 + c.quality / max(best, 1e-6))
            if score_ > choice_gap:
                choice, choice_gap = c, score_
        if choice is None:
            break
        picked.append(choice)
    return sorted(picked, key=lambda c: c.t_s)


@dataclass(frozen=True)
class Selection:
    """The chosen candidates, in time order, and why fewer came back than asked (None when enough did)."""

    chosen: list[Candidate]
    dropped: dict[str, int]
    why: str | None = None


def explain_shortfall(chosen: list[Candidate], asked: int, n_samples: int, dropped: dict[str, int],
                      usable: list[Candidate], distinct: list[Candidate], *, fallback: bool = False) -> str | None:
    """A sentence on why fewer than ``asked`` key frames came back, naming where the sampled frames went."""
    if len(chosen) >= asked:
        return None
    names = {"black": "black", "uniform": "blank", "transition": "inside a fade, dissolve or wipe",
             "title_card": "title cards or titled", "text": "screens of text", "blurred": "blurred"}
    parts = [f"{n} {names[k]}" for k, n in dropped.items() if n]
    if len(usable) > len(distinct):
        parts.append(f"{len(usable) - len(distinct)} near-duplicates of others")
    rest = [c for c in distinct if c not in chosen]
    best = max((c.quality for c in distinct), default=0.0)
    weak = [c for c in rest if c.quality < QUALITY_FLOOR * best]
    if weak:
        parts.append(f"{len(weak)} too weak next to the best")
    if len(rest) > len(weak):
        parts.append(f"{len(rest) - len(weak)} more from shots already covered (a shot gives one key frame, "
                     f"plus one per {SECONDS_PER_EXTRA:g} s of it)")
    if not parts:
        return f"{len(chosen)} of {asked} key frames: the source has only {n_samples} frame(s) to choose from"
    msg = f"{len(chosen)} of {asked} key frames: of {n_samples} sampled frames, " + "; ".join(parts)
    if fallback:
        msg += " (every frame was unusable, so the best of them were kept anyway)"
    return msg


def select_detailed(cands: list[Candidate], max_frames: int, *, source: object = "",
                    shot_lengths: "dict[int, float] | None" = None) -> Selection:
    """The whole selection: scores, filters, de-duplication, diverse pick, long-shot coverage.

    When the filters leave nothing (an all-black clip, a single blank card) the best of the
    unfiltered frames are used with a warning: a weak key frame beats no run at all.
    """
    cands = score(cands)
    usable, dropped = drop_unusable(cands)
    fallback = False
    if not usable:
        warn(
            f"every sampled frame is black, blank, a title card, text or blurred, or inside a transition; using the "
            f"best of them anyway: {source}", MediaWarning, stacklevel=3,
        )
        usable, fallback = cands, True
    distinct = drop_near_duplicates(usable)
    chosen = pick_diverse(distinct, max_frames, shot_lengths=shot_lengths)
    chosen = cover_long_shots(chosen, usable, max_frames, shot_lengths)
    why = explain_shortfall(chosen, max_frames, len(cands), dropped, usable, distinct, fallback=fallback)
    return Selection(chosen, dropped, why)


def select(cands: list[Candidate], max_frames: int, *, source: object = "",
           shot_lengths: "dict[int, float] | None" = None) -> list[Candidate]:
    """The chosen candidates of ``select_detailed``."""
    return select_detailed(cands, max_frames, source=source, shot_lengths=shot_lengths).chosen
