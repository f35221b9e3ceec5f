"""The public Python API. The CLI, the Gradio app and notebooks all go through these functions.

Importing this module is cheap (no torch): stages load when a function needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from genart.config import PresetSpec, load_models_config
from genart.progress import ProgressFn
from genart.types import KeyFrame, RankedVariant, RunResult, TasteProfile, Variant

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from genart.models import PresetCheck
    from genart.demo import DemoClip
    from genart.bandit.types import TestConfig, TestInfo
    from genart.types import BatchReport, FramesResult


def create_variants(source: str | Path, profiles: Sequence[str] | str = ("romance", "thriller"),
                    preset: str | None = None, frames: int = 4, variants_per_frame: int = 4,
                    out: str | Path = "runs", *, db: str | None = None, seed: int = 0, title: str = "",
                    genre: str = "", top_k: int | None = None, progress: ProgressFn | None = None,
                    title_overlay: bool | None = None, titles: dict[str, str] | None = None,
                    cast: "Mapping[str, str | Path | Sequence[str | Path]] | None" = None) -> RunResult:
    """Make ranked artwork variants of a title for each taste profile.

    Args:
        source: a video file, an image, or a folder of stills.
        profiles: profile ids (``prompts/<id>.yaml``), as a list or a comma-separated string.
        preset: a preset of ``models.yaml`` (``classic``, ``tiny``, ``turbo``, ``quality``); None = the default.
        frames: how many key frames to pick.
        variants_per_frame: variants made from each key frame, per profile.
        out: the output folder: ``genart.sqlite``, ``images/`` and ``runs/<run_id>/``.
        db: an SQLAlchemy URL for the store instead of the SQLite file in ``out``.
        seed: the run seed; each variant's seed derives from it, so the same call makes the same variants.
        title, genre: fill the profile's prompt template.
        top_k: keep only the best k accepted variants per profile in the result (all are stored).
        progress: ``progress(stage, done, total)`` callback.
        title_overlay: lay the title's text into each variant (default: when ``title`` is given).
        titles: the title per locale (``{"ja-JP": "...", "hi-IN": "..."}``) for regional profiles;
            a profile whose locale is missing uses ``title``.
        cast: casting notes, a character's name -> reference photo(s); faces in the key frames that
            match are named in ``KeyFrame.people`` (profiles ask for them with ``casting:``).

    Returns:
        A ``RunResult``: per profile, ``RankedVariant`` s best first (path, total, every score by name,
        generation parameters, source key frame and timecode); rejected variants separately.

    Raises:
        SourceNotFoundError, UnsupportedMediaError, EmptySourceError: the source cannot be used.
        UnknownProfileError, UnknownPresetError, InvalidArgumentError: a bad argument.
        ModelLoadError: the preset's weights are not on this machine (``genart models pull PRESET``).
        ConfigError, ProfileValidationError: a malformed ``models.yaml`` or profile file.
    """
    from genart.usecases.run import run

    return run(source, profiles=profiles, preset=preset, frames=frames,
               variants_per_frame=variants_per_frame, out=out, db=db, seed=seed, title=title, genre=genre,
               top_k=top_k, progress=progress, title_overlay=title_overlay, titles=titles, cast=cast)


def extract_keyframes(source: str | Path, max_frames: int = 4, *, progress: ProgressFn | None = None,
                      cast: "Mapping[str, str | Path | Sequence[str | Path]] | None" = None) -> list[KeyFrame]:
    """Pick up to ``max_frames`` key frames of a video, image or folder of stills, with timecodes and scores.

    ``cast``: casting notes, name -> reference image(s); faces that match are named in ``KeyFrame.people``.
    """
    from genart import frames

    return frames.extract_keyframes(source, max_frames=max_frames, progress=progress, cast=cast)


def analyse_frames(source: str | Path, max_frames: int = 12, *, sample_fps: float = 2.0, detector: str = "content",
                   progress: ProgressFn | None = None,
                   cast: "Mapping[str, str | Path | Sequence[str | Path]] | None" = None) -> "FramesResult":
    """Shots, cuts, transitions, bars, characters and key frames of a source: what ``genart frames`` shows."""
    from genart import frames

    return frames.analyse(source, max_frames=max_frames, sample_fps=sample_fps, detector=detector, progress=progress,
                          cast=cast)


def rank_variants(variants: Sequence[Variant], profiles: Sequence[str] | str, *, preset: str | None = None,
                  top_k: int | None = None, out: str | Path | None = None,
                  db: str | None = None) -> dict[str, list[RankedVariant]]:
    """Rank any variants (generated, or an existing thumbnail wrapped by ``variant_from_image``) for each profile.

    A variant whose ``profile_id`` names one of ``profiles`` is ranked for that profile only; any other
    variant (an existing human-made thumbnail, say) is ranked for every profile. Every score is named
    in each ``RankedVariant`` (affinity, fidelity, aesthetic where the preset has a head, quality,
    legibility, safety) and each total is explained (``explanation``); misleading or unsafe ones are
    rejected with the reason, doubtful ones kept with ``needs_review``. The list is placed for diversity
    (``genart.rank.diversity``): it follows ``rank_score``, and ``placed_by`` says where diversity moved
    a variant, so the first places show different frames and looks.

    Args:
        variants: what to rank; each needs pixels (``image``) or a file (``path``).
        profiles: profile ids, as a list or a comma-separated string.
        preset: whose scorers to use (None = the default preset).
        top_k: keep at most this many accepted variants per profile.
        out, db: a store (folder or SQLAlchemy URL) to cache CLIP embeddings in across calls.

    Returns:
        Per profile id, accepted variants best first (at most ``top_k``), then the rejected ones.

    Raises:
        UnknownProfileError, UnknownPresetError, InvalidArgumentError: a bad argument.
        ModelLoadError: the preset's weights (or the NSFW classifier) are not on this machine.
    """
    from genart.errors import InvalidArgumentError
    from genart.profiles import get_profiles
    from genart.rank.combine import rank_for_profile
    from genart.usecases import stages

    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise InvalidArgumentError("top_k", top_k, "a positive integer or None")
    for v in variants:
        if not isinstance(v, Variant):
            raise InvalidArgumentError("variants", type(v).__name__, "genart.types.Variant values (see variant_from_image)")
    spec = load_models_config().preset(preset)
    profs = get_profiles(profiles)
    ids = {p.id for p in profs}
    stages.ensure_weights(spec)
    store = None
    if out is not None or db is not None:
        from genart.store.db import Store

        store = Store(out if out is not None else "runs", db)
    scorers, options = stages.load_rankers(spec, store)
    result: dict[str, list[RankedVariant]] = {}
    for p in profs:
        mine = [v for v in variants if v.profile_id == p.id or v.profile_id not in ids]
        result[p.id] = rank_for_profile(mine, p, scorers, fidelity_threshold=spec.ranker.fidelity_threshold,
                                        top_k=top_k, options=options)
    return result


def variant_from_image(image: "str | Path | Image.Image", *, profile_id: str = "", variant_id: str | None = None,
                       source: "str | Path | Image.Image | None" = None,
                       digital_source_type: str = "humanEdits") -> Variant:
    """Wrap any picture (an existing human-made thumbnail, say) as a ``Variant`` that ``rank_variants``
    scores beside generated ones.

    Args:
        image: an image file, or PIL pixels.
        profile_id: the profile it is meant for; empty = rank it for every profile asked for.
        variant_id: its id (default: a hash of its pixels).
        source: the frame it was made from, for fidelity; None = the picture is its own source (fidelity 1).
        digital_source_type: its IPTC DigitalSourceType term (``humanEdits`` for artwork made by people).

    Raises:
        SourceNotFoundError: ``image`` or ``source`` is a path that does not exist.
        UnsupportedMediaError: it is not a readable image, or more pixels than genart decodes
            (``ImageTooLargeError``, see ``genart.imaging.max_image_pixels``).
        InvalidArgumentError: ``image`` is neither a path nor PIL pixels.
    """
    from PIL import Image as _Image

    from genart.errors import InvalidArgumentError, SourceNotFoundError
    from genart.imaging import load_rgb
    from genart.rank.embed import image_key
    from genart.types import GenerationParams, stable_id

    def opened(x) -> "tuple[_Image.Image, Path | None]":
        if isinstance(x, _Image.Image):
            return x.convert("RGB"), None
        if not isinstance(x, (str, Path)):
            raise InvalidArgumentError("image", type(x).__name__, "an image file's path or PIL pixels")
        path = Path(x).expanduser()
        if not path.is_file():
            raise SourceNotFoundError(path)
        return load_rgb(path), path  # within genart's pixel limit (ImageTooLargeError, an UnsupportedMediaError)

    pixels, path = opened(image)
    key = image_key(pixels)
    if source is None:
        src_px, src_path, src_key = pixels, path, key
    else:
        src_px, src_path = opened(source)
        src_key = image_key(src_px)
    kf = KeyFrame(id=src_key[:16], source=str(src_path or "image"), t_s=0.0, frame_index=0, shot=0,
                  width=src_px.width, height=src_px.height, path=src_path, image=src_px)
    vid = variant_id or stable_id("external", key, profile_id)
    params = GenerationParams(preset="external", method="external", profile_id=profile_id, profile_version="",
                              keyframe_id=kf.id, seed=0, width=pixels.width, height=pixels.height,
                              aspect=f"{pixels.width}:{pixels.height}", grade="none")
    return Variant(id=vid, profile_id=profile_id, keyframe=kf, params=params,
                   digital_source_type=digital_source_type, path=path, image=pixels)


def list_profiles() -> list[TasteProfile]:
    """Every taste profile in ``prompts/``, sorted by id."""
    from genart.profiles import load_profiles

    return [p for _, p in sorted(load_profiles().items())]


def get_profile(profile_id: str) -> TasteProfile:
    """One profile by id. Raises ``UnknownProfileError`` listing the known ids."""
    from genart.profiles import get_profiles

    return get_profiles([profile_id])[0]


def list_aspects() -> tuple[str, ...]:
    """The aspect ratios a profile (or a run's creative choices) may ask for, e.g. ``16:9``, ``2:3``."""
    from genart.profiles import ASPECTS

    return ASPECTS


def list_presets() -> list[PresetSpec]:
    """The presets of ``models.yaml``, default first."""
    cfg = load_models_config()
    return sorted(cfg.presets.values(), key=lambda p: (p.name != cfg.default_preset, p.name))


def check_preset(name: str | None = None) -> "PresetCheck":
    """What a preset needs and whether its weights are on this machine (no network, seconds)."""
    from genart.models import check_preset as _check

    return _check(load_models_config().preset(name))


def pull_preset(name: str) -> None:
    """Fetch a preset's weights into the Hugging Face cache (needs the network), or build ``tiny``."""
    from genart.models import pull_preset as _pull

    _pull(load_models_config().preset(name))


def validate_profile(path: str | Path) -> TasteProfile:
    """Check one profile file without running anything. Raises ``ProfileValidationError`` (file, field, line)."""
    from genart.profiles import load_profile

    return load_profile(path)


def make_demo_clip(path: str | Path) -> "DemoClip":
    """A short clip with cuts and a face, cut together from public-domain photos that scikit-image ships."""
    from genart.demo import make_demo_clip as _make

    return _make(path)


def run_catalog(catalog: str | Path, out: str | Path, *, engine: str = "local", db: str | None = None,
                batch_size: int | None = None, compile: bool = False, num_processes: int | None = None,
                ray_address: str | None = None, ray_num_cpus: int | None = None, ray_num_gpus: float | None = None,
                progress: ProgressFn | None = None, auto_approve: bool | None = None) -> "BatchReport":
    """Run (or resume) a whole catalogue: what ``genart batch`` does. See ``genart.batch.run_catalog``.

    ``auto_approve``: start each title's bandit test without a person (kept in the test); by
    default a draft test waits for someone to approve it."""
    from genart.batch import run_catalog as _run

    return _run(catalog, out, engine=engine, db=db, batch_size=batch_size, compile=compile,
                num_processes=num_processes, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                ray_num_gpus=ray_num_gpus, progress=progress, auto_approve=auto_approve)


# Review and hand-off live in genart.review; the public functions are part of this API.
from genart.review import (  # noqa: E402,F401  (re-exported)
    stage_source,
    load_stage,
    create_run_from_stage,
    list_runs,
    load_run,
    record_decision,
    decisions,
    review_states,
    approved_variants,
    regenerate_variant,
    handoff_to_test,
    handoffs,
    simulate_test,
    test_report,
    list_grades,
    score_breakdown,
    rank_artwork,
    test_timeline,
)


def test_settings(**choices) -> "TestConfig":
    """A bandit test's settings from a person's choices, the same as ``genart bandit create``'s
    options and a catalogue's ``test:`` block: ``policy`` (ts, egreedy, ucb1, lints, linucb, vw),
    ``reward`` (``click``, ``play:MINUTES``, ``watch:MINUTES``), ``floor``, ``change_cap`` and
    ``change_interval`` (``0.1`` per ``1h`` or per ``500 exposures``), ``stop_at`` and
    ``min_impressions`` (the stopping rule), ``loop`` and ``loop_variants`` (new artwork for weak
    segments), ``context_dim``. See ``genart.bandit.settings``.

    Raises:
        UnknownPolicyError, InvalidArgumentError: a bad choice, named as the option is named.
    """
    from genart.bandit.settings import test_settings as _settings

    return _settings(**choices)


test_settings.__test__ = False  # type: ignore[attr-defined]  # an API function, not a pytest test


def test_info(out: str | Path | None, test_id: str, *, db: str | None = None) -> "TestInfo":
    """One test's status (draft, running, stopped), settings in words, approval, origin and traffic.

    Raises:
        UnknownTestError: no such test.
    """
    from genart.learning import _tester

    return _tester(out, db).info(test_id)


test_info.__test__ = False  # type: ignore[attr-defined]


# Bandit tests from every surface and the learning loop live in genart.learning.
from genart.learning import (  # noqa: E402,F401  (re-exported)
    approve_test,
    evaluate_test,
    list_tests,
    loop_step,
    preference_model,
    proposals,
    rerank_for_segments,
    segment_preferences,
    stop_test,
    title_run,
    variant_facts,
)
# The delivery package (genart export) lives in genart.export.
from genart.export import export_package  # noqa: E402,F401  (re-exported)
