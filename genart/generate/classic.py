"""The ``classic`` generator: no downloaded weights, runs anywhere.

A variant is the key frame reframed to one of the profile's aspect ratios around its subject and
graded with the profile's look. Variety across a frame's variants comes from the aspect ratio, the
grade's strength and a small seeded zoom and shift, so N variants of a frame are N different
thumbnails a person could accept, not copies.
"""

from __future__ import annotations

import random
from typing import Sequence

from genart.generate.grade import apply_grade
from genart.generate.reframe import output_size, plan_framing, render_framing, subject_box
from genart.generate.seeds import variant_seed
from genart.imaging import to_array
from genart.progress import ProgressFn, report
from genart.types import GenerationParams, KeyFrame, TasteProfile, Variant, stable_id

GRADE_LADDER = (1.0, 0.65, 1.3, 0.85, 1.15)
DIGITAL_SOURCE_TYPE = "algorithmicallyEnhanced"  # a capture, cropped and colour-graded by algorithm


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

    def __init__(self, preset_name: str = "classic") -> None:
        self.preset_name = preset_name

    def generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, variants_per_frame: int, *,
                 seed: int = 0, title: str = "", genre: str = "", progress: ProgressFn | None = None) -> list[Variant]:
        from PIL import Image

        out: list[Variant] = []
        total = len(keyframes) * variants_per_frame
        for kf in keyframes:
            rgb = keyframe_rgb(kf)
            h, w = rgb.shape[:2]
            faces = [f.scaled(w / kf.width, h / kf.height) for f in kf.faces] if kf.width else list(kf.faces)
            subject = subject_box(w, h, faces, rgb)
            for i in range(variants_per_frame):
                aspect = profile.aspects[i % len(profile.aspects)]
                round_ = i // len(profile.aspects)
                vseed = variant_seed(seed, kf.id, profile.id, i)
                rng = random.Random(vseed)
                amount = GRADE_LADDER[round_ % len(GRADE_LADDER)]
                zoom = 1.0 if round_ == 0 else 1.0 + rng.uniform(0.05, 0.2)
                shift = (0.0, 0.0) if round_ == 0 else (rng.uniform(-1, 1), rng.uniform(-1, 1))
                framing = plan_framing(w, h, aspect, subject, zoom=zoom, shift=shift)
                size = output_size(aspect, framing.crop[2], framing.crop[3])
                pixels = apply_grade(render_framing(rgb, framing, size), profile.grade, amount)
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
                )
                out.append(Variant(
                    id=stable_id(kf.id, profile.id, profile.version, params.as_dict()),
                    profile_id=profile.id,
                    keyframe=kf,
                    params=params,
                    digital_source_type=DIGITAL_SOURCE_TYPE,
                    image=Image.fromarray(pixels),
                ))
                report(progress, "generate", len(out), total)
        return out
