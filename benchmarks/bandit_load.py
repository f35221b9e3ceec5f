"""A bounded loopback load check of the bandit service: nothing lost, nothing counted twice.

Starts the real service (uvicorn, FastAPI) on 127.0.0.1 with an ephemeral port over a fresh SQLite
store, fires a bounded burst of concurrent requests (each worker: ``POST /assign``, then
``POST /reward`` twice for the same exposure, the second being a retry), then reads the store with
a fresh engine and checks that every exposure the service returned is stored exactly once, every
reward exactly once, and the per-arm totals equal the log.

Usage: ``python benchmarks/bandit_load.py [--requests 400] [--concurrency 16] [--json]``; the
whole check is bounded by ``--timeout`` seconds. Loopback only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from genart.bandit.simulator import Population  # noqa: E402
from genart.bandit.tester import Tester  # noqa: E402
from genart.bandit.types import TestConfig  # noqa: E402

MAX_REQUESTS = 5000


def run_load(store: str | Path, *, requests: int = 400, concurrency: int = 16, timeout_s: float = 60.0,
             policy: str = "ts") -> dict[str, object]:
    """Runs the check; returns counts, timings and ``ok``. Raises ``RuntimeError`` on a timeout."""
    import httpx
    import uvicorn

    from genart.bandit.service import create_app

    requests = max(1, min(int(requests), MAX_REQUESTS))
    concurrency = max(1, min(int(concurrency), 64))
    pop = Population.random(4, 3, seed=0)
    tester = Tester(store, seed=0)
    tester.create_test("load", pop.arms_for("load"), TestConfig(policy=policy, floor=0.02, mc_samples=200))
    app = create_app(tester)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout_s
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            server.should_exit = True
            raise RuntimeError("the service did not start")
        time.sleep(0.02)
    port = server.servers[0].sockets[0].getsockname()[1]
    base = f"http://127.0.0.1:{port}"
    rng_segments = [pop.segments[i % len(pop.segments)] for i in range(requests)]
    results: list[tuple[str, str, str]] = []
    errors: list[str] = []
    lock = threading.Lock()

    def one(i: int, client: httpx.Client) -> None:
        try:
            r = client.post("/assign", json={"test_id": "load", "segment": rng_segments[i], "user_id": f"u{i}"})
            r.raise_for_status()
            eid = r.json()["exposure_id"]
            reward = float(i % 5 == 0)
            s1 = client.post("/reward", json={"exposure_id": eid, "reward": reward}).json()["status"]
            s2 = client.post("/reward", json={"exposure_id": eid, "reward": reward}).json()["status"]
            with lock:
                results.append((eid, s1, s2))
        except Exception as exc:  # collected and reported, never swallowed
            with lock:
                errors.append(f"{type(exc).__name__}: {exc}")

    t0 = time.perf_counter()
    try:
        with httpx.Client(base_url=base, timeout=timeout_s) as client:
            with ThreadPoolExecutor(concurrency) as pool:
                futures = [pool.submit(one, i, client) for i in range(requests)]
                for f in futures:
                    f.result(timeout=max(0.1, deadline - time.monotonic()))
    finally:
        elapsed = time.perf_counter() - t0
        server.should_exit = True
        thread.join(10)

    fresh = Tester(store)
    n_exp, n_out = fresh.counts("load")
    from sqlalchemy import func, select

    from genart.store.bandit_tables import BanditExposureRow, BanditOutcomeRow

    ids = [r[0] for r in results]
    with fresh.engine.connect() as conn:
        stored = {row[0]: row[1] for row in conn.execute(
            select(BanditExposureRow.exposure_id, func.count()).group_by(BanditExposureRow.exposure_id))}
        rewarded = {row[0]: row[1] for row in conn.execute(
            select(BanditOutcomeRow.exposure_id, func.count()).group_by(BanditOutcomeRow.exposure_id))}
    rep = fresh.report("load")
    impressions = sum(a.impressions for s in rep.segments for a in s.arms)
    outcomes = sum(a.outcomes for s in rep.segments for a in s.arms)
    ok = (not errors and len(results) == requests and n_exp == requests and n_out == requests
          and all(stored.get(i) == 1 and rewarded.get(i) == 1 for i in ids)
          and all(s1 == "recorded" and s2 == "duplicate" for _, s1, s2 in results)
          and impressions == requests and outcomes == requests)
    return {"ok": ok, "requests": requests, "concurrency": concurrency, "exposures": n_exp, "outcomes": n_out,
            "errors": errors[:5], "n_errors": len(errors), "seconds": round(elapsed, 3),
            "http_requests_per_s": round(3 * len(results) / elapsed, 1) if elapsed else None}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="bounded loopback load check of the bandit service")
    ap.add_argument("--requests", type=int, default=400, help=f"members (each: 1 assign + 2 rewards); max {MAX_REQUESTS}")
    ap.add_argument("--concurrency", type=int, default=16)
    ap.add_argument("--timeout", type=float, default=120.0)
    ap.add_argument("--store", default=None, help="SQLite path or URL (default: a temporary file)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        store = args.store or os.path.join(tmp, "load.db")
        res = run_load(store, requests=args.requests, concurrency=args.concurrency, timeout_s=args.timeout)
    print(f"{res['requests']} members x (assign + reward + retried reward) at concurrency {res['concurrency']}: "
          f"{res['seconds']} s, {res['http_requests_per_s']} HTTP requests/s; exposures {res['exposures']}, "
          f"outcomes {res['outcomes']}; {'OK' if res['ok'] else 'FAILED'}")
    if args.json:
        print(json.dumps(res))
    return 0 if res["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
