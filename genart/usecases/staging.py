"""Stage a source (its key frames kept for a person to choose from) and create a run from a stage."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence, cast

from genart.progress import ProgressFn
from genart.types import RunResult, StagedSource, TasteProfile
from genart.usecases.choices import CHOICES_FILE, _check_prompt, _edited_profile, _write_json
from genart.errors import InvalidArgumentError, SourceNotFoundError, StoreError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

_STAGE_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


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

    from genart.files import write_text
    from genart.frames import analyse, probe_source
    from genart.frames.decode import list_stills
    from genart.store import convert
    from genart.store.review_queries import now_iso

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
        cast("Image.Image", kf.image).save(path)  # analyse keeps every key frame's pixels
        staged.append(replace(kf, path=path, image=None))
    full = src.resolve()  # a kept copy lies in the stage folder: stored relative to it, so the store can move
    doc = {"stage_id": stage_id, "source": full.relative_to(base.resolve()).as_posix()
           if full.is_relative_to(base.resolve()) else str(full), "created_at": now_iso(),
           "keyframes": [convert.keyframe_json(k, base) for k in staged], "warnings": list(found.warnings)}
    write_text(base / "stage.json", json.dumps(doc, indent=2))
    return StagedSource(stage_id=stage_id, source=src.resolve(), keyframes=tuple(staged), warnings=found.warnings)


def load_stage(out: str | Path, stage_id: str) -> StagedSource:
    """A source staged earlier by ``stage_source``.

    Raises:
        InvalidArgumentError: ``stage_id`` is malformed or names no stage in ``out``.
    """
    import json

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

    from genart.usecases import run as run_use_case
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
    chosen = [replace(kf, image=load_rgb(cast(Path, kf.path))) for kf in stage.keyframes if kf.id in ids]  # staged: a PNG each
    result = run_use_case.run(stage.source, profiles=styled, preset=preset, frames=len(chosen),
                              variants_per_frame=variants_per_frame, out=out, db=db, seed=seed, title=title,
                              genre=genre, top_k=top_k, progress=progress, keyframes=chosen,
                              title_overlay=title_overlay)
    choices = {"grade": grade or None, "grade_amount": grade_amount, "aspects": list(aspects or ()) or None,
               "title_position": title_position, "strength": strength, "title_overlay": title_overlay}
    _write_json(result.out_dir / CHOICES_FILE, choices)  # a regeneration makes its variant the same way
    return result
