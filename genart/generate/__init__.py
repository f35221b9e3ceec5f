"""The generators: ``classic`` (reframe, grade, title: no model) and ``diffusion`` (img2img, then the
same finishing). Every caller that makes variants (``genart run``, the batch job, regeneration, the
app) is typed against ``Generator``, so a new generator is one class that satisfies it.

Only typing here: importing this package stays cheap.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Mapping, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # pragma: no cover
    from genart.progress import ProgressFn
    from genart.types import KeyFrame, TasteProfile, Variant

__all__ = ["Generator"]


@runtime_checkable
class Generator(Protocol):
    """What makes a profile's variants of key frames: ``ClassicGenerator`` and ``DiffusionGenerator``.

    The contract (``tests/test_generator_contract.py`` checks it for every generator):
    ``variants_per_frame`` variants per key frame, in key frame order then variant index; variant ``i``
    of a frame framed to ``profile.aspects[i % len(profile.aspects)]``; the same seed, the same
    variants (ids and pixels); every parameter that made a variant recorded in ``Variant.params``; and
    the batch job (``genart.batch.gpu.generate_slots``) making the very same variant for a slot.
    """

    def generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, variants_per_frame: int, *,
                 seed: int = 0, title: str = "", genre: str = "", progress: ProgressFn | None = None,
                 title_overlay: bool | None = None, titles: Mapping[str, str] | None = None) -> list[Variant]:
        """``variants_per_frame`` variants of each key frame for ``profile``.

        Args:
            seed: the run's seed: each variant's own seed derives from it, the frame, profile and index.
            title: the title's name, for the prompt and the overlay; genre: for the prompt.
            progress: called as variants are made.
            title_overlay: lay the title on the artwork; default: when a title is given.
            titles: title text per locale; the profile's locale picks, else ``title``.

        Returns:
            The variants, in key frame order, then variant index.

        Raises:
            InvalidArgumentError: ``variants_per_frame`` < 1.
            ImageReadError: a key frame without pixels or a readable stored file (``ImageNotFoundError``
                when it has neither; ``genart.imaging.pixels_of``).
        """
        ...
