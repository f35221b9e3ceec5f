"""The scorer interface: one required method, so any image scorer plugs into the ranking."""

from __future__ import annotations

from typing import Protocol, Sequence, runtime_checkable

from genart.types import ScoreSet, TasteProfile, Variant


@runtime_checkable
class Scorer(Protocol):
    """Scores variants for one profile.

    ``names`` lists the scores it produces; every ``ScoreSet`` it returns holds exactly those names,
    each finite. Scores must be deterministic and must not depend on which other variants share the
    batch (batch invariance), so a variant scored alone scores the same.
    """

    names: tuple[str, ...]

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        ...
