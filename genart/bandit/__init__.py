"""The bandit stage: approved variants become arms; traffic learns which artwork each segment
clicks and keeps watching; every decision is logged with its propensity for offline evaluation.

Public surface::

    from genart.bandit import handoff, Tester, TestConfig, RewardRule, Context
    arms = handoff(ranked, test_id="t1", segments=["drama", "comedy"], top_k=3)
    tester = genart.api.open_tester(None, "sqlite:///bandit.db")   # or a PostgreSQL URL
    tester.create_test("t1", arms, TestConfig(policy="ts", floor=0.02))
    exp = tester.assign("t1", Context("drama", user_id="u1"))   # logged before it returns
    tester.record(Outcome(exp.exposure_id, reward=1.0, t=time.time()))   # idempotent
    tester.report("t1")

Settings as people state them (:func:`test_settings`: reward ``play:15``, change cap ``0.1`` per
``1h``, stopping rule, loop), the segment preference model (:mod:`genart.bandit.preferences`),
the learning loop's rules (:mod:`genart.bandit.loop`), offline evaluation
(:mod:`genart.bandit.offline`), the simulator (:mod:`genart.bandit.simulator`), plots
(:mod:`genart.bandit.report`), the service (:mod:`genart.bandit.service`) and the Vowpal Wabbit
adapter (:mod:`genart.bandit.vw`) load on first use. What reads runs and makes variants (tests
from a run, the loop's proposals) is :mod:`genart.learning`: this stage knows arms, not images.
"""

from __future__ import annotations

from typing import Any

from genart.bandit.handoff import arm_features, handoff
from genart.bandit.tester import Tester
from genart.bandit.types import (
    POLICY_NAMES,
    ArmReport,
    Assignment,
    Context,
    Estimate,
    RecordResult,
    RewardRule,
    SegmentReport,
    SimulationResult,
    TestConfig,
    TestReport,
)

_LAZY = {
    "Population": "genart.bandit.simulator",
    "simulate": "genart.bandit.simulator",
    "drive_tester": "genart.bandit.simulator",
    "LoggedData": "genart.bandit.offline",
    "logged_data": "genart.bandit.offline",
    "estimate": "genart.bandit.offline",
    "evaluate": "genart.bandit.offline",
    "to_vw_text": "genart.bandit.offline",
    "to_obp": "genart.bandit.offline",
    "plot_test": "genart.bandit.report",
    "create_app": "genart.bandit.service",
    "serve": "genart.bandit.service",
    "test_settings": "genart.bandit.settings",
    "PreferenceModel": "genart.bandit.preferences",
    "weakness": "genart.bandit.loop",
    "thompson_settings": "genart.bandit.loop",
}

__all__ = [
    "ArmReport",
    "Assignment",
    "Context",
    "Estimate",
    "LoggedData",
    "POLICY_NAMES",
    "Population",
    "PreferenceModel",
    "RecordResult",
    "RewardRule",
    "SegmentReport",
    "SimulationResult",
    "TestConfig",
    "TestReport",
    "Tester",
    "arm_features",
    "create_app",
    "drive_tester",
    "estimate",
    "evaluate",
    "handoff",
    "logged_data",
    "plot_test",
    "serve",
    "simulate",
    "test_settings",
    "thompson_settings",
    "to_obp",
    "to_vw_text",
    "weakness",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'genart.bandit' has no attribute {name!r}")
