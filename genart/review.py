"""Review and hand-off: what the app (and any notebook) uses to turn a run into approved artwork.

An orchestrator beside ``genart.pipeline``: it reads runs back from the store, keeps reviewers'
decisions in an append-only log (``genart.store.review_tables``), regenerates single variants, and
hands approved ones to a bandit test (``genart.bandit``). ``genart.api`` re-exports its public
functions; importing it stays cheap (no torch).
"""

from __future__ import annotations

import re
import threading
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Mapping, Sequence

from genart.config import load_models_config
from genart.progress import ProgressFn
from genart.types import ArmTrend, Contribution, Grade, RankedVariant, RunResult, TasteProfile

# --- review: what the app (and any notebook) uses to turn a run into approved artwork -------------
# Decisions live in an append-only log (``genart.store.review_tables``) in the run's own store.


from genart.types import (
    REVIEW_ACTIONS,
    Arm,
    HandoffRecord,
    ReviewDecision,
    ReviewState,
    RunSummary,
    StagedSource,
    TestSnapshot,
)

if TYPE_CHECKING:  # pragma: no cover
    from genart.bandit.tester import Tester
    from genart.store.db import Store

_STAGE_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")
_MAX_REVIEWER = 128
_MAX_NOTE = 4000


def _now_iso() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


_STORES: dict[tuple[str, str | None], "Store"] = {}
_STORES_LOCK = threading.Lock()
_WRITE_LOCKS: dict[str, threading.Lock] = {}
_RUNS: dict[tuple[str, str], tuple[tuple, RunResult]] = {}  # (store, run) -> (what it depends on, load_run)


@contextmanager
def _review_store(out: str | Path, db: str | None = None) -> Iterator["Store"]:
    """The run store with the review tables created, opened once per process and folder.

    Every review call (a decision, a gallery, a history) used to open the store afresh: a new engine,
    the schema checked table by table, the connections closed again; with several reviewers that was
    most of a decision's time. The store is thread-safe (a session per call), so one is kept per
    folder; it is opened again if its database file was removed.
    """
    import genart.store.review_tables  # noqa: F401  (registers the tables before Store's create_all)
    from genart.store.db import Store

    key = (str(Path(out).resolve()), db)
    with _STORES_LOCK:
        store = _STORES.get(key)
        if store is not None and db is None and not (store.root / "genart.sqlite").exists():
            store.engine.dispose()
            store = None
        if store is None:  # rooted at the absolute folder: the working directory may change later
            store = _STORES[key] = Store(Path(out).resolve(), db)
    yield store


def _write_lock(store: "Store") -> threading.Lock:
    """One decision written at a time per store in this process: writers queue here (and wake at once)
    instead of in SQLite's busy handler, whose back-off sleeps grow while the database is free."""
    with _STORES_LOCK:
        return _WRITE_LOCKS.setdefault(store.url, threading.Lock())


def _run_row(session, run_id: str):
    from sqlalchemy import select

    from genart.errors import UnknownRunError
    from genart.store.db import RunRow

    row = session.get(RunRow, run_id) if isinstance(run_id, str) and run_id else None
    if row is None:
        known = session.scalars(select(RunRow.id).order_by(RunRow.created_at.desc())).all()
        raise UnknownRunError(str(run_id), known)
    return row


def _check_reviewer(reviewer: object) -> str:
    from genart.errors import InvalidArgumentError

    name = reviewer.strip() if isinstance(reviewer, str) else ""
    if not name or len(name) > _MAX_REVIEWER:
        raise InvalidArgumentError("reviewer", reviewer, f"your name (1 to {_MAX_REVIEWER} characters)")
    return name


def _check_prompt(prompt: str) -> str:
    from genart.errors import InvalidArgumentError

    text = " ".join(str(prompt).split())
    if not text:
        raise InvalidArgumentError("prompt", prompt, "some text")
    try:
        text.format(title="t", genre="g", subject="s")
    except (KeyError, IndexError, ValueError):
        raise InvalidArgumentError("prompt", prompt, "text whose only {placeholders} are {title}, {genre} and "
                                   "{subject} (write {{ and }} for literal braces)") from None
    return text


TITLE_POSITIONS = ("auto", "bottom", "top")


def list_grades() -> dict[str, Grade]:
    """Every colour look the profiles define, by name (``classic`` and finishing grade with these)."""
    from genart.profiles import load_profiles

    grades: dict[str, Grade] = {}
    for _, p in sorted(load_profiles().items()):
        grades.setdefault(p.grade.name, p.grade)
    return grades


def _scaled_grade(grade: Grade, amount: float) -> Grade:
    """``grade`` at ``amount`` of its strength. Every adjustment of ``apply_grade`` is linear in its amount,
    so scaling the look's fields is exactly grading at that amount, and the generators' own variation of
    the amount (classic's ladder) still applies on top."""
    from dataclasses import fields, replace

    changes: dict[str, Any] = {}
    for f in fields(grade):
        value = getattr(grade, f.name)
        if isinstance(value, tuple):
            changes[f.name] = tuple(float(v) * amount for v in value)
        elif isinstance(value, float) or (isinstance(value, int) and not isinstance(value, bool)):
            changes[f.name] = float(value) * amount
    return replace(grade, name=f"{grade.name} {amount * 100:.0f}%", **changes)


def _edited_profile(profile: TasteProfile, prompt: str | None = None, strength: float | None = None, *,
                    grade: str | None = None, grade_amount: float | None = None,
                    aspects: Sequence[str] | None = None, title_position: str | None = None) -> TasteProfile:
    """A profile with this run's creative choices; any change gives it its own version (the manifest and
    every variant's provenance then say the stock profile was not what made them).

    Args:
        prompt: the prompt template (diffusion presets).
        strength: one img2img strength in (0, 1] instead of the profile's list (diffusion presets).
        grade: another profile's look by name, ``"none"`` for no grade, None for the profile's own.
        grade_amount: the look's strength, 0 to 2 (1 = as designed).
        aspects: the aspect ratios to make, cycled per key frame, instead of the profile's.
        title_position: where the title goes: ``auto`` (the profile's style: the quietest free place),
            ``bottom`` or ``top`` (that edge whenever faces, text and the subject leave it free).

    Raises:
        InvalidArgumentError: an unknown grade, aspect or position, an amount or strength out of range.
    """
    from dataclasses import replace

    from genart.errors import InvalidArgumentError
    from genart.profiles import ASPECTS
    from genart.types import stable_id

    changes: dict[str, Any] = {}
    if prompt is not None and prompt != profile.prompt:
        changes["prompt"] = prompt
    if strength is not None:
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not 0.0 < float(strength) <= 1.0:
            raise InvalidArgumentError("strength", strength, "a number in (0, 1]")
        changes["strengths"] = (float(strength),)
    look = profile.grade
    if grade is not None and grade != "" and grade != profile.grade.name:
        known = list_grades()
        if grade == "none":
            look = Grade(name="none")
        elif grade in known:
            look = known[grade]
        else:
            raise InvalidArgumentError("grade", grade, "none, or one of the profiles' looks: " + ", ".join(known))
    if grade_amount is not None:
        if isinstance(grade_amount, bool) or not isinstance(grade_amount, (int, float)) \
                or not 0.0 <= float(grade_amount) <= 2.0:
            raise InvalidArgumentError("grade amount", grade_amount, "a number from 0 to 2 (1 = the look as designed)")
        if float(grade_amount) != 1.0 and look.name != "none":
            look = _scaled_grade(look, float(grade_amount))
    if look != profile.grade:
        changes["grade"] = look
    if aspects:
        chosen = tuple(dict.fromkeys(str(a) for a in aspects))
        for a in chosen:
            if a not in ASPECTS:
                raise InvalidArgumentError("aspect ratio", a, "one of " + ", ".join(ASPECTS))
        if chosen != profile.aspects:
            changes["aspects"] = chosen
    if title_position is not None and title_position != profile.title_style.position:
        if title_position not in TITLE_POSITIONS:
            raise InvalidArgumentError("title position", title_position, "one of " + ", ".join(TITLE_POSITIONS))
        changes["title_style"] = replace(profile.title_style, position=title_position)
    if not changes:
        return profile
    what = {k: (v.__dict__ if hasattr(v, "__dataclass_fields__") else v) for k, v in sorted(changes.items())}
    return replace(profile, **changes, version=stable_id(profile.version, what, length=12))


def stage_source(source: str | Path, out: str | Path = "runs", *, max_frames: int = 4, keep_copy: bool = False,
                 progress: ProgressFn | None = None) -> StagedSource:
    """Pick a source's key frames and keep them, so a person can choose which ones a run uses.

    Args:
        source: a video file, an image, or a folder of stills.
        out: the store folder; the key frames go to ``<out>/uploads/<stage_id>/``.
        max_frames: at most this many key frames.
        keep_copy: copy the source into the stage folder too (an upload that may be deleted later).
        progress: ``progress("frames", done, total)``.

    Returns:
        A ``StagedSource`` whose key frames carry their PNG ``path`` (no pixels in memory).

    Raises:
        SourceNotFoundError, UnsupportedMediaError, EmptySourceError: the source cannot be used.
        InvalidArgumentError: ``max_frames`` < 1.
    """
    import json
    import os
    import secrets
    import shutil
    from dataclasses import replace
    from datetime import datetime, timezone

    from genart.errors import SourceNotFoundError, StoreError
    from genart.files import write_text
    from genart.frames import analyse, probe_source
    from genart.frames.decode import list_stills
    from genart.store import convert

    src = Path(source).expanduser()
    if not src.exists():
        raise SourceNotFoundError(src)
    info = probe_source(src)  # refuses what is not media before anything is written
    stage_id = datetime.now(timezone.utc).strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3)
    base = Path(out) / "uploads" / stage_id
    try:
        (base / "keyframes").mkdir(parents=True)
    except OSError as exc:
        raise StoreError(f"cannot create the stage folder {base}: {exc.strerror}") from None
    if keep_copy:
        dst = base / "source"
        dst.mkdir()
        files = [src] if src.is_file() else list(list_stills(src)) if info.kind == "stills" else []
        for f in files:
            try:
                os.link(f, dst / f.name)
            except OSError:
                shutil.copyfile(f, dst / f.name)
        src = dst / src.name if src.is_file() else dst
    found = analyse(src, max_frames=max_frames, progress=progress)
    staged = []
    for i, kf in enumerate(found.keyframes):
        path = base / "keyframes" / f"{i + 1:02d}_{kf.timecode.replace(':', '-')}.png"
        kf.image.save(path)
        staged.append(replace(kf, path=path, image=None))
    full = src.resolve()  # a kept copy lies in the stage folder: stored relative to it, so the store can move
    doc = {"stage_id": stage_id, "source": full.relative_to(base.resolve()).as_posix()
           if full.is_relative_to(base.resolve()) else str(full), "created_at": _now_iso(),
           "keyframes": [convert.keyframe_json(k, base) for k in staged], "warnings": list(found.warnings)}
    write_text(base / "stage.json", json.dumps(doc, indent=2))
    return StagedSource(stage_id=stage_id, source=src.resolve(), keyframes=tuple(staged), warnings=found.warnings)


def load_stage(out: str | Path, stage_id: str) -> StagedSource:
    """A source staged earlier by ``stage_source``.

    Raises:
        InvalidArgumentError: ``stage_id`` is malformed or names no stage in ``out``.
    """
    import json

    from genart.errors import InvalidArgumentError
    from genart.store import convert

    if not isinstance(stage_id, str) or not _STAGE_ID.match(stage_id):
        raise InvalidArgumentError("stage id", stage_id, "the id stage_source returned, like 20250101-120000-a1b2c3")
    base = Path(out) / "uploads" / stage_id
    try:
        doc = json.loads((base / "stage.json").read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidArgumentError("stage id", stage_id, f"a stage in {Path(out) / 'uploads'}") from None
    source = Path(doc["source"])  # relative to the stage folder when it is the kept copy
    return StagedSource(stage_id=stage_id, source=source if source.is_absolute() else base / source,
                        keyframes=tuple(convert.keyframe_from_json(d, base) for d in doc["keyframes"]),
                        warnings=tuple(str(w) for w in doc.get("warnings", ())))


def create_run_from_stage(out: str | Path, stage_id: str, *, keyframe_ids: Sequence[str] | None = None,
                          profiles: Sequence[str] | str = ("romance", "thriller"), preset: str | None = None,
                          variants_per_frame: int = 2, seed: int = 0, title: str = "", genre: str = "",
                          prompts: Mapping[str, str] | None = None, top_k: int | None = None, db: str | None = None,
                          progress: ProgressFn | None = None, grade: str | None = None,
                          grade_amount: float | None = None, aspects: Sequence[str] | None = None,
                          title_overlay: bool | None = None, title_position: str | None = None,
                          strength: float | None = None) -> RunResult:
    """``create_variants`` on the key frames a person kept, with this run's creative choices.

    Args:
        out, stage_id: where ``stage_source`` put the key frames.
        keyframe_ids: the key frames to use (None: all of the stage's).
        profiles: in the order the reviewers see them afterwards.
        prompts: profile id -> this run's prompt template (``{title}``, ``{genre}``, ``{subject}``);
            an edited prompt gives the profile a new version, recorded in the manifest.
        grade, grade_amount, aspects, title_position, strength: for every profile of the run, as
            ``_edited_profile`` takes them (None keeps each profile's own); any change gives the
            profile a new version, recorded in the manifest.
        title_overlay: lay the title on the artwork (default: when ``title`` is given).
        The rest: as ``create_variants``.

    Raises:
        InvalidArgumentError: a bad stage id, an unknown or no key frame, a prompt for a profile the
            run does not make, a malformed prompt, an unknown grade, aspect or title position, an
            amount or strength out of range. And everything ``create_variants`` raises.
    """
    from dataclasses import replace

    from genart import pipeline
    from genart.errors import InvalidArgumentError
    from genart.imaging import load_rgb
    from genart.profiles import get_profiles

    stage = load_stage(out, stage_id)
    known = {kf.id: kf for kf in stage.keyframes}
    ids = list(known) if keyframe_ids is None else list(keyframe_ids)
    for kid in ids:
        if kid not in known:
            raise InvalidArgumentError("key frame", kid, f"one of the stage's key frames: {', '.join(known)}")
    if not ids:
        raise InvalidArgumentError("key frames", [], "at least one key frame included")
    profs = get_profiles(profiles)
    edited: dict[str, TasteProfile] = {}
    for pid, text in (prompts or {}).items():
        match = [p for p in profs if p.id == pid]
        if not match:
            raise InvalidArgumentError("prompt's profile", pid, f"one of this run's profiles: {', '.join(p.id for p in profs)}")
        if text is not None and " ".join(str(text).split()) != " ".join(match[0].prompt.split()):
            edited[pid] = _edited_profile(match[0], _check_prompt(text))
    styled = [_edited_profile(edited.get(p.id, p), strength=strength, grade=grade, grade_amount=grade_amount,
                              aspects=aspects, title_position=title_position) for p in profs]
    chosen = [replace(kf, image=load_rgb(kf.path)) for kf in stage.keyframes if kf.id in ids]
    result = pipeline.run(stage.source, profiles=styled, preset=preset, frames=len(chosen),
                          variants_per_frame=variants_per_frame, out=out, db=db, seed=seed, title=title, genre=genre,
                          top_k=top_k, progress=progress, keyframes=chosen, title_overlay=title_overlay)
    choices = {"grade": grade or None, "grade_amount": grade_amount, "aspects": list(aspects or ()) or None,
               "title_position": title_position, "strength": strength, "title_overlay": title_overlay}
    _write_json(result.out_dir / CHOICES_FILE, choices)  # a regeneration makes its variant the same way
    return result


CHOICES_FILE = "choices.json"


def _write_json(path: Path, data: object) -> None:
    import json

    from genart.files import write_text

    write_text(path, json.dumps(data, indent=2))


def _run_choices(run: RunResult) -> dict[str, object]:
    """The creative choices a run was made with (``create_run_from_stage``); {} for runs made elsewhere."""
    import json

    path = run.out_dir / CHOICES_FILE
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def list_runs(out: str | Path = "runs", *, db: str | None = None) -> list[RunSummary]:
    """The runs of a store, newest first (an empty list when the folder holds no store yet)."""
    import json

    from sqlalchemy import select

    from genart.store.db import RunRow

    if db is None and not (Path(out) / "genart.sqlite").exists():
        return []
    with _review_store(out, db) as store, store.session() as s:
        rows = s.scalars(select(RunRow).order_by(RunRow.created_at.desc(), RunRow.id.desc())).all()
        result = []
        for r in rows:
            m = json.loads(r.manifest or "{}")
            result.append(RunSummary(run_id=r.id, created_at=r.created_at, status=r.status, preset=r.preset,
                                     source=r.source, title=str(m.get("title", "")), genre=str(m.get("genre", "")),
                                     profiles=tuple(m.get("profiles", {})), error=r.error))
        return result


def load_run(out: str | Path, run_id: str, *, db: str | None = None) -> RunResult:
    """A stored run read back: key frames, every variant (regenerated ones too) ranked per profile.

    Raises:
        UnknownRunError: no such run in the store (the message lists the runs there are).
    """
    import json

    from sqlalchemy import func, select

    from genart.store.db import RankingRow, VariantRow

    with _review_store(out, db) as store, store.session() as s:
        run = _run_row(s, run_id)
        # what the result depends on, read in two cheap queries: a regeneration adds a variant and
        # re-ranks, a run finishing changes its status; the same stamp gives back the same (frozen) result
        stamp = (run.status, run.finished_at, run.manifest,
                 tuple(s.execute(select(func.count(), func.max(VariantRow.pk)).where(VariantRow.run_id == run_id)).one()),
                 tuple(s.execute(select(func.count(), func.sum(RankingRow.total), func.max(RankingRow.rank_score))
                                 .where(RankingRow.run_id == run_id)).one()))
        key = (store.url, run_id)
        with _STORES_LOCK:
            hit = _RUNS.get(key)
        if hit is not None and hit[0] == stamp:
            return hit[1]
        manifest = json.loads(run.manifest or "{}")
        kfs = {k.id: k for k in sorted(store.keyframes(run_id, run.source), key=lambda k: k.t_s)}
        per = store.ranked(run_id, {v.id: v for v in store.variants(run_id, keyframes=kfs)})
        order = list(manifest.get("profile_order") or manifest.get("profiles", {}))
        for pid in per:
            if pid not in order:
                order.append(pid)
        ranked, rejected = [], []
        for pid in order:
            rows = per.get(pid, [])
            good = sorted((r for r in rows if r.rejected is None), key=lambda r: (r.rank is None, r.rank or 0, -r.total))
            bad = sorted((r for r in rows if r.rejected is not None), key=lambda r: -r.total)
            ranked.append((pid, tuple(good)))
            rejected.append((pid, tuple(bad)))
        run_dir = store.root / "runs" / run_id
        result = RunResult(run_id=run_id, preset=run.preset, out_dir=run_dir, manifest_path=run_dir / "manifest.json",
                           keyframes=tuple(kfs.values()), ranked=tuple(ranked), rejected=tuple(rejected))
        with _STORES_LOCK:
            _RUNS[key] = (stamp, result)
            while len(_RUNS) > 64:  # the runs being reviewed now, not every run ever opened
                _RUNS.pop(next(iter(_RUNS)))
        return result


def _decision(row) -> ReviewDecision:
    return ReviewDecision(decision_id=row.decision_id, run_id=row.run_id, variant_id=row.variant_id,
                          profile_id=row.profile_id, action=row.action, note=row.note or "", reviewer=row.reviewer,
                          created_at=row.created_at, version=row.version)


def _append_decision(store, run_id: str, variant_id: str, action: str, reviewer: str, note: str,
                     expected_version: int | None) -> ReviewDecision:
    """Append one log entry as version N + 1; the unique (run, variant, version) makes a race visible."""
    import time

    from sqlalchemy import func, select
    from sqlalchemy.exc import IntegrityError, OperationalError

    from genart.errors import DecisionConflictError, StoreError, UnknownVariantError
    from genart.store.db import VariantRow
    from genart.store.review_tables import ReviewDecisionRow

    def latest(s) -> ReviewDecisionRow | None:
        return s.scalars(select(ReviewDecisionRow).where(ReviewDecisionRow.run_id == run_id,
                                                         ReviewDecisionRow.variant_id == variant_id)
                         .order_by(ReviewDecisionRow.version.desc()).limit(1)).first()

    with store.session() as s:
        _run_row(s, run_id)
        vrow = s.scalars(select(VariantRow).where(VariantRow.run_id == run_id, VariantRow.variant_id == variant_id)).first()
        if vrow is None:
            raise UnknownVariantError(run_id, variant_id)
        profile_id = vrow.profile_id
    last_error: Exception | None = None
    for attempt in range(50):
        with _write_lock(store), store.session() as s:
            current = s.scalar(select(func.max(ReviewDecisionRow.version)).where(
                ReviewDecisionRow.run_id == run_id, ReviewDecisionRow.variant_id == variant_id)) or 0
            if expected_version is not None and current != expected_version:
                last = latest(s)
                raise DecisionConflictError(variant_id, expected_version, current, by=last.reviewer if last else "",
                                            action=last.action if last else "",
                                            at=last.created_at[:19].replace("T", " ") + " UTC" if last else "")
            row = ReviewDecisionRow(run_id=run_id, variant_id=variant_id, profile_id=profile_id, version=current + 1,
                                    action=action, note=note, reviewer=reviewer, created_at=_now_iso())
            try:
                s.add(row)
                s.commit()
                return _decision(row)
            except (IntegrityError, OperationalError) as exc:  # another writer took version N + 1 first
                s.rollback()
                last_error = exc
        time.sleep(0.005 * (attempt + 1))
    raise StoreError(f"could not record the decision on variant {variant_id}: {last_error}")


def record_decision(out: str | Path, run_id: str, variant_id: str, action: str, reviewer: str, note: str = "", *,
                    expected_version: int | None = None, db: str | None = None) -> ReviewDecision:
    """Approve, reject or flag a variant: appended to the run's review log with reviewer and time.

    Nothing is ever overwritten: every decision is a new log entry, and a variant's status is its
    latest one. Pass ``expected_version`` (the ``ReviewState.version`` the reviewer saw) to have a
    decision refused when someone else decided in the meantime.

    Returns:
        The stored ``ReviewDecision`` (with its new ``version``).

    Raises:
        InvalidArgumentError: an unknown action, no reviewer name, or a note over 4000 characters.
        UnknownRunError, UnknownVariantError: no such run, or no such variant in it.
        DecisionConflictError: ``expected_version`` is not the variant's current version.
    """
    from genart.errors import InvalidArgumentError

    if action not in REVIEW_ACTIONS:
        raise InvalidArgumentError("action", action, "one of " + ", ".join(REVIEW_ACTIONS))
    name = _check_reviewer(reviewer)
    note = (note or "").strip()
    if len(note) > _MAX_NOTE:
        raise InvalidArgumentError("note", note[:40] + "...", f"at most {_MAX_NOTE} characters")
    if expected_version is not None and (isinstance(expected_version, bool) or not isinstance(expected_version, int)
                                         or expected_version < 0):
        raise InvalidArgumentError("expected_version", expected_version, "None or an integer >= 0")
    with _review_store(out, db) as store:
        return _append_decision(store, run_id, variant_id, action, name, note, expected_version)


def decisions(out: str | Path, run_id: str, *, variant_id: str | None = None,
              db: str | None = None) -> list[ReviewDecision]:
    """A run's review log (or one variant's), oldest first: the audit trail.

    Raises:
        UnknownRunError: no such run.
    """
    from sqlalchemy import select

    from genart.store.review_tables import ReviewDecisionRow

    with _review_store(out, db) as store, store.session() as s:
        _run_row(s, run_id)
        q = select(ReviewDecisionRow).where(ReviewDecisionRow.run_id == run_id)
        if variant_id is not None:
            q = q.where(ReviewDecisionRow.variant_id == variant_id)
        return [_decision(r) for r in s.scalars(q.order_by(ReviewDecisionRow.decision_id))]


def review_states(out: str | Path, run_id: str, *, db: str | None = None) -> dict[str, ReviewState]:
    """Per variant id of a run: its status (latest approve/reject/flag, else ``pending``) and version."""
    from sqlalchemy import select

    from genart.store.db import VariantRow

    log = decisions(out, run_id, db=db)
    with _review_store(out, db) as store, store.session() as s:
        ids = s.scalars(select(VariantRow.variant_id).where(VariantRow.run_id == run_id)).all()
    states = {vid: ReviewState(variant_id=vid, status="pending", version=0) for vid in ids}
    for d in log:  # oldest first: the last decision wins the status, every entry bumps the version
        st = states.get(d.variant_id) or ReviewState(variant_id=d.variant_id, status="pending", version=0)
        if d.action in REVIEW_ACTIONS:
            st = ReviewState(variant_id=d.variant_id, status=d.action, version=d.version, reviewer=d.reviewer,
                             note=d.note, at=d.created_at)
        else:
            st = ReviewState(variant_id=st.variant_id, status=st.status, version=d.version, reviewer=st.reviewer,
                             note=st.note, at=st.at)
        states[d.variant_id] = st
    return states


def approved_variants(out: str | Path, run_id: str, *, db: str | None = None) -> list[RankedVariant]:
    """The run's variants whose latest decision is ``approve`` (never a rejected-by-ranking one), best first."""
    run = load_run(out, run_id, db=db)
    states = review_states(out, run_id, db=db)
    return [rv for _, items in run.ranked for rv in items
            if rv.variant.id in states and states[rv.variant.id].status == "approve"]


def score_breakdown(rv: RankedVariant, preset: str | None = None) -> tuple[Contribution, ...]:
    """Why a variant got its total: every score with the weight it counted with and its contribution,
    largest first; the contributions add up to ``rv.total``.

    The ranking's own explanation when it stored one (``RankedVariant.explanation``), else worked out
    the way ``genart.rank.combine`` combines scores (the profile's weights, then the preset's extra
    weights; a score nobody weights, a safety gate, counts 0).

    Raises:
        UnknownPresetError: ``preset`` is not in models.yaml.
    """
    from genart.errors import GenartError
    from genart.profiles import get_profiles
    from genart.rank.combine import explain
    from genart.types import ScoreSet

    if rv.explanation:
        return tuple(rv.explanation)
    spec = load_models_config().preset(preset)
    try:
        weights = get_profiles([rv.profile_id])[0].weights
    except GenartError:  # a profile removed since the run: the default weights, as the ranking would use
        weights = ScoreSet()
    rows = explain(rv.scores, weights, ScoreSet.of(spec.ranker.extra_weights))
    return tuple(Contribution(score=n, value=float(v), weight=float(w), contribution=float(c)) for n, v, w, c in rows)


def regenerate_variant(out: str | Path, run_id: str, variant_id: str, *, reviewer: str, seed: int | None = None,
                       strength: float | None = None, prompt: str | None = None, db: str | None = None,
                       progress: ProgressFn | None = None, aspect: str | None = None,
                       grade_amount: float | None = None) -> RankedVariant:
    """Make one variant again from the same key frame with a new seed, strength or prompt.

    The new variant is stored next to the old one (which stays, with its decisions), the profile's
    variants are ranked again, and a ``regenerated`` entry by ``reviewer`` starts the new one's log.
    Everything not given is made as the run made its variants (its look, aspects and title choices).

    Args:
        seed: the new variant's seed (None: a random one: the one-click re-roll).
        strength: img2img strength in (0, 1] (diffusion presets only; None keeps the variant's).
        prompt: a prompt template (diffusion presets only; None keeps the variant's).
        aspect: the new variant's aspect ratio (classic only; None keeps the variant's).
        grade_amount: the look's strength, 0 to 2 (classic only; None keeps the run's).

    Returns:
        The new variant, ranked among its profile's variants.

    Raises:
        InvalidArgumentError: a bad seed, strength or prompt, or strength/prompt with the classic preset
            (it has neither: its variety comes from the seed).
        UnknownRunError, UnknownVariantError, ModelLoadError: as their names say.
    """
    import secrets

    from genart import pipeline
    from genart.errors import InvalidArgumentError, UnknownVariantError
    from genart.profiles import get_profiles

    name = _check_reviewer(reviewer)
    run = load_run(out, run_id, db=db)
    rejected = dict(run.rejected)
    everything = {pid: list(items) + list(rejected.get(pid, ())) for pid, items in run.ranked}
    old = next((rv for items in everything.values() for rv in items if rv.variant.id == variant_id), None)
    if old is None:
        raise UnknownVariantError(run_id, variant_id)
    if seed is None:
        seed = secrets.randbelow(2**31)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**63:
        raise InvalidArgumentError("seed", seed, "an integer from 0 to 2**63 - 1")
    if strength is not None and (isinstance(strength, bool) or not isinstance(strength, (int, float))
                                 or not 0.0 < float(strength) <= 1.0):
        raise InvalidArgumentError("strength", strength, "a number in (0, 1]")
    spec = load_models_config().preset(run.preset)
    v = old.variant
    choices = _run_choices(run)
    look = {k: choices.get(k) for k in ("grade", "grade_amount", "title_position")}
    if grade_amount is not None:
        look["grade_amount"] = grade_amount
    profile = _edited_profile(get_profiles([v.profile_id])[0], **look)
    if spec.kind == "classic":
        if strength is not None or prompt:
            raise InvalidArgumentError("strength" if strength is not None else "prompt", strength or prompt,
                                       "nothing with the classic preset (it has no strength or prompt; a new seed "
                                       "gives a new framing and grade)")
        # the classic generator's first variant of a frame is its plain framing; the second is seeded
        profile, n = _edited_profile(profile, aspects=(aspect or v.params.aspect,)), 2
    elif aspect is not None or grade_amount is not None:
        raise InvalidArgumentError("aspect" if aspect is not None else "grade amount", aspect or grade_amount,
                                   "nothing with a diffusion preset (regenerate with a new seed, strength or prompt)")
    else:
        if prompt:
            template = _check_prompt(prompt)
        elif v.params.prompt:  # the prompt this variant was made with (a run may have edited it)
            template = v.params.prompt.replace("{", "{{").replace("}", "}}")
        else:
            template = profile.prompt
        profile, n = _edited_profile(profile, template, strength if strength is not None else v.params.strength), 1
    pipeline.ensure_weights(spec)
    stages = pipeline.load_stages(spec)
    kf = v.keyframe
    made, rows = make_variants(out, run, stages, [(kf, profile, n, seed)], profile, pool=everything[v.profile_id],
                               db=db, progress=progress)
    if made[0] is None:
        raise InvalidArgumentError("seed", seed, "a seed that makes a new variant (this one exists already)")
    what = [f"seed {seed}"]
    if aspect is not None:
        what.append(f"aspect {made[0].params.aspect}")
    if grade_amount is not None:
        what.append(f"look {made[0].params.grade}")
    if made[0].params.strength is not None:
        what.append(f"strength {made[0].params.strength:g}")
    if prompt:
        what.append(f"prompt: {made[0].params.prompt}")
    with _review_store(out, db) as store:
        _append_decision(store, run_id, made[0].id, "regenerated", name,
                         f"regenerated from {variant_id}: " + ", ".join(what), None)
    return next(r for r in rows if r.variant.id == made[0].id)


def make_variants(out: str | Path, run: RunResult, stages, jobs: Sequence[tuple], rank_profile: TasteProfile, *,
                  pool: Sequence[RankedVariant], db: str | None = None,
                  progress: ProgressFn | None = None) -> tuple[list, list[RankedVariant]]:
    """New variants of a stored run through the preset's own generator, stored and ranked with the rest.

    The one way a variant is made after a run: a reviewer's regeneration and the learning loop's
    proposals both come through here.

    Args:
        run: the run (``load_run``); its manifest's title and genre fill the prompts.
        stages: the preset's stages (``pipeline.load_stages``).
        jobs: ``(key frame, profile, n, seed)`` each, optionally with a fifth item, the key frame
            as the generator should see it (the learning loop keeps only the face it frames): the
            generator makes ``n`` variants of the key frame for the (possibly edited) profile and
            the last is kept (so the classic preset's grade ladder and framing variety are
            reachable by ``n``).
        rank_profile: the profile the pool is ranked for.
        pool: the profile's ranked variants so far (ranked again together with the new ones).

    Returns:
        (per job its stored ``Variant``, or None where it made a variant the run has already;
        the new ranking of the whole pool).
    """
    import json
    from dataclasses import replace

    from genart.imaging import load_rgb

    from genart import __version__

    manifest = json.loads(run.manifest_path.read_text()) if run.manifest_path.exists() else {}
    overlay = _run_choices(run).get("title_overlay")  # the run's own title choice (the app's step 2)
    have = {rv.variant.id for rv in pool}
    made = []
    for job in jobs:
        kf, profile, n, seed = job[:4]
        seen_as = job[4] if len(job) > 4 and job[4] is not None else kf
        kf_px = replace(seen_as, image=load_rgb(kf.path))
        v = stages.generator.generate([kf_px], profile, n, seed=seed, title=str(manifest.get("title", "")),
                                      genre=str(manifest.get("genre", "")), progress=progress,
                                      title_overlay=overlay)[-1]
        v = replace(v, keyframe=replace(kf, image=None))
        made.append(None if v.id in have else v)
        have.add(v.id)
    fresh = [v for v in made if v is not None]
    if not fresh:
        return made, list(pool)
    with _review_store(out, db) as store:
        stored = {v.id: v for v in store.add_variants(run.run_id, fresh, software=f"genart {__version__}")}
        rows = stages.rank([rv.variant for rv in pool] + list(stored.values()), rank_profile)
        store.add_rankings(run.run_id, rows)
    return [stored.get(v.id) if v is not None else None for v in made], rows


# --- hand-off: approved variants become a bandit test (genart.bandit) ------------------------------
def _tester(out: str | Path | None, db: str | None = None) -> "Tester":
    """The store's tester (see :func:`genart.usecases.tester.open_tester`)."""
    from genart.usecases.tester import open_tester

    return open_tester(out, db)


def _arm_json(a: Arm, store: "Store") -> dict[str, object]:
    return {"test_id": a.test_id, "arm_id": a.arm_id, "segment": a.segment, "variant_id": a.variant_id,
            "image_path": store.rel(a.image_path) if a.image_path else None, "is_control": a.is_control,
            "prior_mean": a.prior_mean, "profile_id": a.profile_id}


def _arm_from_json(d: Mapping[str, object], store: "Store") -> Arm:
    return Arm(test_id=str(d["test_id"]), arm_id=str(d["arm_id"]), segment=str(d["segment"]),
               variant_id=d.get("variant_id"),
               image_path=store.resolve(str(d["image_path"])) if d.get("image_path") else None,
               is_control=bool(d.get("is_control")), prior_mean=float(d.get("prior_mean", 0.5)),
               profile_id=d.get("profile_id"))


def _handoff_record(row, store: "Store") -> HandoffRecord:
    import json

    return HandoffRecord(run_id=row.run_id, test_id=row.test_id, reviewer=row.reviewer, created_at=row.created_at,
                         arms=tuple(_arm_from_json(d, store) for d in json.loads(row.arms)))


def handoff_to_test(out: str | Path, run_id: str, *, reviewer: str, test_id: str | None = None,
                    segments: Sequence[str] | Mapping[str, Sequence[str]] | None = None, include_control: bool = True,
                    control_image: str | Path | None = None, policy: str | None = None, config=None,
                    priors: str = "model", origin: str = "app", db: str | None = None,
                    options: Mapping[str, object] | None = None) -> HandoffRecord:
    """Send a run's approved variants to a bandit test (``genart.bandit.handoff``) and log who did it.

    Args:
        reviewer: who hands off (goes in the audit trail, and in the test as who approved it).
        test_id: the new test's id (default ``<run_id>-test``). A *draft* test of that id (the batch
            job's, waiting for a person) is started with these arms instead.
        segments: segment names, or {segment: [profile ids]}; default one segment per profile with
            approved variants, getting that profile's variants.
        include_control: add the current artwork as a control arm in every segment.
        control_image: today's artwork (the control's picture). It is ranked like any variant
            (``rank_artwork``), and its place among the approved ones sets the control's prior.
        policy: the test's policy (``ts``, ``egreedy``, ``ucb1``, ...); or give the whole
            ``config`` (``genart.api.test_settings(...)``: reward, floor, change cap, stopping rule).
        priors: ``model`` (the segment preference model's prediction for each arm, where it has
            seen the segment) or ``ranking`` (the ranking's totals).
        origin: which surface handed off (app, cli, api), kept in the test.
        options: further ``genart.bandit.types.TestConfig`` settings by name (exploration floor,
            stopping rule, reward rule, ...), applied on top of ``config``.

    Returns:
        The ``HandoffRecord`` with the arms created. Handing the same arms to the same test again
        (or at the same moment, from two sessions) changes nothing and returns the first record.

    Raises:
        InvalidArgumentError: a test id or segment the bandit service would refuse (``genart.ids``).
        NothingApprovedError: nothing approved in the run.
        SourceNotFoundError, UnsupportedMediaError: ``control_image`` is not a readable picture.
        InvalidArgumentError, UnknownPolicyError, TestConflictError: from the bandit stage.
    """
    import json
    import time

    from sqlalchemy import select
    from sqlalchemy.exc import IntegrityError, OperationalError

    from genart.bandit.handoff import handoff
    from genart.bandit.types import TestConfig
    from genart.errors import InvalidArgumentError, NothingApprovedError, StoreError
    from genart.ids import check_id
    from genart.learning import open_test
    from genart.store.review_tables import ReviewHandoffRow

    name = _check_reviewer(reviewer)
    test_id = check_id("test id", test_id or f"{run_id}-test")  # the service's pattern, or it never gets traffic
    for seg in (segments or ()):
        check_id("segment", seg)
    if config is None:
        config = TestConfig(policy=policy or "ts")
    elif not isinstance(config, TestConfig):
        raise InvalidArgumentError("config", type(config).__name__, "a TestConfig (genart.api.test_settings)")
    elif policy is not None and policy != config.policy:
        raise InvalidArgumentError("policy", policy, f"the config's own policy '{config.policy}' (or leave it out)")
    approved = approved_variants(out, run_id, db=db)
    if not approved:
        raise NothingApprovedError(run_id, "hand off")
    if segments is None:
        segments = {pid: [pid] for pid in dict.fromkeys(rv.profile_id for rv in approved)}
    control_prior = None
    if include_control and control_image is not None:
        control_prior = _control_prior(rank_artwork(out, run_id, control_image, db=db), approved)
    # every variant here was approved by a person, so those the ranking marked needs_review may go too
    arms = handoff(approved, test_id, segments, include_control=include_control, control_image=control_image,
                   control_prior=control_prior, approved=[rv.variant.id for rv in approved])
    if options:
        from dataclasses import replace as _with

        try:
            config = _with(config, **dict(options))
        except TypeError as exc:  # a setting this TestConfig does not know
            raise InvalidArgumentError("test option", sorted(options), f"TestConfig fields ({exc})") from None
    open_test(out, run_id, arms, config, db=db, approved_by=name, origin=origin, priors=priors)

    def first(s) -> ReviewHandoffRow | None:
        return s.scalars(select(ReviewHandoffRow).where(ReviewHandoffRow.test_id == test_id)
                         .order_by(ReviewHandoffRow.pk).limit(1)).first()

    with _review_store(out, db) as store:
        with store.session() as s:
            old = first(s)
            if old is not None:
                return _handoff_record(old, store)
        row = ReviewHandoffRow(run_id=run_id, test_id=test_id, reviewer=name, created_at=_now_iso(),
                               arms=json.dumps([_arm_json(a, store) for a in arms]))
        for attempt in range(20):
            with store.session() as s:
                try:
                    s.add(row)
                    s.commit()
                    return _handoff_record(row, store)
                except IntegrityError:  # another hand-off of this test won the one row: it is the record
                    s.rollback()
                    won = first(s)
                    if won is not None:
                        return _handoff_record(won, store)
                except OperationalError:  # SQLite busy: another writer's transaction; try again
                    s.rollback()
            time.sleep(0.01 * (attempt + 1))
            row = ReviewHandoffRow(run_id=run_id, test_id=test_id, reviewer=name, created_at=row.created_at,
                                   arms=row.arms)
        raise StoreError(f"could not record the hand-off of run '{run_id}' to test '{test_id}': the store stayed busy")


CONTROL_VARIANT_ID = "control"


def rank_artwork(out: str | Path, run_id: str, image: "str | Path", *, profiles: Sequence[str] | None = None,
                 db: str | None = None) -> dict[str, RankedVariant]:
    """Today's artwork (a human-made thumbnail, say) ranked for each profile among the run's approved
    variants, with the run's preset: where it would place, and by which scores.

    Args:
        image: the picture.
        profiles: the profiles to rank it for (default: those with approved variants, else all the run's).

    Returns:
        Per profile id, the artwork's ``RankedVariant`` (its ``rank`` among the approved ones and itself;
        None when the ranking rejects it, with the reason).

    Raises:
        SourceNotFoundError, UnsupportedMediaError: ``image`` is not a readable picture.
        UnknownRunError: no such run. ModelLoadError: the run's preset's rankers are not on this machine.
    """
    from genart.api import rank_variants, variant_from_image

    run = load_run(out, run_id, db=db)
    approved = approved_variants(out, run_id, db=db)
    wanted = list(profiles or dict.fromkeys(rv.profile_id for rv in approved) or [pid for pid, _ in run.ranked])
    control = variant_from_image(image, variant_id=CONTROL_VARIANT_ID)
    pool = [rv.variant for rv in approved if rv.profile_id in wanted] + [control]
    ranked = rank_variants(pool, wanted, preset=run.preset, out=out, db=db)
    return {pid: next(r for r in rows if r.variant.id == CONTROL_VARIANT_ID) for pid, rows in ranked.items()}


def _control_prior(ranked: Mapping[str, RankedVariant], approved: Sequence[RankedVariant],
                   prior_range: tuple[float, float] = (0.4, 0.6)) -> float:
    """The control's cold-start prior on the scale ``genart.bandit.handoff`` puts the approved variants on
    (their totals min-max scaled into ``prior_range``): its total placed among theirs, averaged over the
    profiles that did not reject it; the middle of the range when every one did."""
    lo, hi = prior_range
    totals = [rv.total for rv in approved]
    t_lo, t_hi = (min(totals), max(totals)) if totals else (0.0, 0.0)
    values = []
    for rv in ranked.values():
        if rv.rejected is not None:
            continue
        if t_hi > t_lo:
            values.append(lo + (min(max(rv.total, t_lo), t_hi) - t_lo) / (t_hi - t_lo) * (hi - lo))
        else:
            values.append((lo + hi) / 2)
    return float(sum(values) / len(values)) if values else (lo + hi) / 2


def handoffs(out: str | Path, run_id: str, *, db: str | None = None) -> list[HandoffRecord]:
    """The bandit tests a run's variants were handed to, oldest first."""
    from sqlalchemy import select

    from genart.store.review_tables import ReviewHandoffRow

    with _review_store(out, db) as store, store.session() as s:
        _run_row(s, run_id)
        rows = s.scalars(select(ReviewHandoffRow).where(ReviewHandoffRow.run_id == run_id).order_by(ReviewHandoffRow.pk))
        return [_handoff_record(r, store) for r in rows]


def simulate_test(out: str | Path, test_id: str, *, impressions: int = 1000, seed: int = 0, db: str | None = None):
    """Drive a test with simulated members (a demo, or a rehearsal before real traffic).

    Each (segment, arm) gets a fixed true click rate derived from the test id, so repeated calls
    keep simulating the same audience; ``seed`` draws the members. Exposures and rewards go through
    the real tester and store, exactly as live traffic would.

    Returns:
        The bandit stage's ``SimulationResult`` for these impressions.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: ``impressions`` < 1.
    """
    import numpy as np

    from genart.bandit.simulator import Population, drive_tester
    from genart.errors import InvalidArgumentError
    from genart.types import stable_id

    if isinstance(impressions, bool) or not isinstance(impressions, int) or impressions < 1:
        raise InvalidArgumentError("impressions", impressions, "an integer >= 1")
    tester = _tester(out, db)
    arms = tester.arms(test_id)
    segments = tuple(dict.fromkeys(a.segment for a in arms))
    arm_ids = tuple(dict.fromkeys(a.arm_id for a in arms))
    rng = np.random.default_rng(int(stable_id("simulated audience", test_id, length=8), 16))
    rates = rng.uniform(0.02, 0.12, size=(len(segments), len(arm_ids)))
    population = Population(segments=segments, arms=arm_ids, rates=tuple(tuple(float(v) for v in r) for r in rates),
                            weights=tuple(1.0 for _ in segments))
    return drive_tester(tester, test_id, population, impressions, seed=seed, batch_size=min(500, impressions))


def test_report(out: str | Path, test_id: str, *, db: str | None = None, plots: bool = True) -> TestSnapshot:
    """A test's per-segment report (impressions, rewards, posterior, P(best), P(beats control),
    winner, whether a segment is weak), its plots, and what each of its segments responds to.

    The plots (cumulative reward and each arm's allocation over time; and each segment's
    preferences, ``preferences_plot``) are PNGs under ``<out>/tests/<test id>/``; none when
    matplotlib is not installed, or with ``plots=False`` (the review app draws its own from
    ``test_timeline``). The preferences are the segment preference model's
    (``genart.learning.segment_preferences``), learned from every test of the store with this
    test's reward.

    Raises:
        UnknownTestError: no such test.
    """
    from genart.bandit.report import plot_preferences, plot_test
    from genart.bandit.settings import reward_text
    from genart.errors import BackendUnavailableError
    from genart.learning import segment_preferences

    tester = _tester(out, db)
    report = tester.report(test_id)
    segments = {s.segment for s in report.segments}
    tastes = tuple(t for t in segment_preferences(out, db=db, reward=reward_text(tester.config(test_id).reward))
                   if t.segment in segments)
    folder = Path(out) / "tests" / (re.sub(r"[^A-Za-z0-9_.-]", "_", test_id)[:120] or "test")
    drawn: tuple[Path, ...] = ()
    taste_plot = None
    if plots:
        try:
            drawn = tuple(plot_test(tester, test_id, folder))
            taste_plot = plot_preferences(tastes, folder / "preferences.png") if tastes else None
        except BackendUnavailableError:
            drawn, taste_plot = (), None
    return TestSnapshot(test_id=test_id, report=report, plots=drawn, preferences=tastes, preferences_plot=taste_plot)


def test_timeline(out: str | Path, test_id: str, *, points: int = 24, db: str | None = None) -> tuple[ArmTrend, ...]:
    """Each arm of a test over time: its share of its segment's exposures (in ``points`` windows, so the
    curve shows the policy shifting traffic, not one coin flip per point) and its click rate so far.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: ``points`` < 1.
    """
    import numpy as np

    from genart.bandit.offline import logged_data
    from genart.errors import InvalidArgumentError

    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise InvalidArgumentError("points", points, "an integer >= 1")
    log = logged_data(_tester(out, db), test_id, include_sticky=True)
    trends = []
    for si, seg in enumerate(log.segments):
        mine = log.segment_index == si
        acts, rews = log.actions[mine], log.rewards[mine]
        n = int(acts.size)
        ends = sorted({int(round(n * (k + 1) / points)) for k in range(points)} - {0}) if n else []
        for ai, arm_id in enumerate(log.action_ids[si]):
            shown = acts == ai
            cum_shown, cum_clicks = np.cumsum(shown), np.cumsum(np.where(shown, rews, 0.0))
            share, rate, start = [], [], 0
            for end in ends:
                share.append(float(shown[start:end].mean()))
                k = int(cum_shown[end - 1])
                rate.append(float(cum_clicks[end - 1] / k) if k else None)
                start = end
            trends.append(ArmTrend(segment=seg, arm_id=arm_id, exposures=tuple(ends), share=tuple(share),
                                   click_rate=tuple(rate)))
    return tuple(trends)


test_report.__test__ = False
test_timeline.__test__ = False  # a function of the API, not a pytest test (should someone import it by name)
