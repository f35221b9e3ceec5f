"""``genart batch``: the job's entry point. It checks the arguments, takes the output folder's lock and
hands the catalogue to an engine: ``local`` (``runner.work`` in this process), ``accelerate``
(``genart.batch.launch``) or ``ray`` (``genart.batch.ray_engine``); then it writes the summary.

The engines schedule the same units (``genart.batch.runner``) over the one generation engine
(``genart.batch.gpu`` driving ``DiffusionGenerator.prepare / plan_job / chunk_inputs / run_chunk``);
this module is the only one that knows all three, so the engines never import each other or it.
"""

from __future__ import annotations

import csv
import io
import json
import os
import time
from dataclasses import replace
from pathlib import Path
from typing import Any, Sequence

from genart.batch.catalog import Catalog, load_catalog
from genart.batch.gpu import BatchState
from genart.batch.runner import Ledger, Options, title_reports, work
from genart.errors import BatchError, InvalidArgumentError, StoreError
from genart.files import FileLock, write_text
from genart.progress import ProgressFn
from genart.types import BatchReport, BatchTitleReport
from genart.config import load_models_config

ENGINES = ("local", "accelerate", "ray")

SUMMARY_COLUMNS = ("title_id", "run_id", "status", "keyframes", "images", "expected", "made_now", "device_s",
                   "images_per_s", "test_id", "arms", "best", "error")


def write_summary(out: Path, reports: Sequence[BatchTitleReport]) -> tuple[Path, Path]:
    """``batch_summary.csv`` and ``batch_summary.json`` in ``out``, each written atomically."""
    from dataclasses import asdict

    rows = []
    for r in reports:
        d = asdict(r)
        d["best"] = " ".join(f"{p}:{v[:10]}({t:.3f})" for p, v, t in r.best)
        rows.append(d)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(SUMMARY_COLUMNS))
    w.writeheader()
    for d in rows:
        w.writerow({k: d.get(k) for k in SUMMARY_COLUMNS})
    csv_path, json_path = out / "batch_summary.csv", out / "batch_summary.json"
    write_text(csv_path, buf.getvalue())
    write_text(json_path, json.dumps({"titles": [asdict(r) for r in reports]}, indent=2))
    return csv_path, json_path


def run_catalog(catalog: Catalog | str | Path, out: str | Path, *, engine: str = "local", db: str | None = None,
                batch_size: int | None = None, compile: bool = False, num_processes: int | None = None,
                ray_address: str | None = None, ray_num_cpus: int | None = None, ray_num_gpus: float | None = None,
                progress: ProgressFn | None = None, auto_approve: bool | None = None) -> BatchReport:
    """Run (or resume) a catalogue. See ``genart batch --help``.

    Args:
        catalog: a ``Catalog`` or the path of its YAML file.
        out: the store folder (``genart.sqlite``, ``images/``, ``runs/<run id>/``, the summary files).
        engine: ``local`` (this process), ``accelerate`` (``accelerate launch``, one shard per process)
            or ``ray`` (Ray tasks with GPU resources).
        batch_size: the first batch size to try (default the preset's); halved on each OOM.
        compile: ``torch.compile`` the UNet.
        num_processes: processes for ``accelerate`` (default: the number of GPUs, else 2).
        ray_address, ray_num_cpus, ray_num_gpus: where Ray runs (default a local Ray with the CPUs given).
        progress: ``progress(name, done, total)``: ``overall``, each title id, ``rank``.
        auto_approve: start each title's test from the ranking's top-k without a person (kept in
            the test); None: the catalogue's ``auto_approve`` (default false: a draft test).

    Returns:
        A ``BatchReport``, one row per title, and the summary files written. A title that could not
        be done (an unreadable source, say) has status ``failed`` and its reason in ``error``; the
        others complete. ``BatchReport.failed`` lists the failed ones; running again retries them.

    Raises:
        CatalogError: a malformed catalogue. InvalidArgumentError: a bad engine or batch size.
        BatchError: another job holds the output folder's lock, an engine cannot start or a worker
            failed. And what ``create_variants`` raises for the job as a whole (a missing model).
    """

    if engine not in ENGINES:
        raise InvalidArgumentError("engine", engine, ", ".join(ENGINES))
    if batch_size is not None and (isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1):
        raise InvalidArgumentError("batch_size", batch_size, "a positive integer")
    cat = catalog if isinstance(catalog, Catalog) else load_catalog(catalog)
    if auto_approve is not None:
        if not isinstance(auto_approve, bool):
            raise InvalidArgumentError("auto_approve", auto_approve, "True, False or None")
        cat = replace(cat, auto_approve=auto_approve)
    spec = load_models_config().preset(cat.preset)
    out = Path(out)
    lock = lock_output(out, cat.path)
    try:
        return _run_locked(cat, spec, out, engine=engine, db=db, batch_size=batch_size, compile=compile,
                           num_processes=num_processes, ray_address=ray_address, ray_num_cpus=ray_num_cpus,
                           ray_num_gpus=ray_num_gpus, progress=progress)
    finally:
        lock.release()


LOCK_NAME = "batch.lock"


def lock_output(out: Path, catalog: Path | str = "") -> FileLock:
    """The output folder's batch lock, taken before anything is written: one job per folder.

    Raises:
        BatchError: another job holds it (the message names its pid, host and start time).
    """

    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = FileLock(out / LOCK_NAME, what=f"genart batch {catalog}")
        got = lock.acquire()
    except OSError as exc:
        raise StoreError(f"cannot create the output folder {out}: {exc.strerror or exc}") from None
    if not got:
        raise BatchError(f"another genart batch job is running on {out}: {lock.describe_holder()}",
                         hint="wait for it to finish (finished units are kept), or give this job another --out")
    return lock


def _run_locked(cat: Catalog, spec: Any, out: Path, *, engine: str, db: str | None, batch_size: int | None,
                compile: bool, num_processes: int | None, ray_address: str | None, ray_num_cpus: int | None,
                ray_num_gpus: float | None, progress: ProgressFn | None) -> BatchReport:
    t0 = time.perf_counter()
    bstate: BatchState | None = None
    if engine == "local":
        ledger = Ledger(out, db)
        try:
            states, made, bstate = work(cat, spec, ledger, Options(batch_size=batch_size, compile=compile,
                                                                   worker=f"local:{os.getpid()}"), progress)
            reports = title_reports(ledger, states, made)
        finally:
            ledger.close()
    elif engine == "accelerate":
        from genart.batch.launch import launch_accelerate

        reports = launch_accelerate(cat, out, db=db, batch_size=batch_size, compile=compile,
                                    num_processes=num_processes, progress=progress, auto_approve=cat.auto_approve)
    else:
        from genart.batch.ray_engine import run_ray

        reports, bstate = run_ray(cat, spec, out, db=db, batch_size=batch_size, compile=compile, address=ray_address,
                                  num_cpus=ray_num_cpus, num_gpus=ray_num_gpus, progress=progress)
    csv_path, json_path = write_summary(out, reports)
    return BatchReport(catalog=cat.path, out=out, engine=engine, preset=spec.name, titles=tuple(reports),
                       wall_s=round(time.perf_counter() - t0, 3), summary_csv=csv_path, summary_json=json_path,
                       oom_retries=bstate.oom_retries if bstate else 0,
                       stage_s=tuple(sorted((k, round(v, 4)) for k, v in bstate.stage_s.items())) if bstate else (),
                       batch_size=bstate.batch_size if bstate else None)
