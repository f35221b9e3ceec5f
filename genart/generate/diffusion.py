"""Diffusion img2img variants of key frames for one taste profile.

The work is arranged so nothing is computed twice:

- the prompt is encoded once per (profile version, prompt) and kept on the model across runs;
- each key frame is resized and VAE-encoded once (the posterior mean: deterministic), and its latents
  are handed to the pipeline as ``image=`` for all its variants (diffusers img2img pipelines take a
  4-channel tensor as ready latents: see ``prepare_latents``), instead of the PIL image that the
  pipeline would re-encode once per image of a batch;
- variants of all frames that share (size, strength) run as one batch, chunked by ``batch_size``,
  each with its own CPU generator, so a variant's noise depends on its seed alone, not on its batch.

Each variant's generator first draws one latent-shaped tensor, exactly as diffusers' own img2img does
when it samples the VAE posterior: the noise a seed gives is then the noise the stock pipeline gives
for that seed with the same frame (ours uses the posterior mean where the stock one samples).

torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

from PIL import Image

from genart.errors import InvalidArgumentError
from genart.generate.seeds import variant_seed
from genart.progress import ProgressFn, report
from genart.types import GenerationParams, KeyFrame, TasteProfile, Variant, stable_id

if TYPE_CHECKING:  # pragma: no cover
    from genart.config import PresetSpec
    from genart.models import DiffusionModel

DIGITAL_SOURCE_TYPE = "trainedAlgorithmicMedia"
_TEXT_CACHE_SIZE = 64


def target_size(width: int, height: int, long_side: int, multiple: int = 8) -> tuple[int, int]:
    """(w, h) with the long side ``long_side``, aspect kept, both sides multiples of ``multiple``."""
    if width <= 0 or height <= 0:
        raise InvalidArgumentError("image size", (width, height), "positive width and height")
    scale = long_side / max(width, height)
    w = max(multiple, int(math.floor(width * scale / multiple + 0.5)) * multiple)
    h = max(multiple, int(math.floor(height * scale / multiple + 0.5)) * multiple)
    return w, h


def aspect_label(width: int, height: int) -> str:
    """``w:h`` reduced, e.g. 512x288 -> ``16:9``."""
    g = math.gcd(width, height) or 1
    return f"{width // g}:{height // g}"


def steps_for(steps: int, strength: float) -> int:
    """The fewest steps >= ``steps`` for which img2img runs at least one step at ``strength``."""
    steps = max(1, int(steps))
    while int(steps * strength) < 1:
        steps += 1
    return steps


@dataclass(frozen=True)
class _Job:
    kf: KeyFrame
    index: int
    seed: int
    strength: float
    steps: int
    width: int
    height: int


class DiffusionGenerator:
    """Makes img2img variants with a loaded ``DiffusionModel`` for a preset."""

    def __init__(self, model: "DiffusionModel", preset: PresetSpec) -> None:
        if preset.generator is None:
            raise InvalidArgumentError("preset", preset.name, "a diffusion preset (with a 'generator' section)")
        self.model = model
        self.preset = preset
        self.spec = preset.generator

    # --- encoders ------------------------------------------------------------------------------
    def _do_cfg(self, guidance: float) -> bool:
        unet = getattr(self.model.pipe, "unet", None)
        return guidance > 1.0 and getattr(getattr(unet, "config", None), "time_cond_proj_dim", None) is None

    def encode_text(self, profile: TasteProfile, prompt: str, negative: str, guidance: float) -> dict[str, Any]:
        """Prompt embeddings (batch 1) as pipeline keyword arguments; cached per profile version and prompt."""
        import torch

        cfg = self._do_cfg(guidance)
        key = (profile.version, prompt, negative if cfg else None, cfg)
        cache = self.model.text_cache
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        pipe = self.model.pipe
        with torch.inference_mode():
            out = pipe.encode_prompt(prompt=prompt, device=self.model.device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=cfg, negative_prompt=(negative or None) if cfg else None)
        self.model.text_encode_count += 1
        kwargs: dict[str, Any] = {"prompt_embeds": out[0]}
        if cfg and out[1] is not None:
            kwargs["negative_prompt_embeds"] = out[1]
        if len(out) == 4:  # SDXL: pooled embeddings too
            kwargs["pooled_prompt_embeds"] = out[2]
            if cfg and out[3] is not None:
                kwargs["negative_pooled_prompt_embeds"] = out[3]
        cache[key] = kwargs
        while len(cache) > _TEXT_CACHE_SIZE:
            cache.popitem(last=False)
        return kwargs

    def frame_image(self, kf: KeyFrame) -> Image.Image:
        if kf.image is not None:
            return kf.image.convert("RGB")
        if kf.path is not None:
            with Image.open(Path(kf.path)) as im:
                return im.convert("RGB")
        raise InvalidArgumentError("keyframe", kf.id, "a key frame with an image or a path")

    def size_multiple(self) -> int:
        return max(8, int(getattr(self.model.pipe, "vae_scale_factor", 8) or 8))

    def prepare_frame(self, kf: KeyFrame) -> Image.Image:
        """The key frame resized so its long side is the preset's resolution (sides multiples of 8)."""
        img = self.frame_image(kf)
        w, h = target_size(img.width, img.height, self.spec.resolution, self.size_multiple())
        return img if img.size == (w, h) else img.resize((w, h), Image.Resampling.LANCZOS)

    def encode_frame(self, image: Image.Image) -> Any:
        """VAE latents (1, 4, h/8, w/8) of an image, scaled as the UNet expects. Deterministic."""
        import torch

        pipe = self.model.pipe
        vae = pipe.vae
        x = pipe.image_processor.preprocess(image)
        upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False))
        if upcast:  # SD/SDXL VAEs overflow in fp16; diffusers upcasts the same way
            vae.to(dtype=torch.float32)
        try:
            with torch.inference_mode():
                x = x.to(device=self.model.device, dtype=vae.dtype)
                latents = vae.encode(x).latent_dist.mean
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        mean = getattr(vae.config, "latents_mean", None)
        std = getattr(vae.config, "latents_std", None)
        sf = vae.config.scaling_factor
        if mean is not None and std is not None:
            m = torch.tensor(mean, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
            s = torch.tensor(std, device=latents.device, dtype=latents.dtype).view(1, -1, 1, 1)
            latents = (latents - m) * sf / s
        else:
            latents = latents * sf
        self.model.vae_encode_count += 1
        return latents

    def generators(self, seeds: Sequence[int], latent_shape: tuple[int, ...]) -> list[Any]:
        """One CPU generator per seed, advanced past diffusers' posterior draw (see the module doc).

        (A CPU generator advances by the same amount whatever dtype the stock pipeline draws in.)
        """
        import torch

        gens = []
        for s in seeds:
            g = torch.Generator("cpu").manual_seed(int(s))
            torch.randn((1, *latent_shape[1:]), generator=g)
            gens.append(g)
        return gens

    # --- the stage -----------------------------------------------------------------------------
    def generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, variants_per_frame: int, *,
                 seed: int = 0, title: str = "", genre: str = "", progress: ProgressFn | None = None) -> list[Variant]:
        """``variants_per_frame`` img2img variants of each key frame for ``profile``.

        Returns:
            Variants in key frame order, then variant index.

        Raises:
            InvalidArgumentError: ``variants_per_frame`` < 1, or a key frame without an image or path.
        """
        if int(variants_per_frame) < 1:
            raise InvalidArgumentError("variants_per_frame", variants_per_frame, "an integer >= 1")
        if not keyframes:
            return []
        with self.model.lock:
            return self._generate(keyframes, profile, int(variants_per_frame), seed, title, genre, progress)

    def _generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, n: int, seed: int, title: str,
                  genre: str, progress: ProgressFn | None) -> list[Variant]:
        spec = self.spec
        prompt = profile.render_prompt(title, genre)
        negative = profile.negative_prompt or ""
        ladder = tuple(profile.strengths) or tuple(spec.strengths)
        for s in ladder:
            if not 0.0 < float(s) <= 1.0:
                raise InvalidArgumentError("strength", s, "a number in (0, 1]")
        base_steps = profile.steps or spec.steps
        guidance = float(profile.guidance if profile.guidance is not None else spec.guidance)

        text = self.encode_text(profile, prompt, negative, guidance)

        # each distinct frame: resized and encoded once
        latents: dict[str, Any] = {}
        sizes: dict[str, tuple[int, int]] = {}
        for kf in keyframes:
            if kf.id not in latents:
                img = self.prepare_frame(kf)
                sizes[kf.id] = img.size
                latents[kf.id] = self.encode_frame(img)

        jobs: list[_Job] = []
        for kf in keyframes:
            w, h = sizes[kf.id]
            for i in range(n):
                strength = float(ladder[i % len(ladder)])
                jobs.append(_Job(kf, i, variant_seed(seed, kf.id, profile.id, i), strength,
                                 steps_for(base_steps, strength), w, h))

        groups: dict[tuple[int, int, float, int], list[int]] = {}
        for j, job in enumerate(jobs):
            groups.setdefault((job.width, job.height, job.strength, job.steps), []).append(j)

        images: list[Image.Image | None] = [None] * len(jobs)
        done, total = 0, len(jobs)
        report(progress, "generate", 0, total)
        bs = spec.batch_size
        for (_, _, strength, steps), idx in groups.items():
            for start in range(0, len(idx), bs):
                chunk = idx[start : start + bs]
                outs = self._run_batch([jobs[j] for j in chunk], latents, text, strength, steps, guidance)
                for j, im in zip(chunk, outs, strict=True):
                    images[j] = im
                done += len(chunk)
                report(progress, "generate", done, total)

        variants = []
        for job, im in zip(jobs, images, strict=True):
            assert im is not None
            variants.append(self._variant(job, im, profile, prompt, negative, guidance))
        return variants

    def _run_batch(self, jobs: Sequence[_Job], latents: dict[str, Any], text: dict[str, Any], strength: float,
                   steps: int, guidance: float) -> list[Image.Image]:
        import torch

        pipe = self.model.pipe
        batch = torch.cat([latents[job.kf.id] for job in jobs], dim=0)
        gens = self.generators([job.seed for job in jobs], tuple(batch.shape))
        b = len(jobs)
        kwargs = {}
        for name, t in text.items():
            kwargs[name] = t.repeat(b, *([1] * (t.dim() - 1)))
        with torch.inference_mode():
            out = pipe(image=batch, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                       generator=gens, output_type="pil", **kwargs)
        return list(out.images)

    def _variant(self, job: _Job, image: Image.Image, profile: TasteProfile, prompt: str, negative: str,
                 guidance: float) -> Variant:
        w, h = image.size
        params = GenerationParams(
            preset=self.preset.name,
            method="img2img",
            profile_id=profile.id,
            profile_version=profile.version,
            keyframe_id=job.kf.id,
            seed=job.seed,
            width=w,
            height=h,
            aspect=aspect_label(w, h),
            grade="none",
            model_id=self.model.model_id,
            revision=self.model.revision,
            scheduler=self.model.scheduler,
            strength=job.strength,
            steps=job.steps,
            guidance=guidance,
            prompt=prompt,
            negative_prompt=negative,
        )
        return Variant(
            id=stable_id(job.kf.id, profile.id, profile.version, params.as_dict()),
            profile_id=profile.id,
            keyframe=job.kf,
            params=params,
            digital_source_type=DIGITAL_SOURCE_TYPE,
            image=image,
        )
