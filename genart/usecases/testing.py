"""Watch a test: drive it with a simulated audience, its report with plots, each arm over time."""

from __future__ import annotations

import re
from pathlib import Path

from genart.types import ArmTrend, TestSnapshot, stable_id
from genart.usecases.preferences import segment_preferences
from genart.usecases.tester import open_tester
from genart.errors import BackendUnavailableError, InvalidArgumentError


def simulate_test(out: str | Path, test_id: str, *, impressions: int = 1000, seed: int = 0, db: str | None = None):
    """Drive a test with simulated members (a demo, or a rehearsal before real traffic).

    Each (segment, arm) gets a fixed true click rate derived from the test id, so repeated calls
    keep simulating the same audience; ``seed`` draws the members. Exposures and rewards go through
    the real tester and store, exactly as live traffic would.

    Returns:
        The bandit stage's ``SimulationResult`` for these impressions.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: ``impressions`` < 1.
    """
    import numpy as np

    from genart.bandit.simulator import Population, drive_tester

    if isinstance(impressions, bool) or not isinstance(impressions, int) or impressions < 1:
        raise InvalidArgumentError("impressions", impressions, "an integer >= 1")
    tester = open_tester(out, db)
    arms = tester.arms(test_id)
    segments = tuple(dict.fromkeys(a.segment for a in arms))
    arm_ids = tuple(dict.fromkeys(a.arm_id for a in arms))
    rng = np.random.default_rng(int(stable_id("simulated audience", test_id, length=8), 16))
    rates = rng.uniform(0.02, 0.12, size=(len(segments), len(arm_ids)))
    population = Population(segments=segments, arms=arm_ids, rates=tuple(tuple(float(v) for v in r) for r in rates),
                            weights=tuple(1.0 for _ in segments))
    return drive_tester(tester, test_id, population, impressions, seed=seed, batch_size=min(500, impressions))


def test_report(out: str | Path, test_id: str, *, db: str | None = None, plots: bool = True) -> TestSnapshot:
    """A test's per-segment report (impressions, rewards, posterior, P(best), P(beats control),
    winner, whether a segment is weak), its plots, and what each of its segments responds to.

    The plots (cumulative reward and each arm's allocation over time; and each segment's
    preferences, ``preferences_plot``) are PNGs under ``<out>/tests/<test id>/``; none when
    matplotlib is not installed, or with ``plots=False`` (the review app draws its own from
    ``test_timeline``). The preferences are the segment preference model's
    (``genart.usecases.preferences.segment_preferences``), learned from every test of the store with this
    test's reward.

    Raises:
        UnknownTestError: no such test.
    """
    from genart.bandit.report import plot_preferences, plot_test
    from genart.bandit.settings import reward_text

    tester = open_tester(out, db)
    report = tester.report(test_id)
    segments = {s.segment for s in report.segments}
    tastes = tuple(t for t in segment_preferences(out, db=db, reward=reward_text(tester.config(test_id).reward))
                   if t.segment in segments)
    folder = Path(out) / "tests" / (re.sub(r"[^A-Za-z0-9_.-]", "_", test_id)[:120] or "test")
    drawn: tuple[Path, ...] = ()
    taste_plot = None
    if plots:
        try:
            drawn = tuple(plot_test(tester, test_id, folder))
            taste_plot = plot_preferences(tastes, folder / "preferences.png") if tastes else None
        except BackendUnavailableError:
            drawn, taste_plot = (), None
    return TestSnapshot(test_id=test_id, report=report, plots=drawn, preferences=tastes, preferences_plot=taste_plot)


def test_timeline(out: str | Path, test_id: str, *, points: int = 24, db: str | None = None) -> tuple[ArmTrend, ...]:
    """Each arm of a test over time: its share of its segment's exposures (in ``points`` windows, so the
    curve shows the policy shifting traffic, not one coin flip per point) and its click rate so far.

    Raises:
        UnknownTestError: no such test. InvalidArgumentError: ``points`` < 1.
    """
    import numpy as np

    from genart.bandit.offline import logged_data

    if isinstance(points, bool) or not isinstance(points, int) or points < 1:
        raise InvalidArgumentError("points", points, "an integer >= 1")
    log = logged_data(open_tester(out, db), test_id, include_sticky=True)
    trends = []
    for si, seg in enumerate(log.segments):
        mine = log.segment_index == si
        acts, rews = log.actions[mine], log.rewards[mine]
        n = int(acts.size)
        ends = sorted({int(round(n * (k + 1) / points)) for k in range(points)} - {0}) if n else []
        for ai, arm_id in enumerate(log.action_ids[si]):
            shown = acts == ai
            cum_shown, cum_clicks = np.cumsum(shown), np.cumsum(np.where(shown, rews, 0.0))
            share, rate, start = [], [], 0
            for end in ends:
                share.append(float(shown[start:end].mean()))
                k = int(cum_shown[end - 1])
                rate.append(float(cum_clicks[end - 1] / k) if k else None)
                start = end
            trends.append(ArmTrend(segment=seg, arm_id=arm_id, exposures=tuple(ends), share=tuple(share),
                                   click_rate=tuple(rate)))
    return tuple(trends)


test_report.__test__ = False  # type: ignore[attr-defined]


test_timeline.__test__ = False  # type: ignore[attr-defined]  # a function of the API, not a pytest test (should someone import it by name)
