"""The Vowpal Wabbit cb_explore_adf adapter (skipped with a reason when vowpalwabbit is absent)."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from genart.bandit import Context, Tester, TestConfig
from genart.bandit.simulator import Population, drive_tester, simulate
from genart.errors import BackendUnavailableError
from genart.types import Outcome
from genart.store.exposure_log import SqlExposureLog

POP = Population(segments=("drama", "comedy"), arms=("a", "b", "c"),
                 rates=((0.1, 0.6, 0.2), (0.6, 0.1, 0.2)), weights=(0.5, 0.5))


def test_missing_vowpalwabbit_is_a_typed_error(monkeypatch):
    from genart.bandit.vw import VWModel

    monkeypatch.setitem(sys.modules, "vowpalwabbit", None)  # import now fails
    with pytest.raises(BackendUnavailableError, match="Vowpal Wabbit is not available: cannot import 'vowpalwabbit'"):
        VWModel(["arm=a", "arm=b"])


def test_vw_probabilities_are_a_distribution_and_it_learns():
    pytest.importorskip("vowpalwabbit", reason="vowpalwabbit not installed (pip install vowpalwabbit)")
    from genart.bandit.vw import VWModel

    m = VWModel(["arm=a", "arm=b", "arm=c"], [(1.0, 0.0), (0.0, 1.0), (0.5, 0.5)], args="--epsilon 0.1", seed=1)
    X = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 1.0]])
    p = m.probabilities(X, np.array([[True, True, True], [True, False, True]]), np.random.default_rng(0))
    np.testing.assert_allclose(p.sum(axis=1), 1.0, atol=1e-6)
    assert p[1, 1] == 0.0
    res = simulate(POP, "vw", 3000, seed=0, checkpoints=5)
    late = (res.cumulative_regret[-1] - res.cumulative_regret[-2]) / (res.checkpoints[-1] - res.checkpoints[-2])
    assert late < 0.1, late  # uniform play would cost ~0.3 per round


@pytest.mark.slow
def test_vw_policy_through_the_tester(tmp_path):
    pytest.importorskip("vowpalwabbit", reason="vowpalwabbit not installed (pip install vowpalwabbit)")
    tester = Tester(SqlExposureLog(tmp_path / "vw.db"), seed=0)
    tester.create_test("v", POP.arms_for("v"), TestConfig(policy="vw", floor=0.02, seed=0))
    res = drive_tester(tester, "v", POP, 1500, seed=0, batch_size=50)
    assert res.best_arm_share > 0.6
    a = tester.assign_detail("v", Context("drama"))
    assert sum(p for _, p in a.probabilities) == pytest.approx(1.0, abs=1e-9)
    assert min(p for _, p in a.probabilities) >= 0.02 - 1e-12
    tester.record(Outcome(a.exposure.exposure_id, 1.0, time.time()))
