"""The learning loop against static arms: the same simulated audience and traffic, three ways.

A simulated world in which each audience segment clicks artwork according to a *hidden* weight
vector over a few measured facts (faces, close-up, two-shot, expression, darkness, colour, text,
aspect, grade), plus per-variant noise the facts do not explain, over several titles in sequence:

- ``static``: today's hand-off. Each segment gets the ranking's top 4 of the title's first
  variants (8 key frames x 3 aspects at the profile's grade, the classic batch job's output) and a
  control (today's artwork), with the ranking's priors; the ranking knows the taste only weakly.
- ``priors``: the same arms, with cold-start priors from the segment preference model fitted on
  the previous titles' outcomes (:mod:`genart.bandit.preferences`).
- ``loop``: priors, and the learning loop: every ``--check`` impressions each segment is checked
  with the loop's weakness rule (:func:`genart.bandit.loop.weakness`); a weak one gets
  ``--variants`` new variants sampled by Thompson sampling over the title's generation settings
  (key frame, which face, aspect, grade strength) under the model
  (:func:`genart.bandit.loop.thompson_settings`), added as arms with the model's priors
  (auto-approved here; each counts as a review asked).

Generation inside the benchmark is *pre-made variant features*: a setting's facts come from a
synthetic generator (the key frame's faces and light, the crop's aspect, the grade), with
measurement noise; no pixels are made. The bandit side is genart's own code: the Thompson
sampling policy, the exploration floor, the change-effect cap, the report's posteriors and P(beats
control), the weakness rule, the preference model and the Thompson sampler over settings, run in
memory (the tests check the same pieces through the store: logged propensities, the cap, the
traceable proposals).

All three face the same titles, the same members in the same order and the same click draws
(common random numbers: member i clicks arm a iff u_i < p_a). CTR is clicks / impressions over
every title; each seed is a new world (titles, frames, noise, tastes jittered); intervals are a
percentile bootstrap over seeds; ``ratio`` = loop CTR / static CTR, with ``ratio_ci_low``.

Usage: ``python benchmarks/loop.py [--seeds 6] [--titles 5] [--impressions 12000] [--json]``.
With ``--json`` the last printed line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from dataclasses import dataclass, field

# the model's matrices are small (a few hundred rows): BLAS threads only fight each other over them
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from genart.bandit.loop import Setting, arms_key, opportunity, thompson_settings, weakness  # noqa: E402
from genart.bandit.policies import (  # noqa: E402
    BetaState,
    apply_floor,
    cap_change,
    choose,
    extend_reference,
    make_beta_policy,
)
from genart.bandit.preferences import Observation, PreferenceModel  # noqa: E402
from genart.bandit.report import posterior_summary  # noqa: E402
from genart.bandit.types import ArmReport, TestConfig  # noqa: E402
from genart.types import stable_id  # noqa: E402

ASPECTS = ("16:9", "2:3", "1:1")
GRADES = (0.65, 1.0, 1.3)
FRAMES = 8
FIRST_ARMS = 4
BASE_CTR = 0.035
# hidden tastes (logit effects per fact), the audience's truth: the loop never sees these
TASTES = {
    "comedy": {"expressive": 1.3, "close_up": 0.6, "dark": -1.2, "saturated": 0.8, "group": -0.4},
    "thriller": {"dark": 1.4, "close_up": 0.7, "saturated": -0.8, "group": -0.6, "text": -1.0},
    "romance": {"two_shot": 1.3, "warm": 1.2, "close_up": 0.3, "text": -1.0, "group": -0.5},
    "drama": {"face": 0.5, "expressive": 0.9, "portrait": 0.4, "dark": 0.4, "group": -0.6},
}
# each profile's grade pushes darkness / colour / warmth its own way (per unit of grade strength)
GRADE_DIRECTION = {"comedy": (-0.12, 0.15, 0.05), "thriller": (0.15, -0.12, -0.06), "romance": (-0.04, 0.05, 0.10),
                   "drama": (0.05, -0.04, 0.0)}


def logit(p: float) -> float:
    return float(np.log(p / (1 - p)))


def sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


# --- the world ---------------------------------------------------------------------------------------
@dataclass
class Title:
    frames: list[dict]
    offset: float  # the title's own appeal (logit), the same for every artwork
    idio_seed: int


def make_title(rng: np.random.Generator, index: int) -> Title:
    frames = []
    for _ in range(FRAMES):
        n = int(rng.choice([0, 1, 2, 3], p=[0.2, 0.4, 0.3, 0.1]))
        frames.append(dict(n=n, expr=rng.uniform(0, 1, size=n).tolist(), bright=float(rng.uniform(0.2, 0.8)),
                           sat=float(rng.uniform(0.15, 0.7)), warm=float(rng.uniform(0.35, 0.65)),
                           text=float(rng.uniform(0.04, 0.15)) if rng.random() < 0.2 else 0.0))
    return Title(frames=frames, offset=float(rng.normal(0, 0.3)), idio_seed=int(rng.integers(1 << 30)) + index)


def settings_of(title: Title) -> list[Setting]:
    out = []
    for fi, f in enumerate(title.frames):
        for face in [None] + (list(range(f["n"])) if f["n"] >= 2 else []):
            for aspect in ASPECTS:
                for g in GRADES:
                    out.append(Setting(keyframe_id=f"f{fi}", aspect=aspect, grade_amount=g, face=face))
    return out


def render(title: Title, s: Setting, segment: str, noise: float, rng: np.random.Generator | None) -> dict:
    """The facts a variant made with setting ``s`` for ``segment``'s profile shows (the synthetic
    generator); ``rng`` adds measurement noise (None: the expected facts, what a preview sees)."""
    f = title.frames[int(s.keyframe_id[1:])]
    n = f["n"]
    keep = {"16:9": n, "1:1": min(n, 2), "2:3": min(n, 1)}[s.aspect]
    exprs = list(f["expr"])
    if s.face is not None:
        exprs = [exprs[s.face]] + [e for i, e in enumerate(exprs) if i != s.face]
    kept = exprs[:keep]
    d_dark, d_sat, d_warm = GRADE_DIRECTION[segment]
    e = (lambda: float(rng.normal(0, noise))) if rng is not None else (lambda: 0.0)
    close = 0.0 if not kept else {"16:9": 0.35, "1:1": 0.6, "2:3": 0.85}[s.aspect] + (0.1 if s.face is not None else 0.0)
    facts = {
        "face": float(keep > 0), "close_up": float(np.clip(close + e(), 0, 1)), "two_shot": float(keep == 2),
        "group": float(keep >= 3), "dark": float(np.clip(1 - f["bright"] + d_dark * s.grade_amount + e(), 0, 1)),
        "saturated": float(np.clip(f["sat"] + d_sat * s.grade_amount + e(), 0, 1)),
        "warm": float(np.clip(f["warm"] + d_warm * s.grade_amount + e(), 0, 1)),
        "text": f["text"] * (1.0 if s.aspect == "16:9" else 0.5), "portrait": float(s.aspect == "2:3"),
        "square": float(s.aspect == "1:1"), "strong_grade": s.grade_amount,
    }
    if kept:
        facts["expressive"] = float(np.clip(max(kept) + e(), 0, 1))
    return facts


def taste_part(facts: dict, taste: dict) -> float:
    return sum(w * facts.get(k, 0.0) for k, w in taste.items())


def true_rate(title: Title, setting: Setting, segment: str, facts: dict, taste: dict, idio_sd: float,
              center: float) -> float:
    """What the audience really does: its hidden taste over the facts (centred on the title's
    average setting, so an average artwork gets about BASE_CTR), the title's appeal, and a
    per-variant effect no fact explains."""
    idio = np.random.default_rng([title.idio_seed, int(stable_id(setting.key, segment, length=8), 16)]).normal(0, idio_sd)
    eta = logit(BASE_CTR) + title.offset + taste_part(facts, taste) - center + idio
    return float(sigmoid(eta))


# --- a test in memory (genart's policy, floor and cap) --------------------------------------------------
@dataclass
class Arm:
    arm_id: str
    setting: Setting
    facts: dict | None  # None for the control (what it shows is not measured)
    rate: float
    prior_mean: float
    prior_weight: float
    is_control: bool = False
    from_loop: bool = False
    shown: int = 0
    clicks: float = 0.0


@dataclass
class SegmentTest:
    arms: list[Arm]
    ref: np.ndarray | None = None
    served_last: int = 0
    triggered: set = field(default_factory=set)
    last_trigger_impressions: int = -10**9

    def state(self) -> BetaState:
        means = np.array([[a.prior_mean for a in self.arms]])
        weights = np.array([[a.prior_weight for a in self.arms]])
        st = BetaState.from_prior_means(means, weights)
        st.successes = np.array([[a.clicks for a in self.arms]])
        st.trials = np.array([[float(a.shown) for a in self.arms]])
        return st

    def reports(self, seed: int) -> list[ArmReport]:
        st = self.state()
        control = next(i for i, a in enumerate(self.arms) if a.is_control)
        mean, lo, hi, best, beats = posterior_summary(st.alpha[0], st.beta[0], samples=2000, seed=seed, control=control)
        return [ArmReport(arm_id=a.arm_id, variant_id=None, is_control=a.is_control, impressions=a.shown,
                          outcomes=a.shown, rewards=a.clicks, posterior_mean=float(mean[j]), ci_low=float(lo[j]),
                          ci_high=float(hi[j]), prob_best=float(best[j]),
                          prob_beats_control=None if j == control else float(beats[j]),
                          lift=None if j == control else float(mean[j] / mean[control] - 1))
                for j, a in enumerate(self.arms)]


def serve(seg: SegmentTest, u: np.ndarray, cfg: TestConfig, policy, rng: np.random.Generator) -> tuple[float, int]:
    """Decides for ``len(u)`` members of the segment and records their clicks: (clicks, n)."""
    st = seg.state()
    k = len(seg.arms)
    target = apply_floor(policy.probabilities(st, rng, np.array([len(u)])), st.mask, cfg.floor)
    # arms added since: they start at the floor, as in the tester
    ref = None if seg.ref is None else extend_reference(seg.ref, k, cfg.floor)
    budget = cfg.change_cap * seg.served_last / cfg.change_interval if cfg.change_cap else np.inf
    served, alloc = cap_change(target, ref, budget)
    seg.ref, seg.served_last = alloc, len(u)
    arms, _ = choose(served, np.zeros(len(u), dtype=np.int64), rng)
    rates = np.array([a.rate for a in seg.arms])
    clicks = (u < rates[arms]).astype(float)
    for j in range(k):
        sel = arms == j
        seg.arms[j].shown += int(sel.sum())
        seg.arms[j].clicks += float(clicks[sel].sum())
    return float(clicks.sum()), len(u)


# --- one world, three ways ------------------------------------------------------------------------------
def ranking_priors(scores: list[float]) -> list[float]:
    """The hand-off's priors: ranking totals min-max scaled into (0.4, 0.6) (genart.bandit.handoff)."""
    s = np.asarray(scores)
    return (0.4 + 0.2 * (s - s.min()) / (np.ptp(s) or 1.0)).tolist()


def model_prior(model: PreferenceModel | None, segment: str, facts: dict | None, fallback: float,
                seed: int) -> tuple[float, float]:
    if model is None or segment not in model.segments:
        return fallback, 2.0
    if facts is None:
        return model.prior(segment, model.average_facts(segment), seed=seed).mean, 2.0
    p = model.prior(segment, facts, seed=seed)
    return p.mean, p.strength


def run_world(seed: int, way: str, args) -> dict:
    world = np.random.default_rng([seed, 0])
    tastes = {s: {k: w + float(world.normal(0, 0.15)) for k, w in t.items()} for s, t in TASTES.items()}
    titles = [make_title(world, i) for i in range(args.titles)]
    segments = list(TASTES)
    cfg = TestConfig(policy="ts", floor=0.01, change_cap=args.cap, change_interval=float(args.cap_interval),
                     change_unit="exposures", loop=True, loop_min_impressions=args.loop_after,
                     loop_min_lift=args.min_lift, loop_variants=args.variants, mc_samples=1000,
                     loop_min_gain=args.min_gain if args.min_gain >= 0 else None)
    policy = make_beta_policy("ts", mc_samples=1000)
    history: list[Observation] = []
    clicks = shown = 0.0
    generated = triggers = 0
    oracle = 0.0
    gains: list[float] = []  # per trigger: the best new arm's true rate / the best arm's before
    for ti, title in enumerate(titles):
        members = np.random.default_rng([seed, 1, ti])  # the same members and click draws for every way
        seg_of = members.integers(0, len(segments), size=args.impressions)
        u = members.random(args.impressions)
        pol_rng = np.random.default_rng([seed, 2, ti])
        gen_rng = np.random.default_rng([seed, 3, ti])
        all_settings = settings_of(title)
        model = PreferenceModel.fit(history) if (way != "static" and history) else None
        expected = {s: [render(title, st, s, 0.0, None) for st in all_settings] for s in segments}
        center = {s: float(np.mean([taste_part(f, tastes[s]) for f in expected[s]])) for s in segments}

        def rate(st: Setting, s: str, f: dict) -> float:
            key = (st.key, s, json.dumps(f, sort_keys=True))
            if key not in rates_seen:  # noqa: B023 - rate() is called within this title's iteration only
                rates_seen[key] = true_rate(title, st, s, f, tastes[s], args.idio, center[s])  # noqa: B023
            return rates_seen[key]  # noqa: B023

        rates_seen: dict = {}

        # today's artwork, made by a designer for everyone: the plain 16:9 framing that does best on
        # average over the segments (the same image in every segment's test, as a control)
        plain = [i for i, st in enumerate(all_settings) if st.face is None and st.grade_amount == 1.0
                 and st.aspect == "16:9"]
        ctrl_i = max(plain, key=lambda i: np.mean([rate(all_settings[i], s, expected[s][i]) for s in segments]))
        ctrl_setting = all_settings[ctrl_i]
        tests: dict[str, SegmentTest] = {}
        for s in segments:
            first = [st for st in all_settings if st.face is None and st.grade_amount == 1.0]
            facts = [render(title, st, s, args.noise, gen_rng) for st in first]
            rates = [rate(st, s, f) for st, f in zip(first, facts)]
            tp = np.array([taste_part(f, tastes[s]) for f in facts])
            z = (tp - tp.mean()) / (tp.std() or 1.0)
            score = args.ranking_signal * z + gen_rng.normal(0, 1, size=len(first))
            top = np.argsort(-score)[:FIRST_ARMS]
            priors = ranking_priors(score[top].tolist())
            arms = []
            for j, i in enumerate(top):
                pm, pw = (priors[j], 2.0) if way == "static" else model_prior(model, s, facts[i], priors[j], seed + j)
                arms.append(Arm(f"v{i}", first[i], facts[i], rates[i], pm, pw))
            pm, pw = (0.5, 2.0) if way == "static" else model_prior(model, s, None, 0.5, seed)
            arms.append(Arm("control", ctrl_setting, None, rate(ctrl_setting, s, expected[s][ctrl_i]), pm, pw,
                            is_control=True))
            tests[s] = SegmentTest(arms)
            oracle += max(rate(st, s, f) for st, f in zip(all_settings, expected[s])) \
                * float((seg_of == segments.index(s)).sum())
        done = 0
        next_check = args.check
        while done < args.impressions:
            b = min(args.batch, args.impressions - done)
            segs_b, u_b = seg_of[done:done + b], u[done:done + b]
            for si, s in enumerate(segments):
                sel = segs_b == si
                if sel.any():
                    c, n = serve(tests[s], u_b[sel], cfg, policy, pol_rng)
                    clicks += c
                    shown += n
            done += b
            if way == "loop" and done >= next_check:
                next_check += args.check
                for s in segments:
                    t = tests[s]
                    reports = t.reports(seed + done)
                    weak, _ = weakness(reports, cfg)
                    seg_imp = sum(a.shown for a in t.arms)
                    key = arms_key([a.arm_id for a in t.arms])
                    if key in t.triggered or seg_imp - t.last_trigger_impressions < cfg.loop_min_impressions:
                        continue
                    now = PreferenceModel.fit(history + observations(tests, f"title{ti}"))
                    made = {a.setting.key for a in t.arms}
                    cands = [(st, render(title, st, s, 0.0, None)) for st in all_settings]
                    if not weak:
                        weak, _, _ = opportunity(now, s, cands, reports, cfg, gen_rng, exclude=sorted(made),
                                                 group=f"title{ti}")
                    if not weak:
                        continue
                    t.triggered.add(key)
                    t.last_trigger_impressions = seg_imp
                    triggers += 1
                    picks = thompson_settings(now, s, cands, cfg.loop_variants, gen_rng, exclude=sorted(made),
                                              group=f"title{ti}")
                    best_before = max(a.rate for a in t.arms)
                    new_rates = []
                    for p in picks:
                        facts = render(title, p.setting, s, args.noise, gen_rng)  # what the made variant shows
                        generated += 1
                        pm, pw = model_prior(now, s, facts, 0.5, seed + generated)
                        t.arms.append(Arm(f"loop{generated}", p.setting, facts, rate(p.setting, s, facts), pm, pw,
                                          from_loop=True))
                        new_rates.append(t.arms[-1].rate)
                    if new_rates:
                        gains.append(max(new_rates) / best_before)
        history += observations(tests, f"title{ti}")
    return dict(ctr=clicks / shown, clicks=clicks, shown=shown, generated=generated, reviews=generated,
                triggers=triggers, oracle_ctr=oracle / shown, gains=gains)


def observations(tests: dict[str, SegmentTest], group: str) -> list[Observation]:
    return [Observation(segment=s, group=group, facts=a.facts, trials=float(a.shown), rewards=float(a.clicks))
            for s, t in tests.items() for a in t.arms if a.facts is not None and a.shown > 0]


def bootstrap_ratio(num: np.ndarray, den: np.ndarray, n_boot: int = 4000, seed: int = 0) -> tuple[float, float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(num), size=(n_boot, len(num)))
    r = num[idx].mean(axis=1) / den[idx].mean(axis=1)
    lo, hi = np.quantile(r, [0.025, 0.975])
    return float(lo), float(hi)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seeds", type=int, default=6)
    ap.add_argument("--titles", type=int, default=5)
    ap.add_argument("--impressions", type=int, default=40_000, help="per title, over the four segments")
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--check", type=int, default=2000, help="impressions between loop checks")
    ap.add_argument("--loop-after", type=int, default=2500, help="TestConfig.loop_min_impressions (per segment)")
    ap.add_argument("--min-lift", type=float, default=0.05, help="TestConfig.loop_min_lift")
    ap.add_argument("--variants", type=int, default=3, help="TestConfig.loop_variants")
    ap.add_argument("--min-gain", type=float, default=0.2, help="TestConfig.loop_min_gain (negative: off)")
    ap.add_argument("--cap", type=float, default=0.1, help="change-effect cap per --cap-interval exposures")
    ap.add_argument("--cap-interval", type=int, default=300)
    ap.add_argument("--noise", type=float, default=0.04, help="measurement noise of the facts")
    ap.add_argument("--idio", type=float, default=0.25, help="sd of each variant's effect no fact explains (logit)")
    ap.add_argument("--ranking-signal", type=float, default=0.35, help="how much the ranking knows of the taste")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()

    t0 = time.perf_counter()
    ways = ("static", "priors", "loop")
    res = {w: [run_world(seed, w, args) for seed in range(args.seeds)] for w in ways}
    wall = time.perf_counter() - t0
    ctr = {w: np.array([r["ctr"] for r in res[w]]) for w in ways}
    out: dict[str, object] = {"benchmark": "loop", "seeds": args.seeds, "titles": args.titles,
                              "impressions_per_title": args.impressions, "segments": len(TASTES)}
    for w in ways:
        lo, hi = bootstrap_ratio(ctr[w], np.ones_like(ctr[w]), seed=1)
        out[f"{w}_ctr"] = round(float(ctr[w].mean()), 5)
        out[f"{w}_ctr_ci"] = [round(lo, 5), round(hi, 5)]
    ratio = float(ctr["loop"].mean() / ctr["static"].mean())
    lo, hi = bootstrap_ratio(ctr["loop"], ctr["static"], seed=2)
    plo, phi = bootstrap_ratio(ctr["priors"], ctr["static"], seed=3)
    out.update(ratio=round(ratio, 4), ratio_ci_low=round(lo, 4), ratio_ci_high=round(hi, 4),
               priors_ratio=round(float(ctr["priors"].mean() / ctr["static"].mean()), 4),
               priors_ratio_ci=[round(plo, 4), round(phi, 4)],
               oracle_ctr=round(float(np.mean([r["oracle_ctr"] for r in res["static"]])), 5),
               loop_variants_generated=int(sum(r["generated"] for r in res["loop"])),
               loop_reviews_asked=int(sum(r["reviews"] for r in res["loop"])),
               loop_triggers=int(sum(r["triggers"] for r in res["loop"])),
               loop_variants_per_title=round(sum(r["generated"] for r in res["loop"]) / (args.seeds * args.titles), 2),
               loop_best_new_vs_best_before=round(float(np.mean([g for r in res["loop"] for g in r["gains"]] or [0])), 3),
               loop_triggers_that_found_better=int(sum(g > 1 for r in res["loop"] for g in r["gains"])),
               generation="pre-made variant features (a synthetic generator: no pixels)",
               settings=dict(cap=args.cap, cap_interval_exposures=args.cap_interval, loop_after=args.loop_after,
                             min_lift=args.min_lift, min_gain=args.min_gain, variants=args.variants, idio_sd=args.idio,
                             ranking_signal=args.ranking_signal),
               wall_s=round(wall, 1), machine=f"{platform.machine()}, {os.cpu_count()} CPUs (shared)")
    print(f"{args.seeds} worlds x {args.titles} titles x {args.impressions:,} impressions, 4 segments "
          f"(wall {wall:.1f} s)")
    for w in ways:
        a, b = out[f"{w}_ctr_ci"]
        print(f"  {w:>7}: CTR {out[f'{w}_ctr']:.3%}  (95% bootstrap over seeds {a:.3%} .. {b:.3%})")
    print(f"  oracle (each segment's best possible setting per title): {out['oracle_ctr']:.3%}")
    print(f"  loop / static = {ratio:.3f} (95% {lo:.3f} .. {hi:.3f}); priors / static = {out['priors_ratio']:.3f} "
          f"(95% {plo:.3f} .. {phi:.3f})")
    print(f"  the loop's cost: {out['loop_variants_generated']} variants generated and {out['loop_reviews_asked']} "
          f"reviews asked over {args.seeds * args.titles} titles ({out['loop_triggers']} triggers; "
          f"{out['loop_triggers_that_found_better']} found an arm truly better than the best before, whose rate the "
          f"best new arm reached {out['loop_best_new_vs_best_before']:.2f}x on average)")
    if args.json:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
