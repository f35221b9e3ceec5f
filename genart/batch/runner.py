"""The batch job: every title of a catalogue through frames, generation, ranking and the bandit hand-off.

Exactly-once and resumable. Each title is one run of the store with a *deterministic* run id (the
title, its source's content hash, the preset and profile versions, the counts and seed), so the same
command finds its runs again. Work is split into units, and each unit's ledger row
(``genart.store.batch_tables``) is committed in the same transaction as the unit's results:

- key frames: the run's key frame rows (one transaction) are the marker;
- ``variant`` (profile, key frame, index): the variant row and its image (written first, atomically,
  named by content) with the ledger row;
- ``rank`` (profile): the rankings; ``handoff``: the bandit test and the run's result files.

Killed anywhere (SIGKILL included), a unit is either committed whole or not at all; the next run
skips every committed unit and makes only the rest. Image files are content-addressed, so a file
left by a killed unit is simply reused.

Work is sharded by ``shard=(index, count)``: key frames by title, variants by key frame (so each
frame is VAE-encoded by one process), rankings by (title, profile), hand-offs by title; processes
meet at barriers that poll the ledger (no process group needed, any number of machines sharing
the store). The ``local`` engine is shard (0, 1); ``accelerate`` runs one shard per process under
``accelerate launch``; ``ray`` is in ``genart.batch.ray_engine``. ``genart.batch.job`` picks the engine;
the ledger's SQL is in ``genart.store.batch_queries``.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

from genart.batch.catalog import Catalog, CatalogTitle
from genart.batch.gpu import BatchState, Slot, compile_models, generate_slots
from genart.errors import BatchError, GenartError, InvalidArgumentError
from genart.files import source_digest, tmp_path, write_text
from genart.progress import ProgressFn, report
from genart.store import batch_queries, run_queries
from genart.types import BatchTitleReport, BatchUnit, KeyFrame, RunManifest, Variant, stable_id
from genart.workers import pmap
from genart.provenance import c2pa_signer_from_env
from genart.demo import make_demo_clip
from genart.frames import extract_keyframes, probe_source
from genart.usecases.layout import link_keyframes, link_ranked
from genart.usecases.stages import ensure_weights, load_stages, ranking_checks
from genart.bandit.handoff import handoff
from genart.usecases.review import approved_variants, review_states
from genart.usecases.runs import load_run
from genart.usecases.tests import AUTO_APPROVER, open_test
from genart.usecases.overview import overview
from genart.store.db import Store, VariantRow  # genart.store (imported above) registers the ledger's tables

BARRIER_TIMEOUT_S = float(os.environ.get("GENART_BATCH_BARRIER_TIMEOUT", 6 * 3600))


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds")


@dataclass
class TitleState:
    """A title once its run exists: the run id and folder, its stored key frames (paths, no pixels), and
    why it failed if it did."""

    title: CatalogTitle
    run_id: str
    run_dir: Path
    source: Path
    keyframes: list[KeyFrame] = field(default_factory=list)
    error: str | None = None  # why the title failed in this job (its run row says so too); None while it goes on

    def slots(self) -> list[Slot]:
        if self.error is not None:
            return []
        return [Slot(self.run_id, p, kf, i, self.title.seed, self.title.title, self.title.genre)
                for p in self.title.profiles for kf in self.keyframes for i in range(self.title.variants_per_frame)]


class Ledger:
    """The store plus the job ledger: what is done, and committing a unit with its results."""

    def __init__(self, out: str | Path, db: str | None = None) -> None:
        self.out = Path(out)
        self.db = db
        self.store = Store(out, db)

    def close(self) -> None:
        self.store.engine.dispose()

    # --- reading --------------------------------------------------------------------------------
    def units(self, kind: str, run_ids: Sequence[str] | None = None) -> list[BatchUnit]:
        return batch_queries.units(self.store, kind, run_ids)

    def done_slots(self, run_ids: Sequence[str]) -> set[tuple[str, str, str, int]]:
        return {(u.run_id, u.profile_id, u.keyframe_id, u.idx) for u in self.units("variant", run_ids)}

    def keyframes(self, run_id: str, source: str) -> list[KeyFrame]:
        return self.store.keyframes(run_id, source)

    def variants(self, run_id: str, profile_id: str, keyframes: dict[str, KeyFrame]) -> list[Variant]:
        return self.store.variants(run_id, profile_id, keyframes)

    # --- writing --------------------------------------------------------------------------------
    def commit_variants(self, pairs: Sequence[tuple[Slot, Variant]], device_s: float, worker: str, *,
                        fmt: str = "png", quality: int = 92) -> list[Variant]:
        """Store variants and their ledger rows in one transaction (images first, atomically).

        Each variant goes through ``Store.stage_variant`` (the same PNG provenance and rows as
        ``Store.add_variants``) inside this transaction, so its ledger row commits with it. A unit committed
        already (two jobs on one folder) raises ``BatchError``.
        """
        from genart import __version__

        per = device_s / max(1, len(pairs))
        signer = c2pa_signer_from_env()
        now = _now()
        software = f"genart {__version__}"
        files = pmap(lambda pair: self.store.variant_bytes(pair[1], software, signer, fmt=fmt, quality=quality),
                     pairs)  # on the CPU threads (a JPEG the device encoded only gets its metadata there)
        made = [(BatchUnit(run_id=slot.run_id, kind="variant", profile_id=slot.profile.id, keyframe_id=slot.kf.id,
                           idx=slot.idx, variant_id=v.id, device_s=per, worker=worker, finished_at=now), v, data)
                for (slot, v), data in zip(pairs, files, strict=True)]
        stored = batch_queries.commit_variants(self.store, made, software, signer)
        return [replace(kept, image=None, encoded=None) for kept in stored]

    def commit_unit(self, run_id: str, kind: str, *, profile_id: str = "", device_s: float = 0.0, worker: str = "",
                    detail: Mapping[str, Any] | None = None) -> None:
        """Mark a title-level unit (``rank`` of a profile, ``handoff``) done, once."""
        batch_queries.commit_unit(self.store, BatchUnit(run_id=run_id, kind=kind, profile_id=profile_id,
                                                        device_s=device_s, worker=worker, finished_at=_now(),
                                                        detail=detail))


# --- titles --------------------------------------------------------------------------------------
def _demo_source(out: Path) -> Path:
    """The demo clip under the output folder, made once (atomically) and reused by every resume."""

    path = out / "demo" / "demo_clip.mp4"
    if not path.exists():
        tmp = tmp_path(path, keep_suffix=True)  # FFmpeg picks the container by the suffix
        make_demo_clip(tmp)
        os.replace(tmp, path)
    return path


def run_id_for(title: CatalogTitle, spec: Any, source_sha256: str) -> str:
    """The title's run id: the same catalogue entry, source bytes and preset give the same id."""
    h = stable_id("genart-batch-v1", title.id, source_sha256, spec.canonical_json(),
                  [(p.id, p.version) for p in title.profiles], title.frames, title.variants_per_frame, title.seed,
                  title.title, title.genre, length=10)
    return f"b-{title.id}-{h}"


def _reason(exc: BaseException) -> str:
    """What the ledger and the summary say about a title's failure: genart's message, else the exception."""

    return exc.message if isinstance(exc, GenartError) else f"{type(exc).__name__}: {exc}"


def fail_title(ledger: Ledger, state: TitleState, exc: BaseException) -> TitleState:
    """Mark one title failed (its run row says why) so the job goes on with the others; what it had done
    stays, and the next run of the same command tries it again."""
    import logging

    state.error = _reason(exc)
    logging.getLogger("genart.batch").warning("title %s failed: %s", state.title.id, state.error)
    try:
        ledger.store.finish_run(state.run_id, "failed", state.error)
    except Exception:  # noqa: BLE001 - the run row may not exist (the source could not even be read)
        pass
    return state


def prepare_title(ledger: Ledger, title: CatalogTitle, spec: Any, catalog_path: Path, *, extract: bool = True,
                  extractor: Callable[..., list[KeyFrame]] | None = None, failed_since: str | None = None,
                  progress: ProgressFn | None = None) -> TitleState | None:
    """The title's run and key frames: created (``extract``) or found. None: not there yet (another shard's).

    ``extractor(source, max_frames=, progress=, cast=)`` picks the key frames (default the frames stage's
    ``extract_keyframes``; the Ray engine passes one that runs it as a Ray task).

    A title whose source cannot be read or holds no usable frame does not raise: its run is marked
    ``failed`` with the reason and the returned state carries ``error`` (its slots are empty), so the
    other titles go on. Without ``extract`` such a state is returned for a run that failed since
    ``failed_since`` (this job's start; an older failure is retried by the shard that owns the title).
    """
    from genart import __version__

    if title.demo or title.source is None:  # the catalogue gives exactly one of the two
        if not extract and not (ledger.out / "demo" / "demo_clip.mp4").exists():
            return None
        src = _demo_source(ledger.out).resolve()
    else:
        src = title.source
    try:
        digest = source_digest(src)
        unreadable = None
    except OSError as exc:  # a folder or file the job may not read: the title fails, the job goes on
        digest, unreadable = "", exc
    run_id = run_id_for(title, spec, digest or f"unreadable:{src}")
    run_dir = ledger.store.root / "runs" / run_id
    state = TitleState(title, run_id, run_dir, src)
    run = run_queries.run_summary(ledger.store, run_id)
    has_title = batch_queries.has_batch_title(ledger.store, run_id)
    if run is None:
        if not extract:
            return None
        manifest = RunManifest(
            run_id=run_id, created_at=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            genart_version=__version__, source=str(src), source_sha256=digest, preset=spec.name,
            preset_spec=spec.canonical_json(), models=(), profiles=tuple((p.id, p.version) for p in title.profiles),
            frames=title.frames, variants_per_frame=title.variants_per_frame, seed=title.seed, title=title.title,
            genre=title.genre, checks=ranking_checks(spec))
        ledger.store.start_run(manifest)
        write_text(run_dir / "manifest.json", json.dumps(manifest.to_json(), indent=2, sort_keys=True))
    elif run.status == "failed" and extract:
        ledger.store.reopen_run(run_id)
    elif run.status == "failed" and failed_since is not None and (run.finished_at or "") >= failed_since[:19]:
        state.error = run.error or "failed"
        return state
    if not has_title and extract:
        entry = {"id": title.id, "index": title.index, "source": str(src), "title": title.title, "genre": title.genre,
                 "profiles": [p.id for p in title.profiles], "frames": title.frames,
                 "variants_per_frame": title.variants_per_frame, "seed": title.seed, "top_k": title.top_k}
        batch_queries.add_batch_title(ledger.store, run_id, title.id, str(catalog_path.resolve()), entry)
    kfs = ledger.keyframes(run_id, str(src))
    if not kfs:
        if not extract:
            return None
        try:
            if unreadable is not None:
                from genart.errors import UnsupportedMediaError

                raise UnsupportedMediaError(src, f"cannot read it: {unreadable.strerror or unreadable}")
            probe_source(src)
            made = (extractor or extract_keyframes)(src, max_frames=title.frames, progress=progress,
                                                    cast=title.cast_notes)
            ledger.store.add_keyframes(run_id, made)  # one transaction: all of the title's key frames or none
        except Exception as exc:  # noqa: BLE001 - one title's source never stops the catalogue
            return fail_title(ledger, state, exc)
        kfs = ledger.keyframes(run_id, str(src))
        del made
    link_keyframes(run_dir, kfs, replace=False)
    state.keyframes = kfs
    return state


def rank_title_profile(ledger: Ledger, state: TitleState, profile: Any, stages: Any, worker: str,
                       scored: Prescored | None = None) -> None:
    """Rank one profile of a title (all its variants are stored) and mark the unit done.

    ``scored``: the scores taken while the variants were made (``Prescored``); only the others
    (made before a resume, or by another worker) are scored here, from their stored PNGs.
    """

    variants = ledger.variants(state.run_id, profile.id, {kf.id: kf for kf in state.keyframes})
    known, dt = scored.take(state.run_id, profile.id) if scored is not None else ({}, 0.0)
    t = time.perf_counter()
    rows = stages.rank(variants, profile, scored=known)
    dt += time.perf_counter() - t
    ledger.store.add_rankings(state.run_id, rows)  # replaces: a re-ranking after a kill rewrites the same rows
    link_ranked(state.run_dir, profile.id, rows)
    ledger.commit_unit(state.run_id, "rank", profile_id=profile.id, device_s=dt, worker=worker)


def handoff_title(ledger: Ledger, state: TitleState, catalog: Catalog, worker: str) -> None:
    """Hand the title's variants to the bandit stage, write the run's result files, finish the run.

    The test is made from the variants a person approved (a re-run after a review); when none are,
    from the ranking's top-k per profile as a *draft* that serves nobody until someone approves it,
    or started at once with ``catalog.auto_approve`` (``--auto-approve``), which the test records.
    """

    title = state.title
    result = load_run(ledger.out, state.run_id, db=ledger.db)
    approved = approved_variants(ledger.out, state.run_id, db=ledger.db)
    ranked = approved or [rv for _, items in result.ranked for rv in items]
    test_id = f"{state.run_id}-test"
    detail: dict[str, object] = {"test_id": test_id, "top_k": title.top_k}
    try:
        arms = handoff(ranked, test_id, {p.id: [p.id] for p in title.profiles}, include_control=True,
                       control_image=title.control_image, top_k=None if approved else title.top_k,
                       approved=[rv.variant.id for rv in approved] if approved else None)
        if approved:
            reviewers = sorted({st.reviewer for st in review_states(ledger.out, state.run_id, db=ledger.db).values()
                                if st.status == "approve" and st.reviewer})
            how: dict[str, Any] = dict(approved_by=", ".join(reviewers)[:128] or "review")
        elif catalog.auto_approve:
            how = dict(approved_by=AUTO_APPROVER, auto_approve=True)
        else:
            how = dict(draft=True)
        info = open_test(ledger.out, state.run_id, arms, catalog.test, db=ledger.db, origin="batch", **how)  # idempotent
        detail.update(arms=[[a.segment, a.arm_id] for a in arms], status=info.status, approved_by=info.approved_by)
    except InvalidArgumentError as exc:  # nothing accepted by the ranking: no test, said in the summary
        detail.update(test_id=None, arms=[], error=exc.message)
    state.run_dir.mkdir(parents=True, exist_ok=True)
    overview(result).save(state.run_dir / "overview.png")
    write_text(state.run_dir / "result.json", json.dumps(result.to_json(), indent=2))
    ledger.store.finish_run(state.run_id, "done")
    ledger.commit_unit(state.run_id, "handoff", worker=worker, detail=detail)
    batch_queries.finish_batch_title(ledger.store, state.run_id)


class Prescored:
    """Scores taken while the images are in memory, by (run, profile): ranking them after generation
    then needs no PNG decoding and no scorer, and the scoring ran beside the accelerator instead of
    after it. In memory only: a resumed job scores what it did not make itself when it ranks."""

    def __init__(self) -> None:
        self._by: dict[tuple[str, str], tuple[dict[str, Any], float]] = {}

    def add(self, stages: Any, pairs: Sequence[tuple[Slot, Variant]]) -> None:
        groups: dict[tuple[str, str], list[tuple[Slot, Variant]]] = {}
        for slot, v in pairs:
            groups.setdefault((slot.run_id, slot.profile.id), []).append((slot, v))
        for key, group in groups.items():
            t = time.perf_counter()
            scored = stages.score([v for _, v in group], group[0][0].profile)
            known, spent = self._by.get(key, ({}, 0.0))
            known.update(zip((v.id for _, v in group), scored, strict=True))
            self._by[key] = (known, spent + time.perf_counter() - t)

    def take(self, run_id: str, profile_id: str) -> tuple[dict[str, Any], float]:
        """The scores by variant id and the seconds they took, forgotten here."""
        return self._by.pop((run_id, profile_id), ({}, 0.0))


# --- the job -------------------------------------------------------------------------------------
@dataclass
class Options:
    batch_size: int | None = None
    compile: bool = False
    worker: str = "local"
    shard: tuple[int, int] = (0, 1)
    poll_s: float = 0.5
    started_at: str = field(default_factory=lambda: _now())  # this job's start: failures since then are its own


def _tensor_embedder(stages: Any) -> Any:
    """The embedder the preset's scorers share, when it takes tensors (``CachingEmbedder.embed_tensors``)."""
    for scorer in stages.scorers:
        emb = getattr(scorer, "embedder", None)
        if emb is not None and hasattr(emb, "embed_tensors"):
            return emb
    return None


def _wait(what: str, ready: Callable[[], bool], poll_s: float) -> None:
    """A barrier over the ledger: every shard polls until the others' units are committed."""
    t = time.monotonic()
    while not ready():
        if time.monotonic() - t > BARRIER_TIMEOUT_S:
            raise BatchError(f"gave up waiting for {what} after {BARRIER_TIMEOUT_S:.0f} s: did another worker die?",
                             hint="run the same command again: finished units are kept")
        time.sleep(poll_s)


def _stages(spec: Any, opts: Options) -> Any:
    stages = load_stages(spec)
    gen = stages.generator
    if opts.compile and hasattr(gen, "model"):
        compile_models(gen.model)
    return stages


def _failed_since(ledger: Ledger, run_ids: Sequence[str], since: str) -> set[str]:
    """The runs among ``run_ids`` that failed during this job (another shard may have marked them)."""
    return {r.run_id for r in run_queries.run_summaries(ledger.store, run_ids)
            if r.status == "failed" and (r.finished_at or "") >= since[:19]}


def work(catalog: Catalog, spec: Any, ledger: Ledger, opts: Options, progress: ProgressFn | None = None
         ) -> tuple[list[TitleState], dict[str, int], BatchState]:
    """This shard's share of the whole job; returns every title's state, images made per run, batch stats.

    A title that fails (an unreadable source, no usable frame, an error while ranking or handing it
    off) is marked failed and left out of what follows; the other titles complete.
    """

    me, n = opts.shard
    if not 0 <= me < n:
        raise InvalidArgumentError("shard", opts.shard, "(index, count) with 0 <= index < count")
    ensure_weights(spec)
    titles = list(catalog.titles)
    states: dict[str, TitleState] = {}
    for i, t in enumerate(titles):  # key frames: shard by title
        if i % n == me:
            st = prepare_title(ledger, t, spec, catalog.path, progress=progress)
            if st is None:  # pragma: no cover - extract=True always makes or finds the run
                raise BatchError(f"title '{t.id}' has no run after preparing it")
            states[t.id] = st
    if n > 1:
        def all_prepared() -> bool:
            for t in titles:
                if t.id not in states:
                    st = prepare_title(ledger, t, spec, catalog.path, extract=False, failed_since=opts.started_at)
                    if st is None:
                        return False
                    states[t.id] = st
            return True

        _wait("the other workers' key frames", all_prepared, opts.poll_s)
    ordered = [states[t.id] for t in titles]
    run_ids = [st.run_id for st in ordered if st.error is None]

    # variants: shard by key frame, so each frame is encoded by one process only
    done = ledger.done_slots(run_ids)
    all_slots = [s for st in ordered for s in st.slots()]
    frames = sorted({(s.run_id, s.kf.id) for s in all_slots})
    mine_frames = {f for j, f in enumerate(frames) if j % n == me}
    todo = [s for s in all_slots if s.key not in done and (s.run_id, s.kf.id) in mine_frames]
    per_title_total = {st.run_id: len(st.slots()) for st in ordered}
    per_title_done = {rid: 0 for rid in run_ids}
    for key in done:
        per_title_done[key[0]] = per_title_done.get(key[0], 0) + 1
    overall = [len(done), len(all_slots)]
    by_run = {st.run_id: st for st in ordered}
    made: dict[str, int] = {st.run_id: 0 for st in ordered}
    report(progress, "overall", overall[0], overall[1])
    for st in ordered:
        if st.error is None:
            report(progress, st.title.id, per_title_done[st.run_id], per_title_total[st.run_id])

    stages = None
    bstate = BatchState(batch_size=opts.batch_size or (spec.generator.batch_size if spec.generator else 8),
                        fixed_shapes=opts.compile)
    scored = Prescored()
    if todo:
        stages = _stages(spec, opts)

        def on_done(pairs: list[tuple[Slot, Variant]], device_s: float) -> None:
            ledger.commit_variants(pairs, device_s, opts.worker, fmt=spec.delivery.format,
                                   quality=spec.delivery.quality)
            scored.add(stages, pairs)  # the pixels are still here: no decoding them again to rank
            for slot, _ in pairs:
                made[slot.run_id] += 1
                per_title_done[slot.run_id] += 1
                overall[0] += 1
            for rid in {slot.run_id for slot, _ in pairs}:
                report(progress, by_run[rid].title.id, per_title_done[rid], per_title_total[rid])
            report(progress, "overall", overall[0], overall[1])

        gen = stages.generator
        embedder = _tensor_embedder(stages) if getattr(gen, "tensor_finishing", False) else None
        if embedder is not None:  # CLIP scores from the finished tensors, on the accelerator
            gen.on_finished = lambda vs, px: embedder.embed_tensors(
                [p for p in px if p is not None], [v.image for v, p in zip(vs, px) if p is not None])
        try:
            generate_slots(gen, todo, on_done, bstate)
        finally:
            if embedder is not None:
                del gen.on_finished
    if n > 1:
        _wait("the other workers' variants", lambda: len(ledger.done_slots(run_ids)) >= len(all_slots), opts.poll_s)

    def settled(kind: str, expected: Callable[[TitleState], int]) -> Callable[[], bool]:
        """Every title still going has its units of ``kind``, or failed meanwhile (on any shard)."""
        def ready() -> bool:
            failed = _failed_since(ledger, run_ids, opts.started_at)
            have: dict[str, int] = {}
            for u in ledger.units(kind, run_ids):
                have[u.run_id] = have.get(u.run_id, 0) + 1
            return all(st.run_id in failed or have.get(st.run_id, 0) >= expected(st)
                       for st in ordered if st.error is None)
        return ready

    # rankings: shard by (title, profile)
    ranked = {(u.run_id, u.profile_id) for u in ledger.units("rank", run_ids)}
    pairs = [(st, p) for st in ordered if st.error is None for p in st.title.profiles]
    for j, (st, p) in enumerate(pairs):
        if j % n == me and (st.run_id, p.id) not in ranked and st.error is None:
            if stages is None:
                stages = _stages(spec, opts)
            report(progress, "rank", j, len(pairs))
            try:
                rank_title_profile(ledger, st, p, stages, opts.worker, scored)
            except Exception as exc:  # noqa: BLE001 - one title's failure never stops the catalogue
                fail_title(ledger, st, exc)
    if n > 1:
        _wait("the other workers' rankings", settled("rank", lambda st: len(st.title.profiles)), opts.poll_s)
        for rid in _failed_since(ledger, run_ids, opts.started_at):
            if by_run[rid].error is None:
                by_run[rid].error = "failed on another worker"

    # hand-off: shard by title
    handed = {u.run_id for u in ledger.units("handoff", run_ids)}
    for j, st in enumerate(ordered):
        if j % n == me and st.run_id not in handed and st.error is None:
            try:
                handoff_title(ledger, st, catalog, opts.worker)
            except Exception as exc:  # noqa: BLE001
                fail_title(ledger, st, exc)
    if n > 1:
        _wait("the other workers' hand-offs", settled("handoff", lambda st: 1), opts.poll_s)
    return ordered, made, bstate


# --- the summary -----------------------------------------------------------------------------------
def title_reports(ledger: Ledger, states: Sequence[TitleState], made: dict[str, int]) -> list[BatchTitleReport]:
    """Each title as the ledger and the store say it stands (the rows of the job's summary)."""

    run_ids = [st.run_id for st in states]
    units: dict[tuple[str, str], list[BatchUnit]] = {}
    for kind in ("variant", "rank", "handoff"):
        for u in ledger.units(kind, run_ids):
            units.setdefault((u.run_id, kind), []).append(u)
    runs = {r.run_id: r for r in run_queries.run_summaries(ledger.store, run_ids)}
    out = []
    for st in states:
        rid = st.run_id
        images = ledger.store.count(VariantRow, rid)
        best = []
        for p in st.title.profiles:
            first = next(((vid, total) for vid, rank, total, _ in ledger.store.rankings(rid, p.id) if rank == 1),
                         None)
            if first is not None:
                best.append((p.id, first[0], round(first[1], 4)))
        device_s = sum(u.device_s for k in ("variant", "rank") for u in units.get((rid, k), []))
        gen_s = sum(u.device_s for u in units.get((rid, "variant"), []))
        hand = units.get((rid, "handoff"))
        detail: Mapping[str, Any] = (hand[0].detail or {}) if hand else {}
        run = runs.get(rid)
        expected = len(st.title.profiles) * len(st.keyframes) * st.title.variants_per_frame
        failed = st.error is not None or (run is not None and run.status == "failed")
        status = "failed" if failed else "done" if hand else ("partial" if images else "pending")
        out.append(BatchTitleReport(
            title_id=st.title.id, run_id=rid, status=status, keyframes=len(st.keyframes), images=images,
            expected=expected, made_now=made.get(rid, 0), device_s=round(device_s, 4),
            images_per_s=round(images / gen_s, 3) if gen_s > 0 else 0.0, test_id=detail.get("test_id"),
            arms=len(detail.get("arms") or []), best=tuple(best),
            error=(st.error or (run.error if run is not None else None)) if failed else detail.get("error")))
    return out
