"""genart's Thompson sampling vs MABWiser's on the same simulated audience, in one run.

Both face the same pre-drawn environment (segment of each member and one uniform per member and
arm, so the same members and the same potential clicks), the same number of rounds, flat Beta(1, 1)
priors, one posterior per segment x arm, no exploration floor. Reported: decisions per second
(wall time of the whole decide -> observe -> update loop) and expected regret.

- genart: :func:`genart.bandit.simulator.simulate` with ``policy="ts"``: batched decisions (a
  growing batch schedule), explicit probabilities per arm (the propensities genart logs) and
  vectorised draws.
- MABWiser "online": one ``MAB(ThompsonSampling)`` per segment, ``predict()`` then
  ``partial_fit`` for every member, as a service deciding one request at a time would use it.
  ``ratio`` is against this.
- MABWiser "batched" (reported for context, ``ratio_vs_mabwiser_batched``): the same batch schedule
  as genart, ``predict`` for all members of a segment in the batch, then ``partial_fit`` on the
  batch.

Thompson sampling's regret varies a lot from run to run (a run that locks on a second-best arm
early pays for it), so the run repeats the whole comparison on ``--reps`` independent environments
(same audience, fresh draws) and reports the mean regret per replication with its standard error.
Decisions per second are over all replications.

Usage: ``python benchmarks/bandit.py [--rounds 50000] [--reps 10] [--arms 6] [--segments 4] [--json]``.
With ``--json`` the last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from genart.bandit.simulator import Environment, Population, batch_schedule, simulate  # noqa: E402


def run_genart(pop: Population, env: Environment, rounds: int, seed: int, max_batch: int) -> tuple[float, float, float]:
    t0 = time.perf_counter()
    res = simulate(pop, "ts", rounds, seed=seed, env=env, checkpoints=0, max_batch=max_batch)
    dt = time.perf_counter() - t0
    return rounds / dt, res.regret, res.best_arm_share


def _mabs(pop: Population, seed: int):
    from mabwiser.mab import MAB, LearningPolicy

    arms = list(range(len(pop.arms)))
    out = []
    for s in range(len(pop.segments)):
        m = MAB(arms, LearningPolicy.ThompsonSampling(), seed=seed + s)
        m.fit(np.array([], dtype=int), np.array([], dtype=float))
        out.append(m)
    return out


def run_mabwiser_online(pop: Population, env: Environment, rounds: int, seed: int) -> tuple[float, float, float]:
    mabs = _mabs(pop, seed)
    rates = pop.rate_array
    best = rates.max(axis=1)
    best_arm = rates.argmax(axis=1)
    segs = env.segments
    u = env.uniforms
    regret = 0.0
    hits = 0
    t0 = time.perf_counter()
    for i in range(rounds):
        s = int(segs[i])
        m = mabs[s]
        a = int(m.predict())
        r = 1.0 if u[i, a] < rates[s, a] else 0.0
        m.partial_fit([a], [r])
        regret += best[s] - rates[s, a]
        hits += a == best_arm[s]
    dt = time.perf_counter() - t0
    return rounds / dt, float(regret), hits / rounds


def run_mabwiser_batched(pop: Population, env: Environment, rounds: int, seed: int,
                         max_batch: int) -> tuple[float, float, float]:
    mabs = _mabs(pop, seed)
    rates = pop.rate_array
    best = rates.max(axis=1)
    best_arm = rates.argmax(axis=1)
    regret = 0.0
    hits = 0
    t = 0
    t0 = time.perf_counter()
    for b in batch_schedule(rounds, max_batch=max_batch):
        seg = env.segments[t:t + b]
        arms = np.empty(b, dtype=np.int64)
        for s in np.unique(seg):
            sel = np.flatnonzero(seg == s)
            pred = mabs[s].predict(np.zeros((len(sel), 1))) if len(sel) > 1 else [mabs[s].predict()]
            arms[sel] = np.asarray(pred, dtype=np.int64)
        rewards = env.rewards(t, arms)
        for s in np.unique(seg):
            sel = seg == s
            mabs[s].partial_fit(arms[sel], rewards[sel])
        regret += float((best[seg] - rates[seg, arms]).sum())
        hits += int((arms == best_arm[seg]).sum())
        t += b
    dt = time.perf_counter() - t0
    return rounds / dt, regret, hits / rounds


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=50_000)
    ap.add_argument("--arms", type=int, default=6)
    ap.add_argument("--segments", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--reps", type=int, default=10, help="independent environments; regrets are their mean")
    ap.add_argument("--max-batch", type=int, default=4096)
    ap.add_argument("--skip-batched", action="store_true", help="do not run MABWiser's batched mode")
    ap.add_argument("--json", action="store_true", help="print one JSON object as the last line")
    args = ap.parse_args(argv)

    try:
        import mabwiser  # noqa: F401
    except ImportError:
        print("mabwiser is not installed: pip install mabwiser", file=sys.stderr)
        return 2

    pop = Population.random(args.arms, args.segments, seed=args.seed)
    warm = pop.environment(2000, seed=10_000 + args.seed)
    simulate(pop, "ts", 2000, seed=args.seed, env=warm, checkpoints=0)  # warm numpy's first calls
    run_mabwiser_online(pop, warm, 200, args.seed)

    g_time = m_time = b_time = 0.0
    g_reg, m_reg, b_reg, g_best, m_best = [], [], [], [], []
    for rep in range(args.reps):
        env = pop.environment(args.rounds, seed=args.seed + rep)
        dps, reg, best = run_genart(pop, env, args.rounds, args.seed + rep, args.max_batch)
        g_time += args.rounds / dps
        g_reg.append(reg)
        g_best.append(best)
        dps, reg, best = run_mabwiser_online(pop, env, args.rounds, args.seed + rep)
        m_time += args.rounds / dps
        m_reg.append(reg)
        m_best.append(best)
        if not args.skip_batched:
            dps, reg, _ = run_mabwiser_batched(pop, env, args.rounds, args.seed + rep, args.max_batch)
            b_time += args.rounds / dps
            b_reg.append(reg)
    total = args.rounds * args.reps
    g_dps, m_dps = total / g_time, total / m_time
    g_regret, m_regret = float(np.mean(g_reg)), float(np.mean(m_reg))

    def se(x: list[float]) -> float:
        return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else float("nan")

    result = {
        "rounds": args.rounds, "reps": args.reps, "arms": args.arms, "segments": args.segments, "seed": args.seed,
        "genart_decisions_per_s": round(g_dps, 1), "mabwiser_decisions_per_s": round(m_dps, 1),
        "ratio": round(g_dps / m_dps, 2),
        "genart_regret": round(g_regret, 3), "mabwiser_regret": round(m_regret, 3),
        "genart_regret_se": round(se(g_reg), 3), "mabwiser_regret_se": round(se(m_reg), 3),
        "genart_regret_per_rep": [round(x, 2) for x in g_reg], "mabwiser_regret_per_rep": [round(x, 2) for x in m_reg],
        # no worse = genart's mean regret is not above MABWiser's by more than 2 standard errors of
        # the difference (the replications are paired: same environments).
        "regret_ok": bool(g_regret <= m_regret + 2 * se([g - m for g, m in zip(g_reg, m_reg)])),
        "regret_diff_se": round(se([g - m for g, m in zip(g_reg, m_reg)]), 3),
        "genart_best_arm_share": round(float(np.mean(g_best)), 4),
        "mabwiser_best_arm_share": round(float(np.mean(m_best)), 4),
        "python": platform.python_version(), "cpus": os.cpu_count(),
    }
    if not args.skip_batched:
        b_dps = total / b_time
        result.update({"mabwiser_batched_decisions_per_s": round(b_dps, 1),
                       "mabwiser_batched_regret": round(float(np.mean(b_reg)), 3),
                       "ratio_vs_mabwiser_batched": round(g_dps / b_dps, 2)})

    print(f"environment: {args.segments} segments x {args.arms} arms, {args.rounds} rounds x {args.reps} "
          f"replications (environment seeds {args.seed}..{args.seed + args.reps - 1}); regret = mean per replication")
    print(f"genart TS         {g_dps:>14,.0f} decisions/s   regret {g_regret:8.1f} ± {se(g_reg):5.1f}   "
          f"best-arm share {np.mean(g_best):.3f}")
    print(f"MABWiser online   {m_dps:>14,.0f} decisions/s   regret {m_regret:8.1f} ± {se(m_reg):5.1f}   "
          f"best-arm share {np.mean(m_best):.3f}")
    if "mabwiser_batched_decisions_per_s" in result:
        print(f"MABWiser batched  {result['mabwiser_batched_decisions_per_s']:>14,.0f} decisions/s   "
              f"regret {result['mabwiser_batched_regret']:8.1f}")
    print(f"ratio (genart / MABWiser online) = {result['ratio']:.1f}x; regret "
          f"{'no worse' if result['regret_ok'] else 'WORSE'} than MABWiser's (paired difference "
          f"{g_regret - m_regret:+.1f} ± {result['regret_diff_se']:.1f} SE)")
    if args.json:
        print(json.dumps(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
