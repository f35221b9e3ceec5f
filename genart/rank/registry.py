"""Scorers registered by name: a preset's ``ranker.scorers`` lists them, each module registers its own.

As open_clip registers architectures, each scorer module registers a factory under a name with
``@register_scorer("name")``; ``build_rankers`` makes the scorers a preset lists, in its order, from the
factories. A factory takes a ``ScorerContext`` (the preset, and the models loaded for it on first need:
one CLIP and one shared ``CachingEmbedder``, so every CLIP-based scorer sends an image through the
vision tower once) and returns its scorer, or None where the preset turns it off. It may also say which
gates it runs (``checks``): a run's manifest records them (``ranking_checks``).

This module is the table only: it imports no scorer. ``genart.rank.scorers`` finds the scorer modules
(every module of ``genart.rank``) and imports them, so they register themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, Sequence

from genart.errors import UnknownScorerError
from genart.rank.base import Scorer
from genart.rank.embed import CachingEmbedder, EmbeddingCache

if TYPE_CHECKING:  # pragma: no cover
    from genart.config import PresetSpec

#: What a preset runs when its ``ranker`` lists no ``scorers``, by ``ranker.method`` (models.yaml files
#: written before the list existed rank exactly as they did).
DEFAULT_SCORERS: dict[str, tuple[str, ...]] = {
    "clip": ("clip", "aesthetic", "technical", "legibility", "safety"),
    "features": ("features", "technical", "aesthetic", "legibility", "safety"),
}


class ScorerContext:
    """What a scorer's factory may use for one preset: its spec, and the models loaded for it.

    Args:
        spec: the preset (``PresetSpec``).
        persistent: where image embeddings outlive the process (the store's cache), or None.
        clip: an embedder to use instead of loading the preset's CLIP (a test's ``FakeEmbedder``).
    """

    def __init__(self, spec: PresetSpec, persistent: EmbeddingCache | None = None, clip: Any = None) -> None:
        self.spec = spec
        self.persistent = persistent
        self._clip = clip
        self._embedder: CachingEmbedder | None = None

    def clip(self) -> Any:
        """The preset's CLIP model (loaded once per process by ``genart.models.load_clip``).

        Raises:
            ModelLoadError: its weights are not here.
            InvalidArgumentError: the preset does not rank with CLIP.
        """
        if self._clip is None:
            from genart.models import load_clip

            self._clip = load_clip(self.spec)
        return self._clip

    def embedder(self) -> CachingEmbedder:
        """The one ``CachingEmbedder`` over the preset's CLIP that all its scorers and diversity share."""
        if self._embedder is None:
            self._embedder = CachingEmbedder(self.clip(), self.persistent, batch_size=self.spec.ranker.batch_size)
        return self._embedder

    def safety_lines(self) -> dict[str, float]:
        """The preset's reject and review lines for the safety scorer."""
        s = self.spec.ranker.safety
        return dict(nsfw_threshold=s.nsfw_threshold, nsfw_review=s.nsfw_review, gore_threshold=s.gore_threshold,
                    gore_review=s.gore_review, weapons_threshold=s.weapons_threshold, weapons_review=s.weapons_review)


ScorerFactory = Callable[[ScorerContext], "Scorer | None"]
ChecksFn = Callable[["PresetSpec"], Sequence[str]]


@dataclass(frozen=True)
class ScorerEntry:
    """A registered scorer: how to make it for a preset, and the gates it runs there."""

    name: str
    factory: ScorerFactory
    checks: ChecksFn | None = None


_SCORERS: dict[str, ScorerEntry] = {}


def register_scorer(name: str, *, checks: ChecksFn | None = None) -> Callable[[ScorerFactory], ScorerFactory]:
    """Decorator: register ``factory(ctx) -> Scorer | None`` as the scorer ``name`` (models.yaml's name for it).

    Args:
        name: what ``ranker.scorers`` calls it.
        checks: ``checks(spec)``: one line per gate it runs for that preset (what and at which line).
    """

    def add(factory: ScorerFactory) -> ScorerFactory:
        _SCORERS[name] = ScorerEntry(name, factory, checks)
        return factory

    return add


def registered() -> dict[str, ScorerEntry]:
    """The scorers registered so far, by name (``genart.rank.scorers.available`` imports them all first)."""
    return dict(_SCORERS)


def preset_scorers(spec: PresetSpec) -> tuple[ScorerEntry, ...]:
    """The registered scorers a preset lists (``ranker.scorers``, else its method's defaults), in order.

    Raises:
        UnknownScorerError: the preset names a scorer nobody registered (lists the registered ones).
    """
    names = spec.ranker.scorers if spec.ranker.scorers is not None else DEFAULT_SCORERS[spec.ranker.method]
    out = []
    for name in names:
        entry = _SCORERS.get(name)
        if entry is None:
            raise UnknownScorerError(name, _SCORERS)
        out.append(entry)
    return tuple(out)


def fidelity_check(how: str, threshold: float) -> str:
    """The manifest line of a fidelity score measured ``how``, gated at ``threshold`` (-1: not gated)."""
    if threshold > -1:
        return f"fidelity: {how}; rejected below {threshold:g}"
    return f"fidelity: {how}; measured, gates nothing (threshold -1)"
