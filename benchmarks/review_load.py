"""The review app under several reviewers at once: decisions per second and the time a decision takes.

Makes a store with one classic run (a still, 2 profiles x 2 key frames x 2 variants), starts the real
app (``genart app`` in its own process) on 127.0.0.1, and has ``--reviewers`` reviewers (threads,
each its own ``gradio_client`` session, as a browser tab is) decide at the same time: each opens the
run, then ``--decisions`` times picks a variant (the ``/variant`` endpoint gives the version it sees)
and approves, rejects or flags it (``/approve`` ...), as the Review tab does. A decision refused as
stale (another reviewer decided first) is counted as a conflict and decided again on what is shown.
Reported: decisions saved per second, median and p90 time of a decision call, conflicts, the app
process's CPU seconds per decision (a figure a shared CPU disturbs less than the wall clock), and a
check that the audit log holds exactly the decisions that were saved, versions 1..n per variant.

The peer, measured in the same run on its own copy of the store: the same reviewers deciding through
``genart.api.record_decision`` directly (no app, no HTTP, no page refresh): the store's own speed.
``ratio`` is the app's decisions/s over the peer's (1.0 would mean the app adds nothing). With
``--peer-src DIR`` (another checkout, e.g. of main before a change) the same app load also runs
against the app started from that tree, and ``ratio_vs_src`` is this app's decisions/s over that one's.

Usage: ``python benchmarks/review_load.py [--reviewers 8] [--decisions 6] [--peer-src DIR] [--json]``;
with ``--json`` the last line is one JSON object. The CPU may be shared: compare within one run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from benchmarks.bandit_load import _cpu_s  # noqa: E402  (one way to read a process's CPU time)

ACTIONS = ("approve", "reject", "flag")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_store(out: Path) -> tuple[str, list[tuple[str, str]]]:
    """A store with one classic run; returns its id and its (variant id, profile id) pairs."""
    from PIL import Image
    from skimage import data

    from genart import api

    still = out.parent / "still.png"
    Image.fromarray(data.astronaut()).save(still)
    stage = api.stage_source(still, out, max_frames=1)
    run = api.create_run_from_stage(out, stage.stage_id, profiles=["romance", "thriller"], preset="classic",
                                    variants_per_frame=4)
    pairs = [(rv.variant.id, pid) for pid, items in run.ranked for rv in items]
    pairs += [(rv.variant.id, pid) for pid, items in run.rejected for rv in items]
    return run.run_id, pairs


def _pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(q * (len(xs) - 1))))] if xs else float("nan")


def _check_log(out: Path, run_id: str, saved: int) -> bool:
    from genart import api

    log = api.decisions(out, run_id)
    per: dict[str, list[int]] = {}
    for d in log:
        per.setdefault(d.variant_id, []).append(d.version)
    return len(log) == saved and all(sorted(v) == list(range(1, len(v) + 1)) for v in per.values())


def app_load(out: Path, run_id: str, pairs: list[tuple[str, str]], reviewers: int, decisions: int,
             src: Path = REPO, timeout_s: float = 600.0) -> dict[str, object]:
    """The app (started from ``src``) under ``reviewers`` deciding ``decisions`` times each."""
    from gradio_client import Client

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(src), "GRADIO_ANALYTICS_ENABLED": "False", "HF_HUB_OFFLINE": "1"}
    env.pop("GENART_APP_AUTH", None)
    proc = subprocess.Popen([sys.executable, "-m", "genart.cli", "app", "--out", str(out), "--port", str(port)],
                            cwd=str(src), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 180
        clients = []
        while len(clients) < reviewers:
            try:
                c = Client(url, verbose=False)
                c.predict(None, api_name="/list_runs")
                c.predict(run_id, api_name="/open_run")
                clients.append(c)
            except Exception as exc:  # noqa: BLE001 - not up yet
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the app did not start: {proc.stderr.read()[-2000:] if proc.stderr else ''}") from exc
                time.sleep(0.5)
        lat: list[float] = []
        counts = {"saved": 0, "conflicts": 0, "errors": 0}
        lock = threading.Lock()
        barrier = threading.Barrier(reviewers)

        def reviewer(i: int, c) -> None:
            barrier.wait()
            for k in range(decisions):
                vid, pid = pairs[(i + reviewers * k) % len(pairs)]  # a variant of its own: no conflicts
                while True:
                    seen = c.predict(run_id, vid, api_name="/variant")[-1]  # the version the page shows
                    t = time.perf_counter()
                    try:
                        c.predict(run_id, vid, f"reviewer-{i}", f"note {k}", seen, pid,
                                  api_name="/" + ACTIONS[(i + k) % 3])
                    except Exception as exc:  # noqa: BLE001 - a stale decision is an error to the client
                        with lock:
                            key = "conflicts" if "changed while you were looking" in str(exc) else "errors"
                            counts[key] += 1
                        if key == "errors":
                            break
                        continue
                    with lock:
                        lat.append(time.perf_counter() - t)
                        counts["saved"] += 1
                    break

        threads = [threading.Thread(target=reviewer, args=(i, c)) for i, c in enumerate(clients)]
        cpu0 = _cpu_s(proc.pid)
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout_s)
        wall = time.perf_counter() - t0
        cpu = _cpu_s(proc.pid) - cpu0
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:  # pragma: no cover
            proc.kill()
    return {"decisions_per_s": round(counts["saved"] / wall, 2), "saved": counts["saved"],
            "conflicts": counts["conflicts"], "errors": counts["errors"], "wall_s": round(wall, 2),
            "app_cpu_s_per_decision": round(cpu / max(1, counts["saved"]), 3),
            "median_s": round(statistics.median(lat), 3) if lat else None, "p90_s": round(_pct(lat, 0.9), 3),
            "log_ok": _check_log(out, run_id, counts["saved"]) and counts["errors"] == 0}


def api_load(out: Path, run_id: str, pairs: list[tuple[str, str]], reviewers: int, decisions: int) -> dict[str, object]:
    """The peer: the same reviewers deciding through genart.api directly (the store's own speed)."""
    from genart import api
    from genart.errors import DecisionConflictError

    lat: list[float] = []
    counts = {"saved": 0, "conflicts": 0}
    lock = threading.Lock()
    barrier = threading.Barrier(reviewers)

    def reviewer(i: int) -> None:
        barrier.wait()
        for k in range(decisions):
            vid, _ = pairs[(i + reviewers * k) % len(pairs)]
            while True:
                seen = api.review_states(out, run_id)[vid].version
                t = time.perf_counter()
                try:
                    api.record_decision(out, run_id, vid, ACTIONS[(i + k) % 3], f"reviewer-{i}", f"note {k}",
                                        expected_version=seen)
                except DecisionConflictError:
                    with lock:
                        counts["conflicts"] += 1
                    continue
                with lock:
                    lat.append(time.perf_counter() - t)
                    counts["saved"] += 1
                break

    threads = [threading.Thread(target=reviewer, args=(i,)) for i in range(reviewers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    return {"decisions_per_s": round(counts["saved"] / wall, 2), "saved": counts["saved"],
            "conflicts": counts["conflicts"], "wall_s": round(wall, 2),
            "median_s": round(statistics.median(lat), 3) if lat else None, "p90_s": round(_pct(lat, 0.9), 3),
            "log_ok": _check_log(out, run_id, counts["saved"])}


def _line(name: str, r: dict) -> str:
    cpu = f"  app CPU {r['app_cpu_s_per_decision']} s/decision" if "app_cpu_s_per_decision" in r else ""
    return (f"{name:<34} {r['decisions_per_s']:>6} decisions/s  median {r['median_s']} s  p90 {r['p90_s']} s  "
            f"saved {r['saved']}  conflicts {r['conflicts']}{cpu}  log {'OK' if r['log_ok'] else 'WRONG'}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="the review app under several reviewers at once, against its peers")
    ap.add_argument("--reviewers", type=int, default=8)
    ap.add_argument("--decisions", type=int, default=6, help="decisions per reviewer")
    ap.add_argument("--peer-src", type=Path, default=None, help="another checkout whose app to load the same way")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    res: dict[str, object] = {"machine": f"{os.cpu_count()} CPUs (possibly shared)", "reviewers": args.reviewers}
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp) / "store"
        run_id, pairs = make_store(base)
        copies = {}
        for name in ("app", "api", "src"):
            copies[name] = Path(tmp) / name / "store"
            shutil.copytree(base, copies[name])
        app = app_load(copies["app"], run_id, pairs, args.reviewers, args.decisions)
        print(_line("genart app (this tree)", app))
        peer = api_load(copies["api"], run_id, pairs, args.reviewers, args.decisions)
        print(_line("peer: genart.api directly", peer))
        res.update(app=app, api=peer, ratio=round(app["decisions_per_s"] / max(1e-9, peer["decisions_per_s"]), 3))
        ok = bool(app["log_ok"]) and bool(peer["log_ok"])
        if args.peer_src is not None:
            other = app_load(copies["src"], run_id, pairs, args.reviewers, args.decisions, src=args.peer_src.resolve())
            print(_line(f"genart app ({args.peer_src})", other))
            res["src"] = other
            res["ratio_vs_src"] = round(app["decisions_per_s"] / max(1e-9, other["decisions_per_s"]), 3)
            res["ratio_cpu_vs_src"] = round(other["app_cpu_s_per_decision"] / max(1e-9, app["app_cpu_s_per_decision"]), 3)
            ok = ok and bool(other["log_ok"])
        print(f"ratio (the app's decisions/s over genart.api's): {res['ratio']}"
              + (f"; over {args.peer_src}'s app: {res['ratio_vs_src']} (its app CPU per decision over this one's: "
                 f"{res['ratio_cpu_vs_src']})" if "ratio_vs_src" in res else ""))
    if args.json:
        print(json.dumps(res))
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
