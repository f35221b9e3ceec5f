"""Who is on screen: dlib's 68-point landmarks (eyes open, expression) and ResNet identity across a title.

Roles, and why: YuNet (``faces``) finds the faces: it is fast (10-40 ms a frame), finds profiles,
dim and CG faces, and gives five landmarks for the geometry check and the pose. dlib is not used
as a detector (its HOG detector missed most of the real profile, dark and CG faces of the sample
clips, and its CNN detector takes 300+ ms per crop on this CPU build, which has no BLAS); it is
used for what YuNet cannot do:

- the 68-point shape predictor (a few ms per face) on an upright crop of each face gives the eye
  aspect ratio (``eyes_open``) and mouth opening, smile width and raised brows (``expression``);
- the ResNet face-recognition model (128-d embeddings; two faces of one person are usually under
  0.6 apart) tells people apart. It costs 100-300 ms per face here, so it runs once per face
  *track* (the same face followed through consecutive samples of a shot), on the track's best
  aligned 150-px chip (frontal enough and large enough to mean something), within a budget
  (``genart.frames.embed_budget``): the tracks in chosen key frames first, then the longest ones.
  Tracks are clustered across the title into characters (``cluster``: average linkage under dlib's
  0.6, never joining two faces seen in one frame); screen time is the sampled time their tracks cover.

Casting notes (``load_cast``): reference images mapped to names; a character whose faces lie
within ``CAST_MATCH`` of a name's reference takes that name (``Character.name``, and
``FaceFacts.character`` says the name).

dlib and ``face_recognition_models`` (its model files) load on first use; without them faces get
no landmarks or identity (a warning says so once) and ``load_cast`` raises.
"""

from __future__ import annotations

import importlib.util
import math
import threading
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from genart.frames.faces import QUARTER_TURNS, Face, find_faces
from genart.types import Character
from genart.errors import BackendUnavailableError, InvalidArgumentError, MediaWarning, SourceNotFoundError, warn
from genart.frames.decode import load_still

#: Faces smaller than this (pixels of the analysis copy) or turned further from the camera than
#: ``MIN_EMBED_FRONTAL`` get landmarks but no identity: a 150-px chip made from fewer pixels is a
#: blur, and dlib's model (trained on mostly frontal photos) puts profiles of different people close.
MIN_EMBED_SIDE = 32
MIN_EMBED_FRONTAL = 0.35
#: dlib's ResNet: two faces of one person are usually under 0.6 apart (dlib's own threshold, 99.38%
#: on LFW); tracks are joined into one character under ``SAME_PERSON`` and a character takes a cast
#: name under ``CAST_MATCH``.
SAME_PERSON = 0.6
CAST_MATCH = 0.6
#: Two faces of consecutive samples are one track when the centre moved at most this many face
#: sides and the size changed by at most ``TRACK_SCALE`` times (a head turning and gesturing).
TRACK_MOVE = 0.75
TRACK_SCALE = 1.6
#: Eye aspect ratio (dlib's 68 points) of shut and of open eyes.
EAR_SHUT, EAR_OPEN = 0.12, 0.25

_lock = threading.Lock()
_warned = False


@lru_cache(maxsize=1)
def _model_dir() -> Path | None:
    # find_spec, not import: the package's __init__ imports pkg_resources, which may be absent
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    d = Path(next(iter(spec.submodule_search_locations))) / "models"
    return d if (d / "shape_predictor_68_face_landmarks.dat").is_file() else None


@lru_cache(maxsize=1)
def _models():
    """(dlib module, 68-point predictor, ResNet recogniser) or None when dlib or the models are missing."""
    d = _model_dir()
    try:
        import dlib
    except ImportError:
        return None
    if d is None:
        return None
    return (dlib, dlib.shape_predictor(str(d / "shape_predictor_68_face_landmarks.dat")),
            dlib.face_recognition_model_v1(str(d / "dlib_face_recognition_resnet_model_v1.dat")))


def available() -> bool:
    """Whether dlib and its face models are installed (found, not loaded: loading takes a second or two)."""
    global _warned
    ok = importlib.util.find_spec("dlib") is not None and _model_dir() is not None
    if not ok and not _warned:
        _warned = True

        warn("dlib or face_recognition_models is not installed: faces get no eyes-open, expression or identity "
             "(pip install dlib-bin face-recognition-models)", MediaWarning, stacklevel=3)
    return ok


@dataclass(frozen=True)
class FaceLook:
    """What the 68 landmarks say about one face, and its aligned chip (for the embedding)."""

    eyes_open: float
    expression: float
    chip: np.ndarray | None = field(default=None, compare=False, repr=False)


def _upright_crop(rgb: np.ndarray, face: Face) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A crop around ``face`` turned so the face is upright, ~150 px across, and the face's rect in it."""
    import cv2

    b = face.box
    side = max(b.w, b.h)
    scale = float(np.clip(150.0 / max(side, 1.0), 0.5, 3.0))
    out = int(round(2.0 * side * scale))
    M = cv2.getRotationMatrix2D((b.cx, b.cy), face.roll, scale)
    M[0, 2] += out / 2 - b.cx
    M[1, 2] += out / 2 - b.cy
    crop = cv2.warpAffine(rgb, M, (out, out), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    fw, fh = (b.h, b.w) if abs(((face.roll + 180) % 180) - 90) < 45 else (b.w, b.h)
    fw, fh = fw * scale, fh * scale
    return crop, (int(out / 2 - fw / 2), int(out / 2 - fh / 2), int(out / 2 + fw / 2), int(out / 2 + fh / 2))


def _dist(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.hypot(*(a - b)))


def measures(pts: np.ndarray) -> tuple[float, float]:
    """(eyes_open, expression) in 0-1 from dlib's 68 points (an upright face).

    ``eyes_open``: the eye aspect ratio of the more open eye (the far eye of a profile is hidden)
    between ``EAR_SHUT`` and ``EAR_OPEN``. ``expression``: the strongest of mouth opening (inner
    lips apart over their width), a smile (mouth wider than the eyes' spacing) and raised brows
    (brows further above the eyes than at rest), each 0 at rest and 1 when strong.
    """
    def ear(e: np.ndarray) -> float:
        return (_dist(e[1], e[5]) + _dist(e[2], e[4])) / max(2 * _dist(e[0], e[3]), 1e-6)

    eyes = max(ear(pts[36:42]), ear(pts[42:48]))
    eyes_open = float(np.clip((eyes - EAR_SHUT) / (EAR_OPEN - EAR_SHUT), 0.0, 1.0))
    iod = max(_dist(pts[36:42].mean(0), pts[42:48].mean(0)), 1e-6)
    mouth_open = _dist(pts[62], pts[66]) / max(_dist(pts[60], pts[64]), 1e-6)
    smile = _dist(pts[48], pts[54]) / iod
    brows = float((pts[36:48, 1].mean() - pts[17:27, 1].mean()) / iod)
    expression = max((mouth_open - 0.08) / 0.4, (smile - 0.9) / 0.35, (brows - 0.45) / 0.25)
    return eyes_open, float(np.clip(expression, 0.0, 1.0))


def look(rgb: np.ndarray, face: Face, *, chip: bool = False) -> FaceLook | None:
    """Landmark measures of one face (and its aligned 150-px chip when asked); None without dlib."""
    m = _models()
    if m is None:
        return None
    dlib, predictor, _rec = m
    crop, (x0, y0, x1, y1) = _upright_crop(rgb, face)
    with _lock:
        shape = predictor(crop, dlib.rectangle(x0, y0, x1, y1))
        pts = np.array([(p.x, p.y) for p in shape.parts()], np.float64)
        face_chip = np.asarray(dlib.get_face_chip(crop, shape, size=150, padding=0.25)) if chip else None
    eyes_open, expression = measures(pts)
    return FaceLook(eyes_open, expression, face_chip)


def embed(chips: "Sequence[np.ndarray]") -> list[np.ndarray]:
    """128-d ResNet embeddings of aligned 150-px chips (``look(..., chip=True)``)."""
    m = _models()
    if m is None or not chips:
        return []
    _dlib, _predictor, rec = m
    with _lock:
        return [np.asarray(rec.compute_face_descriptor(_levels(c)), np.float64) for c in chips]


def _levels(chip: np.ndarray) -> np.ndarray:
    """A chip stretched to the full range (2nd-98th percentile): the model was trained on exposed photos,
    and a face in a dark shot otherwise embeds near every other dark face."""
    lo, hi = np.percentile(chip, (2, 98))
    if hi - lo < 8:
        return np.ascontiguousarray(chip)
    out = (chip.astype(np.float32) - lo) * (255.0 / (hi - lo))
    return np.ascontiguousarray(np.clip(out, 0, 255).astype(np.uint8))


# --- casting notes ------------------------------------------------------------------------------------
def load_cast(cast: "Mapping[str, str | Path | Sequence[str | Path]] | None") -> dict[str, list[np.ndarray]]:
    """Embeddings of each named person's reference images.

    Args:
        cast: name -> one image path or several (a photo where that person's face is the largest).

    Returns:
        name -> embeddings (one per image).

    Raises:
        InvalidArgumentError: a name is empty, or an image shows no face.
        SourceNotFoundError: an image does not exist.
        UnsupportedMediaError: a file is not a readable image.
        BackendUnavailableError: dlib or its models are not installed.
    """

    notes = check_cast(cast)
    if not notes:
        return {}
    if _models() is None:
        raise BackendUnavailableError("face identity for casting notes (dlib)", "dlib-bin face-recognition-models")
    out: dict[str, list[np.ndarray]] = {}
    for name, paths in notes.items():
        chips = []
        for path in paths:
            rgb = np.asarray(load_still(path))
            faces = find_faces(rgb, rotations=QUARTER_TURNS, min_rel_size=0.0)
            faces = [f for f in faces if max(f.box.w, f.box.h) >= MIN_EMBED_SIDE / 2]
            if not faces:
                raise InvalidArgumentError(f"cast['{name}']", str(path), "an image in which a face can be found")
            got = look(rgb, faces[0], chip=True)
            if got is None or got.chip is None:  # dlib went away since the check above
                raise BackendUnavailableError("face identity for casting notes (dlib)",
                                              "dlib-bin face-recognition-models")
            chips.append(got.chip)
        out[name] = embed(chips)
    return out


def check_cast(cast: "Mapping[str, str | Path | Sequence[str | Path]] | None") -> dict[str, list[Path]]:
    """Casting notes checked without opening a model: names non-empty, every reference photo a file.

    Returns:
        name -> reference photo paths.

    Raises:
        InvalidArgumentError: not a mapping, an empty name, a name without photos.
        SourceNotFoundError: a photo does not exist.
    """

    if not cast:
        return {}
    if not isinstance(cast, Mapping):
        raise InvalidArgumentError("cast", cast, "a mapping of names to reference photo paths")
    out: dict[str, list[Path]] = {}
    for name, paths in cast.items():
        if not isinstance(name, str) or not name.strip():
            raise InvalidArgumentError("cast", name, "a mapping of non-empty names to reference photos")
        items = [paths] if isinstance(paths, (str, Path)) else list(paths or ())
        if not items:
            raise InvalidArgumentError(f"cast['{name}']", paths, "one or more reference photo paths")
        files = []
        for p in items:
            path = Path(p).expanduser()
            if not path.is_file():
                raise SourceNotFoundError(path)
            files.append(path)
        out.setdefault(name.strip(), []).extend(files)
    return out


# --- tracks and characters --------------------------------------------------------------------------
@dataclass
class _Track:
    id: int
    sightings: list[tuple[int, int, float]] = field(default_factory=list)  # (sample, face index, t_s)
    chip: np.ndarray | None = None
    chip_quality: float = 0.0
    embedding: np.ndarray | None = None
    last_box: object = None
    last_sample: int = -10


def _follows(a, b) -> float:
    """How well box ``b`` continues box ``a`` (0: not at all; up to 1: same place and size)."""
    if a is None:
        return 0.0
    sa, sb = max(a.w, a.h), max(b.w, b.h)
    ratio = max(sa, sb) / max(min(sa, sb), 1e-6)
    move = float(np.hypot(a.cx - b.cx, a.cy - b.cy)) / max(sa, sb, 1e-6)
    if ratio > TRACK_SCALE or move > TRACK_MOVE:
        return 0.0
    return 1.0 - move / TRACK_MOVE / 2 - (ratio - 1) / (TRACK_SCALE - 1) / 2


class PeopleTracker:
    """Face tracks through the sampled frames of a title, then characters.

    ``observe`` is called for each sample with faces, in time order (the sample's own pixels);
    ``characters`` after selection, with the samples whose faces matter most embedded first.
    """

    def __init__(self) -> None:
        self.tracks: list[_Track] = []
        self.of_face: dict[tuple[int, int], int] = {}  # (sample, face index) -> track id
        self._open: list[_Track] = []

    def observe(self, sample: int, t_s: float, rgb: np.ndarray, faces: "Sequence[Face]", *,
                continues: bool) -> list[FaceLook | None]:
        """Landmark measures of ``faces`` (one per face), linked into tracks.

        ``continues``: this sample follows the previous one in the same shot (no cut, same picture),
        so its faces may continue the previous sample's tracks.
        """
        if not continues:
            self._open = []
        open_prev = [tr for tr in self._open if tr.last_sample == sample - 1]
        looks: list[FaceLook | None] = []
        now: list[_Track] = []
        for i, f in enumerate(faces):
            side = max(f.box.w, f.box.h)
            quality = side * side * f.box.score * (0.5 + (f.frontal if f.frontal is not None else 0.5))
            free = [tr for tr in open_prev if tr not in now]
            best = max(free, key=lambda tr: _follows(tr.last_box, f.box), default=None)
            if best is not None and _follows(best.last_box, f.box) > 0:
                tr = best
            else:
                tr = _Track(len(self.tracks))
                self.tracks.append(tr)
            frontal = f.frontal if f.frontal is not None else 0.5
            want_chip = side >= MIN_EMBED_SIDE and frontal >= MIN_EMBED_FRONTAL and quality > 1.2 * tr.chip_quality
            lk = look(rgb, f, chip=want_chip)
            looks.append(lk)
            if lk is not None and lk.chip is not None:
                tr.chip, tr.chip_quality = lk.chip, quality
            tr.sightings.append((sample, i, float(t_s)))
            tr.last_box, tr.last_sample = f.box, sample
            self.of_face[(sample, i)] = tr.id
            now.append(tr)
        self._open = now
        return looks

    def characters(self, *, interval_s: float, first: "Sequence[int]" = (), budget: int = 8,
                   cast: "Mapping[str, list[np.ndarray]] | None" = None,
                   ) -> tuple[list[Character], dict[tuple[int, int], str]]:
        """Characters (lead first) and each sighted face's label, (sample, face index) -> label.

        Args:
            interval_s: seconds between samples (a sighting stands for that much screen time).
            first: samples whose tracks are embedded before any other (the chosen key frames).
            budget: at most this many embeddings (each costs 100-300 ms on a CPU).
            cast: ``load_cast``'s embeddings by name.
        """
        with_chip = [tr for tr in self.tracks if tr.chip is not None]
        if not with_chip:
            return [], {}
        firsts = {self.of_face[k] for k in self.of_face if k[0] in set(first)}
        order = sorted(with_chip, key=lambda tr: (tr.id not in firsts, -len(tr.sightings) * math.sqrt(tr.chip_quality),
                                                  tr.id))[:max(0, budget)]
        chips = [tr.chip for tr in order if tr.chip is not None]  # all of them: ``order`` is from with_chip
        for tr, e in zip(order, embed(chips)):
            tr.embedding = e
        done = [(tr, tr.embedding) for tr in self.tracks if tr.embedding is not None]
        if not done:
            return [], {}
        labels = cluster([e for _tr, e in done], [{s for s, _i, _t in tr.sightings} for tr, _e in done])
        groups: dict[int, list[_Track]] = {}
        for (tr, _e), lab in zip(done, labels):
            groups.setdefault(lab, []).append(tr)
        named: dict[int, str | None] = {}
        for lab, trs in groups.items():
            named[lab] = _cast_name(trs, cast or {})
        # one character per cast name: a name (str) or, for a face no note names, its cluster (int)
        merged: dict[str | int, list[_Track]] = {}
        for lab, trs in groups.items():
            merged.setdefault(named[lab] or lab, []).extend(trs)
        people = []
        for key, trs in merged.items():
            times = sorted(t for tr in trs for (_s, _i, t) in tr.sightings)
            people.append((len(times) * interval_s, key if isinstance(key, str) else None, trs, times))
        people.sort(key=lambda p: (-p[0], p[3][0]))
        chars: list[Character] = []
        label_of: dict[tuple[int, int], str] = {}
        from PIL import Image

        for n, (screen, name, trs, times) in enumerate(people, start=1):
            best = max(trs, key=lambda tr: tr.chip_quality)
            ch = Character(id=f"c{n}", screen_time_s=float(screen), appearances=_spans(times, interval_s),
                           name=name, faces=len(times),
                           chip=Image.fromarray(best.chip) if best.chip is not None else None)
            chars.append(ch)
            for tr in trs:
                for s, i, _t in tr.sightings:
                    label_of[(s, i)] = ch.label
        return chars, label_of



def cluster(embeddings: "list[np.ndarray]", seen_in: "list[set[int]]", threshold: float = SAME_PERSON) -> list[int]:
    """Tracks into people: average-linkage agglomeration under ``threshold``, never joining two
    tracks seen in the same sample (two faces in one frame are two people).

    Why not dlib's Chinese-whispers clustering: it has no such constraint, and in a dark audience
    shot two profiles 0.55 apart would become one "character". The distance matrix is updated in
    place per merge, so a feature film's few hundred tracks cluster in well under a second.

    Args:
        embeddings: one 128-d embedding per track.
        seen_in: per track, the samples it was seen in.

    Returns:
        A cluster label per track (0, 1, ...).
    """
    n = len(embeddings)
    if n <= 1:
        return [0] * n
    e = np.stack(embeddings)
    d = np.sqrt(((e[:, None, :] - e[None, :, :]) ** 2).sum(-1))
    size = np.ones(n)
    seen = [set(x) for x in seen_in]
    alive = np.ones(n, bool)
    np.fill_diagonal(d, np.inf)
    for i in range(n):
        for j in range(i + 1, n):
            if seen[i] & seen[j]:
                d[i, j] = d[j, i] = np.inf
    label = list(range(n))
    while True:
        k = int(np.argmin(d))
        i, j = divmod(k, n)
        if not np.isfinite(d[i, j]) or d[i, j] >= threshold:
            break
        # j joins i: average linkage, and i inherits j's samples (and its cannot-links)
        d[i, :] = d[:, i] = (d[i, :] * size[i] + d[j, :] * size[j]) / (size[i] + size[j])
        size[i] += size[j]
        seen[i] |= seen[j]
        alive[j] = False
        d[j, :] = d[:, j] = np.inf
        for m in np.flatnonzero(alive):
            if m != i and seen[i] & seen[m]:
                d[i, m] = d[m, i] = np.inf
        d[i, i] = np.inf
        label = [i if lab == j else lab for lab in label]
    remap = {lab: r for r, lab in enumerate(dict.fromkeys(label))}
    return [remap[lab] for lab in label]


def _cast_name(tracks: "list[_Track]", cast: "Mapping[str, list[np.ndarray]]") -> str | None:
    """The cast name whose reference is nearest to the tracks (median distance), if near enough."""
    best, best_d = None, math.inf
    for name, refs in cast.items():
        d = float(np.median([min(float(np.linalg.norm(tr.embedding - r)) for r in refs) for tr in tracks]))
        if d < best_d:
            best, best_d = name, d
    return best if best_d <= CAST_MATCH else None


def _spans(times: "list[float]", interval_s: float) -> tuple[tuple[float, float], ...]:
    """Sighting times as on-screen spans (a gap of more than two samples ends a span)."""
    out: list[list[float]] = []
    for t in times:
        if out and t - out[-1][1] <= 2.01 * interval_s:
            out[-1][1] = t
        else:
            out.append([t, t])
    return tuple((round(a, 3), round(b + interval_s, 3)) for a, b in out)
