"""The run use case (``genart run`` / ``api.create_variants``): source -> key frames -> variants per
profile -> ranking -> store, one way.

Each stage's result is persisted as soon as it exists, so an error later in the run (weights missing,
a bad frame, Ctrl-C) loses nothing already done; a run of the same command that was killed or failed
is found again by its ``resume_key`` and continued.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Mapping, Sequence

from genart import __version__
from genart.config import PresetSpec, load_models_config
from genart.errors import GenartError, InvalidArgumentError, SourceNotFoundError, WarningLog, warn
from genart.files import FileLock, source_digest, write_bytes, write_text
from genart.profiles import check_locale, get_profiles
from genart.progress import ProgressFn, report
from genart.store import run_queries
from genart.store.db import Store
from genart.types import KeyFrame, RankedVariant, RunManifest, RunResult, RunSummary, TasteProfile, stable_id
from genart.usecases.layout import link_keyframes, link_ranked, run_lock_path
from genart.usecases.overview import overview
from genart.usecases.stages import _packaged_models, ensure_weights, load_stages, ranking_checks
from genart.frames import extract_keyframes, probe_source
from genart.frames.people import check_cast


def resolve_profiles(profiles: Sequence[str | TasteProfile] | str) -> list[TasteProfile]:
    """Profiles by id (a list or comma-separated string), or given whole: a profile edited for one run
    (its prompt changed in the review app, say) carries its own version and is used as it is."""
    if isinstance(profiles, str):
        return get_profiles(profiles)
    if not isinstance(profiles, (list, tuple)) or not all(isinstance(p, (str, TasteProfile)) for p in profiles):
        raise InvalidArgumentError("profiles", profiles, "profile ids (a list, or a comma-separated string) "
                                                         "or TasteProfile values")
    out = [p if isinstance(p, TasteProfile) else get_profiles([p])[0] for p in profiles]
    if not out:
        return get_profiles([])  # raises UnknownProfileError listing the known ids
    return out


def _check_counts(frames: int, variants_per_frame: int, top_k: int | None) -> None:
    if not isinstance(frames, int) or frames < 1:
        raise InvalidArgumentError("frames", frames, "a positive integer")
    if not isinstance(variants_per_frame, int) or variants_per_frame < 1:
        raise InvalidArgumentError("variants_per_frame", variants_per_frame, "a positive integer")
    if top_k is not None and (not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError("top_k", top_k, "a positive integer or None")


def resume_key(source_sha256: str, spec: PresetSpec, profs: Sequence[TasteProfile], frames: int,
               variants_per_frame: int, seed: int, title: str, genre: str, *, keyframe_ids: Sequence[str] = (),
               title_overlay: bool | None = None, titles: Mapping[str, str] | None = None,
               cast: "Mapping[str, str | Path | Sequence[str | Path]] | None" = None) -> str:
    """What makes two ``genart run`` calls "the same command": the source's bytes, the preset, the
    profiles' versions, the counts, the seed, the title (text and overlay) and the casting notes. A run
    killed part-way is found again by it and resumed, reusing its stored key frames and variants."""

    parts = ["genart-run-v1", source_sha256, spec.canonical_json(), [(p.id, p.version) for p in profs],
             frames, variants_per_frame, seed, title, genre, list(keyframe_ids), title_overlay,
             sorted((titles or {}).items())]
    if cast:  # only when given, so runs without casting notes keep the keys they had
        parts.append(sorted((str(k), str(v)) for k, v in cast.items()))
    return stable_id(*parts, length=16)


def _claim_unfinished(store: Store, key: str) -> tuple[RunSummary, FileLock] | None:
    """The newest run of ``key`` left ``running`` (its process was killed) or ``failed``, with its lock
    taken; None when there is none, or each one's lock is held (it is running now, in another process)."""
    for run in run_queries.unfinished_runs(store, key):
        lock = FileLock(run_lock_path(store, run.run_id), what="genart run")
        if not lock.acquire():
            continue
        status, _ = store.run_status(run.run_id)  # re-read under the lock: it may have finished meanwhile
        if status in ("running", "failed"):
            return run, lock
        lock.release()
    return None


def _say_unused_titles(titles: Mapping[str, str] | None, profiles: Sequence[TasteProfile]) -> None:
    """A title for a locale no profile of the run has would go unused without a word: say so."""
    for tag in titles or {}:
        if not any(tag in (p.locale, p.locale.split("-")[0]) for p in profiles):
            have = ", ".join(f"{p.id} {p.locale}" for p in profiles)
            warn(f"no profile of this run has the locale {tag}, so its title is not used (profiles: {have})")


def run(source: str | Path, *, profiles: Sequence[str | TasteProfile] | str, preset: str | None = None, frames: int = 4,
        variants_per_frame: int = 4, out: str | Path = "runs", db: str | None = None, seed: int = 0,
        title: str = "", genre: str = "", top_k: int | None = None, progress: ProgressFn | None = None,
        keyframes: Sequence[KeyFrame] | None = None,
        title_overlay: bool | None = None, titles: "dict[str, str] | None" = None,  # [generate: title]
        cast: "Mapping[str, str | Path | Sequence[str | Path]] | None" = None) -> RunResult:
    """Run the whole path for one title. See ``genart.api.create_variants`` for the arguments.

    ``title_overlay`` lays the title on the artwork (default: when a title is given); ``titles`` gives the
    title text per locale (``{"ja-JP": "..."}``) for profiles whose locale has its own (generate stage);
    ``cast`` the casting notes the frames stage names characters by.

    Resumable: a run of the same command (see :func:`resume_key`) that was killed (left ``running``,
    nobody holding its lock) or failed is continued instead of started again: its stored key frames
    and each profile's stored variants are reused, the rest is made, every profile is ranked.
    """

    # cheap checks first: nothing is written until every argument is known to be usable
    _check_counts(frames, variants_per_frame, top_k)
    spec = load_models_config().preset(preset)
    profs = resolve_profiles(profiles)
    for tag in titles or {}:
        check_locale(tag, "titles")
    src = _source_path(source)
    if not src.exists():
        raise SourceNotFoundError(src)
    if keyframes is None:
        probe_source(src)
        check_cast(cast)
    ensure_weights(spec)

    store = Store(out, db)
    digest = source_digest(src)
    key = resume_key(digest, spec, profs, frames, variants_per_frame, seed, title, genre,
                     keyframe_ids=[k.id for k in keyframes or ()], title_overlay=title_overlay, titles=titles,
                     cast=cast)
    claimed = _claim_unfinished(store, key)
    if claimed is not None:
        found, lock = claimed
        run_id, created_at = found.run_id, found.created_at
    else:
        created = datetime.now(timezone.utc)
        run_id, created_at = created.strftime("%Y%m%d-%H%M%S-") + secrets.token_hex(3), created.isoformat(timespec="seconds")
        lock = FileLock(run_lock_path(store, run_id), what="genart run")
        lock.acquire()  # before the row exists, so no other process can take this run for a killed one
    run_dir = store.root / "runs" / run_id
    manifest = RunManifest(
        run_id=run_id, created_at=created_at, genart_version=__version__,
        source=str(src.resolve()), source_sha256=digest, preset=spec.name,
        preset_spec=spec.canonical_json(), models=(), profiles=tuple((p.id, p.version) for p in profs),
        frames=frames, variants_per_frame=variants_per_frame, seed=seed, title=title, genre=genre,
        checks=ranking_checks(spec),
    )
    if claimed is None:
        store.start_run(manifest, resume_key=key)
    else:
        store.reopen_run(run_id)
    manifest_path = run_dir / "manifest.json"
    write_text(manifest_path, json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    warned = WarningLog().open()  # what the stages work around, for result.json and the caller
    try:
        _say_unused_titles(titles, profs)
        kfs = store.keyframes(run_id) if claimed is not None else []
        if not kfs:
            if keyframes is None:
                keyframes = extract_keyframes(src, max_frames=frames, progress=progress, cast=cast)
            kfs = store.add_keyframes(run_id, keyframes)
        link_keyframes(run_dir, kfs)
        report(progress, "models", 0, 1)
        stages = load_stages(spec, store=store)
        report(progress, "models", 1, 1)
        models = stages.models + _packaged_models(spec)
        if models:
            manifest = replace(manifest, models=models)
            write_text(manifest_path, json.dumps(manifest.to_json(), indent=2, sort_keys=True))
        ranked: list[tuple[str, tuple[RankedVariant, ...]]] = []
        rejected: list[tuple[str, tuple[RankedVariant, ...]]] = []
        by_id = {kf.id: kf for kf in kfs}
        for profile in profs:
            # a profile's variants commit in one transaction: all of them are stored, or none
            variants = store.variants(run_id, profile.id, by_id) if claimed is not None else []
            if not variants:
                variants = stages.generator.generate(
                    kfs, profile, variants_per_frame, seed=seed, title=title, genre=genre, progress=progress,
                    title_overlay=title_overlay, titles=titles)  # [generate: title]
                variants = store.add_variants(run_id, variants, software=f"genart {__version__}",
                                              fmt=spec.delivery.format, quality=spec.delivery.quality)
            report(progress, "rank", 0, len(variants))
            rows = stages.rank(variants, profile)
            report(progress, "rank", len(variants), len(variants))
            store.add_rankings(run_id, rows)
            good = tuple(r for r in rows if r.rejected is None)
            ranked.append((profile.id, good[:top_k] if top_k else good))
            rejected.append((profile.id, tuple(r for r in rows if r.rejected is not None)))
            link_ranked(run_dir, profile.id, good)
        result = RunResult(run_id=run_id, preset=spec.name, out_dir=run_dir, manifest_path=manifest_path,
                           keyframes=tuple(kfs), ranked=tuple(ranked), rejected=tuple(rejected),
                           warnings=tuple(warned.messages))
        buf = io.BytesIO()
        overview(result).save(buf, format="PNG")
        write_bytes(run_dir / "overview.png", buf.getvalue())
        write_text(run_dir / "result.json", json.dumps(result.to_json(), indent=2))
        store.finish_run(run_id, "done")
        return result
    except GenartError as exc:
        store.finish_run(run_id, "failed", str(exc))
        raise
    except BaseException as exc:
        store.finish_run(run_id, "failed", f"{type(exc).__name__}: {exc}")
        raise
    finally:
        warned.close()
        lock.release()


def _source_path(source: object) -> Path:
    """``source`` as a path, or a typed error for what is not one (None, a number, ...)."""
    if isinstance(source, (str, os.PathLike)) and str(source).strip():
        return Path(source).expanduser()
    raise InvalidArgumentError("source", source, "a video file, an image or a folder of stills (a path)")

