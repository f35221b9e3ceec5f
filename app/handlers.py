"""The review app's handlers: plain functions over ``genart.api``, tested without a browser.

Every handler takes the store folder (``out``) first and plain values after it, returns plain values
or a small frozen view, and raises genart's typed errors for bad input; ``app.ui`` turns those into
one message a person reads. Nothing here imports gradio, and no model object is ever held: a handler
asks ``genart.api``, which loads (and caches per process) what it needs. The HTML the app shows (tile
grid, compare view, matrix, test arms) is made here too, from escaped text only, so it is tested
like any other output.
"""

from __future__ import annotations

import html
import queue
import re
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence, SupportsFloat, SupportsIndex
from urllib.parse import quote

from genart import api
from genart.errors import (
    DecisionConflictError,
    GenartError,
    InvalidArgumentError,
    UnknownProfileError,
    UnknownVariantError,
    UploadError,
)
from genart.types import RankedVariant, ReviewState, RunResult

ProgressFn = Callable[[str, int, int], None]

#: Upload limit unless the app is started with another (``--max-upload-mb``).
DEFAULT_MAX_UPLOAD_MB = 1024
VIDEO_EXTS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MEDIA_EXTS = VIDEO_EXTS + IMAGE_EXTS

STATUS_LABEL = {"approve": "✓ approved", "reject": "✗ rejected", "flag": "⚑ flagged", "pending": "pending review"}
STATUS_FILTERS = (("All", "all"), ("Pending", "pending"), ("Approved", "approve"), ("Rejected", "reject"),
                  ("Flagged", "flag"))
ACTIONS = ("approve", "reject", "flag")
POLICIES = (("Thompson sampling", "ts"), ("epsilon-greedy", "egreedy"), ("UCB1", "ucb1"))
TITLE_POSITIONS = (("Auto (the quietest free place)", "auto"), ("Bottom", "bottom"), ("Top", "top"))
ARTWORK_TYPE = {"16:9": "cover", "2:3": "poster", "1:1": "square", "9:16": "vertical"}
CONTROL_LABEL = "Today's artwork (control)"


# --- small helpers -------------------------------------------------------------------------------
def md_escape(text: object) -> str:
    """User text shown inside Markdown: no links, images or HTML sneak in."""
    return re.sub(r"([\\`*_\[\]<>|~])", r"\\\1", " ".join(str(text).split()))


def esc(text: object) -> str:
    """User text shown inside the app's HTML."""
    return html.escape(" ".join(str(text).split()), quote=True)


def file_url(path: object) -> str:
    """The URL the app serves a stored file at (relative, so a proxy's path prefix keeps working)."""
    return "gradio_api/file=" + quote(str(Path(str(path)).resolve()))


def _int(value: object, name: str, *, lo: int | None = None, hi: int | None = None,
         default: int | None = None) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            raise InvalidArgumentError(name, value, "a whole number")
        return default
    try:
        f = _number(value)
        n = int(f)
        if f != n:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgumentError(name, value, "a whole number") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise InvalidArgumentError(name, value, f"a whole number from {lo} to {hi}")
    return n


def _number(value: object) -> float:
    """``float(value)`` for what a form field may hold; TypeError for anything else (callers word it)."""
    if isinstance(value, (str, bytes, bytearray, SupportsFloat, SupportsIndex)):
        return float(value)
    raise TypeError(f"not a number: {type(value).__name__}")


def _opt_float(value: object, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return _number(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(name, value, "a number") from None


def seed_value(value: object) -> int | None:
    """A seed field's value: empty (or "random") means a random seed, anything else a whole number.

    Raises:
        InvalidArgumentError: not a whole number from 0 to 2**31 - 1.
    """
    if value is None or (isinstance(value, str) and value.strip().lower() in ("", "random")):
        return None
    return _int(value, "seed", lo=0, hi=2**31 - 1)


def reviewer_name(username: str | None, typed: str | None) -> str:
    """Who is deciding: the signed-in user when the app has authentication, else the typed name."""
    if username:
        return username
    name = (typed or "").strip()
    if not name:
        raise InvalidArgumentError("reviewer", typed, "your name in the 'Your name' box (it goes in the audit trail)")
    return name


# --- progress: counts and an ETA for every long action --------------------------------------------
STAGE_LABELS = {"frames": "finding key frames", "models": "loading models", "generate": "generating variants",
                "rank": "ranking", "export": "writing the package", "simulate": "simulating traffic",
                "start": "starting"}


@dataclass(frozen=True)
class ProgressView:
    """What the progress bar shows now: a label, counts, the fraction done, and the time left."""

    stage: str
    label: str
    done: int
    total: int
    fraction: float  # of the whole action, 0..1
    elapsed_s: float
    eta_s: float | None  # None until a rate is known

    @property
    def text(self) -> str:
        parts = [self.label]
        if self.total > 1:
            parts.append(f"{self.done}/{self.total}")
        parts.append(f"{self.elapsed_s:.0f} s")
        if self.eta_s is not None and self.done < self.total:
            parts.append(f"about {max(1, round(self.eta_s))} s left")
        return " · ".join(parts)


class ProgressTracker:
    """Turns genart's ``progress(stage, done, total)`` calls into one bar for the whole action.

    Generation reports per profile (its count restarts for each one); the tracker adds them up, so
    the bar counts every variant of the run (``expected`` of them when known) and its ETA is the rate
    so far applied to what is left. Thread-safe: the work reports from its own thread.
    """

    def __init__(self, expected: int | None = None, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.expected = expected
        self.clock = clock
        self.t0 = clock()
        self._lock = threading.Lock()
        self._stage, self._done, self._total = "start", 0, 1
        self._offset = 0  # variants of the profiles finished before this one
        self._last_gen = (0, 0)
        self._stage_t0 = self.t0
        self._gen_t0: float | None = None
        self._last_t = self.t0  # when the previous report came: the work of a stage's first report began there

    def __call__(self, stage: str, done: int, total: int) -> None:
        now = self.clock()
        with self._lock:
            if stage == "generate":
                last_done, last_total = self._last_gen
                if self._gen_t0 is None:
                    self._gen_t0 = self._last_t
                if done < last_done:  # the next profile started
                    self._offset += last_total
                self._last_gen = (done, total)
                done, total = self._offset + done, max(self.expected or 0, self._offset + total)
            if stage != self._stage:
                self._stage_t0 = self._last_t
            self._stage, self._done, self._total = stage, int(done), max(int(total), 1)
            self._last_t = now

    def view(self) -> ProgressView:
        now = self.clock()
        with self._lock:
            stage, done, total = self._stage, self._done, self._total
            t0 = self._gen_t0 if stage == "generate" and self._gen_t0 is not None else self._stage_t0
        spent = now - t0
        eta = spent / done * (total - done) if done > 0 and spent > 0 else None
        if stage == "rank" and self.expected:
            fraction = 0.97 + 0.03 * done / total
        elif stage in ("models", "start"):
            fraction = 0.02 * done / total
        else:
            fraction = done / total
        return ProgressView(stage, STAGE_LABELS.get(stage, stage), done, total, min(1.0, max(0.0, fraction)),
                            now - self.t0, eta)


_DONE = object()


def with_progress(work: Callable[[ProgressFn], object], tracker: ProgressTracker, *,
                  every_s: float = 0.25) -> Iterator[ProgressView | tuple[object]]:
    """Run ``work(progress)`` in a thread and yield the tracker's view as it moves; the last item is a
    1-tuple with the work's result. The work's exception is raised here (so the caller's error handling
    sees it as if the work ran in place)."""
    box: queue.Queue = queue.Queue()

    def run() -> None:
        try:
            box.put((_DONE, work(tracker)))
        except BaseException as exc:  # handed to the caller's thread
            box.put((_DONE, exc, True))

    thread = threading.Thread(target=run, name="genart-app-work", daemon=True)
    thread.start()
    last = None
    while True:
        try:
            item = box.get(timeout=every_s)
        except queue.Empty:
            view = tracker.view()
            if (view.stage, view.done, view.total, round(view.elapsed_s)) != last:
                last = (view.stage, view.done, view.total, round(view.elapsed_s))
                yield view
            continue
        if len(item) == 3:
            raise item[1]
        yield (item[1],)
        return


def progress_html(view: ProgressView | None, *, idle: str = "", error: str = "") -> str:
    """The progress slot: a bar with counts and the time left while work runs; a line when it is done."""
    if error:
        return f'<div class="ga-progress ga-progress-error" role="alert">⚠ {esc(error)}</div>'
    if view is None:
        return f'<div class="ga-progress ga-progress-idle">{esc(idle)}</div>' if idle else \
            '<div class="ga-progress ga-progress-idle"></div>'
    pct = f"{100 * view.fraction:.1f}"
    return (f'<div class="ga-progress ga-progress-running" role="progressbar" aria-valuemin="0" aria-valuemax="100" '
            f'aria-valuenow="{pct}"><div class="ga-bar"><div class="ga-fill" style="width:{pct}%"></div></div>'
            f'<div class="ga-progress-text">{esc(view.text)}</div></div>')


# --- 1. a title: upload and key frames ------------------------------------------------------------
@dataclass(frozen=True)
class StageView:
    stage_id: str
    items: tuple[tuple[str, str], ...]  # (image path, caption) per key frame
    choices: tuple[tuple[str, str], ...]  # (label, key frame id)
    selected: tuple[str, ...]
    summary: str
    warnings: tuple[str, ...] = ()


def _upload_paths(files: object) -> list[Path]:
    if files is None or files == "" or files == []:
        raise UploadError("no file uploaded", hint="drop a video (mp4, mov, webm, ...) or some stills (png, jpg) on the upload box")
    items = files if isinstance(files, (list, tuple)) else [files]
    paths = []
    for f in items:
        name = getattr(f, "name", None) or getattr(f, "path", None) or f
        if isinstance(name, dict):
            name = name.get("path")
        paths.append(Path(str(name)))
    return paths


def check_upload(files: object, max_bytes: int) -> list[Path]:
    """The uploaded paths, refused when missing, too large, or plainly not video or image files.

    Raises:
        UploadError: nothing uploaded, a file over ``max_bytes``, a file that is not a video or image
            by its name, or a video among several files.
    """
    paths = _upload_paths(files)
    for p in paths:
        if not p.is_file():
            raise UploadError(f"uploaded file is missing: {p.name}", hint="upload it again")
        size = p.stat().st_size
        if size > max_bytes:
            raise UploadError(f"{p.name} is {size / 2**20:.1f} MB; the limit is {max_bytes / 2**20:.0f} MB",
                              hint="upload a shorter clip, or start the app with a larger --max-upload-mb")
        if p.suffix.lower() not in MEDIA_EXTS:
            raise UploadError(f"{p.name} is not a video or an image file",
                              hint="videos: " + " ".join(VIDEO_EXTS) + "; stills: " + " ".join(IMAGE_EXTS))
    if len(paths) > 1 and any(p.suffix.lower() in VIDEO_EXTS for p in paths):
        raise UploadError("upload one video, or several stills, not a mix",
                          hint="several files are taken as the stills of one title")
    return paths


def _keyframe_notes(kf) -> list[str]:
    """What a reviewer should know about a key frame before using it (frames stage facts)."""
    notes = []
    kinds = sorted({r.kind for r in kf.regions})
    if kinds:
        notes.append("has " + ", ".join(kinds) + " in the picture (kept out of crops and titles)")
    closed = sum(1 for p in kf.people if p.eyes_open is not None and p.eyes_open < 0.3)
    if closed:
        notes.append(f"{closed} face(s) with eyes closed")
    if len(kf.faces) > 3:
        notes.append(f"{len(kf.faces)} faces: more than three people lowers the take rate")
    return notes


def keyframe_caption(i: int, kf) -> str:
    q = kf.scores.get("quality")
    parts = [f"{i}. {kf.timecode}", f"shot {kf.shot}"]
    if q is not None:
        parts.append(f"quality {q:.2f}")
    parts.append(f"faces {len(kf.faces)}")
    notes = _keyframe_notes(kf)
    return " · ".join(parts) + ("".join(f" · ⚠ {n}" for n in notes))


def stage_upload(out: Path, files: object, max_frames: object = 4, *, max_bytes: int = DEFAULT_MAX_UPLOAD_MB * 2**20,
                 progress: ProgressFn | None = None) -> StageView:
    """Check an upload, copy it into the store, and pick its key frames.

    Raises:
        UploadError: see ``check_upload``.
        UnsupportedMediaError, EmptySourceError: the file is not readable media or holds no frames.
        InvalidArgumentError: a bad ``max_frames``.
    """
    n = _int(max_frames, "key frames", lo=1, hi=24)
    paths = check_upload(files, max_bytes)
    if len(paths) == 1:
        with _upload_names({str(paths[0]): paths[0].name}):
            stage = api.stage_source(paths[0], out, max_frames=n, keep_copy=True, progress=progress)
    else:
        Path(out).mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out, prefix=".incoming-") as tmp:
            names = {tmp: "the uploaded stills"}
            for i, p in enumerate(paths):  # keep the upload order: stills are taken in name order
                shutil.copyfile(p, Path(tmp) / f"{i:03d}_{p.name}")
                names[str(Path(tmp) / f"{i:03d}_{p.name}")] = p.name
            with _upload_names(names):
                stage = api.stage_source(tmp, out, max_frames=n, keep_copy=True, progress=progress)
    return stage_view(stage)


@contextmanager
def _upload_names(names: Mapping[str, str]) -> Iterator[None]:
    """Errors about an upload name the file the person uploaded, not the server's temporary path."""
    try:
        yield
    except GenartError as exc:
        for path, name in sorted(names.items(), key=lambda kv: -len(kv[0])):
            exc.message = exc.message.replace(path, name)
        exc.args = (exc.message,)
        raise


def stage_view(stage) -> StageView:
    items = tuple((str(kf.path), keyframe_caption(i + 1, kf)) for i, kf in enumerate(stage.keyframes))
    choices = tuple((f"{i + 1}. {kf.timecode}", kf.id) for i, kf in enumerate(stage.keyframes))
    summary = (f"**{len(stage.keyframes)} key frame(s)** from **{md_escape(Path(stage.source).name)}**. "
               "Untick any frame you do not want variants of.")
    warnings = tuple(stage.warnings)
    if warnings:
        summary += "  \n" + "  \n".join(f"⚠ {md_escape(w)}" for w in warnings)
    return StageView(stage.stage_id, items, choices, tuple(kf.id for kf in stage.keyframes), summary, warnings)


# --- 2. profiles, creative controls, presets, generation --------------------------------------------
def profile_choices() -> list[tuple[str, str]]:
    return [(f"{p.name} ({p.id})", p.id) for p in api.list_profiles()]


def preset_choices() -> list[tuple[str, str]]:
    return [(p.name, p.name) for p in api.list_presets()]


def default_preset() -> str:
    return api.list_presets()[0].name


def preset_kind(name: str | None) -> str:
    """``classic`` or ``diffusion``: which creative controls apply.

    Raises:
        InvalidArgumentError: an unknown preset.
    """
    spec = next((p for p in api.list_presets() if p.name == name), None)
    if spec is None:
        raise InvalidArgumentError("preset", name, "one of " + ", ".join(p.name for p in api.list_presets()))
    return spec.kind


def preset_info(name: str) -> str:
    """What a preset is, what it uses, and whether it can run on this machine (no network)."""
    spec = next((p for p in api.list_presets() if p.name == name), None)
    if spec is None:
        raise InvalidArgumentError("preset", name, "one of " + ", ".join(p.name for p in api.list_presets()))
    text = f"**{md_escape(spec.name)}**: {md_escape(spec.description)}"
    if spec.kind == "classic":
        return text + "  \nIt uses the look (grade), the aspect ratios and the title below; no prompt."
    text += "  \nIt uses each profile's prompt and an img2img strength; the seed makes it repeatable."
    check = api.check_preset(name)
    if not check.ok:
        missing = ", ".join(md_escape(i.model_id) for i in check.items if not i.present)
        text += f"  \n⚠ weights not on this machine: {missing} (`genart models pull {md_escape(name)}`)"
    return text


def grade_choices() -> list[tuple[str, str]]:
    """The looks a run may use: each profile's own (default), none, or one look for every profile."""
    return [("Each profile's own look", ""), ("No grade", "none")] + [(n, n) for n in api.list_grades()]


def aspect_choices() -> list[tuple[str, str]]:
    return [(f"{a} {ARTWORK_TYPE[a]}" if a in ARTWORK_TYPE else a, a) for a in api.list_aspects()]


def profiles_note(profiles: Sequence[str] | None, kind: str = "classic") -> str:
    """What "each profile's own" means for the chosen profiles, in the controls the preset uses:
    look and aspects for classic, strengths and aspects for diffusion."""
    rows = []
    for i, pid in enumerate(profiles or ()):
        try:
            p = api.get_profile(pid)
        except GenartError:
            continue
        own = f"look {md_escape(p.grade.name)}" if kind == "classic" else \
            "strengths " + ", ".join(f"{s:g}" for s in p.strengths)
        rows.append(f"{i + 1}. **{md_escape(p.name)}**: {own} · aspects {' '.join(p.aspects)} · {md_escape(p.locale)}")
    return "  \n".join(rows)


def estimate(keyframe_ids: Sequence[str] | None, profiles: Sequence[str] | None, variants_per_frame: object,
             aspects: Sequence[str] | None = None) -> str:
    """How many variants a generate will make, and in which aspects, before anyone waits for it."""
    k, p = len(keyframe_ids or ()), len(profiles or ())
    try:
        n = _int(variants_per_frame, "variants per frame", lo=1, hi=16)
    except InvalidArgumentError:
        return "Set how many variants per key frame and profile (1 to 16)."
    if not k or not p:
        missing = [what for what, count in (("a key frame (step 1)", k), ("a taste profile", p)) if not count]
        return "Choose " + " and ".join(missing) + " to generate."
    total = k * p * n
    text = f"**{total} variant(s)** will be made: {k} key frame(s) × {p} profile(s) × {n} each"
    cycle: list[str] = list(aspects or ())
    if not cycle:
        own: dict[str, None] = {}
        for pid in profiles or ():
            try:
                own.update(dict.fromkeys(api.get_profile(pid).aspects))
            except GenartError:
                pass
        text += f"; aspects cycle through each profile's own ({', '.join(own)})."
    else:
        text += f"; aspects cycle through {', '.join(cycle)}."
    if n < len(cycle or [1]):
        text += f" With {n} per frame, only the first {n} aspect(s) are made."
    return text


def chosen_frames(out: Path, stage_id: str | None, keyframe_ids: Sequence[str] | None) -> list[tuple[str, str]]:
    """(image, caption) of the key frames step 1 kept: what step 2 will make variants of."""
    if not stage_id:
        return []
    stage = api.load_stage(out, stage_id)
    keep = set(keyframe_ids or ())
    return [(str(kf.path), f"{i + 1}. {kf.timecode}") for i, kf in enumerate(stage.keyframes) if kf.id in keep]


def prompt_for(edits: Mapping[str, str] | None, profile_id: str | None) -> tuple[str, str]:
    """(this run's prompt of a profile, the profile's description)."""
    if not profile_id:
        return "", ""
    p = api.get_profile(profile_id)
    return (edits or {}).get(profile_id, p.prompt.strip()), f"*{md_escape(p.description)}*"


def set_prompt(edits: Mapping[str, str] | None, profile_id: str | None, text: str | None) -> dict[str, str]:
    """The edits with this profile's prompt set (an empty text or the original drops the edit)."""
    new = dict(edits or {})
    if not profile_id:
        return new
    original = api.get_profile(profile_id).prompt
    text = text or ""
    clean = " ".join(text.split())
    if not clean or clean == " ".join(original.split()):
        new.pop(profile_id, None)
    else:
        new[profile_id] = text.strip()
    return new


@dataclass(frozen=True)
class Look:
    """The creative controls of step 2, as the preset uses them (None/empty: each profile's own)."""

    grade: str = ""
    grade_amount: float = 1.0
    aspects: tuple[str, ...] = ()
    title_overlay: bool = True
    title_text: str = ""  # classic: the text laid on the artwork (empty: the title)
    title_position: str = "auto"
    strength: float | None = None  # diffusion: one strength for every profile (None: each profile's own)


@dataclass(frozen=True)
class RunDone:
    run_id: str
    summary: str


def generate(out: Path, stage_id: str, keyframe_ids: Sequence[str] | None, profiles: Sequence[str] | None,
             preset: str | None, variants_per_frame: object, seed: object, title: str = "", genre: str = "",
             prompts: Mapping[str, str] | None = None, *, look: Look | None = None,
             progress: ProgressFn | None = None) -> RunDone:
    """Make and rank the variants of the kept key frames for each chosen profile, in the chosen order.

    Raises:
        InvalidArgumentError: no stage yet, no key frame or profile chosen, a bad count or seed, a bad
            creative control.
        And everything ``genart.api.create_run_from_stage`` raises (ModelLoadError, ...).
    """
    if not stage_id:
        raise InvalidArgumentError("title", "(none)", "a video or stills uploaded and key frames found first (step 1)")
    if not keyframe_ids:
        raise InvalidArgumentError("key frames", [], "at least one key frame ticked (step 1)")
    if not profiles:
        raise InvalidArgumentError("profiles", [], "at least one taste profile ticked")
    n = _int(variants_per_frame, "variants per frame", lo=1, hi=16)
    s = _int(seed, "seed", lo=0, hi=2**31 - 1, default=0)
    look = look or Look()
    prompts = {k: v for k, v in (prompts or {}).items() if k in profiles}
    try:
        classic = preset_kind(preset or default_preset()) == "classic"
    except InvalidArgumentError:  # the API says which presets there are
        classic = False
    words = (look.title_text or "").strip() if classic else ""
    result = api.create_run_from_stage(
        out, stage_id, keyframe_ids=list(keyframe_ids), profiles=list(profiles), preset=preset or None,
        variants_per_frame=n, seed=s, title=words or title or "", genre=genre or "", prompts=prompts,
        progress=progress,
        grade=(look.grade or None) if classic else None, grade_amount=look.grade_amount if classic else None,
        aspects=list(look.aspects) or None, title_overlay=bool(look.title_overlay),
        title_position=look.title_position or None, strength=None if classic else look.strength)
    counts = ", ".join(f"{pid}: {len(items)}" for pid, items in result.ranked)
    rejected = sum(len(items) for _, items in result.rejected)
    summary = f"Run **{result.run_id}** done ({result.preset}): ranked variants per profile: {counts}."
    if rejected:
        summary += f" {rejected} rejected by the ranking (shown last, with the reason)."
    skipped = sum(1 for _, items in result.ranked for rv in items if rv.variant.params.title_status == "skipped")
    if skipped:
        summary += f" ⚠ {skipped} variant(s) without the title (the reason is on each)."
    for w in result.warnings:  # what the run worked around
        summary += f"  \n⚠ {md_escape(w)}"
    return RunDone(result.run_id, summary)


# --- 3. review ---------------------------------------------------------------------------------------
def run_choices(out: Path) -> list[tuple[str, str]]:
    """(label, run id) of the store's runs, newest first."""
    out_list = []
    for r in api.list_runs(out):
        name = r.title or Path(r.source).name
        mark = "" if r.status == "done" else f" [{r.status}]"
        out_list.append((f"{name} · {r.preset} · {r.created_at[:16].replace('T', ' ')}{mark}", r.run_id))
    return out_list


@dataclass(frozen=True)
class RunView:
    run_id: str
    profiles: tuple[str, ...]
    summary: str
    kind: str = "classic"  # the run's preset kind: which regenerate controls apply
    aspects: tuple[str, ...] = ()
    keyframes: tuple[tuple[str, str], ...] = ()  # (label, key frame id)
    approved: int = 0


def _status_counts(states: Mapping[str, ReviewState], ids: Iterable[str]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for vid in ids:
        st = states.get(vid)
        key = st.status if st else "pending"
        counts[key] = counts.get(key, 0) + 1
    return counts


def open_run(out: Path, run_id: str | None) -> RunView:
    if not run_id:
        return RunView("", (), "No run yet: upload a title and generate (steps 1 and 2).")
    run = api.load_run(out, run_id)
    states = api.review_states(out, run_id)
    rows = [rv for _, items in run.ranked for rv in items] + [rv for _, items in run.rejected for rv in items]
    counts = _status_counts(states, (rv.variant.id for rv in rows))
    summary = (f"**{len(rows)} variant(s)** · {len(run.keyframes)} key frame(s) · preset {md_escape(run.preset)} · "
               + " · ".join(f"{counts.get(k, 0)} {STATUS_LABEL[k]}" for k in ("approve", "reject", "flag", "pending")))
    try:
        kind = preset_kind(run.preset)
    except InvalidArgumentError:
        kind = "classic"
    aspects = tuple(dict.fromkeys(rv.variant.params.aspect for rv in rows))
    kfs = tuple((f"{i + 1}. {kf.timecode}", kf.id) for i, kf in enumerate(run.keyframes))
    return RunView(run.run_id, tuple(pid for pid, _ in run.ranked), summary, kind, aspects, kfs,
                   counts.get("approve", 0))


def _profile_rows(run: RunResult, profile_id: str) -> list[RankedVariant]:
    return list(run.profiles.get(profile_id, ())) + list(dict(run.rejected).get(profile_id, ()))


def variant_label(rv: RankedVariant) -> str:
    """How a reviewer names a variant: profile, place, aspect (never its id)."""
    place = f"#{rv.rank}" if rv.rank is not None else "rejected"
    return f"{rv.profile_id} {place} · {rv.variant.params.aspect}"


def variant_warnings(rv: RankedVariant) -> tuple[str, ...]:
    """Everything a reviewer must see on a variant before approving it, in words."""
    p = rv.variant.params
    out = []
    if rv.rejected:
        out.append(f"Rejected by the ranking: {rv.rejected}")
    if rv.needs_review:
        out.append(f"Needs a person's look: {rv.needs_review}")
    if p.title_status == "skipped":
        out.append("No title: " + (p.title_reason or "it could not be placed legibly"))
    if p.upscale and p.upscale > 1.5:
        out.append(f"Enlarged {p.upscale:.1f}× from the source frame: may look soft")
    if p.synthetic_share and p.synthetic_share > 0.005:
        how = "painted in by a model" if (p.reframe or "").startswith("outpaint") else \
            "a mirrored fill of the frame" if p.reframe == "mirror-fill" else "filled in"
        out.append(f"{p.synthetic_share:.0%} of the picture is not from the source frame ({how})")
    out += [f"Source frame {n}" for n in _keyframe_notes(rv.variant.keyframe)]
    return tuple(out)


@dataclass(frozen=True)
class Tile:
    variant_id: str
    image: str
    caption: str  # "#1 · 16:9 · 0.789"
    status: str  # pending | approve | reject | flag
    warnings: int
    note: str  # the latest decision's note, "" when none


@dataclass(frozen=True)
class GalleryView:
    tiles: tuple[Tile, ...]  # best first, ranking-rejected last
    variant_ids: tuple[str, ...]
    summary: str  # "6 of 12 shown"

    @property
    def items(self) -> tuple[tuple[str, str], ...]:
        """(image path, caption with status) per tile, as a plain gallery shows them."""
        return tuple((t.image, f"{t.caption} · {STATUS_LABEL[t.status]}") for t in self.tiles)


def variant_caption(rv: RankedVariant, state: ReviewState | None = None) -> str:
    place = f"#{rv.rank}" if rv.rank is not None else "not ranked"
    return f"{place} · {rv.variant.params.aspect} · {rv.total:.3f}"


def gallery(out: Path, run_id: str | None, profile_id: str | None, status: str = "all",
            aspect: str = "all") -> GalleryView:
    """The tiles of one profile, best first, filtered by review status and aspect.

    Raises:
        UnknownProfileError: the run has no such profile. InvalidArgumentError: an unknown filter.
    """
    if not run_id or not profile_id:
        return GalleryView((), (), "")
    if status not in dict((v, k) for k, v in STATUS_FILTERS):
        raise InvalidArgumentError("status filter", status, "one of " + ", ".join(v for _, v in STATUS_FILTERS))
    run = api.load_run(out, run_id)
    if profile_id not in run.profiles:
        raise UnknownProfileError(profile_id, run.profiles)
    states = api.review_states(out, run_id)
    rows = _profile_rows(run, profile_id)
    tiles = []
    for rv in rows:
        st = states.get(rv.variant.id)
        s = st.status if st else "pending"
        if status != "all" and s != status:
            continue
        if aspect not in ("all", "", None) and rv.variant.params.aspect != aspect:
            continue
        tiles.append(Tile(rv.variant.id, str(rv.path), variant_caption(rv), s, len(variant_warnings(rv)),
                          st.note if st else ""))
    summary = f"{len(tiles)} of {len(rows)} shown"
    return GalleryView(tuple(tiles), tuple(t.variant_id for t in tiles), summary)


def grid_html(view: GalleryView, current: str | None = None) -> str:
    """The tile grid: each variant at the 160 px it is seen at, a status badge, warning and note marks."""
    if not view.tiles:
        return '<div class="ga-empty">No variant matches these filters.</div>'
    cells = []
    for t in view.tiles:
        marks = ""
        if t.warnings:
            marks += f'<span class="ga-mark ga-mark-warn" title="{t.warnings} warning(s)">⚠</span>'
        if t.note:
            marks += f'<span class="ga-mark ga-mark-note" title="{esc(t.note)}">✎</span>'
        sel = " ga-current" if t.variant_id == current else ""
        cells.append(
            f'<button type="button" class="ga-tile ga-{t.status}{sel}" data-vid="{esc(t.variant_id)}" '
            f'aria-label="{esc(t.caption)} {esc(STATUS_LABEL[t.status])}">'
            f'<span class="ga-thumb"><img src="{file_url(t.image)}" alt="" loading="lazy"></span>'
            f'<span class="ga-badge ga-badge-{t.status}">{esc(STATUS_LABEL[t.status])}</span>{marks}'
            f'<span class="ga-cap">{esc(t.caption)}</span></button>')
    return '<div class="ga-grid">' + "".join(cells) + "</div>"


def step(ids: Sequence[str], current: str | None, delta: int) -> str | None:
    """The variant ``delta`` places from ``current`` in the shown order (wrapping); the first when none."""
    if not ids:
        return None
    if current is None or current not in ids:
        return ids[0]
    return ids[(list(ids).index(current) + delta) % len(ids)]


def next_pending(out: Path, run_id: str, ids: Sequence[str], current: str | None) -> str | None:
    """The next variant after ``current`` (in the shown order, wrapping) nobody has decided on yet;
    None when every shown one is decided."""
    if not run_id or not ids:
        return None
    states = api.review_states(out, run_id)
    order = list(ids)
    start = order.index(current) + 1 if current in order else 0
    for vid in order[start:] + order[:start]:
        st = states.get(vid)
        if vid != current and (st is None or st.status == "pending"):
            return vid
    return None


@dataclass(frozen=True)
class ScoreRow:
    score: str
    value: float
    weight: float
    contribution: float


@dataclass(frozen=True)
class VariantView:
    variant_id: str
    profile_id: str
    label: str  # "romance #1 · 16:9"
    image: str
    keyframe_image: str
    keyframe_label: str
    headline: str  # place, total, status: Markdown
    rejected: str  # the ranking's rejection reason, or ""
    scores: tuple[tuple[str, float, float | None], ...]  # (score, value, weight it counted with)
    breakdown: tuple[ScoreRow, ...]  # every weight and contribution; the contributions add up to total
    total: float
    params: str  # Markdown
    state: ReviewState
    history: tuple[tuple[str, ...], ...]
    warnings: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # "Ana (approve): strong silhouette", newest first
    placed_by: str = ""
    aspect: str = ""
    seed: int = 0
    strength: float | None = None
    prompt: str = ""
    grade_amount: float = 1.0


def _find(run: RunResult, variant_id: str) -> RankedVariant:
    for items in list(run.profiles.values()) + [v for _, v in run.rejected]:
        for rv in items:
            if rv.variant.id == variant_id:
                return rv
    raise UnknownVariantError(run.run_id, variant_id)


#: The audit trail as a reviewer reads it (the variant by its name, never its id; internal version numbers
#: stay in the store, where the conflict check uses them).
HISTORY_HEADERS = ("time (UTC)", "reviewer", "action", "variant", "note")


def history(out: Path, run_id: str | None, variant_id: str | None = None) -> tuple[tuple[str, ...], ...]:
    """The audit trail, newest first, as table rows: time, reviewer, action, variant, note."""
    if not run_id:
        return ()
    run = api.load_run(out, run_id)
    names = {rv.variant.id: variant_label(rv) for items in list(run.profiles.values()) + [v for _, v in run.rejected]
             for rv in items}
    rows = []
    for d in reversed(api.decisions(out, run_id, variant_id=variant_id or None)):
        note = d.note
        for vid, name in names.items():  # "regenerated from <id>" names the variant, not its id
            note = note.replace(vid, name)
        rows.append((d.created_at.replace("T", " ")[:19], d.reviewer, d.action,
                     names.get(d.variant_id, d.profile_id), note))
    return tuple(rows)


def variant_detail(out: Path, run_id: str | None, variant_id: str | None) -> VariantView | None:
    """Everything about one variant: both pictures, the score breakdown, warnings, its review state and log."""
    if not run_id or not variant_id:
        return None
    run = api.load_run(out, run_id)
    rv = _find(run, variant_id)
    state = api.review_states(out, run_id).get(variant_id) or ReviewState(variant_id, "pending", 0)
    try:
        rows = api.score_breakdown(rv, run.preset)
    except GenartError:
        rows = ()
    breakdown = tuple(ScoreRow(c.score, float(c.value), float(c.weight), float(c.contribution)) for c in rows)
    weights = {c.score: c.weight for c in breakdown}
    scores = tuple((name, float(value), weights.get(name)) for name, value in rv.scores.items)
    kf = rv.variant.keyframe
    p = rv.variant.params
    headline = f"**{md_escape(variant_label(rv))}** · total **{rv.total:.3f}** · {STATUS_LABEL[state.status]}"
    if state.reviewer:
        headline += f" by {md_escape(state.reviewer)} ({state.at.replace('T', ' ')[:16]} UTC)"
    if rv.rank_score is not None and abs(rv.rank_score - rv.total) > 5e-4:
        headline += f" · placed at {rv.rank_score:.3f}" + (f" ({md_escape(rv.placed_by)})" if rv.placed_by else "")
    lines = [f"- {p.width}×{p.height} px · aspect {md_escape(p.aspect)} · {md_escape(p.method)} · variant seed {p.seed}"]
    if p.strength is not None:
        lines.append(f"- strength {p.strength:g} · steps {p.steps} · guidance {p.guidance:g}")
    if p.grade and p.grade != "none":
        lines.append(f"- look {md_escape(p.grade)} × {p.grade_amount:g}")
    if p.title:
        lines.append(f"- title “{md_escape(p.title)}”" + (f" in {md_escape(p.title_font)}" if p.title_font else ""))
    if p.prompt:
        lines.append(f"- prompt: {md_escape(p.prompt)}")
    if rv.placed_by:
        lines.append(f"- placed by {md_escape(rv.placed_by)}")
    lines.append(f"- provenance: {md_escape(rv.variant.digital_source_type)} (IPTC digital source type)")
    notes = tuple(f"{d.reviewer} ({d.action}): {d.note}" for d in reversed(api.decisions(out, run_id, variant_id=variant_id))
                  if d.note and d.action in ACTIONS)
    return VariantView(
        variant_id=rv.variant.id, profile_id=rv.profile_id, label=variant_label(rv), image=str(rv.path),
        keyframe_image=str(kf.path), keyframe_label=f"Source frame {kf.timecode} (shot {kf.shot}, frame {kf.frame_index})",
        headline=headline, rejected=rv.rejected or "", scores=scores, breakdown=breakdown, total=float(rv.total),
        params="\n".join(lines), state=state, history=history(out, run_id, variant_id),
        warnings=variant_warnings(rv), notes=notes, placed_by=rv.placed_by or "", aspect=p.aspect, seed=p.seed,
        strength=p.strength, prompt=p.prompt or "", grade_amount=float(p.grade_amount))


BREAKDOWN_HEADERS = ("score", "value", "weight", "contribution")


def breakdown_rows(view: VariantView) -> list[list[object]]:
    """The score table: every score, its weight and contribution, then the total they add up to."""
    rows: list[list[object]] = [[r.score, round(r.value, 4), round(r.weight, 3), round(r.contribution, 4)]
                                for r in view.breakdown]
    weight = sum(r.weight for r in view.breakdown)
    rows.append(["total", "", round(weight, 3),
                 round(sum(r.contribution for r in view.breakdown), 4)])
    return rows


def warnings_html(view: VariantView | None) -> str:
    if view is None or not (view.warnings or view.notes):
        return ""
    parts = [f'<li class="ga-warn">⚠ {esc(w)}</li>' for w in view.warnings]
    parts += [f'<li class="ga-note">✎ {esc(n)}</li>' for n in view.notes]
    return '<ul class="ga-flags">' + "".join(parts) + "</ul>"


@dataclass(frozen=True)
class DecisionDone:
    message: str
    state: ReviewState


def decide(out: Path, run_id: str | None, variant_id: str | None, action: str, reviewer: str, note: str = "",
           expected_version: object = None) -> DecisionDone:
    """Record a reviewer's decision on the version of the variant they looked at.

    Raises:
        InvalidArgumentError: no run or variant picked, a bad action or version.
        DecisionConflictError: someone decided on this variant since it was shown (nothing overwritten).
    """
    if not run_id or not variant_id:
        raise InvalidArgumentError("variant", variant_id, "a variant picked in the gallery first")
    if action not in ACTIONS:
        raise InvalidArgumentError("action", action, "one of " + ", ".join(ACTIONS))
    version = None if expected_version in (None, "") else _int(expected_version, "version", lo=0)
    d = api.record_decision(out, run_id, variant_id, action, reviewer, note or "", expected_version=version)
    state = api.review_states(out, run_id)[variant_id]
    return DecisionDone(f"{STATUS_LABEL[action]} by {d.reviewer} (version {d.version})", state)


@dataclass(frozen=True)
class BulkDone:
    message: str
    decided: tuple[str, ...]
    skipped: tuple[str, ...]  # someone else decided on these in the meantime: left as they are


def decide_many(out: Path, run_id: str | None, variant_ids: Sequence[str] | None, action: str, reviewer: str,
                note: str = "") -> BulkDone:
    """One decision on every variant shown (after filtering), each on the version it has now; one that
    changes meanwhile is skipped, never overwritten.

    Raises:
        InvalidArgumentError: no run, nothing shown, a bad action.
    """

    if not run_id:
        raise InvalidArgumentError("run", run_id, "a run picked first")
    if action not in ACTIONS:
        raise InvalidArgumentError("action", action, "one of " + ", ".join(ACTIONS))
    ids = list(dict.fromkeys(variant_ids or ()))
    if not ids:
        raise InvalidArgumentError("variants", [], "some variants shown (change the filters)")
    states = api.review_states(out, run_id)
    decided, skipped = [], []
    for vid in ids:
        st = states.get(vid)
        if st is not None and st.status == action:
            continue
        try:
            api.record_decision(out, run_id, vid, action, reviewer, note or "",
                                expected_version=st.version if st else 0)
            decided.append(vid)
        except DecisionConflictError:
            skipped.append(vid)
    msg = f"{STATUS_LABEL[action]} by {reviewer}: {len(decided)} variant(s)"
    if skipped:
        msg += f"; {len(skipped)} changed meanwhile and were left as they are"
    return BulkDone(msg, tuple(decided), tuple(skipped))


def regenerate(out: Path, run_id: str | None, variant_id: str | None, reviewer: str, seed: object = None,
               strength: object = None, prompt: str | None = None, *, aspect: str | None = None,
               grade_amount: object = None, progress: ProgressFn | None = None) -> RankedVariant:
    """A new variant from the same key frame (the old one stays). With nothing else given it is the
    one-click re-roll: a random seed, made the way the run made its variants.

    Raises:
        InvalidArgumentError: no variant picked, a bad seed, strength, aspect or amount, or a control
            the run's preset does not use.
    """
    if not run_id or not variant_id:
        raise InvalidArgumentError("variant", variant_id, "a variant picked in the gallery first")
    return api.regenerate_variant(out, run_id, variant_id, reviewer=reviewer, seed=seed_value(seed),
                                  strength=_opt_float(strength, "strength"), prompt=(prompt or "").strip() or None,
                                  aspect=aspect or None, grade_amount=_opt_float(grade_amount, "grade amount"),
                                  progress=progress)


def compare_choices(out: Path, run_id: str | None) -> list[tuple[str, str]]:
    """(label, variant id) of every variant of a run, profile by profile, best first."""
    if not run_id:
        return []
    run = api.load_run(out, run_id)
    states = api.review_states(out, run_id)
    out_list = []
    for pid, _ in run.ranked:
        for rv in _profile_rows(run, pid):
            st = states.get(rv.variant.id)
            out_list.append((f"{variant_label(rv)} · {STATUS_LABEL[st.status if st else 'pending']}", rv.variant.id))
    return out_list


def _card(rv: RankedVariant, state: ReviewState | None, title: str = "") -> str:
    status = state.status if state else "pending"
    head = f"<b>{esc(title)}</b> · " if title else ""
    return (f'<figure class="ga-cmp-cell" data-vid="{esc(rv.variant.id)}"><img src="{file_url(rv.path)}" alt="">'
            f'<figcaption>{head}{esc(variant_label(rv))} · total {rv.total:.3f} · seed {rv.variant.params.seed} '
            f'<span class="ga-badge ga-badge-{status}">{esc(STATUS_LABEL[status])}</span></figcaption></figure>')


def compare_html(out: Path, run_id: str | None, variant_ids: Sequence[str] | None,
                 titles: Mapping[str, str] | None = None) -> str:
    """Two or more variants side by side, each at the full height of the view."""
    ids = list(dict.fromkeys(variant_ids or ()))
    if not run_id or len(ids) < 2:
        return '<div class="ga-empty">Pick two or more variants to compare them side by side.</div>'
    run = api.load_run(out, run_id)
    states = api.review_states(out, run_id)
    cells = [_card(_find(run, vid), states.get(vid), (titles or {}).get(vid, "")) for vid in ids]
    return f'<div class="ga-compare" style="--n:{len(cells)}">' + "".join(cells) + "</div>"


@dataclass(frozen=True)
class MatrixView:
    keyframe_id: str
    profiles: tuple[str, ...]
    aspects: tuple[str, ...]
    cells: tuple[tuple[RankedVariant | None, ...], ...]  # [profile][aspect]: the best variant there


def matrix(out: Path, run_id: str | None, keyframe_id: str | None) -> MatrixView:
    """One key frame across profiles (rows) × aspects (columns): the best-placed variant in each cell."""
    if not run_id:
        return MatrixView("", (), (), ())
    run = api.load_run(out, run_id)
    kf_id = keyframe_id or (run.keyframes[0].id if run.keyframes else "")
    profiles = tuple(pid for pid, _ in run.ranked)
    rows_all = {pid: [rv for rv in _profile_rows(run, pid) if rv.variant.keyframe.id == kf_id] for pid in profiles}
    aspects = tuple(dict.fromkeys(rv.variant.params.aspect for rows in rows_all.values() for rv in rows))
    cells = []
    for pid in profiles:
        row = []
        for a in aspects:
            mine = [rv for rv in rows_all[pid] if rv.variant.params.aspect == a]
            mine.sort(key=lambda rv: (rv.rank is None, rv.rank or 0, -rv.total))
            row.append(mine[0] if mine else None)
        cells.append(tuple(row))
    return MatrixView(kf_id, profiles, aspects, tuple(cells))


def matrix_html(out: Path, run_id: str | None, view: MatrixView) -> str:
    if not view.profiles or not view.aspects:
        return '<div class="ga-empty">No variants of this key frame.</div>'
    states = api.review_states(out, run_id) if run_id else {}
    head = "".join(f"<th>{esc(a)} {esc(ARTWORK_TYPE.get(a, ''))}</th>" for a in view.aspects)
    body = []
    for pid, row in zip(view.profiles, view.cells):
        tds = []
        for rv in row:
            if rv is None:
                tds.append('<td class="ga-none">—</td>')
            else:
                st = states.get(rv.variant.id)
                status = st.status if st else "pending"
                tds.append(f'<td><button type="button" class="ga-mx ga-{status}" data-vid="{esc(rv.variant.id)}">'
                           f'<img src="{file_url(rv.path)}" alt=""><span class="ga-badge ga-badge-{status}">'
                           f'{esc(STATUS_LABEL[status])}</span><span class="ga-cap">{esc(variant_caption(rv))}</span>'
                           f'</button></td>')
        body.append(f"<tr><th>{esc(pid)}</th>{''.join(tds)}</tr>")
    return f'<table class="ga-matrix"><thead><tr><th></th>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


@dataclass(frozen=True)
class ExportDone:
    path: str
    message: str
    warnings: tuple[str, ...]


def export(out: Path, run_id: str | None, *, progress: ProgressFn | None = None) -> ExportDone:
    """The run's approved variants as a delivery package (zip + manifest.json) under ``<out>/runs/<run>/``.

    Raises:
        InvalidArgumentError: no run picked. NothingApprovedError: nothing approved yet.
    """
    if not run_id:
        raise InvalidArgumentError("run", run_id, "a run picked in the Review step")
    run = api.load_run(out, run_id)
    pkg = api.export_package(out, run_id, run.out_dir / f"{run_id}-delivery.zip", progress=progress)
    kinds = ", ".join(f"{c.count} {c.artwork_type} ({c.locale})" for c in pkg.counts)
    msg = f"Package ready: {len(pkg.files)} picture(s): {kinds}, with manifest.json"
    return ExportDone(str(pkg.zip_path), msg, pkg.warnings)


def export_html(done: ExportDone) -> str:
    """What the package holds, and what delivery should know about it (each warning on its own line)."""
    items = "".join(f"<li>⚠ {esc(w)}</li>" for w in done.warnings)
    return (f'<div class="ga-export"><b>{esc(done.message)}</b>' + (f"<ul>{items}</ul>" if items else "") + "</div>")


# --- 4. hand-off to a bandit test ------------------------------------------------------------------
def approved_profiles(out: Path, run_id: str | None) -> list[str]:
    """The profiles with at least one approved variant: the default segments of a test."""
    if not run_id:
        return []
    seen: list[str] = []
    for rv in api.approved_variants(out, run_id):
        if rv.profile_id not in seen:
            seen.append(rv.profile_id)
    return seen


def default_test_id(run_id: str | None) -> str:
    return f"{run_id}-test" if run_id else ""


@dataclass(frozen=True)
class ControlView:
    path: str  # the stored copy, served by the app
    summary: str  # where it places for each profile


def save_control(out: Path, run_id: str | None, upload: object) -> ControlView:
    """Keep today's artwork (the control arm's picture) in the store and rank it like any variant.

    Raises:
        InvalidArgumentError: no run picked. UploadError: nothing uploaded or not an image.
        UnsupportedMediaError: not a readable image.
    """
    from genart.imaging import sha256_file

    if not run_id:
        raise InvalidArgumentError("run", run_id, "a run picked in the Review step")
    paths = _upload_paths(upload)
    src = paths[0]
    if src.suffix.lower() not in IMAGE_EXTS or not src.is_file():
        raise UploadError(f"{src.name} is not an image file", hint="upload today's artwork as PNG or JPEG")
    folder = Path(out) / "uploads" / "controls"
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / f"{sha256_file(src)[:16]}{src.suffix.lower()}"
    if not dst.exists():
        shutil.copyfile(src, dst)
    with _upload_names({str(src): src.name, str(dst): src.name}):
        ranked = api.rank_artwork(out, run_id, dst)
    parts = []
    for pid, rv in ranked.items():
        if rv.rejected:
            parts.append(f"{md_escape(pid)}: rejected by the ranking ({md_escape(rv.rejected)})")
        else:
            parts.append(f"{md_escape(pid)}: total {rv.total:.3f}, would place #{rv.rank}")
    return ControlView(str(dst.resolve()), "Today's artwork, ranked like the variants: " + "; ".join(parts) + ".")


def test_options(floor: object = None, stop_probability: object = None, min_impressions: object = None) -> dict:
    """The test settings a team may change, as the bandit stage's ``TestConfig`` names them (None: its default).

    Raises:
        InvalidArgumentError: a value that is not a number.
    """
    options: dict[str, object] = {}
    f, p = _opt_float(floor, "exploration floor"), _opt_float(stop_probability, "stop probability")
    if f is not None:
        options["floor"] = f
    if p is not None:
        options["stop_probability"] = p
    if min_impressions not in (None, ""):
        options["min_impressions"] = _int(min_impressions, "minimum impressions", lo=0)
    return options


test_options.__test__ = False  # type: ignore[attr-defined]  # a handler, not a pytest test


@dataclass(frozen=True)
class HandoffDone:
    test_id: str
    message: str


def handoff(out: Path, run_id: str | None, reviewer: str, test_id: str | None, segments: Iterable[str] | None,
            include_control: bool = True, policy: str = "ts", control_image: str | None = None,
            options: Mapping[str, object] | None = None) -> HandoffDone:
    """Send the run's approved variants to a new bandit test: one segment per chosen profile.

    ``options``: further test settings by name, passed through to the bandit stage as they are.
    """
    if not run_id:
        raise InvalidArgumentError("run", run_id, "a run picked in the Review step")
    segs = list(segments or [])
    if not segs:
        raise InvalidArgumentError("segments", [], "at least one audience segment (a profile with approved variants)")
    record = api.handoff_to_test(out, run_id, reviewer=reviewer, test_id=(test_id or "").strip() or None,
                                 segments={s: [s] for s in segs}, include_control=bool(include_control),
                                 control_image=control_image or None, policy=policy or "ts", options=options)
    n = sum(1 for a in record.arms if not a.is_control)
    return HandoffDone(record.test_id, f"Test **{md_escape(record.test_id)}** created by {md_escape(record.reviewer)}: "
                                       f"{n} arm(s) in {len(segs)} segment(s).")


def test_choices(out: Path, run_id: str | None) -> list[str]:
    if not run_id:
        return []
    return [h.test_id for h in api.handoffs(out, run_id)]


RESULT_HEADERS = ("segment", "arm", "impressions", "clicks", "click rate", "95% interval", "P(best)", "verdict")


@dataclass(frozen=True)
class ArmView:
    segment: str
    arm_id: str
    name: str  # "romance #1 · 16:9" or today's artwork
    image: str  # "" when there is no picture (a control nobody uploaded)
    is_control: bool
    prior: float
    impressions: int
    clicks: int
    click_rate: float | None  # None before any impression (the prior is not a click rate)
    ci: tuple[float, float] | None
    prob_best: float | None
    verdict: str  # "winner" | "leading" | "" for the segment's best arm


@dataclass(frozen=True)
class SegmentView:
    segment: str
    verdict: str  # "winner" | "leading" | "inconclusive" | "no traffic yet"
    text: str  # the verdict in a sentence
    arms: tuple[ArmView, ...]


@dataclass(frozen=True)
class TestView:
    __test__ = False

    test_id: str
    segments: tuple[SegmentView, ...]
    summary: str
    trends: tuple[dict[str, object], ...] = ()  # rows for the plots: segment, arm, exposures, share, click rate
    policy: str = ""
    status: str = ""
    cli: str = ""  # the same report from a shell

    @property
    def rows(self) -> tuple[tuple[object, ...], ...]:
        """The results as table rows (RESULT_HEADERS)."""
        out = []
        for seg in self.segments:
            for a in seg.arms:
                out.append((seg.segment, a.name, a.impressions, a.clicks,
                            "—" if a.click_rate is None else f"{a.click_rate:.2%}",
                            "—" if a.ci is None else f"{a.ci[0]:.2%} – {a.ci[1]:.2%}",
                            "—" if a.prob_best is None else f"{a.prob_best:.0%}", a.verdict))
        return tuple(out)


#: A segment with no winner yet but one arm at least this likely to be best is "leading".
LEADING_P = 0.6


def verdict(arms: Sequence[ArmView], winner: str | None, reason: str) -> tuple[str, str, str | None]:
    """(verdict, sentence, arm id it is about) for one segment, in plain words."""
    total = sum(a.impressions for a in arms)
    if total == 0:
        return "no traffic yet", "No traffic yet: the priors below come from the ranking, not from clicks.", None
    best = max(arms, key=lambda a: a.prob_best or 0.0)
    if winner:
        won = next((a for a in arms if a.arm_id == winner), best)
        return ("winner", f"Winner: {won.name} (P(best) {won.prob_best or 0:.0%} after {total} impressions).",
                won.arm_id)
    if (best.prob_best or 0.0) >= LEADING_P:
        return ("leading", f"Leading: {best.name} (P(best) {best.prob_best:.0%}); not decided yet: {reason}.",
                best.arm_id)
    return "inconclusive", f"Inconclusive: no arm is ahead yet after {total} impressions ({reason}).", None


def _arm_names(out: Path, test_id: str) -> dict[tuple[str, str], tuple[str, str]]:
    """(segment, arm id) -> (name, image) from the hand-off record and the run's ranking."""
    names: dict[tuple[str, str], tuple[str, str]] = {}
    for summary in api.list_runs(out):
        for rec in api.handoffs(out, summary.run_id):
            if rec.test_id != test_id:
                continue
            run = api.load_run(out, rec.run_id)
            by_id = {rv.variant.id: rv for items in run.profiles.values() for rv in items}
            for a in rec.arms:
                if a.is_control:
                    names[(a.segment, a.arm_id)] = (CONTROL_LABEL, str(a.image_path) if a.image_path else "")
                else:
                    rv = by_id.get(a.variant_id or "")
                    names[(a.segment, a.arm_id)] = (variant_label(rv) if rv else f"{a.profile_id} variant",
                                                    str(a.image_path) if a.image_path else "")
            return names
    return names


def test_results(out: Path, test_id: str | None) -> TestView:
    """The test as it stands: per segment a verdict and each arm with its picture and numbers."""
    if not test_id:
        return TestView("", (), "No test yet: hand off approved variants first.")
    rep = api.test_report(out, test_id, plots=False).report
    names = _arm_names(out, test_id)
    priors = {}
    for listed in api.list_runs(out):
        for rec in api.handoffs(out, listed.run_id):
            if rec.test_id == test_id:
                priors = {(a.segment, a.arm_id): a.prior_mean for a in rec.arms}
    segments = []
    total = 0
    for seg in rep.segments:
        arms = []
        for a in seg.arms:
            name, image = names.get((seg.segment, a.arm_id), (CONTROL_LABEL if a.is_control else a.arm_id, ""))
            seen = a.impressions > 0
            arms.append(ArmView(seg.segment, a.arm_id, name, image, a.is_control,
                                float(priors.get((seg.segment, a.arm_id), a.posterior_mean if not seen else 0.5)),
                                a.impressions, int(round(a.rewards)),
                                a.rewards / a.impressions if seen else None,
                                (a.ci_low, a.ci_high) if seen else None, a.prob_best if seen else None, ""))
            total += a.impressions
        kind, text, about = verdict(arms, seg.winner, seg.reason)
        if about is not None:
            arms = [ArmView(**{**a.__dict__, "verdict": kind if a.arm_id == about else ""}) for a in arms]
        segments.append(SegmentView(seg.segment, kind, text, tuple(arms)))
    trends = []
    one = len(rep.segments) == 1
    for t in api.test_timeline(out, test_id):
        name = names.get((t.segment, t.arm_id), (t.arm_id, ""))[0]
        for x, share, rate in zip(t.exposures, t.share, t.click_rate):
            trends.append({"segment": t.segment, "arm": name if one else f"{t.segment}: {name}", "exposures": x,
                           "share": round(100 * share, 2), "click rate": None if rate is None else round(100 * rate, 3)})
    summary = (f"Test **{md_escape(test_id)}** · policy {md_escape(rep.policy)} · {md_escape(rep.status)} · "
               f"{total} impressions.")
    return TestView(test_id, tuple(segments), summary, tuple(trends), rep.policy, rep.status,
                    f"genart bandit report {test_id} --store {Path(out).resolve() / 'genart.sqlite'}")


def arms_html(view: TestView) -> str:
    """Each segment's verdict, then each arm's picture with its numbers beside it."""
    if not view.segments:
        return '<div class="ga-empty">No test yet: hand off approved variants, then its arms show here.</div>'
    parts = []
    for seg in view.segments:
        cards = []
        for a in seg.arms:
            pic = (f'<img src="{file_url(a.image)}" alt="">' if a.image else
                   '<div class="ga-nopic">no picture: upload today\'s artwork before the hand-off</div>')
            if a.impressions:
                lo, hi = a.ci or (0.0, 0.0)
                numbers = (f"<dt>impressions</dt><dd>{a.impressions}</dd><dt>clicks</dt><dd>{a.clicks}</dd>"
                           f"<dt>click rate</dt><dd>{(a.click_rate or 0):.2%} <small>(95% {lo:.2%} – {hi:.2%})</small></dd>"
                           f"<dt>P(best)</dt><dd><span class=\"ga-pbest\"><span style=\"width:{100 * (a.prob_best or 0):.0f}%\">"
                           f"</span></span> {(a.prob_best or 0):.0%}</dd>")
            else:
                numbers = "<dt>impressions</dt><dd>none yet</dd>"
            numbers += f"<dt>prior</dt><dd>{a.prior:.3f} <small>(from the ranking)</small></dd>"
            badge = f'<span class="ga-verdict ga-verdict-{a.verdict}">{esc(a.verdict)}</span>' if a.verdict else ""
            cards.append(f'<div class="ga-arm{" ga-arm-control" if a.is_control else ""}">{pic}<div class="ga-arm-body">'
                         f'<div class="ga-arm-name">{esc(a.name)} {badge}</div><dl>{numbers}</dl></div></div>')
        parts.append(f'<section class="ga-seg"><h4>{esc(seg.segment)} <span class="ga-verdict ga-verdict-'
                     f'{esc(seg.verdict.replace(" ", "-"))}">{esc(seg.verdict)}</span></h4><p>{esc(seg.text)}</p>'
                     f'<div class="ga-arms">{"".join(cards)}</div></section>')
    return "".join(parts)


def simulate(out: Path, test_id: str | None, impressions: object = 2000, *, steps: int = 4,
             seed: object = 0) -> Iterator[TestView]:
    """Drive the test with simulated members (a demo), yielding the results after each step."""
    if not test_id:
        raise InvalidArgumentError("test", test_id, "a test handed off first")
    n = _int(impressions, "impressions", lo=10, hi=1_000_000)
    s = _int(seed, "seed", lo=0, default=0)
    steps = max(1, min(int(steps), n // 10))
    done = 0
    for i in range(steps):
        chunk = n // steps + (1 if i < n % steps else 0)
        api.simulate_test(out, test_id, impressions=chunk, seed=s * 1000 + done)
        done += chunk
        yield test_results(out, test_id)
