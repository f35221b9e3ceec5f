"""Finishing one variant for delivery: ``finish`` with what the preset (delivery sizes, safe zones,
limits) and the profile (grade, locale, title style) decide, on the CPU path (``finish``) or the tensor
path (``tensor_finish.finish_image``); and how far those two paths are apart.

Its own module because it sits above both finishing paths: every generator (``classic``, ``diffusion``)
calls it, and it calls both paths, so neither generator nor the tensor finisher has to import the other
(they used to, in a cycle).
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any, Callable, Sequence

import numpy as np

from genart.generate.finish import Finished, finish
from genart.types import Box, TasteProfile
from genart.generate.tensor_finish import finish_image
from genart.errors import GenartWarning

if TYPE_CHECKING:  # pragma: no cover
    from genart.config import FinishSpec


def finish_variant(rgb: "np.ndarray", faces: Sequence[Box], regions: Sequence[Box], aspect: str,
                   profile: TasteProfile, amount: float, settings: "FinishSpec", *, device: object = None,
                   **kw: object) -> Finished:
    """``finish`` with what the preset and the profile decide: the aspect's delivery size and safe zone,
    the limits on upscale and fill, the profile's grade, locale and title style. Shared by every generator.

    ``device``: finish through the tensor path there (``genart.generate.tensor_finish.finish_image``,
    the same result within 2 levels); None: the CPU path."""
    fn: Callable[..., Finished] = finish
    if device is not None:
        fn = partial(finish_image, device=device)
    return fn(rgb, faces, aspect, profile.grade, amount, size=settings.size(aspect), locale=profile.locale,
              style=profile.title_style, regions=regions, safe=settings.safe_zone(aspect),
              max_upscale=settings.max_upscale, max_synthetic=settings.max_synthetic,
              max_outpaint=settings.max_outpaint, **kw)


def finish_facts(done: Finished) -> dict[str, Any]:
    """The ``GenerationParams`` fields that record what finishing did."""
    return {"synthetic_share": done.synthetic_share, "upscale": done.upscale, "title_status": done.title_status,
            "title_reason": done.title_reason, "title_box": done.title.box if done.title else None,
            "watermark": done.watermark}


def finish_max_abs_diff(frames: Sequence[tuple[np.ndarray, Sequence[Box]]], cases: Sequence[tuple[Any, str, str]],
                        *, settings: Any = None, amount: float = 1.0, watermark: str | None = None,
                        device: Any = "cpu") -> dict[str, int]:
    """How far the tensor finishing is from ``finish`` (the PIL/numpy path) on the same frames.

    Args:
        frames: (uint8 RGB image, its faces) pairs.
        cases: (profile, aspect, title) to finish each frame with (the profile's grade, locale and style).
        settings: the preset's ``FinishSpec`` (default: the defaults: delivery sizes, safe zones, limits).

    Returns:
        ``finish_max_abs_diff`` (the largest per-channel difference, levels), ``rows`` (images
        compared), ``on_device`` (those the tensor path finished; the others left the frame and were
        finished by ``finish`` in both), ``plan_mismatches`` (crop, size or title status not the same:
        should be 0).
    """
    import warnings

    from genart.config import FinishSpec

    settings = settings or FinishSpec()
    worst = rows = on_device = mismatches = 0
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GenartWarning)
        for rgb, faces in frames:
            for profile, aspect, title in cases:
                a, b = (finish_variant(rgb, faces, (), aspect, profile, amount, settings, title=title,
                                       watermark=watermark, device=dev) for dev in (None, device))
                rows += 1
                if (a.framing.crop, a.size, a.title_status) != (b.framing.crop, b.size, b.title_status) \
                        or a.pixels.shape != b.pixels.shape:
                    mismatches += 1
                    continue
                on_device += int(not a.framing.padded)
                worst = max(worst, int(np.abs(a.pixels.astype(np.int16) - b.pixels.astype(np.int16)).max()))
    return {"finish_max_abs_diff": worst, "rows": rows, "on_device": on_device, "plan_mismatches": mismatches}
