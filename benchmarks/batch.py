"""Benchmark: ``genart batch`` against a naive script, on the same small catalogue, in one run.

- batch: ``genart batch CATALOG --out DIR`` (the CLI command, in this process, so both paths share the
  loaded models): key frames once per title, every variant of every frame and profile in batches,
  prompts encoded once, each frame VAE-encoded once, ranking and the bandit hand-off per title;
- naive: per title the key frames once, then per profile, key frame and variant one
  ``pipeline.run`` call (``create_variants`` with ``variants_per_frame=1`` on that key frame), which
  is what a script around the single-run API does.

Both make the same number of images of the same size with the same steps. Measured in the same run
as well: *generation alone* (the same slots through ``generate_slots`` with an unfinished generator
and nothing stored: denoise + decode + to the host, what the accelerator must do whatever happens
after), the batch job's time per stage (``BatchReport.stage_s``: the stages overlap, so shares add up
to more than 1; ``denoise_wait`` is the accelerator's thread waiting for the CPU), and the finishing
itself on the same real frames: ``finish_max_abs_diff`` (the tensor finishing against the CPU's
PIL/numpy one, goal <= 2 levels) and its cost per image before (CPU) and after (tensor path, one
image at a time and batched) on the benchmark's device, with PNG and JPEG encoding.

    python benchmarks/batch.py                        # tiny preset on the CPU
    python benchmarks/batch.py --titles 4 --frames 4 --variants 4 --json
    python benchmarks/batch.py --resolution 512 --json  # tiny models, but images (and CPU work) at 512 px
    python benchmarks/batch.py --arch sd-turbo --json  # on a GPU: full-size sd-turbo at 512 px

``--arch sd-turbo`` uses the real sd-turbo (``turbo`` preset) when its weights are here; otherwise it
builds the full SD 2.1-base architecture with random weights (``benchmarks/generate.py``'s config),
saves it once as a local diffusers folder and runs a preset that points at it (ranked by the tiny
CLIP), so it walks the same loading code as a real preset. On CUDA it also prints the fraction of
the GPU's dense bf16 peak the batch job reached, from a FLOP count (``torch.utils.flop_counter``) of
the UNet and VAE per image and per frame, against the data sheet (989 TFLOP/s on an H100 SXM or H200)
and against a large bf16 matrix product timed in the same run (``fraction_of_matmul``). With
``--json`` the last line is one JSON object.
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


def matmul_tflops(dev: Any) -> float:
    """bf16 TFLOP/s of a large square matrix product on ``dev``, best of a few: the card's attainable
    dense peak, a second denominator beside the data sheet's (on a CPU, a small one: the same code)."""
    import torch

    n = 8192 if getattr(dev, "type", "") == "cuda" else 1024
    a = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=dev, dtype=torch.bfloat16)
    gb = _generate_bench()
    best = float("inf")
    for i in range(4 if n > 1024 else 2):
        gb.sync(dev)
        t = time.perf_counter()
        for _ in range(10 if n > 1024 else 2):
            a @ b
        gb.sync(dev)
        if i:  # the first is a warm-up
            best = min(best, (time.perf_counter() - t) / (10 if n > 1024 else 2))
    return 2 * n ** 3 / best / 1e12


def finishing_costs(dev: Any, spec: Any, profiles: list[str], n_frames: int = 4, repeats: int = 2) -> dict[str, Any]:
    """The finishing of 512 px outputs (real photos, their faces) to each profile's aspects at the preset's
    delivery sizes, with a title: ``finish_max_abs_diff`` (watermark off: its quantisation turns a level
    into several) and milliseconds per image of the CPU path (before) and the tensor path on ``dev``
    (after: one image at a time, and the rows of a frame in one batch), and of encoding a PNG (CPU, as
    the store does) and a JPEG (``jpeg_bytes`` on ``dev``, batched)."""
    import warnings

    import numpy as np
    import torch
    from PIL import Image

    from genart.frames.faces import detect_faces
    from genart.generate import tensor_finish as tf
    from genart.generate import delivery
    from genart.generate.delivery import finish_variant
    from genart.generate.diffusion import target_size
    from genart.imaging import jpeg_bytes, png_bytes
    from genart.profiles import get_profiles

    gb = _generate_bench()
    settings = spec.finish
    frames = []
    for kf in gb.frames(n_frames):
        w, h = target_size(kf.image.width, kf.image.height, 512)
        faces = [f.scaled(w / kf.image.width, h / kf.image.height) for f in detect_faces(kf.image)]
        frames.append((np.asarray(kf.image.resize((w, h), Image.Resampling.LANCZOS)), faces))
    profs = get_profiles(profiles)
    rows = [(rgb, faces, p, a) for rgb, faces in frames for p in profs for a in p.aspects]
    title = "The Long Night"

    def timed(fn: Any) -> float:
        best = float("inf")
        for _ in range(repeats):
            gb.sync(dev)
            t = time.perf_counter()
            fn()
            gb.sync(dev)
            best = min(best, time.perf_counter() - t)
        return best / len(rows) * 1e3

    def each(device: Any) -> list[Any]:
        return [finish_variant(rgb, faces, (), a, p, 1.0, settings, title=title, device=device)
                for rgb, faces, p, a in rows]

    out: dict[str, Any] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out.update(delivery.finish_max_abs_diff(frames, [(p, a, title) for p in profs for a in p.aspects],
                                          settings=settings, device=dev))
        done: list[Any] = []
        out["finish_cpu_ms"] = round(timed(lambda: done.__setitem__(slice(None), each(None))), 2)
        out["finish_tensor_ms"] = round(timed(lambda: each(dev)), 2)
        tensors: list[Any] = []

        def batched() -> None:
            tensors.clear()
            for rgb, faces in frames:
                x = tf.to_levels(rgb, dev)
                thumb = None if faces else tf.saliency_thumbs(x)[0]
                plans = [tf.plan_row(rgb.shape[1], rgb.shape[0], faces, a, p.grade, 1.0, size=settings.size(a),
                                     title=title, locale=p.locale, style=p.title_style, safe=settings.safe_zone(a),
                                     max_upscale=settings.max_upscale, max_synthetic=settings.max_synthetic,
                                     thumb=thumb) for p in profs for a in p.aspects]
                plans = [pl for pl in plans if pl.on_device]  # the others are the CPU's (see finish_image)
                done_rows = tf.finish_batch(x.expand(len(plans), -1, -1, -1), plans)
                tensors.extend(r.pixels for r in done_rows)
                for r in done_rows:
                    tf.to_host(r.pixels)  # the finished pixels reach the host (for PNG, the CPU scorers)

        out["finish_tensor_batched_ms"] = round(timed(batched), 2)
        out["finish_rows"], out["finish_rows_on_device"] = len(rows), len(tensors)
    images = [Image.fromarray(d.pixels) for d in done]
    out["png_ms"] = round(timed(lambda: [png_bytes(im) for im in images]), 2)
    out["jpeg_ms"] = round(timed(lambda: jpeg_bytes(tensors, 92)) * len(rows) / max(1, len(tensors)), 2)
    out["finish_device"] = str(dev)
    out["torch_threads"] = torch.get_num_threads()
    return out


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
    ap.add_argument("--compile", action="store_true", help="genart batch --compile (the naive script then shares "
                    "the compiled models)")
    ap.add_argument("--finishing", choices=["auto", "tensor", "cpu"], default=None,
                    help="override the preset's delivery.finishing (tensor: the tensor path, on this device)")
    ap.add_argument("--format", choices=["png", "jpeg"], default=None, help="override delivery.format")
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
    if args.finishing or args.format:
        doc = spec.model_dump(mode="json", exclude_none=True)
        doc.pop("name", None)
        doc["delivery"] = {**doc.get("delivery", {}), **{k: v for k, v in (("finishing", args.finishing),
                                                                          ("format", args.format)) if v}}
        preset = add_preset(work, f"{preset}-delivery", doc)
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
        if args.compile:
            cmd += ["--compile"]
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

    def run_generation_alone() -> tuple[float, int]:
        """The batch job's slots, generated and decoded to host pixels, not finished, nothing stored."""
        from genart.batch.gpu import BatchState, Slot, generate_slots
        from genart.generate.diffusion import DiffusionGenerator
        from genart.profiles import get_profiles

        gen = DiffusionGenerator(stages.generator.model, spec, finish=False)
        slots = [Slot(f"alone-{i}", p, kf, v, 0, f"Title {i}", "drama")
                 for i, src in enumerate(sources) for kf in extract_keyframes(src, max_frames=args.frames)
                 for p in get_profiles(profiles) for v in range(args.variants)]
        sync()
        t = time.perf_counter()
        generate_slots(gen, slots, lambda pairs, dt: None,
                       BatchState(batch_size=args.batch_size or spec.generator.batch_size))
        sync()
        return time.perf_counter() - t, len(slots)

    # interleaved, best of --repeats each: a busy shared machine slows both alike
    t_batch = t_naive = gen_s = t_alone = float("inf")
    rep: dict[str, Any] = {}
    n_naive = n_alone = 0
    for k in range(args.repeats):
        dt, rep_k, g = run_batch(k)
        log(f"genart batch #{k}: {sum(x['images'] for x in rep_k['titles'])} images in {dt:.2f} s "
            f"({g:.2f} s generating)")
        if dt < t_batch:
            t_batch, rep, gen_s = dt, rep_k, g
        dt, n_naive = run_naive(k)
        log(f"naive #{k}: {n_naive} images in {dt:.2f} s")
        t_naive = min(t_naive, dt)
        if spec.kind == "diffusion":
            dt, n_alone = run_generation_alone()
            log(f"generation alone #{k}: {n_alone} images in {dt:.2f} s")
            t_alone = min(t_alone, dt)
    n_batch = sum(x["images"] for x in rep["titles"])
    alone_ips = n_alone / t_alone if n_alone else None

    result: dict[str, Any] = {
        "ratio": round((n_batch / t_batch) / (n_naive / t_naive), 3),
        "batch_images_per_s": round(n_batch / t_batch, 3),
        "naive_images_per_s": round(n_naive / t_naive, 3),
        "batch_generate_images_per_s": round(n_batch / gen_s, 3) if gen_s else None,
        "generation_alone_images_per_s": round(alone_ips, 3) if alone_ips else None,
        "batch_vs_generation_alone": round((n_batch / t_batch) / alone_ips, 3) if alone_ips else None,
        "stage_share": {k: round(v / t_batch, 4) for k, v in rep.get("stage_s") or []},
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
    log("finishing on the same real frames: CPU path against the tensor path")
    result.update(finishing_costs(dev, spec, profiles))
    result["finishing"] = spec.delivery.finishing
    result["delivery_format"] = spec.delivery.format
    if spec.kind == "diffusion":
        result["tensor_finishing"] = bool(getattr(stages.generator, "tensor_finishing", False))
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
        mm = matmul_tflops(dev)
        result.update({
            "matmul_bf16_tflops": round(mm, 3),
            "fraction_of_matmul": round(achieved / mm, 4) if achieved else None,
            "fraction_of_matmul_wall": round(total / t_batch / 1e12 / mm, 4),
        })
    if args.json:
        print(json.dumps(result))
    else:
        for k, v in result.items():
            print(f"{k:>28}: {v}")
    return result


if __name__ == "__main__":
    main()
