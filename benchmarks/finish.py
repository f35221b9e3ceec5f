"""Finishing cost per image on one core: reframe, fill, grade, title (and watermark), then the PNG.

    python benchmarks/finish.py [--json] [--repeat 3] [--size 512x288]

The workload is the one ``benchmarks/GPU_NOTES.md`` quotes: 4 photos of ``../shared/media/images``
resized to a diffusion output's size (512x288), each finished for 6 profiles x 3 aspects with a title
(72 images), through ``ClassicGenerator.generate`` (the finishing every preset shares), then encoded
as the store encodes it (``Store.variant_bytes``: PNG with the provenance chunks). Where
``genart.provenance.embed_watermark`` exists, the imperceptible watermark that diffusion variants get
is timed on the same finished images as a third step.

The same variants are then finished through the tensor path (``delivery.finishing: tensor``,
``genart.generate.tensor_finish`` on the CPU, torch on one thread too: ``tensor_finish_ms``, with the
largest difference from the CPU path's pixels, ``tensor_max_abs_diff``) and encoded as JPEG by the
encoder the accelerator uses (``jpeg_ms``, ``genart.imaging.image_jpeg``).

Everything runs on one thread (OpenCV, torch and the worker pool pinned to 1), best of ``--repeat``
per step (the machine is shared). The peer is the PNG encoding measured in the same run: ``ratio`` is
finish time over PNG time per image. With ``--json`` the last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("GENART_CPU_WORKERS", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")
REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

MEDIA = REPO.parent / "shared" / "media" / "images"
PHOTOS = ("astronaut.png", "obama.jpg", "two_people.jpg", "biden.jpg")
PROFILES = ("romance", "thriller", "comedy", "family", "drama", "sci-fi")


def main(argv: list[str] | None = None) -> dict[str, object]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--size", default="512x288", help="the size each photo is resized to first (WxH)")
    ap.add_argument("--title", default="The Long Night Train")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)

    import cv2
    from PIL import Image

    import genart.provenance as provenance
    from genart.frames.faces import detect_faces
    from genart.generate.classic import ClassicGenerator
    from genart.profiles import get_profiles
    from genart.store.db import Store
    from genart.types import KeyFrame, stable_id

    import numpy as np
    import torch

    from genart.imaging import image_jpeg

    cv2.setNumThreads(1)
    torch.set_num_threads(1)
    w, h = (int(v) for v in args.size.lower().split("x"))
    frames = []
    for name in PHOTOS:
        im = Image.open(MEDIA / name).convert("RGB").resize((w, h), Image.Resampling.LANCZOS)
        frames.append(KeyFrame(id=stable_id(name), source=name, t_s=0.0, frame_index=0, shot=0, width=w, height=h,
                               faces=tuple(detect_faces(im)), image=im))
    profiles = get_profiles(list(PROFILES))
    gen = ClassicGenerator(finishing="cpu")
    tensor_gen = ClassicGenerator(finishing="tensor")
    tensor_gen._device = torch.device("cpu")
    embed = getattr(provenance, "embed_watermark", None)

    best = {"finish": float("inf"), "png": float("inf"), "watermark": float("inf"), "tensor": float("inf"),
            "jpeg": float("inf")}
    diff = 0
    n = 0
    sizes: set[tuple[int, int]] = set()
    for _ in range(args.repeat):
        variants = []
        t = time.perf_counter()
        for p in profiles:
            variants += gen.generate(frames, p, len(p.aspects), seed=0, title=args.title)
        best["finish"] = min(best["finish"], (time.perf_counter() - t) / len(variants))
        n = len(variants)
        sizes = {v.image.size for v in variants}
        t = time.perf_counter()
        tensor_variants = []
        for p in profiles:
            tensor_variants += tensor_gen.generate(frames, p, len(p.aspects), seed=0, title=args.title)
        best["tensor"] = min(best["tensor"], (time.perf_counter() - t) / len(tensor_variants))
        diff = max(int(np.abs(np.asarray(a.image, np.int16) - np.asarray(b.image, np.int16)).max())
                   for a, b in zip(variants, tensor_variants))
        t = time.perf_counter()
        for v in variants:
            Store.variant_bytes(v, "genart bench")
        best["png"] = min(best["png"], (time.perf_counter() - t) / len(variants))
        t = time.perf_counter()
        for v in variants:
            image_jpeg(v.image)
        best["jpeg"] = min(best["jpeg"], (time.perf_counter() - t) / len(variants))
        if embed is not None:
            arrays = [np.asarray(v.image) for v in variants]
            t = time.perf_counter()
            for a in arrays:
                embed(a)
            best["watermark"] = min(best["watermark"], (time.perf_counter() - t) / len(arrays))
    out: dict[str, object] = {
        "images": n,
        "input": f"{w}x{h}",
        "output_sizes": sorted(f"{a}x{b}" for a, b in sizes),
        "finish_ms": round(best["finish"] * 1000, 2),
        "tensor_finish_ms": round(best["tensor"] * 1000, 2),
        "tensor_max_abs_diff": diff,
        "png_ms": round(best["png"] * 1000, 2),
        "jpeg_ms": round(best["jpeg"] * 1000, 2),
        "watermark_ms": round(best["watermark"] * 1000, 2) if embed is not None else None,
        "ratio": round(best["finish"] / best["png"], 3),
    }
    print(f"{n} images from {w}x{h} inputs, outputs {', '.join(out['output_sizes'])} (one core, best of {args.repeat})")
    print(f"  finish (reframe, fill, grade, title): {out['finish_ms']} ms per image")
    print(f"  the same through the tensor path:     {out['tensor_finish_ms']} ms per image "
          f"(largest difference {diff} levels)")
    print(f"  PNG with provenance chunks:           {out['png_ms']} ms per image")
    print(f"  JPEG (the accelerator's encoder):     {out['jpeg_ms']} ms per image")
    if embed is not None:
        print(f"  watermark (diffusion variants only):  {out['watermark_ms']} ms per image")
    print(f"  ratio finish / PNG: {out['ratio']}")
    if args.json:
        print(json.dumps(out))
    return out


if __name__ == "__main__":
    main()
