"""The ``classic`` generator: no downloaded weights, runs anywhere.

A variant is the key frame reframed to one of the profile's aspect ratios around its subject and
graded with the profile's look. Variety across a frame's variants comes from the aspect ratio, the
grade's strength and a small seeded zoom and shift, so N variants of a frame are N different
thumbnails a person could accept, not copies.
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Mapping, Sequence

from genart.generate.delivery import finish_facts, finish_variant
from genart.generate.finish import faces_in, regions_in
from genart.generate.seeds import variant_seed
from genart.imaging import pixels_of, to_array
from genart.progress import ProgressFn, report
from genart.provenance import digital_source_type
from genart.types import GenerationParams, KeyFrame, TasteProfile, Variant, stable_id

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

    from genart.config import FinishSpec

GRADE_LADDER = (1.0, 0.65, 1.3, 0.85, 1.15)
# a capture, cropped and colour-graded by non-generative algorithms (see genart.provenance);
# with a typeset title it becomes "composite"
DIGITAL_SOURCE_TYPE = "algorithmicallyEnhanced"


def title_for(profile: TasteProfile, title: str, titles: Mapping[str, str] | None) -> str:
    """The title text for a profile: ``titles[locale]`` (or its language, e.g. ``ja``), else ``title``."""
    if titles:
        for key in (profile.locale, profile.locale.split("-")[0]):
            if titles.get(key):
                return titles[key]
    return title


def overlay_title(profile: TasteProfile, title: str, titles: Mapping[str, str] | None,
                  title_overlay: bool | None = None) -> str:
    """The title text laid on ``profile``'s artwork (``title_for``), or "" for none: with
    ``title_overlay`` None, whenever there is a title. The one rule every generator and the batch job use.
    """
    text = title_for(profile, title, titles)
    overlay = bool(text.strip()) if title_overlay is None else bool(title_overlay and text.strip())
    return text if overlay else ""


def keyframe_rgb(kf: KeyFrame) -> "np.ndarray":
    """The key frame's pixels as an RGB array, from memory or its stored file.

    Raises:
        ImageReadError: no pixels and no readable stored file (``genart.imaging.pixels_of``).
    """
    return to_array(pixels_of(kf.image, kf.path, "key frame", kf.id))


class ClassicGenerator:
    """Reframe + grade. ``generate`` has the same signature as the diffusion generator."""

    def __init__(self, preset_name: str = "classic", settings: "FinishSpec | None" = None,
                 watermark: bool | None = None, finishing: str | None = None) -> None:
        """
        Args:
            settings: delivery sizes, safe zones and limits; default: the preset's ``finish`` in models.yaml.
            watermark: embed the imperceptible watermark; default: the preset's (off for classic captures).
            finishing: the preset's ``delivery.finishing`` (default: read from models.yaml). ``tensor``
                finishes through the tensor path (``genart.generate.tensor_finish``) on the best device;
                ``auto`` and ``cpu`` keep the CPU path, which measured faster on the CPU
                (``benchmarks/batch.py``) and needs no torch.
        """
        self.preset_name = preset_name
        if settings is None or watermark is None or finishing is None:
            from genart.config import load_models_config

            preset = load_models_config().preset(preset_name)
            settings = settings or preset.finish
            watermark = preset.watermarks if watermark is None else watermark
            finishing = finishing or preset.delivery.finishing
        self.settings = settings
        self.watermark = settings.watermark_payload if watermark else None
        self.finishing = finishing
        self._device: object = None

    def _finish_device(self) -> object:
        """Where the tensor finishing runs (``finishing: tensor``), else None (the CPU path)."""
        if self.finishing != "tensor":
            return None
        if self._device is None:
            from genart.models.device import pick_device

            self._device = pick_device()
        return self._device

    def generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, variants_per_frame: int, *,
                 seed: int = 0, title: str = "", genre: str = "", progress: ProgressFn | None = None,
                 title_overlay: bool | None = None, titles: Mapping[str, str] | None = None) -> list[Variant]:
        """Reframed, graded (and titled) variants of each key frame.

        Args:
            title_overlay: lay the title's text on the artwork; default: when a title is given.
            titles: title text per locale (``{"ja-JP": "..."}``) for profiles whose locale has its own.
        """
        from PIL import Image

        text = overlay_title(profile, title, titles, title_overlay)

        out: list[Variant] = []
        total = len(keyframes) * variants_per_frame
        for kf in keyframes:
            rgb = keyframe_rgb(kf)
            h, w = rgb.shape[:2]
            faces, regions = faces_in(kf, w, h), regions_in(kf, w, h)
            for i in range(variants_per_frame):
                aspect = profile.aspects[i % len(profile.aspects)]
                round_ = i // len(profile.aspects)
                vseed = variant_seed(seed, kf.id, profile.id, i)
                rng = random.Random(vseed)
                amount = GRADE_LADDER[round_ % len(GRADE_LADDER)]
                zoom = 1.0 if round_ == 0 else 1.0 + rng.uniform(0.05, 0.2)
                shift = (0.0, 0.0) if round_ == 0 else (rng.uniform(-1, 1), rng.uniform(-1, 1))
                done = finish_variant(rgb, faces, regions, aspect, profile, amount, self.settings,
                                      title=text, zoom=zoom, shift=shift, watermark=self.watermark,
                                      device=self._finish_device())
                framing, size, pixels = done.framing, done.size, done.pixels
                params = GenerationParams(
                    preset=self.preset_name,
                    method="classic",
                    profile_id=profile.id,
                    profile_version=profile.version,
                    keyframe_id=kf.id,
                    seed=vseed,
                    width=size[0],
                    height=size[1],
                    aspect=aspect,
                    grade=profile.grade.name,
                    grade_amount=amount,
                    crop=framing.crop,
                    reframe=done.reframe,
                    title=done.title.text if done.title else None,
                    title_font=done.title.font.rsplit("/", 1)[-1] if done.title else None,
                    **finish_facts(done),
                )
                out.append(Variant(
                    id=stable_id(kf.id, profile.id, profile.version, params.as_dict()),
                    profile_id=profile.id,
                    keyframe=kf,
                    params=params,
                    digital_source_type=digital_source_type(generative=False, titled=done.title is not None),
                    image=Image.fromarray(pixels),
                ))
                report(progress, "generate", len(out), total)
        return out
