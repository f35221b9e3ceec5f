"""The scorer interface: one required method, so any image scorer plugs into the ranking."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, Sequence, runtime_checkable

from genart.types import ScoreSet, TasteProfile, Variant

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image


@runtime_checkable
class Scorer(Protocol):
    """Scores variants for one profile.

    ``names`` lists the scores it produces; every ``ScoreSet`` it returns holds exactly those names,
    each finite. Scores must be deterministic and must not depend on which other variants share the
    batch (batch invariance), so a variant scored alone scores the same.
    """

    @property
    def names(self) -> tuple[str, ...]:  # read-only here, so a class attribute ``names = ("x",)`` satisfies it
        ...

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        ...


class ImageEmbedder(Protocol):
    """What diversity needs of an embedder (CLIP's ``CachingEmbedder``, ``diversity.FeatureEmbedder``):
    one vector per image, comparable by cosine."""

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        ...
