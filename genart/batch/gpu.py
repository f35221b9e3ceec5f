"""Making variant slots fast: one batch across frames, profiles and titles, with OOM back-off.

A scheduler over ``genart.generate.diffusion.DiffusionGenerator``: each frame is made ready by its
``prepare`` (resized, VAE-encoded and, for a ControlNet, its canny edges), each slot planned by its
``plan_job`` (seed, strength, steps) and each chunk run by its ``run_chunk`` (which builds what the
pipeline call gets: latents, per-row prompt embeddings, control images), the very methods ``generate``
uses, so a slot made here is bit for bit the variant ``pipeline.run`` makes for the same key frame,
profile, seed and index (``tests/test_generator_contract.py`` checks it for every generator). What
this adds:

- any set of *slots* (title, profile, key frame, variant index), so a resumed job makes only the
  missing ones;
- one batch may mix profiles and titles: each row carries its own prompt embeddings (cached per
  profile version and prompt), and rows are grouped only by what img2img must share (size,
  strength, steps, guidance);
- each key frame is VAE-encoded once per call, whatever the number of its slots;
- an out-of-memory error halves the batch and goes on from the first unfinished chunk, through
  ``accelerate.utils.find_executable_batch_size``; chunks already done are not redone;
- ``on_done(pairs, device_s)`` is called after every chunk, so results are committed as they come;
- the stages after the UNet overlap it (``Overlap``): while chunk k is denoised, chunk k-1 is decoded
  and finished on a second thread (its own CUDA stream; as tensors on the device when the preset's
  ``delivery.finishing`` says so) and chunk k-2 is committed on a third;
- with ``--compile`` every call is padded to a bucket (``bucket``), and ``$GENART_COMPILE_MODE``
  (``compile_mode``) may make the UNet replay CUDA graphs.

Not done (designed, off): one UNet call for rows of *different* strengths. With turbo's ladder each
row runs a single step from its own timestep, so the three strengths' groups could be one batch of
per-row timesteps (the UNet takes a (B,) timestep tensor) if the noising and the Euler-ancestral step
took per-row sigmas; diffusers' schedulers take one step index per call, so that needs a vectorised
step, tested within 1-2 levels of the per-strength path. Until then groups are per strength.

The classic generator needs none of this: its slots are made per (key frame, profile) as it does.
"""

from __future__ import annotations

import sys
import threading
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Callable, Sequence

from genart.generate import Generator
from genart.types import KeyFrame, TasteProfile, Variant
from genart.workers import pmap
from genart.generate.classic import overlay_title
from genart.errors import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    import torch

    from genart.generate.diffusion import DiffusionGenerator, PreparedFrame, VariantJob

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
    decode_splits: int = 0  # decodes retried in halves after running out of memory
    # seconds spent per stage (``Overlap``): denoise, denoise_wait (the accelerator's thread waiting
    # for the decode thread: the CPU holding the accelerator up), decode, finish, write
    stage_s: dict[str, float] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, stage: str, seconds: float) -> None:
        with self._lock:
            self.stage_s[stage] = self.stage_s.get(stage, 0.0) + seconds


def bucket(n: int, batch_size: int) -> int:
    """The batch a call of ``n`` rows is padded to when shapes are fixed: the next power of two, or the
    batch size itself. A compiled UNet and decoder (``dynamic=False``) compile once per shape, so a job
    compiles at most log2(batch size) + 2 shapes per image size instead of one per odd chunk left at the
    end of each group; the padding rows repeat the last row and are dropped."""
    return min(batch_size, 1 << max(0, n - 1).bit_length()) if n < batch_size else n


def _sync(device: Any) -> None:
    """Wait for this thread's CUDA stream only: the decode thread's stream keeps running."""
    if getattr(device, "type", "") == "cuda":
        import torch

        torch.cuda.current_stream(device).synchronize()


def generate_slots(generator: Generator, slots: Sequence[Slot], on_done: OnDone, state: BatchState) -> None:
    """Make every slot, calling ``on_done`` after each chunk (see the module doc)."""
    if not slots:
        return
    from genart.generate.diffusion import DiffusionGenerator

    if isinstance(generator, DiffusionGenerator):
        _diffusion(generator, slots, on_done, state)
    else:
        _per_group(generator, slots, on_done)


def _per_group(generator: Generator, slots: Sequence[Slot], on_done: OnDone) -> None:
    """Any other ``Generator`` (classic): one ``generate`` call per (frame, profile)."""
    groups: dict[tuple[str, str, str], list[Slot]] = {}
    for s in slots:
        groups.setdefault((s.run_id, s.profile.id, s.kf.id), []).append(s)
    for group in groups.values():
        s0 = group[0]
        t = time.perf_counter()
        made = generator.generate([s0.kf], s0.profile, max(s.idx for s in group) + 1, seed=s0.seed, title=s0.title,
                                  genre=s0.genre)
        on_done([(s, made[s.idx]) for s in group], time.perf_counter() - t)


def _diffusion(gen: DiffusionGenerator, slots: Sequence[Slot], on_done: OnDone, state: BatchState) -> None:
    from accelerate.utils import find_executable_batch_size

    model = gen.model
    with model.lock:
        frames: dict[tuple[str, str], PreparedFrame] = {}
        texts: dict[tuple[str, str, str], Any] = {}
        rows: list[tuple[Slot, VariantJob, tuple[str, str, str], str, str, float, bool]] = []
        for s in slots:
            fkey = (s.run_id, s.kf.id)
            if fkey not in frames:  # each distinct frame: resized, VAE-encoded (and its edges found) once
                frames[fkey] = gen.prepare(s.kf)
            p = s.profile
            prompt, negative = p.render_prompt(s.title, s.genre), p.negative_prompt or ""
            guidance = gen.guidance_for(p)
            tkey = (p.version, prompt, negative)
            if tkey not in texts:
                texts[tkey] = gen.encode_text(p, prompt, negative, guidance)  # cached on the model across calls
            job = gen.plan_job(s.kf, p, s.idx, s.seed, frames[fkey].size)
            rows.append((s, job, tkey, prompt, negative, guidance, gen.uses_cfg(guidance)))

        groups: dict[tuple, list[int]] = {}
        for i, (_, job, _, _, _, guidance, cfg) in enumerate(rows):
            groups.setdefault((job.width, job.height, job.strength, job.steps, guidance, cfg), []).append(i)

        plan = list(groups.items())
        cursor = [0, 0]  # (group, position in it): what is done stays done across OOM retries
        own = getattr(gen, "own_decode", False)

        def halve() -> int:
            state.oom_retries += 1
            state.batch_size = state.batch_size // 2
            return state.batch_size

        with Overlap(gen, on_done, state) as overlap:
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
                        made = gen.run_chunk([job for _, job, *_ in rows_in],
                                             [frames[(s.run_id, s.kf.id)] for s, *_ in rows_in],
                                             [texts[tkey] for _, _, tkey, *_ in rows_in], strength, steps, guidance,
                                             output="latent" if own else "pil")
                        state.shapes.append(len(rows_in))
                        _sync(model.device)
                        dt = time.perf_counter() - t
                        state.add("denoise", dt)
                        state.batches += 1
                        state.sizes.append(len(chunk))
                        cursor[1] += len(chunk)
                        overlap.put(chunk, made, dt, len(chunk))  # waits while the chunk before is decoded
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


_DONE = object()


class _StageFailed(Exception):
    """A stage after the UNet failed: its error is raised when the ``Overlap`` closes."""


class Overlap:
    """The stages after the UNet, each on its own thread, so the accelerator never waits for the CPU:
    while the caller denoises chunk k, the *decode* thread decodes chunk k-1 (on its own CUDA stream)
    and finishes it (as tensors on the device, or on the CPU threads), and the *write* thread hands
    chunk k-2 to ``on_done`` (the store: encoding, files, the ledger rows, the scores). Queues of one
    between the stages keep at most a few chunks in memory and chunks commit in order, so the ledger
    stays exactly-once. A failure in any stage stops the stages before it; every chunk finished before
    the failure still commits, and ``__exit__`` re-raises the error (the caller's own first).

    The decoder meets whole chunks, padded to the chunk's bucket when ``state.fixed_shapes`` (a
    compiled decoder sees few shapes); one that runs out of memory is retried in halves.
    """

    def __init__(self, gen: Any, on_done: OnDone, state: "BatchState") -> None:
        import queue

        self.gen, self.on_done, self.state = gen, on_done, state
        self.to_decode: "queue.Queue[Any]" = queue.Queue(maxsize=1)
        self.to_write: "queue.Queue[Any]" = queue.Queue(maxsize=1)
        self.error: BaseException | None = None
        self.stream: torch.cuda.Stream | None = None
        self.threads: list[threading.Thread] = []

    def __enter__(self) -> "Overlap":
        import torch

        dev = self.gen.model.device
        if getattr(dev, "type", "") == "cuda":
            self.stream = torch.cuda.Stream(device=dev)
        self.threads = [threading.Thread(target=self._guard, args=(fn,), name=f"genart-{name}", daemon=True)
                        for name, fn in (("decode", self._decode_loop), ("write", self._write_loop))]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        self._put(self.to_decode, _DONE, wait_for_room=True)
        for t in self.threads:
            t.join()
        if self.error is not None and (exc is None or isinstance(exc, _StageFailed)):
            raise self.error

    # --- the caller's side ----------------------------------------------------------------------
    def put(self, chunk: list[tuple], made: Any, device_s: float, n: int) -> None:
        """Hand a denoised chunk (its latents, or its images where the pipeline decodes) to the decode
        thread; stops the caller at once when a later stage failed (``__exit__`` raises that error)."""
        t = time.perf_counter()
        self._put(self.to_decode, (chunk, made, device_s, n))
        self.state.add("denoise_wait", time.perf_counter() - t)
        if self.error is not None:
            raise _StageFailed()  # not the error itself: an OOM there must not make the caller halve its batch

    def _put(self, q: Any, item: Any, wait_for_room: bool = False) -> None:
        import queue

        while True:
            if self.error is not None and not wait_for_room:
                return
            try:
                q.put(item, timeout=0.05)
                return
            except queue.Full:
                if self.error is not None and wait_for_room:  # nobody takes from it any more: make room
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass

    # --- the threads ----------------------------------------------------------------------------
    def _guard(self, loop: Callable[[], None]) -> None:
        try:
            loop()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            if self.error is None:
                self.error = exc
            self._put(self.to_write, _DONE, wait_for_room=True)

    def _decode_loop(self) -> None:
        import contextlib

        import torch

        ctx = torch.cuda.stream(self.stream) if self.stream is not None else contextlib.nullcontext()
        while True:
            item = self.to_decode.get()
            if item is _DONE or self.error is not None:
                self._put(self.to_write, _DONE, wait_for_room=True)
                return
            chunk, made, device_s, n = item
            with ctx, torch.inference_mode():
                if self.stream is not None and isinstance(made, torch.Tensor):
                    made.record_stream(self.stream)  # made on the caller's stream, used and freed on this one
                    self.stream.wait_stream(torch.cuda.default_stream(made.device))
                pairs, dt_decode = self._finish(chunk, made, n)
                if self.stream is not None:
                    self.stream.synchronize()
            self._put(self.to_write, (pairs, device_s + dt_decode))

    def _finish(self, chunk: list[tuple], made: Any, n: int) -> tuple[list[tuple[Slot, Variant]], float]:
        gen = self.gen
        dt = 0.0
        if isinstance(made, list):  # the pipeline decoded them (SDXL's watermark): PIL images
            images = made[:n]
            levels = None
        else:
            t = time.perf_counter()
            levels = _decode_halving(gen, made, self.state)[:n]
            if self.stream is not None:
                self.stream.synchronize()
            dt = time.perf_counter() - t
            self.state.add("decode", dt)
        t = time.perf_counter()
        if levels is not None and gen.tensor_finishing:
            rows = [(job, s.profile, prompt, negative, g, _title_text(s)) for s, job, _, prompt, negative, g, _ in chunk]
            pixels: list[Any] = []
            made_v = gen.finish_levels(rows, levels, pixels_out=pixels)
            hook = getattr(gen, "on_finished", None)
            if hook is not None:  # the scorers' embedder, on the same pixels before they leave the device
                t_score = time.perf_counter()
                hook(made_v, pixels)
                self.state.add("embed", time.perf_counter() - t_score)
            pairs = [(row[0], v) for row, v in zip(chunk, made_v, strict=True)]
        else:
            if levels is not None:
                images = gen.levels_to_images(levels)

            def one(item: tuple) -> tuple[Slot, Variant]:
                (s, job, _, prompt, negative, g, _), im = item
                return s, gen.make_variant(job, im, s.profile, prompt, negative, g, _title_text(s))

            pairs = pmap(one, list(zip(chunk, images, strict=True)))  # finished on the CPU threads
        self.state.add("finish", time.perf_counter() - t)
        return pairs, dt

    def _write_loop(self) -> None:
        while True:
            item = self.to_write.get()
            if item is _DONE:  # after the last chunk, or after the decode thread failed (what it finished commits)
                return
            pairs, device_s = item
            t = time.perf_counter()
            self.on_done(pairs, device_s)
            self.state.add("write", time.perf_counter() - t)


def _decode_halving(gen: Any, latents: Any, state: "BatchState") -> Any:
    """``gen.decode_levels`` of a chunk; out of memory, the two halves one after the other (and so on):
    the decoder needs far more memory per image than the UNet, and its chunk is already denoised."""
    import torch
    from accelerate.utils.memory import should_reduce_batch_size

    try:
        return gen.decode_levels(latents)
    except Exception as exc:  # noqa: BLE001 - only an out-of-memory error is retried
        if not should_reduce_batch_size(exc) or latents.shape[0] == 1:
            raise
    import gc

    gc.collect()
    if latents.is_cuda:
        torch.cuda.empty_cache()
    state.decode_splits += 1
    half = (latents.shape[0] + 1) // 2
    return torch.cat([_decode_halving(gen, latents[:half], state), _decode_halving(gen, latents[half:], state)])


def _title_text(s: Slot) -> str:
    """The title laid on the artwork, by the rule ``DiffusionGenerator.generate`` uses (none without a title)."""

    return overlay_title(s.profile, s.title, None)


COMPILE_MODES = ("default", "reduce-overhead", "max-autotune")


def compile_mode() -> str:
    """``torch.compile``'s mode for the UNet (``$GENART_COMPILE_MODE``, default ``default``):
    ``reduce-overhead`` replays CUDA graphs, one per bucketed shape (``bucket``), so the launches of a
    small batch's many kernels cost nothing on the CPU.

    Raises:
        InvalidArgumentError: not one of ``COMPILE_MODES``.
    """
    import os

    mode = os.environ.get("GENART_COMPILE_MODE") or "default"
    if mode not in COMPILE_MODES:
        raise InvalidArgumentError("GENART_COMPILE_MODE", mode, ", ".join(COMPILE_MODES))
    return mode


def compile_models(model: Any) -> None:
    """``torch.compile`` the UNet and the VAE decoder once per loaded model (``--compile``).

    A slower first batch of each shape (frame size, batch size: about 60 s for the UNet and 25 s for
    the decoder on an H100), faster ones after: measured there on the sd-turbo architecture at
    512x288, batch 32, bf16, the UNet went from 53 to 36 ms and the decoder from 212 to 116 ms
    (both then near 39% of the card's dense bf16 peak). For long jobs: the batch job pads each call
    to a power of two (``bucket``) when it compiles, so few shapes compile.

    ``$GENART_COMPILE_MODE`` (``compile_mode``) sets the UNet's mode; ``reduce-overhead`` (CUDA graphs)
    is not yet measured on a GPU. The decoder keeps the default mode: it runs on the decode thread's
    own stream (``Overlap``), and CUDA graph trees are recorded per thread.
    """
    import torch

    if getattr(model, "_genart_compiled", False):
        return
    mode = compile_mode()
    model.pipe.unet = torch.compile(model.pipe.unet, dynamic=False, mode=None if mode == "default" else mode)
    vae = model.pipe.vae
    vae.decoder = torch.compile(vae.decoder, dynamic=False)  # the encoder runs once per frame: not worth it
    model._genart_compiled = True
