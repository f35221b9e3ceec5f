"""The segment preference model over a store: fitted on every test's arms (what each showed, how it
did), read as what each segment responds to, and used for arms' cold-start priors."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Mapping, Sequence

from genart.types import Arm, stable_id
from genart.usecases.facts import variant_facts
from genart.usecases.runs import load_run
from genart.usecases.tester import open_tester

if TYPE_CHECKING:  # pragma: no cover
    from genart.bandit.preferences import Observation, PreferenceModel, SegmentTaste
    from genart.bandit.tester import Tester
    from genart.bandit.types import TestConfig


def _observations(tester: "Tester", reward: "TestConfig | None" = None,
                  exclude: Sequence[str] = ()) -> list["Observation"]:
    """Every arm with facts and traffic, from the tests whose reward rule is ``reward``'s."""
    from genart.bandit.preferences import Observation
    from genart.store.bandit_engine import read_txn
    from genart.bandit.types import TestConfig
    from genart.store import learning_queries

    with read_txn(tester.engine) as conn:
        configs, arms = learning_queries.arm_traffic(conn)
    tests = {test_id: TestConfig.from_json(config) for test_id, config in configs.items()}
    obs = []
    for a in arms:
        cfg = tests.get(a.test_id)
        if cfg is None or a.test_id in exclude or (reward is not None and cfg.reward != reward.reward):
            continue
        trials = a.impressions if cfg.reward.implicit_zero else a.outcomes
        if trials > 0:
            obs.append(Observation(segment=a.segment, group=a.test_id, facts=a.facts, trials=float(trials),
                                   rewards=float(min(a.reward_sum, trials))))
    return obs


def _unit(cfg: "TestConfig | None") -> str:
    if cfg is None or cfg.reward.kind == "click":
        return "CTR"
    return "quality-play rate" if cfg.reward.kind == "threshold" else "watch value"


def _reward_text(cfg: "TestConfig") -> str:
    from genart.bandit.settings import reward_text

    return reward_text(cfg.reward)


def preference_model(out: str | Path | None = None, *, db: str | None = None, reward: str = "click",
                     exclude: Sequence[str] = ()) -> "PreferenceModel":
    """The segment preference model fitted on every test of the store whose reward is ``reward``
    (``click``, ``play:N``, ``watch:M``): with no traffic yet, the prior alone.

    Raises:
        InvalidArgumentError: a malformed ``reward``.
    """
    from genart.bandit.preferences import PreferenceModel
    from genart.bandit.settings import test_settings

    cfg = test_settings(reward=reward)
    return PreferenceModel.fit(_observations(open_tester(out, db), cfg, exclude), unit=_unit(cfg))


def segment_preferences(out: str | Path | None = None, *, db: str | None = None, reward: str = "click",
                        level: float = 0.95) -> tuple["SegmentTaste", ...]:
    """What each segment responds to, learned from every test of the store (see
    :meth:`genart.bandit.preferences.PreferenceModel.tastes`): per fact and a few combinations,
    percentage points of the rate with a credible interval, and one sentence per segment."""
    return tuple(preference_model(out, db=db, reward=reward).tastes(level=level))


def rerank_for_segments(out: str | Path, run_id: str, segments: Sequence[str], *, db: str | None = None,
                        reward: str = "click") -> dict[str, list[tuple[str, float, float, float]]]:
    """A run's accepted variants ordered for each segment by the preference model's predicted rate:
    per segment, ``(variant id, mean, low, high)`` best first.

    Raises:
        UnknownRunError: no such run.
    """
    run = load_run(out, run_id, db=db)
    accepted = {rv.variant.id for _, items in run.ranked for rv in items}
    facts = {k: v for k, v in variant_facts(out, run_id, sorted(accepted), db=db).items()}
    model = preference_model(out, db=db, reward=reward)
    return {seg: model.rank(seg, facts) for seg in segments}


def _model_priors(out: str | Path | None, db: str | None, arms: Sequence[Arm], arm_facts: Mapping[str, Mapping[str, float]], config: "TestConfig",
                  exclude: Sequence[str] = (), model: "PreferenceModel | None" = None) -> list[Arm]:
    from genart.bandit.preferences import PreferenceModel

    if model is None:
        model = PreferenceModel.fit(_observations(open_tester(out, db), config, exclude), unit=_unit(config))
    out_arms = []
    for a in arms:
        f = arm_facts.get(a.arm_id)
        if a.segment not in model.segments or (f is None and not a.is_control):
            out_arms.append(a)
            continue
        seed = int(stable_id(a.test_id, a.segment, a.arm_id, length=6), 16)
        if f is None:  # the control: what it shows is not measured; the segment's usual rate, held loosely
            base = model.prior(a.segment, model.average_facts(a.segment), seed=seed)
            out_arms.append(replace(a, prior_mean=base.mean, prior_strength=2.0))
            continue
        p = model.prior(a.segment, f, seed=seed)
        out_arms.append(replace(a, prior_mean=p.mean, prior_strength=p.strength))
    return out_arms
