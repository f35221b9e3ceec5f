"""Reports: per segment, each arm's traffic, rewards, posterior, and chance of being the best.

The posterior of an arm is Beta(prior + rewards, prior + trials - rewards), trials being the
impressions (``implicit_zero``) or the recorded outcomes. The credible interval and the
probability of being best come from ``samples`` Monte-Carlo draws of the segment's posteriors
(seeded, so a report is reproducible).

Stopping rule: a segment has a winner when one arm's probability of being best reaches the
test's ``stop_probability`` and every arm of the segment has at least ``min_impressions``
impressions. :func:`plot_test` draws cumulative reward and arm share over time (PNG, matplotlib
Agg).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from genart.bandit.types import ArmReport, SegmentReport, SimulationResult, TestReport
from genart.errors import BackendUnavailableError, UnknownTestError
from genart.types import LoggedArm
from genart.bandit.loop import weakness


def posterior_summary(alpha: np.ndarray, beta: np.ndarray, *, level: float = 0.95, samples: int = 20_000,
                      seed: int = 0, control: int | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray | None]:
    """(mean, ci_low, ci_high, prob_best, prob_beats_control) for K Beta posteriors, by Monte-Carlo;
    the last is None without a ``control`` index."""
    alpha = np.asarray(alpha, dtype=float)
    beta = np.asarray(beta, dtype=float)
    rng = np.random.default_rng(seed)
    draws = rng.beta(alpha, beta, size=(samples, alpha.shape[0]))
    lo, hi = np.quantile(draws, [(1 - level) / 2, (1 + level) / 2], axis=0)
    best = np.bincount(draws.argmax(axis=1), minlength=alpha.shape[0]) / samples
    beats = None if control is None else (draws > draws[:, [control]]).mean(axis=0)
    return alpha / (alpha + beta), lo, hi, best, beats


def decide(prob_best: np.ndarray, impressions: np.ndarray, stop_probability: float,
           min_impressions: int) -> tuple[int | None, str]:
    """The stopping rule: (winner index or None, why)."""
    k = int(np.argmax(prob_best))
    if impressions.min() < min_impressions:
        return None, f"collecting: fewest impressions {int(impressions.min())} < {min_impressions}"
    if prob_best[k] >= stop_probability:
        return k, f"P(best) {prob_best[k]:.3f} >= {stop_probability}"
    return None, f"undecided: top P(best) {prob_best[k]:.3f} < {stop_probability}"


def build_report(tester, test_id: str, *, samples: int = 20_000, seed: int = 0) -> TestReport:
    """The test's report (see the module docstring)."""

    test = tester._load(test_id)
    cfg = test.config
    with tester.log.read() as txn:
        head = txn.test(test_id)
        if head is None:
            raise UnknownTestError(test_id, txn.test_ids(50))
        rows = txn.arms(test_id)
    status = head.status
    stored_winners = dict(head.winners)
    by_seg: dict[str, list[LoggedArm]] = {}
    for r in rows:
        by_seg.setdefault(r.segment, []).append(r)
    segments = []
    for si, seg in enumerate(sorted(by_seg)):
        arms = by_seg[seg]
        prior = np.array([x.prior_mean for x in arms])
        strength = np.array([x.prior_strength if x.prior_strength is not None else cfg.prior_weight for x in arms])
        imp = np.array([x.impressions for x in arms], dtype=float)
        outs = np.array([x.outcomes for x in arms], dtype=float)
        rew = np.array([x.reward_sum for x in arms], dtype=float)
        trials = imp if cfg.reward.implicit_zero else outs
        rew_c = np.minimum(rew, trials)
        alpha = prior * strength + rew_c
        beta = (1 - prior) * strength + trials - rew_c
        control = next((j for j, x in enumerate(arms) if x.is_control), None)
        mean, lo, hi, best, beats = posterior_summary(alpha, beta, level=cfg.credible_level, samples=samples,
                                                      seed=seed + si, control=control)
        win, reason = decide(best, imp, cfg.stop_probability, cfg.min_impressions)
        winner = arms[win].arm_id if win is not None else None
        if status == "stopped" and seg in stored_winners:
            winner = stored_winners[seg]
            reason = "stopped; serving " + winner + (f" ({reason})" if win is not None else " (best posterior mean)")
        arm_reports = tuple(ArmReport(
            arm_id=x.arm_id, variant_id=x.variant_id, is_control=bool(x.is_control), impressions=int(imp[j]),
            outcomes=int(outs[j]), rewards=float(rew[j]), posterior_mean=float(mean[j]), ci_low=float(lo[j]),
            ci_high=float(hi[j]), prob_best=float(best[j]),
            prob_beats_control=None if beats is None or j == control else float(beats[j]),
            lift=None if control is None or j == control else float(mean[j] / mean[control] - 1.0),
            prior_mean=float(prior[j]), prior_strength=float(strength[j]), proposal_id=x.proposal_id)
            for j, x in enumerate(arms))
        weak, why = weakness(arm_reports, cfg)
        segments.append(SegmentReport(segment=seg, winner=winner, reason=reason, arms=arm_reports, weak=weak,
                                      weak_reason=why))
    return TestReport(test_id=test_id, policy=cfg.policy, status=status, stop_probability=cfg.stop_probability,
                      credible_level=cfg.credible_level, segments=tuple(segments), settings=cfg.describe(),
                      approved_by=head.approved_by, auto_approve=bool(head.auto_approve))


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except Exception as exc:
        raise BackendUnavailableError("plotting", "matplotlib", f"{type(exc).__name__}: {exc}") from exc
    return plt


def plot_test(tester, test_id: str, out_dir: str | Path, *, points: int = 200) -> tuple[Path, Path]:
    """Writes ``<test>_cumulative_reward.png`` and ``<test>_arm_share.png`` (per segment, the
    allocation over time: the mean logged probability of each arm in windows of exposures, which
    is what the change-effect cap limits) and returns their paths.

    Raises:
        BackendUnavailableError: matplotlib is not installed.
        UnknownTestError: no such test.
    """
    test = tester._load(test_id)
    plt = _pyplot()
    with tester.log.read() as txn:
        events = txn.events(test_id)
    rows = [e for e, _ in events]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    safe = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in test_id)
    n = len(rows)
    segs = np.array([r.segment for r in rows])
    reward = np.array([float(o.reward) if o is not None and o.counted else 0.0 for _, o in events])

    fig, ax = plt.subplots(figsize=(7, 4))
    for seg in test.segments:
        sel = segs == seg
        if sel.any():
            ax.plot(np.flatnonzero(sel) + 1, np.cumsum(reward[sel]), label=seg)
    ax.plot(np.arange(1, n + 1), np.cumsum(reward), color="black", lw=2, label="all")
    ax.set_xlabel("exposures")
    ax.set_ylabel("cumulative reward")
    ax.set_title(f"{test_id}: cumulative reward")
    ax.legend(fontsize=7)
    fig.tight_layout()
    p1 = out / f"{safe}_cumulative_reward.png"
    fig.savefig(p1, dpi=100)
    plt.close(fig)

    nseg = len(test.segments)
    fig, axes = plt.subplots(nseg, 1, figsize=(7, 2.2 * nseg), squeeze=False)
    for ax, seg in zip(axes[:, 0], test.segments):
        arms = test.arms[seg]
        labels = [("control" if a.is_control else a.arm_id[:10]) + ("*" if a.proposal_id else "") for a in arms]
        seg_rows = [r for r in rows if r.segment == seg]
        if seg_rows:
            # the allocation each exposure was drawn from (its logged distribution; arms added later
            # are 0 before they existed), averaged per window: what the audience was shown, not the noise
            probs = np.zeros((len(seg_rows), len(arms)))
            for i, r in enumerate(seg_rows):
                p = list(r.probs)[:len(arms)]
                probs[i, :len(p)] = p
            bins = np.array_split(np.arange(len(seg_rows)), min(points, len(seg_rows)))
            share = np.array([probs[b].mean(axis=0) for b in bins])
            x = np.array([b[-1] + 1 for b in bins])
            ax.stackplot(x, share.T, labels=labels)
            ax.legend(fontsize=6, loc="upper left", ncol=4)
        else:  # a legend of nothing would only make matplotlib warn
            ax.text(0.5, 0.5, "no exposures yet", ha="center", va="center", transform=ax.transAxes, fontsize=8)
        ax.set_ylim(0, 1)
        ax.set_ylabel(seg, fontsize=8)
    axes[-1, 0].set_xlabel("exposures in segment")
    cap = test.config.change_cap
    unit = "s" if test.config.change_unit == "seconds" else " exposures"
    capped = f"; change cap {cap * 100:g} pts per {test.config.change_interval:g}{unit}" if cap else ""
    axes[0, 0].set_title(f"{test_id}: allocation over time\n(the probability each arm was shown with{capped})",
                         fontsize=9)
    fig.tight_layout()
    p2 = out / f"{safe}_arm_share.png"
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return p1, p2


def plot_simulation(result: SimulationResult, out_dir: str | Path, arm_names: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """Cumulative regret/reward and arm share over time of a simulated run (PNG)."""
    plt = _pyplot()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    x = np.array(result.checkpoints)
    fig, ax = plt.subplots(figsize=(7, 4))
    ax.plot(x, result.cumulative_reward, label="cumulative reward")
    ax.plot(x, result.cumulative_regret, label="cumulative regret")
    ax.set_xlabel("rounds")
    ax.set_title(f"simulated {result.policy}")
    ax.legend()
    fig.tight_layout()
    p1 = out / f"sim_{result.policy}_cumulative_reward.png"
    fig.savefig(p1, dpi=100)
    plt.close(fig)
    fig, ax = plt.subplots(figsize=(7, 4))
    share = np.array(result.arm_share)
    if share.size:
        labels = list(arm_names) or [f"arm{k}" for k in range(share.shape[1])]
        ax.stackplot(x, share.T, labels=labels)
        ax.legend(fontsize=7, loc="upper left", ncol=3)
    ax.set_ylim(0, 1)
    ax.set_xlabel("rounds")
    ax.set_ylabel("arm share")
    ax.set_title(f"simulated {result.policy}: arm share over time")
    fig.tight_layout()
    p2 = out / f"sim_{result.policy}_arm_share.png"
    fig.savefig(p2, dpi=100)
    plt.close(fig)
    return p1, p2


def plot_preferences(tastes, path: str | Path, *, per_segment: int = 8) -> Path:
    """A forest plot per segment: each fact's effect on the rate in percentage points with its
    credible interval, strongest evidence first (PNG). Returns the path written.

    Raises:
        BackendUnavailableError: matplotlib is not installed.
    """
    plt = _pyplot()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tastes = list(tastes)
    n = max(1, len(tastes))
    fig, axes = plt.subplots(n, 1, figsize=(7.5, 0.42 * per_segment * n + 0.9 * n), squeeze=False)
    for ax, t in zip(axes[:, 0], tastes):
        # the best-supported effects, drawn largest first (top) to most negative (bottom)
        effects = sorted([e for e in t.effects if not e.what.startswith("clip_")][:per_segment], key=lambda e: e.points)
        y = np.arange(len(effects))
        sure = [e.low > 0 or e.high < 0 for e in effects]
        colours = ["#c0392b" if s and e.points < 0 else "#1e8449" if s else "#7f8c8d" for e, s in zip(effects, sure)]
        ax.hlines(y, [e.low for e in effects], [e.high for e in effects], colors=colours, lw=2)
        ax.scatter([e.points for e in effects], y, color=colours, zorder=3, s=22)
        ax.axvline(0, color="black", lw=0.8)
        ax.set_yticks(y, [e.label for e in effects], fontsize=8)
        ax.set_title(f"{t.segment}: baseline {t.baseline:.2%}, {t.trials:,.0f} impressions over {t.titles} title(s)",
                     fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
    axes[-1, 0].set_xlabel("effect on the rate in percentage points, 95% interval (coloured: it excludes 0)",
                           fontsize=8)
    if not tastes:
        axes[0, 0].text(0.5, 0.5, "no traffic on arms with measured facts yet", ha="center", va="center")
        axes[0, 0].set_axis_off()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
