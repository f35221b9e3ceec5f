"""``--engine ray``: key frames, variants and rankings as Ray tasks; the driver is the only writer.

Tasks are pure compute: they get pixels (key frames, variants) in their arguments and return
results, so workers need no access to the store and may run on other machines. The driver commits
each task's results with their ledger rows in one transaction as soon as the task finishes, so the
job keeps the local engine's exactly-once and resume guarantees (a task lost with a killed driver
is simply run again). Generation tasks ask for one GPU each when the cluster has GPUs (else one
CPU) and carry enough slots for several batches; each worker process loads the models once
(genart's per-process cache) and keeps them for the tasks that follow.

Sources must be readable by the workers (a shared or identical path) for the key-frame tasks.
Ray is an optional dependency: ``pip install ray``.
"""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from genart.errors import BackendUnavailableError
from genart.progress import ProgressFn, report
from genart.frames import extract_keyframes
from genart.batch.gpu import BatchState, generate_slots
from genart.batch.runner import Ledger, Options, _stages, fail_title, handoff_title, prepare_title, title_reports
from genart.config import load_models_config
from genart.imaging import load_rgb
from genart.types import RankedVariant, ScoreSet
from genart.usecases.layout import link_ranked
from genart.usecases.stages import ensure_weights

_ENV = ("GENART_CACHE", "GENART_MODELS", "GENART_PROMPTS", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE",
        "HF_HUB_DISABLE_TELEMETRY", "TOKENIZERS_PARALLELISM")


def _ray() -> Any:
    try:
        import ray
    except ImportError as exc:
        raise BackendUnavailableError("the Ray engine (--engine ray)", "ray", str(exc)) from None
    return ray


# --- the tasks (module level, so workers import them by name) -------------------------------------
def frames_task(source: str, max_frames: int, cast: "dict[str, list[str]] | None" = None) -> list[Any]:
    return extract_keyframes(source, max_frames=max_frames, cast=cast)


def generate_task(preset: str, slots: Sequence[Any], batch_size: int, compile: bool) -> dict[str, Any]:
    """Make the slots (key frames carry their pixels); return the variants with pixels, keyed by slot."""

    spec = load_models_config().preset(preset)
    stages = _stages(spec, Options(compile=compile))
    state = BatchState(batch_size=batch_size, fixed_shapes=compile)
    made: list[tuple[tuple, Any, float]] = []

    def on_done(pairs: list[tuple[Any, Any]], device_s: float) -> None:
        per = device_s / max(1, len(pairs))
        for slot, v in pairs:
            made.append((slot.key, replace(v, keyframe=replace(v.keyframe, image=None)), per))

    generate_slots(stages.generator, slots, on_done, state)
    return {"made": made, "oom_retries": state.oom_retries, "batch_size": state.batch_size,
            "worker": f"ray:{os.uname().nodename}:{os.getpid()}"}


def rank_task(preset: str, variants: Sequence[Any], profile: Any) -> tuple[list[tuple], float]:
    """Rank one profile's variants (with pixels); return (variant id, scores, total, rank, rejected) rows."""
    import time

    spec = load_models_config().preset(preset)
    stages = _stages(spec, Options())
    t = time.perf_counter()
    rows = stages.rank(variants, profile)
    return [(r.variant.id, r.scores.items, r.total, r.rank, r.rejected) for r in rows], time.perf_counter() - t


# --- the driver -----------------------------------------------------------------------------------
def _with_pixels(kf: Any) -> Any:
    return replace(kf, image=load_rgb(kf.path))


def _pack(slots: list[Any], per_task: int) -> list[list[Any]]:
    """Slots grouped by key frame (a frame is encoded once), frames packed into tasks of ~per_task slots."""
    by_frame: dict[tuple[str, str], list[Any]] = {}
    for s in slots:
        by_frame.setdefault((s.run_id, s.kf.id), []).append(s)
    tasks: list[list[Any]] = []
    cur: list[Any] = []
    for group in by_frame.values():
        cur.extend(group)
        if len(cur) >= per_task:
            tasks.append(cur)
            cur = []
    if cur:
        tasks.append(cur)
    return tasks


def run_ray(cat: Any, spec: Any, out: Path, *, db: str | None = None, batch_size: int | None = None,
            compile: bool = False, address: str | None = None, num_cpus: int | None = None,
            num_gpus: float | None = None, progress: ProgressFn | None = None) -> tuple[list[Any], Any]:
    """Run the catalogue on Ray (a local Ray unless ``address`` names a cluster)."""

    ray = _ray()
    ensure_weights(spec)
    started = not ray.is_initialized()
    if started:
        env = {k: os.environ[k] for k in _ENV if k in os.environ}
        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False,
                                  "runtime_env": {"env_vars": env}}
        if address:
            kwargs["address"] = address
        else:
            if num_cpus:
                kwargs["num_cpus"] = num_cpus
            if num_gpus is not None:
                kwargs["num_gpus"] = num_gpus
        ray.init(**kwargs)
    ledger = Ledger(out, db)
    bstate = BatchState(batch_size=batch_size or (spec.generator.batch_size if spec.generator else 8))
    try:
        gpus = float(ray.cluster_resources().get("GPU", 0))
        res = {"num_gpus": 1} if gpus >= 1 else {"num_cpus": 1}
        frames_r = ray.remote(num_cpus=1)(frames_task)
        gen_r = ray.remote(**res)(generate_task)
        rank_r = ray.remote(**res)(rank_task)

        # key frames: one task per title that has none yet, all at once
        states: dict[str, Any] = {}
        pending = {}
        for t in cat.titles:
            st = prepare_title(ledger, t, spec, Path(cat.path), extract=False)
            if st is not None:
                states[t.id] = st
            else:
                src = t.source if not t.demo else None
                if src is not None:
                    pending[t.id] = frames_r.remote(str(src), t.frames, t.cast_notes)
        for t in cat.titles:
            if t.id in states:
                continue
            ref = pending.get(t.id)

            def extractor(source: Any, max_frames: int, progress: Any = None, cast: Any = None,
                          ref: Any = ref) -> list[Any]:
                return ray.get(ref) if ref is not None else ray.get(frames_r.remote(str(source), max_frames, cast))

            states[t.id] = prepare_title(ledger, t, spec, Path(cat.path), extractor=extractor)
        ordered = [states[t.id] for t in cat.titles]
        run_ids = [st.run_id for st in ordered]
        {st.run_id: st for st in ordered}

        # variants: tasks of whole key frames, committed by the driver as each task finishes
        done = ledger.done_slots(run_ids)
        all_slots = [s for st in ordered for s in st.slots()]
        todo = [s for s in all_slots if s.key not in done]
        slot_of = {s.key: s for s in todo}
        made: dict[str, int] = {rid: 0 for rid in run_ids}
        total, count = len(all_slots), len(done)
        report(progress, "overall", count, total)
        pixels: dict[tuple[str, str], Any] = {}

        def shipped(s: Any) -> Any:
            key = (s.run_id, s.kf.id)
            if key not in pixels:
                pixels[key] = _with_pixels(s.kf)
            return replace(s, kf=pixels[key])

        refs = [gen_r.remote(spec.name, [shipped(s) for s in chunk], bstate.batch_size, compile)
                for chunk in _pack(todo, max(1, bstate.batch_size * 2))]
        pixels.clear()
        while refs:
            ready, refs = ray.wait(refs, num_returns=1)
            res_ = ray.get(ready[0])
            bstate.oom_retries += res_["oom_retries"]
            bstate.batch_size = min(bstate.batch_size, res_["batch_size"])
            pairs = []
            seconds = 0.0
            for key, v, per in res_["made"]:
                slot = slot_of[key]
                pairs.append((slot, replace(v, keyframe=slot.kf)))
                seconds += per
            ledger.commit_variants(pairs, seconds, res_["worker"], fmt=spec.delivery.format,
                                   quality=spec.delivery.quality)
            for slot, _ in pairs:
                made[slot.run_id] += 1
            count += len(pairs)
            report(progress, "overall", count, total)

        # rankings: one task per (title, profile) not ranked yet
        ranked = {(u.run_id, u.profile_id) for u in ledger.units("rank", run_ids)}
        jobs = []
        for st in ordered:
            if st.error is not None:  # failed in this job (its run says why): the others go on
                continue
            kfs = {kf.id: kf for kf in st.keyframes}
            for p in st.title.profiles:
                if (st.run_id, p.id) in ranked:
                    continue
                variants = ledger.variants(st.run_id, p.id, kfs)
                with_px = [replace(v, image=_open(v.path), keyframe=_with_pixels(v.keyframe)) for v in variants]
                jobs.append((st, p, variants, rank_r.remote(spec.name, with_px, p)))
        for j, (st, p, variants, ref) in enumerate(jobs):
            if st.error is not None:  # another profile of this title failed already
                continue
            try:
                rows, dt = ray.get(ref)
            except Exception as exc:  # noqa: BLE001 - one title's failure never stops the catalogue
                fail_title(ledger, st, getattr(exc, "cause", None) or exc)
                continue
            by_id = {v.id: v for v in variants}
            ranked_rows = [RankedVariant(variant=by_id[vid], profile_id=p.id, scores=ScoreSet(tuple(items)),
                                         total=total_, rank=rank, rejected=why)
                           for vid, items, total_, rank, why in rows]
            ledger.store.add_rankings(st.run_id, ranked_rows)
            link_ranked(st.run_dir, p.id, ranked_rows)
            ledger.commit_unit(st.run_id, "rank", profile_id=p.id, device_s=dt, worker="ray")
            report(progress, "rank", j + 1, len(jobs))

        handed = {u.run_id for u in ledger.units("handoff", run_ids)}
        for st in ordered:
            if st.run_id not in handed and st.error is None:
                try:
                    handoff_title(ledger, st, cat, "ray-driver")
                except Exception as exc:  # noqa: BLE001 - one title's failure never stops the catalogue
                    fail_title(ledger, st, exc)
        return title_reports(ledger, ordered, made), bstate
    finally:
        ledger.close()
        if started:
            ray.shutdown()


def _open(path: Any) -> Any:
    return load_rgb(path)
