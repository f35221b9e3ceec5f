"""``--engine accelerate``: one shard of the job per process under ``accelerate launch``.

The parent runs ``accelerate launch --num_processes N [--multi_gpu] -m genart.batch.launch ...`` and
draws progress from the ledger while the workers run. Each worker takes its shard from the
environment that ``accelerate launch`` (torchrun) sets (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``),
pins itself to ``cuda:LOCAL_RANK`` when there are GPUs, and runs ``runner.work`` on its shard. The
shards meet at barriers over the shared ledger, so no NCCL/gloo process group is needed: the same
split works on GPUs, on the CPU (``--multi_gpu`` with CPU-only workers, as the tests do), and across
machines that share the store (a PostgreSQL ``--db`` and a shared ``--out``).
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from genart.errors import BatchError, GenartError
from genart.progress import ProgressFn, report
from genart.batch.runner import Ledger, Options, prepare_title, title_reports, work
from genart.config import load_models_config
from genart.store import batch_queries
from genart.batch.catalog import load_catalog


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _accelerate_bin() -> list[str]:
    exe = Path(sys.executable).parent / "accelerate"
    if exe.exists():
        return [str(exe)]
    found = shutil.which("accelerate")
    if found:
        return [found]
    return [sys.executable, "-m", "accelerate.commands.accelerate_cli"]


def launch_command(catalog: Path, out: Path, *, num_processes: int, cuda: bool, db: str | None = None,
                   batch_size: int | None = None, compile: bool = False, auto_approve: bool = False) -> list[str]:
    """The ``accelerate launch`` command line that runs the job's workers."""
    cmd = _accelerate_bin() + ["launch", "--num_processes", str(num_processes), "--num_machines", "1",
                               "--mixed_precision", "no", "--dynamo_backend", "no",
                               "--main_process_port", str(_free_port())]
    if num_processes > 1:
        cmd.append("--multi_gpu")  # torchrun: N processes with RANK/WORLD_SIZE (workers need no NCCL)
    elif not cuda:
        cmd.append("--cpu")
    cmd += ["-m", "genart.batch.launch", str(catalog), "--out", str(out)]
    if db:
        cmd += ["--db", db]
    if batch_size:
        cmd += ["--batch-size", str(batch_size)]
    if compile:
        cmd.append("--compile")
    if auto_approve:
        cmd.append("--auto-approve")
    return cmd


def launch_accelerate(cat: Any, out: Path, *, db: str | None = None, batch_size: int | None = None,
                      compile: bool = False, num_processes: int | None = None,
                      progress: ProgressFn | None = None, auto_approve: bool = False) -> list[Any]:
    """Run the catalogue with ``accelerate launch`` and return the title reports from the ledger."""
    import torch

    cuda = torch.cuda.is_available()
    n = num_processes or (torch.cuda.device_count() if cuda else 2)
    if n < 1:
        raise BatchError(f"invalid number of processes: {n}")
    started = time.time()
    cmd = launch_command(Path(cat.path).resolve(), Path(out).resolve(), num_processes=n, cuda=cuda, db=db,
                         batch_size=batch_size, compile=compile, auto_approve=auto_approve)
    proc = subprocess.Popen(cmd, env={**os.environ, "GENART_BATCH_STARTED": str(started)})
    spec = load_models_config().preset(cat.preset)
    ledger = Ledger(out, db)
    try:
        while proc.poll() is None:
            time.sleep(1.0)
            if progress is not None:
                done = batch_queries.count_units(ledger.store, "variant")
                report(progress, "variants stored", done, max(1, sum(t.images for t in cat.titles)))
        if proc.returncode != 0:
            raise BatchError(f"accelerate launch exited with status {proc.returncode}: {' '.join(cmd)}",
                             hint="finished units are kept: run the same command again to resume")
        states = []
        since = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="microseconds")
        for t in cat.titles:
            st = prepare_title(ledger, t, spec, Path(cat.path), extract=False, failed_since=since)
            if st is None:
                raise BatchError(f"title '{t.id}' has no run after the workers finished")
            states.append(st)
        made = _made_since(ledger, [st.run_id for st in states], started)
        return title_reports(ledger, states, made)
    finally:
        if proc.poll() is None:
            proc.terminate()
        ledger.close()


def _made_since(ledger: Any, run_ids: list[str], started: float) -> dict[str, int]:
    since = datetime.fromtimestamp(started, timezone.utc).isoformat(timespec="microseconds")
    made: dict[str, int] = {}
    for u in ledger.units("variant", run_ids):
        if u.finished_at >= since:
            made[u.run_id] = made.get(u.run_id, 0) + 1
    return made


def worker_main(argv: list[str] | None = None) -> int:
    """One worker: its shard from RANK/WORLD_SIZE, its device from LOCAL_RANK."""
    ap = argparse.ArgumentParser(prog="genart.batch.launch")
    ap.add_argument("catalog")
    ap.add_argument("--out", required=True)
    ap.add_argument("--db", default=None)
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--auto-approve", action="store_true")
    args = ap.parse_args(argv)
    rank = int(os.environ.get("RANK", 0))
    world = int(os.environ.get("WORLD_SIZE", 1))
    local = int(os.environ.get("LOCAL_RANK", rank))
    import torch

    if "GENART_DEVICE" not in os.environ:
        os.environ["GENART_DEVICE"] = f"cuda:{local}" if torch.cuda.is_available() else "cpu"

    try:
        cat = load_catalog(args.catalog)
        if args.auto_approve:
            from dataclasses import replace

            cat = replace(cat, auto_approve=True)
        spec = load_models_config().preset(cat.preset)
        ledger = Ledger(args.out, args.db)
        try:
            started = float(os.environ.get("GENART_BATCH_STARTED") or time.time())
            work(cat, spec, ledger, Options(batch_size=args.batch_size, compile=args.compile,
                                            worker=f"accelerate:{rank}/{world}", shard=(rank, world),
                                            started_at=datetime.fromtimestamp(started, timezone.utc)
                                            .isoformat(timespec="microseconds")))
        finally:
            ledger.close()
    except GenartError as exc:
        print(f"worker {rank}: error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":  # pragma: no cover - run by accelerate launch
    raise SystemExit(worker_main())
