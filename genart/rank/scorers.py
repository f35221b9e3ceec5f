"""A preset's scorers and ranking gates, made from the scorer registry (``genart.rank.registry``).

``available`` imports every module of ``genart.rank`` once, so each scorer module's
``@register_scorer`` runs: a new scorer is found by being a module here, with no list to edit. (The
registry itself imports no scorer, so no module imports its own importer.)
"""

from __future__ import annotations

import importlib
import pkgutil
from typing import TYPE_CHECKING, Any

from genart.rank.base import Scorer
from genart.rank.combine import RankOptions
from genart.rank.embed import EmbeddingCache
from genart.rank.registry import ScorerContext, ScorerEntry, preset_scorers, registered
from genart.types import ScoreSet
from genart.rank.diversity import FeatureEmbedder

if TYPE_CHECKING:  # pragma: no cover
    from genart.config import PresetSpec

#: Gates of the ranking itself (``genart.rank.combine``), whatever the scorers.
RANKING_GATES = (
    "untitled: a variant whose title could not be placed is rejected for the aspects its profile requires "
    "a title for (title_style.required_for, default 16:9 and 2:3)",
    "hand-off: a variant marked needs_review goes to a bandit test only after a person approved it",
)

_LOADED = False


def available() -> dict[str, ScorerEntry]:
    """Every registered scorer, by name: the modules of ``genart.rank`` imported once, so they register."""
    global _LOADED
    if not _LOADED:
        import genart.rank

        for info in pkgutil.iter_modules(genart.rank.__path__):
            importlib.import_module(f"genart.rank.{info.name}")  # each scorer module registers itself
        _LOADED = True
    return registered()


def build_rankers(spec: PresetSpec, persistent: EmbeddingCache | None = None,
                  clip: Any = None) -> tuple[tuple[Scorer, ...], RankOptions]:
    """The scorers a preset lists (each from its registered factory) and its ranking options.

    CLIP presets share one ``CachingEmbedder`` between their CLIP-based scorers and diversity; the
    features method places for diversity by measured features (``FeatureEmbedder``).

    Args:
        spec: the preset.
        persistent: where embeddings outlive the process (the store's cache), or None.
        clip: an embedder to use instead of the preset's CLIP (tests).

    Raises:
        UnknownScorerError: ``ranker.scorers`` names a scorer nobody registered.
        ModelLoadError: a model a listed scorer needs is absent.
    """
    available()
    ctx = ScorerContext(spec, persistent, clip)
    made = [entry.factory(ctx) for entry in preset_scorers(spec)]
    r = spec.ranker
    if r.method == "clip":
        diversity: Any = ctx.embedder()
    else:
        diversity = FeatureEmbedder()
    options = RankOptions(diversity, r.diversity.top_k, r.diversity.mmr_lambda, ScoreSet.of(r.extra_weights),
                          r.diversity.similarity)
    return tuple(s for s in made if s is not None), options


def ranking_checks(spec: PresetSpec) -> tuple[str, ...]:
    """The gates a preset's ranking runs, one line each with its lines: those of its scorers, in their
    order, then the ranking's own (what a run's manifest records as ``checks``).

    Raises:
        UnknownScorerError: ``ranker.scorers`` names a scorer nobody registered.
    """
    available()
    lines = [line for entry in preset_scorers(spec) if entry.checks is not None for line in entry.checks(spec)]
    return (*lines, *RANKING_GATES)
