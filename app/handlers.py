"""The review app's handlers: plain functions over ``genart.api``, tested without a browser.

Every handler takes the store folder (``out``) first and plain values after it, returns plain values
or a small frozen view, and raises genart's typed errors for bad input; ``app.ui`` turns those into
messages a person reads. Nothing here imports gradio, and no model object is ever held: a handler
asks ``genart.api``, which loads (and caches per process) what it needs.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator, Mapping, Sequence

from genart import api
from genart.errors import GenartError, InvalidArgumentError, UnknownProfileError, UploadError
from genart.types import RankedVariant, ReviewState, RunResult

ProgressFn = Callable[[str, int, int], None]

#: Upload limit unless the app is started with another (``--max-upload-mb``).
DEFAULT_MAX_UPLOAD_MB = 1024
VIDEO_EXTS = (".mp4", ".mov", ".m4v", ".mkv", ".webm", ".avi", ".mpg", ".mpeg", ".ts", ".wmv", ".flv", ".ogv")
IMAGE_EXTS = (".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff")
MEDIA_EXTS = VIDEO_EXTS + IMAGE_EXTS

STATUS_LABEL = {"approve": "✓ approved", "reject": "✗ rejected", "flag": "⚑ flagged", "pending": "pending review"}
ACTIONS = ("approve", "reject", "flag")
POLICIES = (("Thompson sampling", "ts"), ("epsilon-greedy", "egreedy"), ("UCB1", "ucb1"))


# --- small helpers -------------------------------------------------------------------------------
def md_escape(text: object) -> str:
    """User text shown inside Markdown: no links, images or HTML sneak in."""
    return re.sub(r"([\\`*_\[\]<>|~])", r"\\\1", " ".join(str(text).split()))


def _int(value: object, name: str, *, lo: int | None = None, hi: int | None = None,
         default: int | None = None) -> int:
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is None:
            raise InvalidArgumentError(name, value, "a whole number")
        return default
    try:
        f = float(value)
        n = int(f)
        if f != n:
            raise ValueError
    except (TypeError, ValueError, OverflowError):
        raise InvalidArgumentError(name, value, "a whole number") from None
    if (lo is not None and n < lo) or (hi is not None and n > hi):
        raise InvalidArgumentError(name, value, f"a whole number from {lo} to {hi}")
    return n


def _opt_float(value: object, name: str) -> float | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise InvalidArgumentError(name, value, "a number") from None


def reviewer_name(username: str | None, typed: str | None) -> str:
    """Who is deciding: the signed-in user when the app has authentication, else the typed name."""
    if username:
        return username
    name = (typed or "").strip()
    if not name:
        raise InvalidArgumentError("reviewer", typed, "your name in the 'Your name' box (it goes in the audit trail)")
    return name


# --- 1. a title: upload and key frames ------------------------------------------------------------
@dataclass(frozen=True)
class StageView:
    stage_id: str
    items: tuple[tuple[str, str], ...]  # (image path, caption) per key frame
    choices: tuple[tuple[str, str], ...]  # (label, key frame id)
    selected: tuple[str, ...]
    summary: str


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


def keyframe_caption(i: int, kf) -> str:
    q = kf.scores.get("quality")
    parts = [f"{i}. {kf.timecode}", f"shot {kf.shot}"]
    if q is not None:
        parts.append(f"quality {q:.2f}")
    parts.append(f"faces {len(kf.faces)}")
    return " · ".join(parts)


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
    return StageView(stage.stage_id, items, choices, tuple(kf.id for kf in stage.keyframes), summary)


# --- 2. profiles, prompts, presets, generation ----------------------------------------------------
def profile_choices() -> list[tuple[str, str]]:
    return [(f"{p.name} ({p.id})", p.id) for p in api.list_profiles()]


def preset_choices() -> list[tuple[str, str]]:
    return [(p.name, p.name) for p in api.list_presets()]


def default_preset() -> str:
    return api.list_presets()[0].name


def preset_info(name: str) -> str:
    """What a preset is and whether it can run on this machine (no network)."""
    spec = next((p for p in api.list_presets() if p.name == name), None)
    if spec is None:
        raise InvalidArgumentError("preset", name, "one of " + ", ".join(p.name for p in api.list_presets()))
    text = f"**{md_escape(spec.name)}**: {md_escape(spec.description)}"
    if spec.kind == "classic":
        return text + "  \nPrompts are not used by this preset (it reframes and grades the frame)."
    check = api.check_preset(name)
    if not check.ok:
        missing = ", ".join(md_escape(i.model_id) for i in check.items if not i.present)
        text += f"  \n⚠ weights not on this machine: {missing} (`genart models pull {md_escape(name)}`)"
    return text


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
    clean = " ".join((text or "").split())
    if not clean or clean == " ".join(original.split()):
        new.pop(profile_id, None)
    else:
        new[profile_id] = text.strip()
    return new


@dataclass(frozen=True)
class RunDone:
    run_id: str
    summary: str


def generate(out: Path, stage_id: str, keyframe_ids: Sequence[str] | None, profiles: Sequence[str] | None,
             preset: str | None, variants_per_frame: object, seed: object, title: str = "", genre: str = "",
             prompts: Mapping[str, str] | None = None, *, progress: ProgressFn | None = None) -> RunDone:
    """Make and rank the variants of the kept key frames for each chosen profile.

    Raises:
        InvalidArgumentError: no stage yet, no key frame or profile chosen, a bad count or seed.
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
    prompts = {k: v for k, v in (prompts or {}).items() if k in profiles}
    result = api.create_run_from_stage(out, stage_id, keyframe_ids=list(keyframe_ids), profiles=list(profiles),
                                       preset=preset or None, variants_per_frame=n, seed=s, title=title or "",
                                       genre=genre or "", prompts=prompts, progress=progress)
    counts = ", ".join(f"{pid}: {len(items)}" for pid, items in result.ranked)
    rejected = sum(len(items) for _, items in result.rejected)
    summary = f"Run **{result.run_id}** done ({result.preset}): ranked variants per profile: {counts}."
    if rejected:
        summary += f" {rejected} rejected by the ranking (shown last, with the reason)."
    return RunDone(result.run_id, summary)


# --- 3. review ---------------------------------------------------------------------------------------
def run_choices(out: Path) -> list[tuple[str, str]]:
    """(label, run id) of the store's runs, newest first."""
    out_list = []
    for r in api.list_runs(out):
        name = r.title or Path(r.source).name
        mark = "" if r.status == "done" else f" [{r.status}]"
        out_list.append((f"{r.run_id} · {name} · {r.preset}{mark}", r.run_id))
    return out_list


@dataclass(frozen=True)
class RunView:
    run_id: str
    profiles: tuple[str, ...]
    summary: str


def open_run(out: Path, run_id: str | None) -> RunView:
    if not run_id:
        return RunView("", (), "No run yet: upload a title and generate (steps 1 and 2).")
    run = api.load_run(out, run_id)
    states = api.review_states(out, run_id)
    counts: dict[str, int] = {}
    for st in states.values():
        counts[st.status] = counts.get(st.status, 0) + 1
    n = sum(len(v) for _, v in run.ranked) + sum(len(v) for _, v in run.rejected)
    summary = (f"Run **{run.run_id}** · preset {run.preset} · {len(run.keyframes)} key frame(s) · {n} variant(s): "
               + ", ".join(f"{counts.get(k, 0)} {STATUS_LABEL[k]}" for k in ("approve", "reject", "flag", "pending")))
    return RunView(run.run_id, tuple(pid for pid, _ in run.ranked), summary)


def _profile_rows(run: RunResult, profile_id: str) -> list[RankedVariant]:
    return list(run.profiles.get(profile_id, ())) + list(dict(run.rejected).get(profile_id, ()))


def variant_caption(rv: RankedVariant, state: ReviewState | None) -> str:
    status = STATUS_LABEL[state.status if state else "pending"]
    place = f"#{rv.rank}" if rv.rank is not None else "not ranked"
    return f"{place} · {rv.total:.3f} · {status}"


@dataclass(frozen=True)
class GalleryView:
    items: tuple[tuple[str, str], ...]  # (image path, caption), best first, ranking-rejected last
    variant_ids: tuple[str, ...]


def gallery(out: Path, run_id: str | None, profile_id: str | None) -> GalleryView:
    if not run_id or not profile_id:
        return GalleryView((), ())
    run = api.load_run(out, run_id)
    if profile_id not in run.profiles:
        raise UnknownProfileError(profile_id, run.profiles)
    states = api.review_states(out, run_id)
    rows = _profile_rows(run, profile_id)
    return GalleryView(tuple((str(rv.path), variant_caption(rv, states.get(rv.variant.id))) for rv in rows),
                       tuple(rv.variant.id for rv in rows))


@dataclass(frozen=True)
class VariantView:
    variant_id: str
    profile_id: str
    image: str
    keyframe_image: str
    keyframe_label: str
    headline: str  # rank, total, status: Markdown
    rejected: str  # the ranking's rejection reason, or ""
    scores: tuple[tuple[str, float, float | None], ...]  # (score, value, profile weight)
    params: str  # Markdown
    state: ReviewState
    history: tuple[tuple[str, ...], ...]


def _find(run: RunResult, variant_id: str) -> RankedVariant:
    from genart.errors import UnknownVariantError

    for items in list(run.profiles.values()) + [v for _, v in run.rejected]:
        for rv in items:
            if rv.variant.id == variant_id:
                return rv
    raise UnknownVariantError(run.run_id, variant_id)


HISTORY_HEADERS = ("time (UTC)", "reviewer", "action", "variant", "profile", "version", "note")


def history(out: Path, run_id: str | None, variant_id: str | None = None) -> tuple[tuple[str, ...], ...]:
    """The audit trail, newest first, as table rows."""
    if not run_id:
        return ()
    rows = []
    for d in reversed(api.decisions(out, run_id, variant_id=variant_id or None)):
        rows.append((d.created_at.replace("T", " ")[:19], d.reviewer, d.action, d.variant_id, d.profile_id,
                     str(d.version), d.note))
    return tuple(rows)


def variant_detail(out: Path, run_id: str | None, variant_id: str | None) -> VariantView | None:
    """Everything about one variant: both pictures, the score breakdown, its review state and log."""
    if not run_id or not variant_id:
        return None
    run = api.load_run(out, run_id)
    rv = _find(run, variant_id)
    state = api.review_states(out, run_id).get(variant_id) or ReviewState(variant_id, "pending", 0)
    try:
        weights = api.get_profile(rv.profile_id).weights.as_dict()
    except GenartError:
        weights = {}
    scores = tuple((name, float(value), weights.get(name)) for name, value in rv.scores.items)
    kf = rv.variant.keyframe
    p = rv.variant.params
    place = f"#{rv.rank}" if rv.rank is not None else "not ranked"
    headline = f"**{place}** for {md_escape(rv.profile_id)} · total **{rv.total:.3f}** · {STATUS_LABEL[state.status]}"
    if state.reviewer:
        headline += f" by {md_escape(state.reviewer)} ({state.at.replace('T', ' ')[:19]} UTC)"
    lines = [f"- variant `{rv.variant.id}` · {p.width}×{p.height} px · aspect {md_escape(p.aspect)} · "
             f"method {md_escape(p.method)} · seed {p.seed}"]
    if p.strength is not None:
        lines.append(f"- strength {p.strength:g} · steps {p.steps} · guidance {p.guidance:g}")
    if p.grade and p.grade != "none":
        lines.append(f"- grade {md_escape(p.grade)} × {p.grade_amount:g}")
    if p.prompt:
        lines.append(f"- prompt: {md_escape(p.prompt)}")
    lines.append(f"- provenance: {md_escape(rv.variant.digital_source_type)} (IPTC digital source type)")
    return VariantView(
        variant_id=rv.variant.id, profile_id=rv.profile_id, image=str(rv.path), keyframe_image=str(kf.path),
        keyframe_label=f"Source frame {kf.timecode} (shot {kf.shot}, frame {kf.frame_index})", headline=headline,
        rejected=rv.rejected or "", scores=scores, params="\n".join(lines), state=state,
        history=history(out, run_id, variant_id))


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


def regenerate(out: Path, run_id: str | None, variant_id: str | None, reviewer: str, seed: object = None,
               strength: object = None, prompt: str | None = None, *, progress: ProgressFn | None = None) -> RankedVariant:
    """A new variant from the same key frame with a new seed, strength or prompt (the old one stays)."""
    if not run_id or not variant_id:
        raise InvalidArgumentError("variant", variant_id, "a variant picked in the gallery first")
    s = None if seed in (None, "") else _int(seed, "seed", lo=0, hi=2**31 - 1)
    return api.regenerate_variant(out, run_id, variant_id, reviewer=reviewer, seed=s,
                                  strength=_opt_float(strength, "strength"), prompt=(prompt or "").strip() or None,
                                  progress=progress)


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


ARM_HEADERS = ("segment", "arm", "variant", "profile", "control", "prior mean")


@dataclass(frozen=True)
class HandoffDone:
    test_id: str
    arms: tuple[tuple[object, ...], ...]
    message: str


def handoff(out: Path, run_id: str | None, reviewer: str, test_id: str | None, segments: Iterable[str] | None,
            include_control: bool = True, policy: str = "ts") -> HandoffDone:
    """Send the run's approved variants to a new bandit test: one segment per chosen profile."""
    if not run_id:
        raise InvalidArgumentError("run", run_id, "a run picked in the Review step")
    segs = list(segments or [])
    if not segs:
        raise InvalidArgumentError("segments", [], "at least one audience segment (a profile with approved variants)")
    record = api.handoff_to_test(out, run_id, reviewer=reviewer, test_id=(test_id or "").strip() or None,
                                 segments={s: [s] for s in segs}, include_control=bool(include_control),
                                 policy=policy or "ts")
    rows = tuple((a.segment, a.arm_id if not a.is_control else "control", a.variant_id or "", a.profile_id or "",
                  "yes" if a.is_control else "", round(a.prior_mean, 3)) for a in record.arms)
    n = sum(1 for a in record.arms if not a.is_control)
    return HandoffDone(record.test_id, rows, f"Test **{md_escape(record.test_id)}** created by "
                                             f"{md_escape(record.reviewer)}: {n} arm(s) in {len(segs)} segment(s).")


def test_choices(out: Path, run_id: str | None) -> list[str]:
    if not run_id:
        return []
    return [h.test_id for h in api.handoffs(out, run_id)]


RESULT_HEADERS = ("segment", "arm", "impressions", "clicks", "click rate", "95% interval", "P(best)", "winner")


@dataclass(frozen=True)
class TestView:
    __test__ = False

    test_id: str
    rows: tuple[tuple[object, ...], ...]
    plots: tuple[str, ...]  # cumulative reward, arm share over time (PNG paths)
    summary: str


def test_results(out: Path, test_id: str | None) -> TestView:
    """The test's per-segment results and its plot, as they stand now."""
    if not test_id:
        return TestView("", (), (), "No test yet: hand off approved variants first.")
    snap = api.test_report(out, test_id)
    rows = []
    total = 0
    for seg in snap.report.segments:
        for a in seg.arms:
            total += a.impressions
            rows.append((seg.segment, "control" if a.is_control else a.arm_id, a.impressions, int(round(a.rewards)),
                         round(a.posterior_mean, 4), f"{a.ci_low:.3f} – {a.ci_high:.3f}", round(a.prob_best, 3),
                         "★" if seg.winner == a.arm_id else ""))
    winners = [f"{md_escape(s.segment)}: {md_escape(s.winner)}" for s in snap.report.segments if s.winner]
    summary = (f"Test **{md_escape(test_id)}** · {snap.report.policy} · {snap.report.status} · {total} impressions. "
               + ("Winners: " + ", ".join(winners) if winners else "No winner yet."))
    return TestView(test_id, tuple(rows), tuple(str(p) for p in snap.plots), summary)


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
