"""The segment preference model, the loop's rules, and the test settings every surface shares.

The model is fitted on outcomes drawn from a planted taste per segment (logit weights over facts)
across several titles with their own baselines: it must find each planted weight within its 95%
interval and a zero weight's interval must hold 0; its cold-start priors for a held-out title
must order that title's arms as the truth does; its sentence must name what was planted. The
weakness rule, Thompson sampling over settings and the opportunity rule get worlds where the
answer is known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from genart.bandit.loop import Setting, arms_key, opportunity, thompson_settings, weakness
from genart.bandit.preferences import FACT_NAMES, Observation, PreferenceModel
from genart.bandit.settings import from_mapping, parse_interval, parse_reward, settings_of, test_settings
from genart.bandit.types import ArmReport, RewardRule, TestConfig
from genart.errors import InvalidArgumentError, UnknownPolicyError

PLANTED = {"comedy": {"expressive": 1.0, "dark": -0.8}, "thriller": {"dark": 0.9, "close_up": 0.5},
           "romance": {"two_shot": 1.0}}
BASE = {"comedy": -3.0, "thriller": -3.2, "romance": -2.9}


def random_facts(rng: np.random.Generator) -> dict[str, float]:
    return {"face": float(rng.random() < 0.8), "close_up": float(rng.random()), "two_shot": float(rng.random() < 0.3),
            "expressive": float(rng.random()), "dark": float(rng.uniform(0.2, 0.8)),
            "saturated": float(rng.uniform(0.2, 0.7))}


def world(titles: int = 6, arms: int = 8, trials: int = 3000, seed: int = 0):
    """Observations from the planted tastes, and each (segment, title, facts, true rate)."""
    rng = np.random.default_rng(seed)
    obs, truth = [], []
    for t in range(titles):
        offset = rng.normal(0, 0.3)
        for seg in PLANTED:
            for _ in range(arms):
                f = random_facts(rng)
                eta = BASE[seg] + offset + sum(PLANTED[seg].get(k, 0.0) * v for k, v in f.items())
                p = 1 / (1 + math.exp(-eta))
                obs.append(Observation(seg, f"title{t}", f, trials, float(rng.binomial(trials, p))))
                truth.append((seg, f"title{t}", f, p))
    return obs, truth


@pytest.fixture(scope="module")
def fitted():
    obs, truth = world()
    return PreferenceModel.fit(obs), truth


def test_the_model_recovers_the_planted_taste_within_its_interval(fitted):
    model, _ = fitted
    assert model.segments == ("comedy", "romance", "thriller")
    for seg, taste in PLANTED.items():
        coef = model.coefficients(seg)
        for name in ("expressive", "dark", "close_up", "two_shot", "saturated"):
            mean, lo, hi = coef[name]
            planted = taste.get(name, 0.0)
            assert lo <= planted <= hi, (seg, name, planted, (lo, hi))
            assert hi - lo < 0.5  # and it is sure enough to be useful
            if planted:
                assert (lo > 0) == (planted > 0) and (hi < 0) == (planted < 0)  # the sign, beyond doubt


def test_the_summary_names_what_each_segment_responds_to(fitted):
    model, _ = fitted
    tastes = {t.segment: t for t in model.tastes()}
    assert "expressive close-up" in tastes["comedy"].summary and "dark" in tastes["comedy"].summary
    assert tastes["comedy"].summary.startswith("comedy: +")
    assert "two-shot" in tastes["romance"].summary
    assert "dark" in tastes["thriller"].summary and "close-up" in tastes["thriller"].summary
    by = {e.what: e for e in tastes["comedy"].effects}
    assert by["expressive"].points > 0 and by["expressive"].low > 0 and by["expressive"].prob_positive > 0.99
    assert by["dark"].points < 0 and by["dark"].high < 0
    assert by["saturated"].low < 0 < by["saturated"].high  # planted 0: not claimed either way
    assert "saturated" not in tastes["comedy"].summary
    assert tastes["romance"].titles == 6 and tastes["romance"].trials == 6 * 8 * 3000


def test_cold_start_priors_order_a_new_titles_arms_as_the_truth_does():
    obs, _ = world(titles=5, seed=1)
    model = PreferenceModel.fit(obs)
    rng = np.random.default_rng(9)
    for seg in PLANTED:
        facts = [random_facts(rng) for _ in range(12)]
        true = [BASE[seg] + sum(PLANTED[seg].get(k, 0.0) * v for k, v in f.items()) for f in facts]
        priors = [model.prior(seg, f) for f in facts]
        predicted = [math.log(p.mean / (1 - p.mean)) for p in priors]
        assert np.corrcoef(true, predicted)[0, 1] > 0.9, seg  # what a new title's arms will do, before traffic
        for p in priors:
            assert 0 < p.low <= p.mean <= p.high < 1
            assert 2.0 <= p.strength <= 500.0
        # a new title's baseline is unknown (sigma_a): about the rate of a typical title, held loosely
        assert 0.5 < priors[0].mean / (1 / (1 + math.exp(-true[0]))) < 2.0


def test_a_segment_never_seen_borrows_everyones_taste_and_knows_less():
    obs, _ = world(titles=3, seed=2)
    model = PreferenceModel.fit(obs)
    f = {"face": 1.0, "two_shot": 1.0}
    seen, unseen = model.prior("romance", f), model.prior("horror", f)
    assert unseen.strength < seen.strength
    assert model.predict("horror", [f])[0][2] - model.predict("horror", [f])[0][1] > \
        model.predict("romance", [f])[0][2] - model.predict("romance", [f])[0][1]


def test_an_empty_store_gives_the_prior_and_no_claims():
    model = PreferenceModel.fit([])
    assert model.segments == () and model.tastes() == []
    p = model.prior("comedy", {"face": 1.0})
    assert 0 < p.mean < 0.5 and p.strength < 50


def test_rank_orders_fresh_variants_for_a_segment(fitted):
    model, _ = fitted
    variants = {"dark-neutral": {"dark": 0.8, "expressive": 0.1}, "bright-expressive": {"dark": 0.2, "expressive": 0.9}}
    assert [v for v, *_ in model.rank("comedy", variants)] == ["bright-expressive", "dark-neutral"]
    assert [v for v, *_ in model.rank("thriller", variants)][0] == "dark-neutral"


# --- the loop's rules -------------------------------------------------------------------------------
def arm(arm_id, impressions, mean, beats=None, control=False):
    return ArmReport(arm_id=arm_id, variant_id=None if control else arm_id, is_control=control, impressions=impressions,
                     outcomes=impressions, rewards=mean * impressions, posterior_mean=mean, ci_low=mean, ci_high=mean,
                     prob_best=0.0, prob_beats_control=None if control else beats,
                     lift=None if control else mean / 0.05 - 1)


def test_weakness_rule():
    cfg = TestConfig(loop_min_impressions=1000, loop_beat_probability=0.5, loop_min_lift=0.05)
    ctrl = arm("control", 500, 0.05, control=True)
    assert weakness([arm("a", 100, 0.04, 0.2), ctrl], cfg)[0] is False  # collecting: 600 < 1000
    weak, why = weakness([arm("a", 300, 0.04, 0.2), arm("b", 300, 0.045, 0.35), ctrl], cfg)
    assert weak and "no generated arm beats the control with P > 0.5" in why and "b" in why
    weak, why = weakness([arm("a", 300, 0.051, 0.6), arm("b", 300, 0.04, 0.1), ctrl], cfg)
    assert weak and "lifts +2.0%" in why  # beats it, but by too little
    assert weakness([arm("a", 300, 0.07, 0.97), arm("b", 300, 0.04, 0.1), ctrl], cfg)[0] is False
    assert weakness([arm("a", 900, 0.04, 0.1), arm("b", 20, 0.06, 0.55), ctrl], cfg)[0] is False  # b may yet win
    assert weakness([arm("a", 2000, 0.01, 0.0)], cfg) == (False, "no control arm to compare with")


def test_thompson_over_settings_prefers_what_the_model_predicts_and_never_repeats(fitted):
    model, _ = fitted
    rng = np.random.default_rng(0)
    good = [(Setting(f"kf{i}", "2:3", face=0), {"face": 1.0, "two_shot": 1.0}) for i in range(3)]
    bad = [(Setting(f"kf{i}", "16:9"), {"face": 0.0, "dark": 0.8}) for i in range(10)]
    picks = thompson_settings(model, "romance", good + bad, 3, rng)
    assert len(picks) == 3 and len({p.setting.key for p in picks}) == 3
    assert all(p.setting.aspect == "2:3" for p in picks)  # the two-shots, for the segment that likes them
    again = thompson_settings(model, "romance", good + bad, 3, rng, exclude=[p.setting.key for p in picks])
    assert not {p.setting.key for p in again} & {p.setting.key for p in picks}
    assert thompson_settings(model, "romance", good, 2, rng, exclude=[s.key for s, _ in good]) == []
    with pytest.raises(InvalidArgumentError, match="k"):
        thompson_settings(model, "romance", good, 0, rng)


def test_opportunity_rule(fitted):
    model, _ = fitted
    rng = np.random.default_rng(1)
    cfg = TestConfig(loop_min_gain=0.2, loop_beat_probability=0.5)
    # romance's usual rate is about 5 %; its leader here does 6 %; a two-shot is worth about e^1 more
    arms = [arm("v1", 4000, 0.06, 0.5), arm("control", 4000, 0.05, control=True)]
    better = [(Setting("kf", "2:3", face=0), {"face": 1.0, "two_shot": 1.0})]
    worse = [(Setting("kf", "16:9"), {"face": 0.0})]
    ok, why, p = opportunity(model, "romance", better, arms, cfg, rng)
    assert ok and p > 0.5 and "beat the leader v1 by 20%" in why
    ok, _, p = opportunity(model, "romance", worse, arms, cfg, rng)
    assert not ok and p < 0.5
    assert opportunity(model, "romance", better, arms, TestConfig(loop_min_gain=None), rng)[0] is False
    assert arms_key(["a", "b"]) == arms_key(["b", "a"]) != arms_key(["a", "c"])


# --- settings: one vocabulary for CLI, catalogue, app and API ------------------------------------------
def test_settings_parse_what_people_write():
    assert parse_reward("click") == RewardRule()
    assert parse_reward("play:15") == RewardRule(kind="threshold", threshold=15.0)
    assert parse_reward("watch:60m") == RewardRule(kind="value", scale=60.0)
    for bad in ("plays", "play:", "watch:-3", "views:10"):
        with pytest.raises(InvalidArgumentError, match="invalid reward"):
            parse_reward(bad)
    assert parse_interval("1h") == (3600.0, "seconds")
    assert parse_interval("90m") == (5400.0, "seconds")
    assert parse_interval("500 exposures") == (500.0, "exposures")
    assert parse_interval(30) == (30.0, "seconds")
    for bad in ("soon", "0h", "-5", "3 weeks"):
        with pytest.raises(InvalidArgumentError, match="change_interval"):
            parse_interval(bad)
    cfg = test_settings(policy="ucb1", reward="play:10", floor=0.02, change_cap=0.1, change_interval="500 exposures",
                        stop_at=0.9, min_impressions=50, loop=True)
    assert (cfg.policy, cfg.reward.threshold, cfg.change_cap, cfg.change_unit, cfg.stop_probability) == \
        ("ucb1", 10.0, 0.1, "exposures", 0.9)
    assert test_settings(**settings_of(cfg)) == cfg
    assert TestConfig.from_json(cfg.to_json()) == cfg
    assert "plays of at least 10 min" in cfg.describe() and "change cap 10 pts per 500 exposures" in cfg.describe()
    with pytest.raises(UnknownPolicyError, match="known policies"):
        test_settings(policy="thompson")
    with pytest.raises(InvalidArgumentError, match="change_cap"):
        test_settings(change_cap=10)
    with pytest.raises(InvalidArgumentError, match="test setting"):
        from_mapping({"polcy": "ts"})
    assert set(FACT_NAMES) >= {"face", "close_up", "two_shot", "expressive", "dark", "saturated", "text", "portrait"}


def test_a_catalogues_test_block_is_checked_where_it_was_written(tmp_path):
    from genart.batch.catalog import parse_catalog
    from genart.errors import CatalogError

    head = "preset: classic\nprofiles: [drama]\n"
    titles = "titles:\n  - id: demo\n    demo: true\n"
    cat = parse_catalog(head + "auto_approve: true\ntest:\n  policy: ucb1\n  reward: watch:45\n  change_cap: 0.1\n"
                        "  change_interval: 500 exposures\n  loop: true\n" + titles, tmp_path / "c.yaml")
    assert cat.auto_approve and cat.policy == "ucb1" and cat.test.reward == RewardRule(kind="value", scale=45.0)
    assert (cat.test.change_cap, cat.test.change_unit, cat.test.loop) == (0.1, "exposures", True)
    assert parse_catalog(head + "policy: egreedy\n" + titles, tmp_path / "c.yaml").test.policy == "egreedy"  # older spelling
    with pytest.raises(CatalogError, match=r"c.yaml:5: field 'test.reward': invalid reward: 'plays'"):
        parse_catalog(head + "test:\n  policy: ts\n  reward: plays\n" + titles, tmp_path / "c.yaml")
    with pytest.raises(CatalogError, match="rewrad"):
        parse_catalog(head + "test:\n  rewrad: click\n" + titles, tmp_path / "c.yaml")
    with pytest.raises(CatalogError, match="disagrees with test.policy"):
        parse_catalog(head + "policy: ts\ntest:\n  policy: ucb1\n" + titles, tmp_path / "c.yaml")
