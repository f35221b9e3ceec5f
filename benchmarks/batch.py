"""Benchmark: ``genart batch`` against a naive script, on the same small catalogue, in one run.

- batch: ``genart batch CATALOG --out DIR`` (the CLI command, in this process, so both paths share the
  loaded models): key frames once per title, every variant of every frame and profile in batches,
  prompts encoded once, each frame VAE-encoded once, ranking and the bandit hand-off per title;
- naive: per title the key frames once, then per profile, key frame and variant one
  ``pipeline.run`` call (``create_variants`` with ``variants_per_frame=1`` on that key frame), which
  is what a script around the single-run API does.

Both make the same number of images of the same size with the same steps.

    python benchmarks/batch.py                        # tiny preset on the CPU
    python benchmarks/batch.py --titles 4 --frames 4 --variants 4 --json
    python benchmarks/batch.py --resolution 512 --json  # tiny models, but images (and CPU work) at 512 px
    python benchmarks/batch.py --arch sd-turbo --json  # on a GPU: full-size sd-turbo at 512 px

``--arch sd-turbo`` uses the real sd-turbo (``turbo`` preset) when its weights are here; otherwise it
builds the full SD 2.1-base architecture with random weights (``benchmarks/generate.py``'s config),
saves it once as a local diffusers folder and runs a preset that points at it (ranked by the tiny
CLIP), so it walks the same loading code as a real preset. On CUDA it also prints the fraction of
the GPU's dense bf16 peak the batch job reached, from a FLOP count (``torch.utils.flop_counter``) of
the UNet and VAE per image and per frame. With ``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def log(*a: object) -> None:
    print(*a, file=sys.stderr, flush=True)


def _generate_bench() -> Any:
    spec = importlib.util.spec_from_file_location("genart_bench_generate", ROOT / "benchmarks" / "generate.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)  # type: ignore[union-attr]
    return mod


def make_titles(folder: Path, titles: int, frames: int) -> list[Path]:
    """``titles`` folders of ``frames`` stills each: real photos from ../shared/media/images, else synthetic."""
    gb = _generate_bench()
    kfs = gb.frames(titles * frames)
    out = []
    for t in range(titles):
        d = folder / f"title{t}"
        d.mkdir(parents=True, exist_ok=True)
        for i in range(frames):
            kfs[t * frames + i].image.save(d / f"{i:02d}.png")
        out.append(d)
    return out


def sd_turbo_preset(work: Path, device: str | None) -> str:
    """The preset to run for ``--arch sd-turbo``: ``turbo`` if its weights are here, else a random-weight copy."""
    from genart.config import load_models_config
    from genart.models import check_preset

    cfg = load_models_config()
    if check_preset(cfg.preset("turbo")).ok:
        log("sd-turbo and its CLIP are here: using the turbo preset")
        return "turbo"
    folder = Path(os.environ.get("GENART_CACHE", Path.home() / ".cache" / "genart")) / "bench-sd-turbo-random"
    if not (folder / "model_index.json").exists():
        gb = _generate_bench()
        model, _ = gb.sd_turbo_model(cfg.preset("turbo"), device)
        log(f"saving the random-weight sd-turbo architecture to {folder}")
        model.pipe.save_pretrained(str(folder), safe_serialization=True)
        del model
    return add_preset(work, "bench-sd-turbo", {
        "description": "benchmarks/batch.py: the full sd-turbo architecture with random weights, at 512 px",
        "kind": "diffusion",
        "random_weights": True,  # allowed because the ranker's CLIP is the tiny (random) one
        "generator": {"model_id": str(folder), "scheduler": "EulerAncestralDiscreteScheduler", "steps": 2,
                      "guidance": 0.0, "resolution": 512, "dtype": "auto", "batch_size": 16},
        "ranker": {"method": "clip", "fidelity_threshold": -1.0,
                   "clip": {"builder": "tiny", "model": "genart-tiny-clip", "pretrained": "genart/tiny-clip"}},
    })


def tiny_at(work: Path, resolution: int) -> str:
    """The tiny preset generating at ``resolution`` px: toy models, but finishing, PNGs and ranking at the
    size a real preset has, so the CPU's share of the job is what it is on a GPU machine."""
    from genart.config import load_models_config

    doc = load_models_config().preset("tiny").model_dump(mode="json", exclude_none=True)
    doc["generator"]["resolution"] = resolution
    return add_preset(work, f"tiny-{resolution}", doc)


def add_preset(work: Path, name: str, preset: dict[str, Any]) -> str:
    """``name`` added to a copy of models.yaml in ``work``, which genart then reads (``GENART_MODELS``)."""
    import yaml

    from genart.config import models_yaml_path

    doc = yaml.safe_load(models_yaml_path().read_text())
    doc["presets"][name] = preset
    path = work / "models.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    os.environ["GENART_MODELS"] = str(path)
    os.environ.setdefault("GENART_PROMPTS", str(ROOT / "prompts"))
    return name


def flops_per_image(preset: str, frame: Path, profile_id: str) -> dict[str, float]:
    """FLOPs of one img2img variant (UNet + VAE decode) and of one frame's VAE encode."""
    from PIL import Image
    from torch.utils.flop_counter import FlopCounterMode

    from genart.config import load_models_config
    from genart.pipeline import load_stages
    from genart.profiles import get_profiles
    from genart.types import KeyFrame

    spec = load_models_config().preset(preset)
    gen = load_stages(spec).generator
    with Image.open(frame) as im:
        img = im.convert("RGB")
    kf = KeyFrame(id="flops", source="bench", t_s=0.0, frame_index=0, shot=0, width=img.width, height=img.height,
                  image=img)
    prof = get_profiles([profile_id])[0]
    gen.generate([kf], prof, 1, seed=0)  # warm: the text encoding is cached
    counter = FlopCounterMode(display=False)
    with counter:
        gen.generate([kf], prof, 1, seed=0)
    counts = counter.get_flop_counts()  # per module class at the top level (and dotted sub-modules)
    per = {name: float(sum(ops.values())) for name, ops in counts.items()}
    total = per.get("Global", float(counter.get_total_flops()))
    unet = sum(v for k, v in per.items() if "." not in k and k.startswith("UNet"))
    encode = per.get("Encoder", 0.0)  # the VAE encoder: once per key frame in the batch job
    decode = per.get("Decoder", 0.0)
    return {"per_image": total - encode, "per_frame": encode, "unet": unet, "vae_decode": decode,
            "modules": {k: v for k, v in per.items() if "." not in k}}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--arch", choices=["sd-turbo"], default=None)
    ap.add_argument("--resolution", type=int, default=None,
                    help="with the tiny preset: generate at this size (512: finishing and ranking at a real preset's size)")
    ap.add_argument("--titles", type=int, default=2)
    ap.add_argument("--frames", type=int, default=2, help="key frames per title")
    ap.add_argument("--variants", type=int, default=2, help="variants per key frame, per profile")
    ap.add_argument("--profiles", default="romance,thriller")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--device", default=None)
    ap.add_argument("--repeats", type=int, default=2, help="interleaved runs of each path (best of)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    if args.device:
        os.environ["GENART_DEVICE"] = args.device

    import torch
    from typer.testing import CliRunner

    from genart import pipeline
    from genart.cli import app
    from genart.config import load_models_config
    from genart.frames import extract_keyframes

    torch.set_grad_enabled(False)
    work = Path(tempfile.mkdtemp(prefix="genart-bench-batch-"))
    if args.arch == "sd-turbo":
        preset = sd_turbo_preset(work, args.device)
    elif args.resolution:
        if args.preset != "tiny":
            raise SystemExit("--resolution is for the tiny preset")
        preset = tiny_at(work, args.resolution)
    else:
        preset = args.preset
    spec = load_models_config().preset(preset)
    profiles = [p.strip() for p in args.profiles.split(",") if p.strip()]
    sources = make_titles(work / "media", args.titles, args.frames)
    cat = work / "catalog.yaml"
    lines = [f"preset: {preset}", f"profiles: [{', '.join(profiles)}]", f"frames: {args.frames}",
             f"variants_per_frame: {args.variants}", "top_k: 2", "titles:"]
    for i, s in enumerate(sources):
        lines += [f"  - id: t{i}", f"    source: {s}", f"    title: Title {i}", "    genre: drama"]
    cat.write_text("\n".join(lines) + "\n")

    log(f"warming up {preset} (models load once per process, for both paths)")
    stages = pipeline.load_stages(spec)
    pipeline.run(sources[0], profiles=profiles[:1], preset=preset, frames=1, variants_per_frame=1,
                 out=work / "warm", title="warm", genre="drama")
    dev = getattr(getattr(stages.generator, "model", None), "device", torch.device("cpu"))

    def sync() -> None:
        if getattr(dev, "type", "") == "cuda":
            torch.cuda.synchronize()

    import sqlite3

    def run_batch(k: int) -> tuple[float, dict[str, Any], float]:
        out = work / f"batch{k}"  # a fresh folder: the same one would resume, with nothing left to do
        cmd = ["batch", str(cat), "--out", str(out), "--json"]
        if args.batch_size:
            cmd += ["--batch-size", str(args.batch_size)]
        sync()
        t = time.perf_counter()
        r = CliRunner().invoke(app, cmd)
        sync()
        dt = time.perf_counter() - t
        if r.exit_code != 0:
            raise SystemExit(f"genart batch failed: {r.output}")
        with sqlite3.connect(out / "genart.sqlite") as db:
            gen = db.execute("SELECT SUM(device_s) FROM batch_units WHERE kind = 'variant'").fetchone()[0] or 0.0
        return dt, json.loads(r.stdout), gen

    def run_naive(k: int) -> tuple[float, int]:
        sync()
        t = time.perf_counter()
        n = 0
        for i, src in enumerate(sources):
            kfs = extract_keyframes(src, max_frames=args.frames)
            for pid in profiles:
                for kf in kfs:
                    for v in range(args.variants):
                        pipeline.run(src, profiles=[pid], preset=preset, frames=1, variants_per_frame=1,
                                     keyframes=[kf], out=work / f"naive{k}", seed=v, title=f"Title {i}", genre="drama")
                        n += 1
        sync()
        return time.perf_counter() - t, n

    # interleaved, best of --repeats each: a busy shared machine slows both alike
    t_batch = t_naive = gen_s = float("inf")
    rep: dict[str, Any] = {}
    n_naive = 0
    for k in range(args.repeats):
        dt, rep_k, g = run_batch(k)
        log(f"genart batch #{k}: {sum(x['images'] for x in rep_k['titles'])} images in {dt:.2f} s "
            f"({g:.2f} s generating)")
        if dt < t_batch:
            t_batch, rep, gen_s = dt, rep_k, g
        dt, n_naive = run_naive(k)
        log(f"naive #{k}: {n_naive} images in {dt:.2f} s")
        t_naive = min(t_naive, dt)
    n_batch = sum(x["images"] for x in rep["titles"])

    result: dict[str, Any] = {
        "ratio": round((n_batch / t_batch) / (n_naive / t_naive), 3),
        "batch_images_per_s": round(n_batch / t_batch, 3),
        "naive_images_per_s": round(n_naive / t_naive, 3),
        "batch_generate_images_per_s": round(n_batch / gen_s, 3) if gen_s else None,
        "batch_s": round(t_batch, 3),
        "naive_s": round(t_naive, 3),
        "repeats": args.repeats,
        "images": n_batch,
        "naive_images": n_naive,
        "titles": args.titles,
        "frames": args.frames,
        "variants_per_frame": args.variants,
        "profiles": profiles,
        "preset": preset,
        "device": str(dev),
        "dtype": str(getattr(getattr(stages.generator, "model", None), "dtype", "n/a")).replace("torch.", ""),
        "batch_size": args.batch_size or (spec.generator.batch_size if spec.generator else None),
        "torch_threads": torch.get_num_threads(),
    }
    if spec.kind == "diffusion":
        f = flops_per_image(preset, next(sources[0].glob("*.png")), profiles[0])
        gb = _generate_bench()
        peak, gpu = gb.peak_tflops(dev)
        n_frames = sum(x["keyframes"] for x in rep["titles"])
        total = f["per_image"] * n_batch + f["per_frame"] * n_frames  # the UNet and VAE work of the batch job
        achieved = total / gen_s / 1e12 if gen_s else None
        result.update({
            "gflop_per_image": round(f["per_image"] / 1e9, 3),
            "gflop_per_frame_encode": round(f["per_frame"] / 1e9, 3),
            "gflop_by_module": {k: round(v / 1e9, 3) for k, v in f["modules"].items()},
            "achieved_tflops_generating": round(achieved, 4) if achieved else None,
            "gpu": gpu,
            "peak_bf16_tflops": peak,
            "fraction_of_peak": round(achieved / peak, 4) if (peak and achieved) else None,
            "fraction_of_peak_wall": round(total / t_batch / 1e12 / peak, 4) if peak else None,
        })
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v}")
    return result


if __name__ == "__main__":
    main()
