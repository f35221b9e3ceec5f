"""Making variant slots fast: one batch across frames, profiles and titles, with OOM back-off.

Built on ``genart.generate.diffusion.DiffusionGenerator`` (its text cache, frame preparation, VAE
encode, per-seed generators and ``Variant`` construction) so a slot made here is bit for bit the
variant ``pipeline.run`` makes for the same key frame, profile, seed and index: the batch job and a
plain run agree. What this adds:

- any set of *slots* (title, profile, key frame, variant index), so a resumed job makes only the
  missing ones;
- one batch may mix profiles and titles: each row carries its own prompt embeddings (cached per
  profile version and prompt), and rows are grouped only by what img2img must share (size,
  strength, steps, guidance);
- each key frame is VAE-encoded once per call, whatever the number of its slots;
- an out-of-memory error halves the batch and goes on from the first unfinished chunk, through
  ``accelerate.utils.find_executable_batch_size``; chunks already done are not redone;
- ``on_done(pairs, device_s)`` is called after every chunk, so results are committed as they come.

The classic generator needs none of this: its slots are made per (key frame, profile) as it does.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

from genart.types import KeyFrame, TasteProfile, Variant
from genart.workers import pmap

#: The interpreter's thread switch interval while a batch generates (see ``_diffusion``).
SWITCH_INTERVAL_S = 0.0002


@dataclass(frozen=True)
class Slot:
    """One variant to make: the ``idx``-th variant of key frame ``kf`` for ``profile`` in run ``run_id``."""

    run_id: str
    profile: TasteProfile
    kf: KeyFrame
    idx: int
    seed: int  # the run seed (the variant's own seed derives from it)
    title: str = ""
    genre: str = ""

    @property
    def key(self) -> tuple[str, str, str, int]:
        return (self.run_id, self.profile.id, self.kf.id, self.idx)


OnDone = Callable[[list[tuple[Slot, Variant]], float], None]


@dataclass
class BatchState:
    """The batch size in force (halved by each OOM) and what happened, kept across calls."""

    batch_size: int
    oom_retries: int = 0
    batches: int = 0
    sizes: list[int] = field(default_factory=list)  # rows made per call
    fixed_shapes: bool = False  # pad each call to a bucket (``bucket``): set by ``--compile``
    shapes: list[int] = field(default_factory=list)  # rows per call, padding included


def bucket(n: int, batch_size: int) -> int:
    """The batch a call of ``n`` rows is padded to when shapes are fixed: the next power of two, or the
    batch size itself. A compiled UNet and decoder (``dynamic=False``) compile once per shape, so a job
    compiles at most log2(batch size) + 2 shapes per image size instead of one per odd chunk left at the
    end of each group; the padding rows repeat the last row and are dropped."""
    return min(batch_size, 1 << max(0, n - 1).bit_length()) if n < batch_size else n


def _sync(device: Any) -> None:
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.synchronize(device)


def generate_slots(generator: Any, slots: Sequence[Slot], on_done: OnDone, state: BatchState) -> None:
    """Make every slot, calling ``on_done`` after each chunk (see the module doc)."""
    if not slots:
        return
    from genart.generate.diffusion import DiffusionGenerator

    if isinstance(generator, DiffusionGenerator):
        _diffusion(generator, slots, on_done, state)
    else:
        _per_group(generator, slots, on_done)


def _per_group(generator: Any, slots: Sequence[Slot], on_done: OnDone) -> None:
    """Any generator with ``generate(keyframes, profile, n, ...)`` (classic): one call per (frame, profile)."""
    groups: dict[tuple[str, str, str], list[Slot]] = {}
    for s in slots:
        groups.setdefault((s.run_id, s.profile.id, s.kf.id), []).append(s)
    for group in groups.values():
        s0 = group[0]
        t = time.perf_counter()
        made = generator.generate([s0.kf], s0.profile, max(s.idx for s in group) + 1, seed=s0.seed, title=s0.title,
                                  genre=s0.genre)
        on_done([(s, made[s.idx]) for s in group], time.perf_counter() - t)


def _diffusion(gen: Any, slots: Sequence[Slot], on_done: OnDone, state: BatchState) -> None:
    import torch
    from accelerate.utils import find_executable_batch_size

    from genart.generate.diffusion import VariantJob, steps_for
    from genart.generate.seeds import variant_seed

    spec, model = gen.spec, gen.model
    with model.lock:
        latents: dict[tuple[str, str], Any] = {}
        sizes: dict[tuple[str, str], tuple[int, int]] = {}
        texts: dict[tuple[str, str, str], Any] = {}
        rows: list[tuple[Slot, Any, tuple[str, str, str], str, str, float, bool]] = []
        for s in slots:
            fkey = (s.run_id, s.kf.id)
            if fkey not in latents:  # each distinct frame: resized and VAE-encoded once
                img = gen.prepare_frame(s.kf)
                sizes[fkey] = img.size
                latents[fkey] = gen.encode_frame(img)
            p = s.profile
            prompt, negative = p.render_prompt(s.title, s.genre), p.negative_prompt or ""
            guidance = float(p.guidance if p.guidance is not None else spec.guidance)
            tkey = (p.version, prompt, negative)
            if tkey not in texts:
                texts[tkey] = gen.encode_text(p, prompt, negative, guidance)  # cached on the model across calls
            ladder = tuple(p.strengths) or tuple(spec.strengths)
            strength = float(ladder[s.idx % len(ladder)])
            w, h = sizes[fkey]
            job = VariantJob(s.kf, s.idx, variant_seed(s.seed, s.kf.id, p.id, s.idx), strength,
                       steps_for(p.steps or spec.steps, strength), w, h)
            rows.append((s, job, tkey, prompt, negative, guidance, gen.uses_cfg(guidance)))

        groups: dict[tuple, list[int]] = {}
        for i, (_, job, _, _, _, guidance, cfg) in enumerate(rows):
            groups.setdefault((job.width, job.height, job.strength, job.steps, guidance, cfg), []).append(i)

        plan = list(groups.items())
        cursor = [0, 0]  # (group, position in it): what is done stays done across OOM retries
        # finishing (reframe, grade, title), PNG encoding and the commit of a chunk run beside the
        # accelerator making the next chunk: chunks commit in order on one thread, the per-image work
        # of each spreads over the CPU threads (genart.workers); at most two chunks wait there
        from concurrent.futures import ThreadPoolExecutor

        pending: list[Any] = []

        def finish(chunk: list[tuple], images: list[Any], dt: float) -> None:
            def one(item: tuple) -> tuple[Slot, Variant]:
                (s, job, _, prompt, negative, g, _), im = item
                return s, gen.make_variant(job, im, s.profile, prompt, negative, g, _title_text(s))

            on_done(pmap(one, list(zip(chunk, images, strict=True))), dt)  # images finished on the CPU threads

        def drain(keep: int) -> None:
            while len(pending) > keep:
                pending.pop(0).result()  # re-raises a failed commit here

        def halve() -> int:
            state.oom_retries += 1
            state.batch_size = state.batch_size // 2
            return state.batch_size

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="genart-finish") as pool:
            # one decorated call for all groups: accelerate's helper collects garbage on every entry
            @find_executable_batch_size(starting_batch_size=state.batch_size, reduce_batch_size_fn=halve)
            def run_all(batch_size: int) -> None:
                while cursor[0] < len(plan):
                    (_, _, strength, steps, guidance, _), idx = plan[cursor[0]]
                    while cursor[1] < len(idx):
                        chunk = [rows[i] for i in idx[cursor[1]:cursor[1] + batch_size]]
                        _sync(model.device)
                        t = time.perf_counter()
                        rows_in = chunk
                        if state.fixed_shapes:
                            rows_in = chunk + chunk[-1:] * (bucket(len(chunk), batch_size) - len(chunk))
                        images = _run_chunk(gen, torch, rows_in, latents, texts, strength, steps, guidance)
                        images = images[:len(chunk)]
                        state.shapes.append(len(rows_in))
                        _sync(model.device)
                        dt = time.perf_counter() - t
                        state.batches += 1
                        state.sizes.append(len(chunk))
                        cursor[1] += len(chunk)
                        drain(1)
                        pending.append(pool.submit(finish, chunk, images, dt))
                    cursor[0], cursor[1] = cursor[0] + 1, 0

            # the CPU threads finishing images hold the GIL between their C calls; the thread driving the
            # accelerator gives it up at every op it launches and, by default, may wait 5 ms to get it
            # back: a shorter switch interval keeps the launches coming while images are finished
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, SWITCH_INTERVAL_S))
            try:
                run_all()
            finally:
                sys.setswitchinterval(interval)
                drain(0)


def _title_text(s: Slot) -> str:
    """The title laid on the artwork, as ``DiffusionGenerator.generate`` picks it (none without a title)."""
    from genart.generate.classic import title_for

    return title_for(s.profile, s.title, None).strip()


def _run_chunk(gen: Any, torch: Any, chunk: Sequence[tuple], latents: dict, texts: dict, strength: float, steps: int,
               guidance: float) -> list[Any]:
    """One img2img call for a chunk: each row its own frame latents, prompt embeddings and seed."""
    batch = torch.cat([latents[(s.run_id, s.kf.id)] for s, *_ in chunk], dim=0)
    kwargs = {}
    for name in texts[chunk[0][2]]:
        kwargs[name] = torch.cat([texts[tkey][name] for _, _, tkey, *_ in chunk], dim=0)
    return gen.img2img(batch, [job.seed for _, job, *_ in chunk], strength, steps, guidance, **kwargs)


def compile_models(model: Any) -> None:
    """``torch.compile`` the UNet and the VAE decoder once per loaded model (``--compile``).

    A slower first batch of each shape (frame size, batch size: about 60 s for the UNet and 25 s for
    the decoder on an H100), faster ones after: measured there on the sd-turbo architecture at
    512x288, batch 32, bf16, the UNet went from 53 to 36 ms and the decoder from 212 to 116 ms
    (both then near 39% of the card's dense bf16 peak). For long jobs: the batch job pads each call
    to a power of two (``bucket``) when it compiles, so few shapes compile.
    """
    import torch

    if getattr(model, "_genart_compiled", False):
        return
    model.pipe.unet = torch.compile(model.pipe.unet, dynamic=False)
    vae = model.pipe.vae
    vae.decoder = torch.compile(vae.decoder, dynamic=False)  # the encoder runs once per frame: not worth it
    model._genart_compiled = True
