"""The public Python API. The CLI, the Gradio app and notebooks all go through these functions.

Importing this module is cheap (no torch): stages load when a function needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from genart.config import PresetSpec, load_models_config
from genart.progress import ProgressFn
from genart.types import KeyFrame, RunResult, TasteProfile
from genart.usecases.tester import open_tester as _open

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

    from genart.models import PresetCheck
    from genart.demo import DemoClip
    from genart.bandit.tester import Tester
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


def contact_sheet(result: "FramesResult", *, title: str = "", cols: int = 4, cell_w: int = 320) -> "Image.Image":
    """The frames stage at a glance, as ``genart frames`` saves it: every key frame with its faces (who),
    text and logos drawn on it, a timeline of shots, transitions and characters, the bars cropped, and
    why fewer key frames came back than asked.

    Args:
        result: what ``analyse_frames`` returned.
        title: the headline.
        cols, cell_w: key frames per row, and each one's width in pixels.

    Returns:
        The sheet, an RGB image.
    """
    from genart.sheets import frames_sheet

    return frames_sheet(result, title=title, cols=cols, cell_w=cell_w)


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


# The use cases (genart.usecases) behind the public functions below: this module is their facade.
from genart.usecases.choices import list_grades  # noqa: E402,F401  (re-exported)
from genart.usecases.export import export_package  # noqa: E402,F401  (re-exported)
from genart.usecases.facts import variant_facts  # noqa: E402,F401  (re-exported)
from genart.usecases.handoff import handoff_to_test, handoffs, rank_artwork  # noqa: E402,F401  (re-exported)
from genart.usecases.loop import loop_step, proposals  # noqa: E402,F401  (re-exported)
from genart.usecases.preferences import (  # noqa: E402,F401  (re-exported)
    preference_model,
    rerank_for_segments,
    segment_preferences,
)
from genart.usecases.ranking import rank_variants, variant_from_image  # noqa: E402,F401  (re-exported)
from genart.usecases.regenerate import regenerate_variant  # noqa: E402,F401  (re-exported)
from genart.usecases.review import (  # noqa: E402,F401  (re-exported)
    approved_variants,
    decisions,
    record_decision,
    review_states,
    score_breakdown,
)
from genart.usecases.runs import list_runs, load_run, title_run  # noqa: E402,F401  (re-exported)
from genart.usecases.settings import setting_words  # noqa: E402,F401  (re-exported: the bandit CLI's words)
from genart.usecases.staging import create_run_from_stage, load_stage, stage_source  # noqa: E402,F401
from genart.usecases.testing import simulate_test, test_report, test_timeline  # noqa: E402,F401  (re-exported)
from genart.usecases.tests import approve_test, evaluate_test, list_tests, stop_test  # noqa: E402,F401


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
    from genart.usecases.tester import open_tester

    return open_tester(out, db).info(test_id)


test_info.__test__ = False  # type: ignore[attr-defined]


def open_tester(out: str | Path | None, db: str | None = None) -> "Tester":
    """The bandit tester of an output folder's store (one per store in a process, thread-safe).

    Args:
        out: the output folder ``genart run`` / ``app`` / ``batch`` wrote; None: the store ``db`` names
            (a database URL or SQLite file), else the default one.
        db: the run store's database URL, when it is not the folder's ``genart.sqlite``.

    Raises:
        StoreError: the database cannot be opened.
    """

    return _open(out, db)


def locate_store(store: str | Path | None = None, out: str | Path | None = None, *,
                 must_exist: bool = False) -> str:
    """The database URL the bandit commands use (see :func:`genart.store.bandit_engine.locate`): ``store``
    (a URL, a SQLite file or an output folder), else ``out``'s ``genart.sqlite``, else the default store.

    Raises:
        InvalidArgumentError: both ``store`` and ``out`` given.
        StoreError: ``must_exist`` and no such store.
    """
    from genart.store.bandit_engine import locate

    return locate(store, out, must_exist=must_exist)
