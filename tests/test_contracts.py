"""Contract suites: what every bandit policy and every stored value must do, whichever one it is.

As diffusers' ``PipelineTesterMixin`` does for pipelines, one parametrised class states the contract
once and runs it against every implementation, so a new policy (or a new field on a stored type) is
covered by adding it to the registry (or the type), not by remembering to write its tests.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genart.bandit.policies import BetaPolicy, BetaState, apply_floor, choose, make_beta_policy
from genart.bandit.types import POLICY_NAMES
from genart.errors import UnknownPolicyError
from genart.store.convert import keyframe_from_json, keyframe_json, params_from
from genart.store.db import Store
from genart.types import Box, FaceFacts, GenerationParams, KeyFrame, Region, RunManifest, ScoreSet, Variant


def _registered_beta_policies() -> list[str]:
    """Every policy name the tester knows that ``make_beta_policy`` builds (the contextual ones,
    ``lints`` / ``linucb`` / ``vw``, take features and have their own tests)."""
    names = []
    for name in POLICY_NAMES:
        try:
            make_beta_policy(name)
        except UnknownPolicyError:
            continue
        names.append(name)
    return names


BETA_POLICIES = _registered_beta_policies()


def _masked_state() -> BetaState:
    """Three segments over five arms; segment 1 has arms 1 and 3 only, segment 2 arms 0-2."""
    st = BetaState.uniform(3, 5)
    st.mask[1] = [False, True, False, True, False]
    st.mask[2, 3:] = False
    return st


def test_the_registry_is_what_the_contract_runs_over() -> None:
    assert {"ts", "egreedy", "ucb1"} <= set(BETA_POLICIES)


@pytest.mark.parametrize("name", BETA_POLICIES)
class TestPolicyContract:
    """Any non-contextual policy: a distribution over existing arms, a floor, a seed, and learning."""

    def policy(self, name: str) -> BetaPolicy:
        return make_beta_policy(name, epsilon=0.1, mc_samples=500)

    def test_picks_only_existing_arms(self, name: str) -> None:
        st = _masked_state()
        rng = np.random.default_rng(0)
        probs = self.policy(name).probabilities(st, rng)
        assert probs.shape == st.shape
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
        assert np.all(probs[~st.mask] == 0.0)
        rows = np.repeat(np.arange(3), 2000)
        arms, props = choose(probs, rows, rng)
        assert np.all(st.mask[rows, arms]), "an arm a segment does not have was chosen"
        np.testing.assert_array_equal(props, probs[rows, arms])

    @pytest.mark.parametrize("floor", [0.02, 0.1])
    def test_honours_the_exploration_floor_even_when_one_arm_dominates(self, name: str, floor: float) -> None:
        st = _masked_state()
        # arm 0 of segments 0 and 2 has 500 successes in 500 trials, every other arm fails
        for s in (0, 2):
            st.update(np.full(500, s), np.zeros(500, int), np.ones(500))
            st.update(np.full(500, s), np.ones(500, int), np.zeros(500))
        raw = self.policy(name).probabilities(st, np.random.default_rng(1))
        probs = apply_floor(raw, st.mask, floor)
        assert np.all(probs[st.mask] >= floor - 1e-12)
        assert np.all(probs[~st.mask] == 0.0)
        np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-12)
        for s in range(3):  # the floor lifts the starved arms, it does not reorder the policy's preferences
            m = st.mask[s]
            assert np.array_equal(np.sign(np.subtract.outer(raw[s, m], raw[s, m])),
                                  np.sign(np.subtract.outer(probs[s, m], probs[s, m])))

    def test_is_deterministic_under_a_seed(self, name: str) -> None:
        st = _masked_state()
        st.update(np.array([0, 0, 2, 1]), np.array([1, 2, 0, 3]), np.array([1.0, 0.0, 1.0, 0.5]))
        runs = []
        for _ in range(2):
            rng = np.random.default_rng(42)
            probs = self.policy(name).probabilities(st, rng)
            runs.append((probs, *choose(probs, np.repeat(np.arange(3), 50), rng)))
        for a, b in zip(*runs):
            np.testing.assert_array_equal(a, b)

    def test_learns_toward_a_clearly_better_arm(self, name: str) -> None:
        """A simulated run straight against the policy: one segment, arm 2 clicks 30 %, the others
        5 %; decided in batches of 100 for 3000 decisions, the posterior updated after each batch."""
        rates = np.array([0.05, 0.05, 0.30, 0.05])
        st = BetaState.uniform(1, 4)
        policy = self.policy(name)
        rng = np.random.default_rng(7)
        shares = []
        for _ in range(30):
            probs = apply_floor(policy.probabilities(st, rng, np.array([100])), st.mask, 0.01)
            arms, _ = choose(probs, np.zeros(100, int), rng)
            rewards = (rng.random(100) < rates[arms]).astype(float)
            st.update(np.zeros(100, int), arms, rewards)
            shares.append(float(np.mean(arms == 2)))
        assert shares[0] < 0.5  # it did not know at the start
        assert np.mean(shares[-10:]) > 0.8, shares  # and it learned
        assert int(np.argmax(st.means[0])) == 2


# --- the store: what goes in comes back as the same typed values ----------------------------------------
def _keyframes(folder: Path) -> list[KeyFrame]:
    """Key frames of one source, from bare to every fact set, with a picture each."""
    bare = KeyFrame(id="kf-bare", source="/media/a.mp4", t_s=0.0, frame_index=0, shot=0, width=64, height=48)
    full = KeyFrame(id="kf-full", source="/media/a.mp4", t_s=12.25, frame_index=294, shot=7, width=64, height=48,
                    scores=ScoreSet.of({"quality": 0.7, "sharpness": 0.25}),
                    faces=(Box(10, 8, 12, 14, 0.9), Box(40, 6, 10, 12, 0.6)), active_area=(80, 0, 64, 48),
                    regions=(Region(Box(50, 2, 12, 6), "logo", "TV5", True),
                             Region(Box(4, 40, 56, 6), "subtitle", "¿Dónde estabas? 你好", False)),
                    people=(FaceFacts(confidence=0.9, eyes_open=0.8, expression=0.3, frontal=0.95, roll=-4.0,
                                      character="c1"),
                            FaceFacts(confidence=0.6, eyes_open=None, expression=None, frontal=0.4)))
    no_faces_with_text = replace(bare, id="kf-text", regions=(Region(Box(0, 0, 64, 10), "text", "", False),),
                                 active_area=(0, 0, 64, 48))
    rng = np.random.default_rng(0)
    out = []
    for kf in (bare, full, no_faces_with_text):
        path = folder / f"{kf.id}.png"
        Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8)).save(path)
        out.append(replace(kf, path=path))
    return out


def _params(kf: KeyFrame) -> list[GenerationParams]:
    base = GenerationParams(preset="classic", method="classic", profile_id="romance", profile_version="v1",
                            keyframe_id=kf.id, seed=3, width=64, height=48, aspect="4:3", grade="warm")
    return [base,
            replace(base, seed=4, crop=(0, 0, 64, 48), synthetic_share=0.12, upscale=1.25, title_status="placed",
                    title_box=(4, 30, 40, 12)),
            replace(base, seed=5, title_status="skipped", title_reason="no face-free zone", title_box=None)]


def _facts(kf: KeyFrame) -> tuple:
    return (kf.id, kf.source, kf.t_s, kf.frame_index, kf.shot, kf.width, kf.height, kf.scores, kf.faces,
            kf.active_area, kf.regions, kf.people)


class TestStoreContract:
    """Round trips through genart/store/convert.py, alone and through a real store on disk."""

    @pytest.mark.parametrize("which", [0, 1, 2])
    def test_keyframe_json_round_trips_with_a_relative_path(self, tmp_path: Path, which: int) -> None:
        kf = _keyframes(tmp_path)[which]
        doc = json.loads(json.dumps(keyframe_json(kf, tmp_path)))  # what stage.json holds
        assert doc["path"] == f"{kf.id}.png"  # relative to the folder, so the folder can move
        back = keyframe_from_json(doc, tmp_path)
        assert back == kf

    def test_params_round_trip_through_json(self, tmp_path: Path) -> None:
        for p in _params(_keyframes(tmp_path)[1]):
            assert params_from(json.loads(json.dumps(p.as_dict()))) == p

    def test_keyframes_and_variants_come_back_from_the_store(self, tmp_path: Path) -> None:
        kfs = _keyframes(tmp_path)
        store = Store(tmp_path / "runs")
        store.start_run(RunManifest(
            run_id="r1", created_at="2026-01-01T00:00:00+00:00", genart_version="test", source="/media/a.mp4",
            source_sha256="0" * 64, preset="classic", preset_spec="{}", models=(), profiles=(("romance", "v1"),),
            frames=len(kfs), variants_per_frame=3, seed=0))
        stored = store.add_keyframes("r1", [replace(k, image=Image.open(k.path).convert("RGB")) for k in kfs])
        variants = [Variant(id=f"v-{kf.id}-{p.seed}", profile_id="romance", keyframe=kf, params=p,
                            digital_source_type="algorithmicallyEnhanced",
                            image=Image.open(kf.path).convert("RGB"))
                    for kf in stored for p in _params(kf)]
        store.add_variants("r1", variants, software="genart test")

        back = {k.id: k for k in store.keyframes("r1")}
        assert sorted(back) == sorted(k.id for k in kfs)
        for kf in kfs:
            assert _facts(back[kf.id]) == _facts(kf)
            assert back[kf.id].path is not None and back[kf.id].path.exists()
        got = {v.id: v for v in store.variants("r1")}
        assert sorted(got) == sorted(v.id for v in variants)
        for v in variants:
            assert got[v.id].params == v.params and got[v.id].keyframe.id == v.keyframe.id
            assert got[v.id].digital_source_type == v.digital_source_type
            assert got[v.id].path is not None and got[v.id].path.exists()
