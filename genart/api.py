"""The public Python API. The CLI, the Gradio app and notebooks all go through these functions.

Importing this module is cheap (no torch): stages load when a function needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Sequence

from genart.config import PresetSpec, load_models_config
from genart.progress import ProgressFn
from genart.types import KeyFrame, RankedVariant, RunResult, TasteProfile, Variant

if TYPE_CHECKING:  # pragma: no cover
    from genart.models import PresetCheck


def create_variants(source: str | Path, profiles: Sequence[str] | str = ("romance", "thriller"),
                    preset: str | None = None, frames: int = 4, variants_per_frame: int = 4,
                    out: str | Path = "runs", *, db: str | None = None, seed: int = 0, title: str = "",
                    genre: str = "", top_k: int | None = None, progress: ProgressFn | None = None) -> RunResult:
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

    Returns:
        A ``RunResult``: per profile, ``RankedVariant`` s best first (path, total, every score by name,
        generation parameters, source key frame and timecode); rejected variants separately.

    Raises:
        SourceNotFoundError, UnsupportedMediaError, EmptySourceError: the source cannot be used.
        UnknownProfileError, UnknownPresetError, InvalidArgumentError: a bad argument.
        ModelLoadError: the preset's weights are not on this machine (``genart models pull PRESET``).
        ConfigError, ProfileValidationError: a malformed ``models.yaml`` or profile file.
    """
    from genart import pipeline

    return pipeline.run(source, profiles=profiles, preset=preset, frames=frames,
                        variants_per_frame=variants_per_frame, out=out, db=db, seed=seed, title=title, genre=genre,
                        top_k=top_k, progress=progress)


def extract_keyframes(source: str | Path, max_frames: int = 4, *, progress: ProgressFn | None = None) -> list[KeyFrame]:
    """Pick up to ``max_frames`` key frames of a video, image or folder of stills, with timecodes and scores."""
    from genart import frames

    return frames.extract_keyframes(source, max_frames=max_frames, progress=progress)


def rank_variants(variants: Sequence[Variant], profiles: Sequence[str] | str, *, preset: str | None = None,
                  top_k: int | None = None) -> dict[str, list[RankedVariant]]:
    """Rank any variants (generated, or an existing thumbnail wrapped as a ``Variant``) for each profile.

    A variant whose ``profile_id`` names one of ``profiles`` is ranked for that profile only; any other
    variant (an existing human-made thumbnail, say) is ranked for every profile.

    Returns:
        Per profile id, accepted variants best first (at most ``top_k``), then the rejected ones.
    """
    from genart import pipeline
    from genart.profiles import get_profiles
    from genart.rank.combine import rank_for_profile

    spec = load_models_config().preset(preset)
    profs = get_profiles(profiles)
    ids = {p.id for p in profs}
    stages = pipeline.load_stages(spec)
    out: dict[str, list[RankedVariant]] = {}
    for p in profs:
        mine = [v for v in variants if v.profile_id == p.id or v.profile_id not in ids]
        out[p.id] = rank_for_profile(mine, p, stages.scorers, fidelity_threshold=spec.ranker.fidelity_threshold,
                                     top_k=top_k)
    return out


def list_profiles() -> list[TasteProfile]:
    """Every taste profile in ``prompts/``, sorted by id."""
    from genart.profiles import load_profiles

    return [p for _, p in sorted(load_profiles().items())]


def get_profile(profile_id: str) -> TasteProfile:
    """One profile by id. Raises ``UnknownProfileError`` listing the known ids."""
    from genart.profiles import get_profiles

    return get_profiles([profile_id])[0]


def list_presets() -> list[PresetSpec]:
    """The presets of ``models.yaml``, default first."""
    cfg = load_models_config()
    return sorted(cfg.presets.values(), key=lambda p: (p.name != cfg.default_preset, p.name))


def check_preset(name: str | None = None) -> "PresetCheck":
    """What a preset needs and whether its weights are on this machine (no network, seconds)."""
    from genart.models import check_preset as _check

    return _check(load_models_config().preset(name))
