"""Hand-off: typed RankedVariants become arms per segment, with cold-start priors from the ranking."""

from __future__ import annotations

from pathlib import Path

import pytest

from genart.bandit import Tester, TestConfig, arm_features, handoff
from genart.errors import InvalidArgumentError
from genart.types import GenerationParams, KeyFrame, RankedVariant, ScoreSet, Variant
from genart.store.exposure_log import SqlExposureLog


def ranked_variant(vid: str, profile: str, total: float, rank: int | None, rejected: str | None = None) -> RankedVariant:
    kf = KeyFrame(id="kf1", source="title.mp4", t_s=12.5, frame_index=300, shot=2, width=64, height=36)
    params = GenerationParams(preset="tiny", method="classic", profile_id=profile, profile_version="v1",
                              keyframe_id=kf.id, seed=7, width=64, height=36, aspect="16:9", grade="neutral")
    variant = Variant(id=vid, profile_id=profile, keyframe=kf, params=params,
                      digital_source_type="compositeWithTrainedAlgorithmicMedia", path=Path(f"/art/{vid}.png"))
    return RankedVariant(variant=variant, profile_id=profile, scores=ScoreSet.of({"clip": total}), total=total,
                         rank=rank, rejected=rejected)


RANKED = [
    ranked_variant("r1", "romance", 0.9, 1),
    ranked_variant("r2", "romance", 0.5, 2),
    ranked_variant("r3", "romance", 0.1, 3),
    ranked_variant("rx", "romance", 0.99, None, rejected="unsafe: nsfw score 0.93"),
    ranked_variant("t1", "thriller", 0.7, 1),
]


def test_handoff_skips_rejected_keeps_variant_ids_and_seeds_priors_from_totals():
    arms = handoff(RANKED, "t1", ["drama", "comedy"], control_image="/art/current.png")
    drama = [a for a in arms if a.segment == "drama"]
    assert [a.arm_id for a in drama] == ["r1", "t1", "r2", "r3", "control"]
    assert all(a.test_id == "t1" for a in arms)
    assert "rx" not in {a.variant_id for a in arms}  # rejected never becomes an arm
    by_id = {a.arm_id: a for a in drama}
    assert by_id["r1"].variant_id == "r1" and by_id["r1"].image_path == Path("/art/r1.png")
    assert by_id["r1"].profile_id == "romance"
    assert by_id["r1"].prior_mean == pytest.approx(0.6)  # best total -> top of prior_range
    assert by_id["r3"].prior_mean == pytest.approx(0.4)  # worst -> bottom
    assert by_id["r1"].prior_mean > by_id["t1"].prior_mean > by_id["r2"].prior_mean > by_id["r3"].prior_mean
    ctrl = by_id["control"]
    assert ctrl.is_control and ctrl.variant_id is None and ctrl.image_path == Path("/art/current.png")
    assert ctrl.prior_mean == pytest.approx(0.5)
    assert len(arms) == 10


def test_top_k_per_profile_and_segment_mapping_to_profiles():
    arms = handoff(RANKED, "t2", {"romantics": ["romance"], "thrill": ["thriller"]}, include_control=False, top_k=2)
    assert [(a.segment, a.arm_id) for a in arms] == [("romantics", "r1"), ("romantics", "r2"), ("thrill", "t1")]


def test_handoff_errors_name_the_bad_value():
    with pytest.raises(InvalidArgumentError, match="approved"):
        handoff([RANKED[3]], "t", ["s"], include_control=False)
    with pytest.raises(InvalidArgumentError, match="segments"):
        handoff(RANKED, "t", [])
    with pytest.raises(InvalidArgumentError, match="top_k"):
        handoff(RANKED, "t", ["s"], top_k=0)
    with pytest.raises(InvalidArgumentError, match="profile ids with approved variants: romance, thriller"):
        handoff(RANKED, "t", {"s": ["horror"]}, include_control=False)
    with pytest.raises(InvalidArgumentError, match="RankedVariant"):
        handoff(["r1"], "t", ["s"])  # type: ignore[list-item]


def test_arms_from_handoff_run_a_test_and_trace_back_to_variants(tmp_path):
    arms = handoff(RANKED, "t3", ["drama"], top_k=1)
    feats = arm_features(arms, {"r1": [1.0, 0.0, 0.5], "t1": [0.0, 1.0, 0.5]}, dims=2)
    assert set(feats) == {"r1", "t1", "control"}
    assert len({len(v) for v in feats.values()}) == 1  # same width for every arm
    tester = Tester(SqlExposureLog(tmp_path / "b.db"), seed=0)
    tester.create_test("t3", arms, TestConfig(policy="linucb", floor=0.05), arm_features=feats)
    a = tester.assign_detail("t3", "drama")
    assert a.exposure.arm_id in {"r1", "t1", "control"}
    assert a.variant_id == (None if a.is_control else a.exposure.arm_id)
    assert [x.arm_id for x in tester.arms("t3")] == ["r1", "t1", "control"]
