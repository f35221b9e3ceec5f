"""Benchmark: genart's DiffusionGenerator against a naive per-variant diffusers loop.

Both make the same variants (same frames, seeds, strengths, steps, prompt):

- genart: prompt encoded once, each key frame VAE-encoded once, variants of all frames batched;
- naive: one stock ``pipe(prompt=..., image=<PIL frame>, generator=...)`` call per variant, which
  re-encodes the prompt and the frame every time.

The outputs are compared pixel by pixel. The stock pipeline samples the VAE posterior where genart
takes its mean; with random weights (tiny, or ``--arch sd-turbo`` without the real weights) the
posterior's log-variance channels are set to the clamp minimum on the shared VAE so the two must agree
(genart, which reads only the mean, is unaffected); with real weights nothing is changed and the
difference is reported as it is.

    python benchmarks/generate.py                       # tiny preset on the CPU
    python benchmarks/generate.py --arch sd-turbo --device cuda --json
    python benchmarks/generate.py --frames 8 --variants 4 --json

With ``--json`` the last line printed is one JSON object with ``ratio`` (genart / naive images per
second), both speeds, ``max_abs_diff``, the device, each path's time shares per stage (text,
vae_encode, unet, vae_decode, other) and a FLOP count (with, on CUDA, the fraction of the GPU's peak).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any, Callable

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from PIL import Image  # noqa: E402

from genart.config import PresetSpec, load_models_config  # noqa: E402
from genart.types import Grade, KeyFrame, ScoreSet, TasteProfile, VisualTargets  # noqa: E402

# --- the full-size sd-turbo architecture (SD 2.1 base at 512 px), as data -----------------------
SD_TURBO_UNET = {
    "sample_size": 64,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [320, 640, 1280, 1280],
    "layers_per_block": 2,
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
    "attention_head_dim": [5, 10, 20, 20],
    "cross_attention_dim": 1024,
    "use_linear_projection": True,
    "upcast_attention": False,
    "norm_num_groups": 32,
    "norm_eps": 1e-5,
    "act_fn": "silu",
    "flip_sin_to_cos": True,
    "freq_shift": 0,
    "downsample_padding": 1,
    "mid_block_scale_factor": 1,
}
SD_TURBO_TEXT = {  # OpenCLIP ViT-H/14 text tower, penultimate layer kept (23 of 24 layers)
    "vocab_size": 49408,
    "hidden_size": 1024,
    "intermediate_size": 4096,
    "num_hidden_layers": 23,
    "num_attention_heads": 16,
    "max_position_embeddings": 77,
    "hidden_act": "gelu",
    "projection_dim": 512,
    "layer_norm_eps": 1e-5,
    "bos_token_id": 0,
    "eos_token_id": 2,
    "pad_token_id": 1,
}
SD_VAE = {
    "sample_size": 768,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [128, 256, 512, 512],
    "layers_per_block": 2,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "norm_num_groups": 32,
    "act_fn": "silu",
    "scaling_factor": 0.18215,
}
# dense bf16 tensor-core peaks from the vendors' data sheets, TFLOP/s
PEAK_BF16_TFLOPS = {"H100 SXM": 989.4, "H100 NVL": 835.0, "H100 PCIe": 756.0, "H100": 989.4, "H200": 989.4,
                    "A100": 312.0, "L40S": 362.0, "A10G": 70.0, "L4": 121.0, "RTX 4090": 165.2}


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


# --- inputs ------------------------------------------------------------------------------------
def frames(n: int) -> list[KeyFrame]:
    """Real photos from ../shared/media/images when present, else synthetic 16:9 frames."""
    media = Path(__file__).resolve().parents[2] / "shared" / "media" / "images"
    files = sorted(p for p in media.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg")) if media.is_dir() else []
    out = []
    for i in range(n):
        if files:
            with Image.open(files[i % len(files)]) as im:
                img = im.convert("RGB")
            src = files[i % len(files)].name
        else:
            rng = np.random.default_rng(i)
            yy, xx = np.mgrid[0:360, 0:640]
            base = np.stack([xx / 640, yy / 360, (xx + yy) / 1000], -1) * 255
            img = Image.fromarray(np.clip(base + rng.normal(0, 25, base.shape), 0, 255).astype(np.uint8))
            src = "synthetic"
        out.append(KeyFrame(id=f"bench-{i}", source=src, t_s=float(i), frame_index=i, shot=i, width=img.width,
                            height=img.height, image=img))
    return out


def profile() -> TasteProfile:
    return TasteProfile(
        id="bench", name="Bench", description="", version="bench-v1",
        prompt="a cinematic {genre} poster for {title}, dramatic light, rich colour",
        negative_prompt="blurry, text, watermark", anchors_positive=(), anchors_negative=(), strengths=(),
        steps=None, guidance=None, targets=VisualTargets(), grade=Grade(), aspects=("16:9",), locale="en",
        weights=ScoreSet(),
    )


# --- models ------------------------------------------------------------------------------------
def sd_turbo_model(spec: PresetSpec, device: str | None) -> tuple[Any, bool]:
    """The real sd-turbo when its weights are here, else the same architecture with random weights."""
    import torch

    from genart.models import DiffusionModel, check_preset, load_diffusion, set_scheduler
    from genart.models.device import optimise_pipeline, pick_device, pick_dtype

    if check_preset(spec).items[0].present:
        log("sd-turbo weights found: loading them")
        return load_diffusion(spec, device=device), False
    from diffusers import (
        AutoencoderKL,
        EulerAncestralDiscreteScheduler,
        StableDiffusionImg2ImgPipeline,
        UNet2DConditionModel,
    )
    from transformers import CLIPTextConfig, CLIPTextModel

    from genart.models.tiny import SCHEDULER_CONFIG, clip_tokenizer

    dev = pick_device(device)
    dtype = pick_dtype(spec.generator.dtype, dev)
    log(f"sd-turbo weights absent: building the full architecture with random weights on {dev} ({dtype})")
    torch.manual_seed(0)
    with torch.device(dev):
        unet = UNet2DConditionModel(**SD_TURBO_UNET)
        vae = AutoencoderKL(**SD_VAE)
        text = CLIPTextModel(CLIPTextConfig(**SD_TURBO_TEXT))
    pipe = StableDiffusionImg2ImgPipeline(vae=vae, text_encoder=text, tokenizer=clip_tokenizer(), unet=unet,
                                          scheduler=EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG),
                                          safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(dev, dtype)
    pipe.set_progress_bar_config(disable=True)
    scheduler = set_scheduler(pipe, spec.generator.scheduler)
    optimise_pipeline(pipe, dev)
    params = {n: sum(p.numel() for p in m.parameters()) for n, m in (("unet", unet), ("vae", vae), ("text_encoder", text))}
    log(f"parameters: {params}")
    return DiffusionModel(pipe=pipe, model_id="stabilityai/sd-turbo (architecture, random weights)", revision=None,
                          local_path=None, random_weights=True, scheduler=scheduler, device=dev, dtype=dtype), True


def zero_posterior_variance(vae: Any) -> None:
    """Set the posterior's log-variance channels to the clamp minimum (std ~ 3e-7): sample == mean."""
    import torch

    conv = vae.quant_conv if getattr(vae.config, "use_quant_conv", True) and vae.quant_conv is not None else vae.encoder.conv_out
    c = vae.config.latent_channels
    with torch.no_grad():
        conv.weight[c:].zero_()
        conv.bias[c:].fill_(-30.0)


# --- measuring ---------------------------------------------------------------------------------
def sync(dev: Any) -> None:
    import torch

    if getattr(dev, "type", str(dev)) == "cuda":
        torch.cuda.synchronize()


class StageTimer:
    """Forward hooks on the text encoder(s), VAE encoder, UNet and VAE decoder: time per stage."""

    STAGES = {"text": ("text_encoder", "text_encoder_2"), "vae_encode": ("vae.encoder",), "unet": ("unet",),
              "vae_decode": ("vae.decoder",)}

    def __init__(self, pipe: Any, dev: Any) -> None:
        self.pipe, self.dev = pipe, dev
        self.totals = {k: 0.0 for k in self.STAGES}
        self.handles: list[Any] = []

    def _module(self, dotted: str) -> Any:
        obj = self.pipe
        for part in dotted.split("."):
            obj = getattr(obj, part, None)
            if obj is None:
                return None
        return obj

    def __enter__(self) -> "StageTimer":
        for stage, names in self.STAGES.items():
            for name in names:
                mod = self._module(name)
                if mod is None:
                    continue
                start: dict[str, float] = {}

                def pre(_m: Any, _i: Any, start: dict = start) -> None:
                    sync(self.dev)
                    start["t"] = time.perf_counter()

                def post(_m: Any, _i: Any, _o: Any, start: dict = start, stage: str = stage) -> None:
                    sync(self.dev)
                    self.totals[stage] += time.perf_counter() - start["t"]

                self.handles.append(mod.register_forward_pre_hook(pre))
                self.handles.append(mod.register_forward_hook(post))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self.handles:
            h.remove()

    def shares(self, wall: float) -> dict[str, float]:
        out = {k: round(v / wall, 4) for k, v in self.totals.items()}
        out["other"] = round(max(0.0, 1.0 - sum(self.totals.values()) / wall), 4)
        return out


def timed_pair(a: Callable[[], Any], b: Callable[[], Any], dev: Any, repeats: int) -> tuple[float, Any, float, Any]:
    """Best-of-``repeats`` wall time of each, the two runs interleaved so a busy machine slows both alike."""
    ta, tb, ra, rb = [], [], None, None
    for _ in range(repeats):
        for fn, times in ((a, ta), (b, tb)):
            sync(dev)
            t = time.perf_counter()
            out = fn()
            sync(dev)
            times.append(time.perf_counter() - t)
            if fn is a:
                ra = out
            else:
                rb = out
    return min(ta), ra, min(tb), rb


def peak_tflops(dev: Any) -> tuple[float | None, str | None]:
    import torch

    if getattr(dev, "type", "") != "cuda":
        return None, None
    name = torch.cuda.get_device_name(dev)
    for key in sorted(PEAK_BF16_TFLOPS, key=len, reverse=True):
        if key in name:
            return PEAK_BF16_TFLOPS[key], name
    return None, name


# --- the benchmark -----------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny", help="models.yaml preset (default tiny)")
    ap.add_argument("--arch", choices=["sd-turbo"], default=None,
                    help="full-size sd-turbo architecture (real weights if cached, else random); uses the turbo preset")
    ap.add_argument("--frames", type=int, default=4)
    ap.add_argument("--variants", type=int, default=4)
    ap.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    ap.add_argument("--batch-size", type=int, default=None, help="override the preset's batch_size")
    ap.add_argument("--resolution", type=int, default=None, help="override the preset's resolution (long side, px)")
    ap.add_argument("--repeats", type=int, default=5, help="timed repeats per path, interleaved (best of)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)

    import torch

    from genart.generate.diffusion import DiffusionGenerator
    from genart.models import load_diffusion

    torch.set_grad_enabled(False)
    cfg = load_models_config()
    spec = cfg.preset("turbo" if args.arch == "sd-turbo" else args.preset)
    overrides = {k: v for k, v in (("batch_size", args.batch_size), ("resolution", args.resolution)) if v}
    if overrides:
        spec = spec.model_copy(update={"generator": spec.generator.model_copy(update=overrides)})
    if args.arch == "sd-turbo":
        model, random_weights = sd_turbo_model(spec, args.device)
    else:
        model = load_diffusion(spec, device=args.device)
        random_weights = model.random_weights
    dev, pipe = model.device, model.pipe
    if random_weights:
        zero_posterior_variance(pipe.vae)
    gen = DiffusionGenerator(model, spec, finish=False)  # the img2img core, as the naive loop makes it
    kfs, prof = frames(args.frames), profile()

    def run_genart() -> list[Any]:
        model.text_cache.clear()  # pay for the prompt once per run, as a fresh run would
        return gen.generate(kfs, prof, args.variants, seed=args.seed)

    plan = gen.generate(kfs[:1], prof, 1, seed=args.seed)  # warm-up (and a first compile of kernels)

    def run_naive() -> list[Image.Image]:
        out = []
        for kf in kfs:
            image = gen.prepare_frame(kf)
            for v in variants_plan[kf.id]:
                p = v.params
                kw: dict[str, Any] = {}
                if p.guidance and p.guidance > 1:
                    kw["negative_prompt"] = p.negative_prompt
                out.append(pipe(prompt=p.prompt, image=image, strength=p.strength, num_inference_steps=p.steps,
                                guidance_scale=p.guidance, generator=torch.Generator("cpu").manual_seed(p.seed),
                                output_type="pil", **kw).images[0])
        return out

    ours = run_genart()
    variants_plan: dict[str, list[Any]] = {}
    for v in ours:
        variants_plan.setdefault(v.keyframe.id, []).append(v)
    del plan
    log("warm-up done for genart; naive warm-up")
    run_naive()  # warm-up

    n = len(ours)
    log(f"timing {n} images x {args.repeats} repeats per path")
    t_genart, ours, t_naive, naive = timed_pair(run_genart, run_naive, dev, args.repeats)
    log(f"genart {t_genart:.3f}s, naive {t_naive:.3f}s; stage shares and FLOPs next")
    diffs = [np.abs(np.asarray(a.image, np.int16) - np.asarray(b, np.int16)) for a, b in zip(ours, naive, strict=True)]
    max_abs = int(max(d.max() for d in diffs))
    mean_abs = float(np.mean([d.mean() for d in diffs]))

    shares = {}
    for name, fn in (("genart", run_genart), ("naive", run_naive)):
        with StageTimer(pipe, dev) as st:
            sync(dev)
            t = time.perf_counter()
            fn()
            sync(dev)
            wall = time.perf_counter() - t
        shares[name] = st.shares(wall)

    from torch.utils.flop_counter import FlopCounterMode

    flops = {}
    for name, fn in (("genart", run_genart), ("naive", run_naive)):
        counter = FlopCounterMode(display=False)
        with counter:
            fn()
        flops[name] = counter.get_total_flops()
    peak, gpu_name = peak_tflops(dev)
    achieved = flops["genart"] / t_genart / 1e12
    result = {
        "ratio": round((n / t_genart) / (n / t_naive), 3),
        "genart_images_per_s": round(n / t_genart, 3),
        "naive_images_per_s": round(n / t_naive, 3),
        "max_abs_diff": max_abs,
        "mean_abs_diff": round(mean_abs, 4),
        "device": str(dev) + (f" ({gpu_name})" if gpu_name else ""),
        "dtype": str(model.dtype).replace("torch.", ""),
        "model": model.model_id,
        "preset": spec.name,
        "random_weights": bool(random_weights),
        "posterior_std_zeroed": bool(random_weights),
        "frames": len(kfs),
        "variants_per_frame": args.variants,
        "images": n,
        "size": list(ours[0].image.size),
        "steps": sorted({v.params.steps for v in ours}),
        "strengths": sorted({v.params.strength for v in ours}),
        "batch_size": spec.generator.batch_size,
        "genart_s": round(t_genart, 4),
        "naive_s": round(t_naive, 4),
        "stage_share": shares,
        "gflop_per_image": {k: round(v / n / 1e9, 3) for k, v in flops.items()},
        "genart_achieved_tflops": round(achieved, 3),
        "peak_bf16_tflops": peak,
        "fraction_of_peak": round(achieved / peak, 4) if peak else None,
        "torch_threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>24}: {v}")
    return result


if __name__ == "__main__":
    main()
