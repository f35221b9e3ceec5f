"""The ``classic`` generator: no downloaded weights, runs anywhere.

A variant is the key frame reframed to one of the profile's aspect ratios around its subject and
graded with the profile's look. Variety across a frame's variants comes from the aspect ratio, the
grade's strength and a small seeded zoom and shift, so N variants of a frame are N different
thumbnails a person could accept, not copies.
"""

from __future__ import annotations

import random
from typing import Sequence

from typing import Mapping

from genart.generate.finish import faces_in, finish
from genart.generate.seeds import variant_seed
from genart.imaging import to_array
from genart.progress import ProgressFn, report
from genart.provenance import digital_source_type
from genart.types import GenerationParams, KeyFrame, TasteProfile, Variant, stable_id

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


def keyframe_rgb(kf: KeyFrame):
    """The key frame's pixels as an RGB array, from memory or its stored file."""
    if kf.image is not None:
        return to_array(kf.image)
    if kf.path is not None:
        from PIL import Image

        with Image.open(kf.path) as im:
            return to_array(im)
    raise ValueError(f"key frame {kf.id} has neither pixels nor a path")


class ClassicGenerator:
    """Reframe + grade. ``generate`` has the same signature as the diffusion generator."""

    def __init__(self, preset_name: str = "classic", finishing: str = "auto") -> None:
        """
        Args:
            finishing: a preset's ``delivery.finishing``. ``tensor`` finishes through the tensor path
                (``genart.generate.tensor_finish``) on the best device; ``auto`` and ``cpu`` keep the
                CPU path, which measured faster on the CPU (``benchmarks/batch.py``: 59 vs 69 ms an image
                on one core) and needs no torch.
        """
        self.preset_name = preset_name
        self.finishing = finishing
        self._device = None

    def _finish(self, *args, **kwargs):
        if self.finishing != "tensor":
            return finish(*args, **kwargs)
        from genart.generate.tensor_finish import finish_image

        if self._device is None:
            from genart.models.device import pick_device

            self._device = pick_device()
        return finish_image(*args, device=self._device, **kwargs)

    def generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, variants_per_frame: int, *,
                 seed: int = 0, title: str = "", genre: str = "", progress: ProgressFn | None = None,
                 title_overlay: bool | None = None, titles: Mapping[str, str] | None = None) -> list[Variant]:
        """Reframed, graded (and titled) variants of each key frame.

        Args:
            title_overlay: lay the title's text on the artwork; default: when a title is given.
            titles: title text per locale (``{"ja-JP": "..."}``) for profiles whose locale has its own.
        """
        from PIL import Image

        text = title_for(profile, title, titles)
        overlay = bool(text.strip()) if title_overlay is None else bool(title_overlay and text.strip())

        out: list[Variant] = []
        total = len(keyframes) * variants_per_frame
        for kf in keyframes:
            rgb = keyframe_rgb(kf)
            h, w = rgb.shape[:2]
            faces = faces_in(kf, w, h)
            for i in range(variants_per_frame):
                aspect = profile.aspects[i % len(profile.aspects)]
                round_ = i // len(profile.aspects)
                vseed = variant_seed(seed, kf.id, profile.id, i)
                rng = random.Random(vseed)
                amount = GRADE_LADDER[round_ % len(GRADE_LADDER)]
                zoom = 1.0 if round_ == 0 else 1.0 + rng.uniform(0.05, 0.2)
                shift = (0.0, 0.0) if round_ == 0 else (rng.uniform(-1, 1), rng.uniform(-1, 1))
                done = self._finish(rgb, faces, aspect, profile.grade, amount, title=text if overlay else "",
                                    locale=profile.locale, zoom=zoom, shift=shift)
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
