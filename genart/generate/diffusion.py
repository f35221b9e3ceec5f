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

Then each image is finished (``genart.generate.finish``): reframed to the profile's aspect ratios at
the preset's delivery sizes around the key frame's faces (outpainted with the preset's inpainting model
where the crop leaves the frame, else another crop or a narrow seamless fill), graded with the profile's
look, titled clear of the faces, the subject and burned-in text, and watermarked imperceptibly.
A preset naming a ControlNet runs img2img guided by the frame's canny edges (computed once per frame).

``prepare`` (per frame), ``plan_job`` (per variant) and ``run_chunk`` (per pipeline call) are public:
the batch job (``genart.batch.gpu``) schedules the same calls across titles and profiles, so the two
entry points cannot drift apart (a ControlNet preset once crashed the batch job, which built its own
pipeline arguments and left out the control images).

torch is imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import math
import threading
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping, Sequence

from PIL import Image

from genart.errors import InvalidArgumentError
from genart.generate.seeds import variant_seed
from genart.progress import ProgressFn, report
from genart.provenance import digital_source_type
from genart.types import GenerationParams, KeyFrame, TasteProfile, Variant, stable_id
from genart.imaging import jpeg_bytes, pixels_of
from genart.generate.classic import overlay_title
from genart.workers import pmap
from genart.generate.reframe import render_framing
from genart.generate.delivery import finish_facts, finish_variant
from genart.generate.finish import faces_in, regions_in
from genart.generate import tensor_finish as tf

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


def _latent_stats(vae: Any, like: Any) -> "tuple[Any, Any] | None":
    """The VAE's per-channel latent mean and std as (1, C, 1, 1) tensors like ``like``, if its config has them."""
    import torch

    mean = getattr(vae.config, "latents_mean", None)
    std = getattr(vae.config, "latents_std", None)
    if mean is None or std is None:
        return None
    mean_t, std_t = (torch.tensor(v, device=like.device, dtype=like.dtype).view(1, -1, 1, 1) for v in (mean, std))
    return mean_t, std_t


@dataclass(frozen=True)
class VariantJob:
    """One variant to make: its frame, index, seed, strength, steps and size. Public so the batch job
    can plan jobs across titles and profiles and still make variants identical to ``generate``'s."""

    kf: KeyFrame
    index: int
    seed: int
    strength: float
    steps: int
    width: int
    height: int


@dataclass(frozen=True)
class PreparedFrame:
    """A key frame made ready for img2img once, whatever the number of its variants: its VAE latents
    (1, 4, h/8, w/8), its resized size and, for a ControlNet preset, its canny edges. ``generate`` and
    the batch job both make it with ``DiffusionGenerator.prepare`` and hand it to ``run_chunk``."""

    latents: Any
    size: tuple[int, int]
    control: Image.Image | None = None


class DiffusionGenerator:
    """Makes img2img variants with a loaded ``DiffusionModel`` for a preset."""

    def __init__(self, model: "DiffusionModel", preset: PresetSpec, *, finish: bool = True,
                 inpaint: "DiffusionModel | None" = None) -> None:
        """
        Args:
            finish: reframe each image to the profile's aspect ratios, grade it and lay the title (the
                product); ``False`` returns the raw img2img output (what ``benchmarks/generate.py`` times
                against the stock pipeline).
            inpaint: the preset's inpainting model; default: loaded on first need when the preset names one.
        """
        if preset.generator is None:
            raise InvalidArgumentError("preset", preset.name, "a diffusion preset (with a 'generator' section)")
        self.model = model
        self.preset = preset
        self.spec = preset.generator
        self.finish = finish
        self._inpaint = inpaint
        self._inpaint_lock = threading.Lock()  # variants are finished on several threads: load it once

    # --- encoders ------------------------------------------------------------------------------
    def uses_cfg(self, guidance: float) -> bool:
        """Whether ``guidance`` means classifier-free guidance for this UNet (not for turbo/LCM-style ones)."""
        unet = getattr(self.model.pipe, "unet", None)
        return guidance > 1.0 and getattr(getattr(unet, "config", None), "time_cond_proj_dim", None) is None

    def encode_text(self, profile: TasteProfile, prompt: str, negative: str, guidance: float,
                    model: "DiffusionModel | None" = None) -> dict[str, Any]:
        """Prompt embeddings (batch 1) as pipeline keyword arguments; cached per profile version and prompt."""
        import torch

        model = model or self.model
        cfg = self.uses_cfg(guidance)
        key = (profile.version, prompt, negative if cfg else None, cfg)
        cache = model.text_cache
        hit = cache.get(key)
        if hit is not None:
            cache.move_to_end(key)
            return hit
        pipe = model.pipe
        with torch.inference_mode():
            out = pipe.encode_prompt(prompt=prompt, device=model.device, num_images_per_prompt=1,
                                     do_classifier_free_guidance=cfg, negative_prompt=(negative or None) if cfg else None)
        model.text_encode_count += 1
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
        return pixels_of(kf.image, kf.path, "key frame", kf.id).convert("RGB")  # within genart's pixel limit

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
        stats = _latent_stats(vae, latents)
        sf = vae.config.scaling_factor
        latents = (latents - stats[0]) * sf / stats[1] if stats else latents * sf
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
                 seed: int = 0, title: str = "", genre: str = "", progress: ProgressFn | None = None,
                 title_overlay: bool | None = None, titles: Mapping[str, str] | None = None) -> list[Variant]:
        """``variants_per_frame`` img2img variants of each key frame for ``profile``.

        Each is then (unless ``finish=False``) reframed to ``profile.aspects[i % len]`` around the
        subject (outpainted where the crop leaves the frame, with the preset's inpainting model, else
        another crop or a narrow seamless fill), graded with the profile's look, given the title treatment
        (or recorded as ``title_status="skipped"``) and the imperceptible watermark.

        Args:
            title_overlay: lay the title on the artwork; default: when a title is given.
            titles: title text per locale (``{"ja-JP": "..."}``); the profile's locale picks, else ``title``.

        Returns:
            Variants in key frame order, then variant index.

        Raises:
            InvalidArgumentError: ``variants_per_frame`` < 1.
            ImageReadError: a key frame without pixels or a readable stored file (``frame_image``).
        """
        if int(variants_per_frame) < 1:
            raise InvalidArgumentError("variants_per_frame", variants_per_frame, "an integer >= 1")
        if not keyframes:
            return []
        with self.model.lock:
            return self._generate(keyframes, profile, int(variants_per_frame), seed, title, genre, progress,
                                  title_overlay, titles)

    def _generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, n: int, seed: int, title: str,
                  genre: str, progress: ProgressFn | None, title_overlay: bool | None = None,
                  titles: Mapping[str, str] | None = None) -> list[Variant]:
        spec = self.spec
        prompt = profile.render_prompt(title, genre)
        negative = profile.negative_prompt or ""
        self.ladder(profile)  # a bad strength fails before anything is encoded
        guidance = self.guidance_for(profile)

        text = self.encode_text(profile, prompt, negative, guidance)

        frames: dict[str, PreparedFrame] = {}
        for kf in keyframes:
            if kf.id not in frames:
                frames[kf.id] = self.prepare(kf)

        jobs = [self.plan_job(kf, profile, i, seed, frames[kf.id].size) for kf in keyframes for i in range(n)]

        groups: dict[tuple[int, int, float, int], list[int]] = {}
        for j, job in enumerate(jobs):
            groups.setdefault((job.width, job.height, job.strength, job.steps), []).append(j)

        title_text = overlay_title(profile, title, titles, title_overlay)
        tensor = self.tensor_finishing  # finished on the device, chunk by chunk, as the batch job does
        images: list[Image.Image | None] = [None] * len(jobs)
        made: list[Variant | None] = [None] * len(jobs)
        done, total = 0, len(jobs)
        report(progress, "generate", 0, total)
        bs = spec.batch_size
        for (_, _, strength, steps), idx in groups.items():
            for start in range(0, len(idx), bs):
                chunk = idx[start : start + bs]
                outs = self.run_chunk([jobs[j] for j in chunk], [frames[jobs[j].kf.id] for j in chunk],
                                      [text] * len(chunk), strength, steps, guidance,
                                      output="levels" if tensor else "pil")
                if tensor:
                    rows = [(jobs[j], profile, prompt, negative, guidance, title_text) for j in chunk]
                    for j, v in zip(chunk, self.finish_levels(rows, outs), strict=True):
                        made[j] = v
                else:
                    for j, im in zip(chunk, outs, strict=True):
                        images[j] = im
                done += len(chunk)
                report(progress, "generate", done, total)

        for job, im, made_v in zip(jobs, images, made, strict=True):
            if im is None and made_v is None:  # pragma: no cover - every job is in exactly one group
                raise RuntimeError(f"no image made for variant {job.index} of key frame {job.kf.id}")
        if tensor:
            return [made_v for made_v in made if made_v is not None]  # all of them (checked above)

        return pmap(lambda pair: self.make_variant(pair[0], pair[1], profile, prompt, negative, guidance, title_text),
                    [(job, im) for job, im in zip(jobs, images, strict=True) if im is not None])

    def control_image(self, image: Image.Image) -> Image.Image:
        """Canny edges of the (resized) key frame: the structure a ControlNet keeps."""
        import cv2
        import numpy as np

        cn = self.spec.controlnet
        if cn is None:
            raise InvalidArgumentError("preset", self.preset.name, "a preset with a controlnet section")
        gray = cv2.cvtColor(np.asarray(image.convert("RGB")), cv2.COLOR_RGB2GRAY)
        edges = cv2.Canny(gray, cn.low_threshold, cn.high_threshold)
        return Image.fromarray(np.stack([edges] * 3, axis=-1))

    @property
    def guided(self) -> bool:
        """Whether the pipeline is a ControlNet one: each row then needs its frame's control image."""
        return self.spec.controlnet is not None and getattr(self.model.pipe, "controlnet", None) is not None

    def ladder(self, profile: TasteProfile) -> tuple[float, ...]:
        """The img2img strengths variant ``i`` cycles through (the profile's, else the preset's).

        Raises:
            InvalidArgumentError: a strength outside (0, 1].
        """
        ladder = tuple(float(s) for s in (tuple(profile.strengths) or tuple(self.spec.strengths)))
        for s in ladder:
            if not 0.0 < s <= 1.0:
                raise InvalidArgumentError("strength", s, "a number in (0, 1]")
        return ladder

    def guidance_for(self, profile: TasteProfile) -> float:
        """The guidance scale for ``profile`` (its own, else the preset's)."""
        return float(profile.guidance if profile.guidance is not None else self.spec.guidance)

    def plan_job(self, kf: KeyFrame, profile: TasteProfile, index: int, seed: int, size: tuple[int, int]) -> VariantJob:
        """The ``index``-th variant of ``kf`` for ``profile`` in a run seeded ``seed``, for a frame prepared
        at ``size``: its own seed, strength and steps. The one rule ``generate`` and the batch job share.

        Raises:
            InvalidArgumentError: a strength outside (0, 1].
        """
        ladder = self.ladder(profile)
        strength = ladder[index % len(ladder)]
        return VariantJob(kf, index, variant_seed(seed, kf.id, profile.id, index), strength,
                          steps_for(profile.steps or self.spec.steps, strength), *size)

    def prepare(self, kf: KeyFrame) -> PreparedFrame:
        """``kf`` resized, VAE-encoded and (for a ControlNet) turned to canny edges: done once per distinct
        frame by ``generate`` and by the batch job, whatever the number of its variants.

        Raises:
            InvalidArgumentError: a key frame without an image or a path.
        """
        img = self.prepare_frame(kf)
        return PreparedFrame(self.encode_frame(img), img.size, self.control_image(img) if self.guided else None)

    def chunk_inputs(self, frames: Sequence[PreparedFrame], texts: Sequence[Mapping[str, Any]]
                     ) -> tuple[Any, dict[str, Any]]:
        """What one chunk's pipeline call gets, row by row: the frames' latents as one (B, 4, h/8, w/8)
        batch, and the keyword arguments: each row's prompt embeddings (rows may belong to different
        profiles and titles) and, for a ControlNet, each row's control image and the conditioning scale.
        The one place ``generate`` and the batch job build them, so the two cannot drift apart.
        """
        import torch

        batch = torch.cat([f.latents for f in frames], dim=0)
        kwargs: dict[str, Any] = {name: torch.cat([t[name] for t in texts], dim=0) for name in texts[0]}
        cn = self.spec.controlnet
        if cn is not None and self.guided:
            missing = [i for i, f in enumerate(frames) if f.control is None]
            if missing:  # pragma: no cover - ``prepare`` makes a control image whenever ``guided``
                raise RuntimeError(f"rows {missing} of a ControlNet chunk have no control image")
            kwargs["control_image"] = [f.control for f in frames]
            kwargs["controlnet_conditioning_scale"] = float(cn.conditioning_scale)
        return batch, kwargs

    def run_chunk(self, jobs: Sequence[VariantJob], frames: Sequence[PreparedFrame],
                  texts: Sequence[Mapping[str, Any]], strength: float, steps: int, guidance: float,
                  output: str = "pil") -> Any:
        """One pipeline call for a chunk of variants sharing (size, strength, steps, guidance): row ``i`` is
        ``jobs[i]`` (its seed), made from ``frames[i]`` with the prompt embeddings ``texts[i]``.

        Args:
            output: ``pil`` (PIL images), ``latent`` (the denoised latents on the device, for the batch
                job to decode on another thread; only where ``own_decode``) or ``levels`` (decoded to
                device levels, ``decode_levels``).
        """
        if output not in ("pil", "latent", "levels"):
            raise InvalidArgumentError("output", output, "pil, latent or levels")
        batch, kwargs = self.chunk_inputs(frames, texts)
        seeds = [job.seed for job in jobs]
        if output == "pil":
            return self.img2img(batch, seeds, strength, steps, guidance, **kwargs)
        latents = self.denoise(batch, seeds, strength, steps, guidance, **kwargs)
        return latents if output == "latent" else self.decode_levels(latents)

    @property
    def own_decode(self) -> bool:
        """Whether genart decodes the latents itself (not SDXL's pipeline with its optional watermark,
        which runs inside the pipeline's own decoding)."""
        return getattr(self.model.pipe, "watermark", None) is None

    @property
    def tensor_finishing(self) -> bool:
        """Whether images are finished as tensors on the model's device (``genart.generate.tensor_finish``):
        the preset's ``delivery.finishing``, ``auto`` meaning on a CUDA device."""
        if not (self.finish and self.own_decode):
            return False
        mode = self.preset.delivery.finishing
        return mode == "tensor" or (mode == "auto" and getattr(self.model.device, "type", "") == "cuda")

    def img2img(self, latents: Any, seeds: Sequence[int], strength: float, steps: int, guidance: float,
                **kwargs: Any) -> list[Image.Image]:
        """One pipeline call: ready frame latents (B, 4, h/8, w/8), one seed per row, and the pipeline's
        other arguments (per-row prompt embeddings, control images). Used by ``generate`` and the batch job.
        """
        if self.own_decode:
            return self.decode_latents(self.denoise(latents, seeds, strength, steps, guidance, **kwargs))
        import torch

        gens = self.generators(seeds, tuple(latents.shape))
        with torch.inference_mode():
            out = self.model.pipe(image=latents, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                                  generator=gens, output_type="pil", **kwargs)
        return list(out.images)

    def denoise(self, latents: Any, seeds: Sequence[int], strength: float, steps: int, guidance: float,
                **kwargs: Any) -> Any:
        """``img2img`` without the decoding: the denoised latents, on the device (the batch job decodes
        them on another thread while the UNet denoises the next chunk). Only where ``own_decode``."""
        import torch

        gens = self.generators(seeds, tuple(latents.shape))
        with torch.inference_mode():
            out = self.model.pipe(image=latents, strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                                  generator=gens, output_type="latent", **kwargs)
        return out.images

    def decode_latents(self, latents: Any) -> list[Image.Image]:
        """Denoised latents to PIL images, as the pipeline's own ``output_type="pil"`` makes them, but with
        the 8-bit conversion on the device: a quarter of the bytes cross to the host, and the host does
        no float work (the same float32 ops, so the same pixels).
        """
        return self.levels_to_images(self.decode_levels(latents))

    @staticmethod
    def levels_to_images(x: Any) -> list[Image.Image]:
        """A batch of device levels (``decode_levels``) as PIL images on the host, as uint8: a quarter
        of the bytes of float32 cross over, and the host does no float work."""
        import numpy as np
        import torch

        return [Image.fromarray(a) for a in np.asarray(x.to(torch.uint8).permute(0, 2, 3, 1).cpu())]

    def decode_levels(self, latents: Any) -> Any:
        """Denoised latents to a (B, 3, H, W) float32 batch of rounded 8-bit levels on the device: the
        pixels ``decode_latents`` makes, before they leave the device (what the tensor finishing takes)."""
        import torch

        pipe = self.model.pipe
        vae = pipe.vae
        upcast = vae.dtype == torch.float16 and bool(getattr(vae.config, "force_upcast", False)) \
            and hasattr(pipe, "upcast_vae")  # SDXL pipelines decode in float32 there; SD ones do not
        if upcast:
            vae.to(dtype=torch.float32)
        try:
            latents = latents.to(vae.dtype)
            stats = _latent_stats(vae, latents)
            sf = vae.config.scaling_factor
            latents = latents * stats[1] / sf + stats[0] if stats else latents / sf
            with torch.inference_mode():
                x = vae.decode(latents, return_dict=False)[0]
                x = pipe.image_processor.postprocess(x, output_type="pt")  # denormalised to [0, 1], its dtype
                x = (x.float() * 255).round()
        finally:
            if upcast:
                vae.to(dtype=torch.float16)
        return x

    # --- finishing -----------------------------------------------------------------------------
    def inpaint_model(self) -> "DiffusionModel | None":
        """The preset's inpainting model (loaded once), or None when the preset names none."""
        with self._inpaint_lock:
            if self._inpaint is None and self.spec.inpaint is not None:
                from genart.models import load_inpaint

                self._inpaint = load_inpaint(self.preset, device=str(self.model.device))
        return self._inpaint

    def outpaint(self, rgb: Any, framing: Any, job: VariantJob, profile: TasteProfile, prompt: str, negative: str,
                 guidance: float) -> Any:
        """The crop window of ``rgb`` with the parts outside the frame painted by the inpainting model,
        and the (feathered) mask of what was painted.

        The window is rendered at the preset's resolution with the mirrored fill as the starting
        picture; the mask covers only what lies outside the frame (overlapping the seam by 2%), and
        ``finish`` keeps the frame's own pixels where the mask is clear: the subject is never repainted.
        """
        import cv2
        import numpy as np
        import torch

        model = self.inpaint_model()
        assert model is not None
        ispec = self.spec.inpaint
        assert ispec is not None  # inpaint_model() found a model: the preset has its inpaint section
        h, w = rgb.shape[:2]
        x, y, cw, ch = framing.crop
        cs = target_size(cw, ch, self.spec.resolution, self.size_multiple())
        init = render_framing(rgb, framing, cs)
        sx, sy = cs[0] / cw, cs[1] / ch
        fx0, fy0 = int(round((max(0, x) - x) * sx)), int(round((max(0, y) - y) * sy))
        fx1, fy1 = int(round((min(w, x + cw) - x) * sx)), int(round((min(h, y + ch) - y) * sy))
        inset = max(1, int(0.02 * max(cs)))
        mask = np.full((cs[1], cs[0]), 255, np.uint8)
        mask[fy0 + (inset if y < 0 else 0):fy1 - (inset if y + ch > h else 0),
             fx0 + (inset if x < 0 else 0):fx1 - (inset if x + cw > w else 0)] = 0
        strength = float(ispec.strength)
        steps = steps_for(ispec.steps or profile.steps or self.spec.steps, strength)
        text = self.encode_text(profile, prompt, negative, guidance, model=model)
        with model.lock, torch.inference_mode():
            out = model.pipe(image=Image.fromarray(init), mask_image=Image.fromarray(mask), height=cs[1], width=cs[0],
                             strength=strength, num_inference_steps=steps, guidance_scale=guidance,
                             generator=torch.Generator("cpu").manual_seed(job.seed), output_type="np", **text)
        painted = (np.clip(out.images[0], 0, 1) * 255 + 0.5).astype(np.uint8)
        k = max(3, inset * 2 + 1)
        return painted, cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (k, k), 0)

    def _controlnet_ref(self) -> str | None:
        cn = self.spec.controlnet
        if cn is None or getattr(self.model.pipe, "controlnet", None) is None:
            return None
        if not hasattr(self, "_cn_ref"):
            from genart.models import controlnet_ref

            self._cn_ref = controlnet_ref(self.preset)
        return f"{self._cn_ref} {cn.kind} scale={cn.conditioning_scale:g}"

    def make_variant(self, job: VariantJob, image: Image.Image, profile: TasteProfile, prompt: str, negative: str,
                 guidance: float, title: str = "") -> Variant:
        """The variant of one generated image: finished on the CPU (``finish_variant``: the preset's
        delivery size, safe zone, limits and watermark; the profile's grade and title style) unless
        ``finish=False``."""
        done = None
        size = image.size
        if self.finish:
            import numpy as np

            rgb = np.asarray(image.convert("RGB"))
            rh, rw = rgb.shape[:2]
            aspect = profile.aspects[job.index % len(profile.aspects)]
            done = finish_variant(rgb, faces_in(job.kf, rw, rh), regions_in(job.kf, rw, rh), aspect, profile, 1.0,
                                  self.preset.finish, title=title,
                                  outpaint=self._outpainter(job, profile, prompt, negative, guidance),
                                  watermark=self.watermark)
            image = Image.fromarray(done.pixels)
        return self._variant(job, image, size, done, profile, prompt, negative, guidance)

    @property
    def watermark(self) -> str | None:
        """The imperceptible watermark's payload for this preset's variants, or None (``PresetSpec.watermarks``)."""
        return self.preset.finish.watermark_payload if self.preset.watermarks else None

    def _outpainter(self, job: VariantJob, profile: TasteProfile, prompt: str, negative: str, guidance: float) -> Any:
        if self.spec.inpaint is None:
            return None

        def outpaint(px: Any, framing: Any) -> Any:
            return self.outpaint(px, framing, job, profile, prompt, negative, guidance)

        return outpaint

    def finish_levels(self, rows: Sequence[tuple[VariantJob, TasteProfile, str, str, float, str]], x: Any,
                      pixels_out: list[Any] | None = None) -> list[Variant]:
        """The variants of a decoded batch (``decode_levels``: (N, 3, H, W) levels on the device), finished
        as tensors on the device (``genart.generate.tensor_finish``): the plans on the CPU, one batched
        crop + resize + grade + title, and (``delivery.format: jpeg``) the JPEGs encoded there too, so
        only finished pixels and encoded bytes cross to the host. Rows whose framing leaves the frame are
        finished by ``make_variant`` (the CPU's fills and outpainting, until issue #21's part B).

        Args:
            rows: per image: (job, profile, prompt, negative prompt, guidance, title text).
            pixels_out: filled with each finished image as a (3, h, w) uint8 tensor on the device (None
                for a row finished on the CPU), for scorers that take tensors (the batch job's CLIP).
        """

        n, _, h, w = x.shape
        settings = self.preset.finish
        limit = settings.max_outpaint if self.spec.inpaint is not None else settings.max_synthetic
        faces = [faces_in(job.kf, w, h) for job, *_ in rows]
        faceless = [i for i, f in enumerate(faces) if not f]
        thumbs = dict(zip(faceless, tf.saliency_thumbs(x[faceless]))) if faceless else {}
        plans = []
        for i, (job, profile, _, _, _, title) in enumerate(rows):
            aspect = profile.aspects[job.index % len(profile.aspects)]
            plans.append(tf.plan_row(w, h, faces[i], aspect, profile.grade, 1.0, size=settings.size(aspect),
                                     title=title, locale=profile.locale, style=profile.title_style,
                                     regions=regions_in(job.kf, w, h), safe=settings.safe_zone(aspect),
                                     max_upscale=settings.max_upscale, max_synthetic=limit,
                                     watermark=self.watermark, thumb=thumbs.get(i)))
        here = [i for i, p in enumerate(plans) if p.on_device]
        out: list[Variant | None] = [None] * n
        done: list[Any] = []
        if here:
            done = tf.finish_batch(x[here], [plans[i] for i in here])
            delivery = self.preset.delivery
            encoded = jpeg_bytes([r.pixels for r in done], delivery.quality) if delivery.format == "jpeg" else []
            for k, (i, r) in enumerate(zip(here, done)):
                job, profile, prompt, negative, guidance, _ = rows[i]
                fin = r.finished(plans[i])
                v = self._variant(job, Image.fromarray(fin.pixels), (w, h), fin, profile, prompt, negative, guidance)
                out[i] = replace(v, encoded=encoded[k]) if encoded else v
        if pixels_out is not None:
            device_px: dict[int, Any] = {i: r.pixels for i, r in zip(here, done)}
            pixels_out[:] = [device_px.get(i) for i in range(n)]
        rest = [i for i in range(n) if out[i] is None]
        if rest:
            for i, im in zip(rest, self.levels_to_images(x[rest])):
                job, profile, prompt, negative, guidance, title = rows[i]
                out[i] = self.make_variant(job, im, profile, prompt, negative, guidance, title)
        return out  # type: ignore[return-value]

    def _variant(self, job: VariantJob, image: Image.Image, size: tuple[int, int], done: Any, profile: TasteProfile,
                 prompt: str, negative: str, guidance: float) -> Variant:
        """The ``Variant`` of ``image`` (finished as ``done`` says; the raw ``size`` output without it)."""
        crop = None
        reframe = None
        layout = None
        aspect = aspect_label(*image.size)
        grade = "none"
        facts: dict[str, Any] = {}
        if done is not None:
            facts = finish_facts(done)
            rw, rh = size
            aspect = profile.aspects[job.index % len(profile.aspects)]
            # the crop in the key frame's own pixels (the diffusion output is the frame, resized)
            fx, fy = (job.kf.width / rw, job.kf.height / rh) if job.kf.width and job.kf.height else (1.0, 1.0)
            x, y, cw, ch = done.framing.crop
            crop = (int(round(x * fx)), int(round(y * fy)), int(round(cw * fx)), int(round(ch * fy)))
            reframe, layout, grade = done.reframe, done.title, profile.grade.name
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
            aspect=aspect,
            grade=grade,
            model_id=self.model.model_id,
            revision=self.model.revision,
            scheduler=self.model.scheduler,
            strength=job.strength,
            steps=job.steps,
            guidance=guidance,
            prompt=prompt,
            negative_prompt=negative,
            crop=crop,
            reframe=reframe if reframe != "outpaint" or self.spec.inpaint is None
            else f"outpaint:{self.spec.inpaint.model_id}"
            + (f"@{self._inpaint.revision}" if self._inpaint is not None and self._inpaint.revision else ""),
            title=layout.text if layout else None,
            title_font=Path(layout.font).name if layout else None,
            controlnet=self._controlnet_ref(),
            **facts,
        )
        return Variant(
            id=stable_id(job.kf.id, profile.id, profile.version, params.as_dict()),
            profile_id=profile.id,
            keyframe=job.kf,
            params=params,
            digital_source_type=digital_source_type(generative=True, titled=layout is not None),
            image=image,
        )
