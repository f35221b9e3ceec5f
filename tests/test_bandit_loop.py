"""The learning loop and the tests' approvals, end to end on real runs of the ``classic`` preset.

- A weak segment makes exactly one trigger and one proposal; its variants are made by the preset's
  generator, ranked, stored in the run and queued for review; nothing more is proposed while they
  wait, nor for the same arms, nor before new evidence; approved ones become arms that trace back to
  the proposal; more weak traffic makes the next trigger, again exactly one proposal.
- The batch job never starts an unapproved test: without ``--auto-approve`` its test is a draft
  that serves nobody until a person approves it (CLI, through a real subprocess) or hands off
  approved variants (the app's path); with ``--auto-approve`` it runs and says so, and the loop then
  adds its proposals without review, logged as auto-approved.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select

from genart import api
from genart.errors import TestNotRunningError
from genart.usecases.tester import open_tester
from genart.store.bandit_tables import BanditCandidateRow, BanditProposalRow, BanditTriggerRow
from genart.types import Outcome

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def title(tmp_path_factory) -> Path:
    """Three stills: a portrait, a photo of two people (a two-shot, when the real media are there), a cat."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("title")
    Image.fromarray(data.astronaut()).save(d / "astronaut.png")
    two = REPO.parent / "shared" / "media" / "images" / "two_people.jpg"
    if two.is_file():
        shutil.copyfile(two, d / "two_people.jpg")
    Image.fromarray(data.chelsea()).save(d / "chelsea.png")
    return d


def traffic(tester, test_id: str, n: int, rates: dict[str, float], seed: int, default: float = 0.02,
            value: float = 1.0) -> None:
    """n members of the test's segments; arm a clicks (or plays ``value`` minutes) with rates.get(a, default)."""
    rng = np.random.default_rng(seed)
    segments = sorted({a.segment for a in tester.arms(test_id)})
    for start in range(0, n, 200):
        exps = tester.assign_many(test_id, [segments[i % len(segments)] for i in range(min(200, n - start))])
        tester.record_many([Outcome(e.exposure_id, value * float(rng.random() < rates.get(e.arm_id, default)), time.time())
                            for e in exps])


def count(tester, row) -> int:
    with tester.engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(row)).scalar_one())


@pytest.mark.slow
def test_a_weak_segment_triggers_exactly_one_proposal_per_trigger(title, tmp_path):
    out = tmp_path / "runs"
    run = api.create_variants(title, profiles=["drama"], preset="classic", frames=3, variants_per_frame=2, out=out)
    for rv in run["drama"][:3]:
        api.record_decision(out, run.run_id, rv.variant.id, "approve", reviewer="ana")
    cfg = api.test_settings(loop=True, loop_min_impressions=400, loop_variants=2, floor=0.02)
    rec = api.handoff_to_test(out, run.run_id, reviewer="ana", config=cfg)
    tid = rec.test_id
    tester = open_tester(out)
    facts = tester.arm_facts(tid)
    assert all(f and {"face", "close_up", "dark", "saturated", "portrait"} <= set(f)
               for (seg, arm), f in facts.items() if arm != "control")  # what each arm shows, kept with it

    traffic(tester, tid, 1500, {"control": 0.2}, seed=1)  # the current artwork beats every generated one
    step = api.loop_step(out, tid)
    assert [(s, wants) for s, wants, _ in step.checked] == [("drama", True)]
    assert len(step.proposals) == 1
    p = step.proposals[0]
    assert p.segment == "drama" and p.profile_id == "drama" and p.run_id == run.run_id
    assert "no generated arm beats the control" in p.reason
    assert len(p.candidates) == 2 and [c.status for c in p.candidates] == ["queued", "queued"]
    made = [c.variant_id for c in p.candidates]
    states = api.review_states(out, run.run_id)
    for vid in made:  # made by the preset's generator into the run, ranked, waiting for a person
        assert states[vid].status == "pending"
        log = api.decisions(out, run.run_id, variant_id=vid)
        assert [d.action for d in log] == ["proposed"] and p.proposal_id in log[0].note
        assert "predicted CTR" in log[0].note
    reloaded = api.load_run(out, run.run_id)
    ranked = {rv.variant.id: rv for rv in reloaded["drama"]}
    assert set(made) <= set(ranked) and all(Path(ranked[v].path).is_file() for v in made)
    assert step.waiting == 2

    again = api.loop_step(out, tid)  # still weak, but its proposal waits for review: nothing new
    assert again.proposals == () and again.waiting == 2 and "wait for review" in again.checked[0][2]
    assert count(tester, BanditTriggerRow) == count(tester, BanditProposalRow) == 1

    api.record_decision(out, run.run_id, made[0], "approve", reviewer="ana")
    api.record_decision(out, run.run_id, made[1], "reject", reviewer="ana", note="off-model colours")
    step = api.loop_step(out, tid)
    assert step.added == (("drama", made[0], p.proposal_id),)
    new_arm = next(a for s in tester.report(tid).segments for a in s.arms if a.arm_id == made[0])
    assert new_arm.proposal_id == p.proposal_id  # the arm says which proposal it came from
    assert new_arm.prior_strength > 2.0  # its prior is the preference model's, not the flat default
    (trace,) = api.proposals(out, tid)
    assert {c.variant_id: c.status for c in trace.candidates} == {made[0]: "added", made[1]: "rejected"}
    assert trace.status == "done" and "off-model colours" in next(c.note for c in trace.candidates if c.status == "rejected")
    assert step.proposals == ()  # the new arm gets its chance before the segment can fire again
    assert count(tester, BanditTriggerRow) == 1

    traffic(tester, tid, 1500, {"control": 0.2}, seed=2)  # still weak, with new evidence
    step = api.loop_step(out, tid)
    assert len(step.proposals) == 1 and step.proposals[0].trigger_id != p.trigger_id
    assert count(tester, BanditTriggerRow) == count(tester, BanditProposalRow) == 2
    with tester.engine.connect() as conn:  # no setting is proposed twice for the test
        keys = conn.execute(select(BanditCandidateRow.setting_key)).scalars().all()
    assert len(keys) == len(set(keys)) == 4


# --- the batch job: drafts, approvals, auto-approve ----------------------------------------------
CATALOG = """\
preset: classic
profiles: [drama]
frames: 2
variants_per_frame: 2
top_k: 2
test:
  policy: ts
  reward: play:10
  change_cap: 0.2
  change_interval: 500 exposures
  loop: true
  loop_min_impressions: 300
  loop_variants: 1
titles:
  - id: stills
    source: {src}
    title: Stills
    genre: drama
"""


@pytest.fixture(scope="module")
def batch_draft(title, tmp_path_factory):
    """A batch job's output folder, run without --auto-approve (copied by each test that changes it)."""
    d = tmp_path_factory.mktemp("batch")
    cat = d / "catalog.yaml"
    cat.write_text(CATALOG.format(src=title))
    report = api.run_catalog(cat, d / "out")
    return cat, d / "out", report


def copy_of(folder: Path, tmp_path: Path) -> Path:
    dst = tmp_path / "out"
    shutil.copytree(folder, dst)  # a store's paths are relative to its folder: a copy is a whole store
    return dst


def genart(*args, cwd=None):
    env = {**os.environ, "COLUMNS": "80", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-m", "genart.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=300)


@pytest.mark.slow
def test_the_batch_job_never_starts_an_unapproved_test(batch_draft, tmp_path):
    cat, folder, report = batch_draft
    out = copy_of(folder, tmp_path)
    (t,) = report.titles
    info = api.test_info(out, t.test_id)
    assert info.status == "draft" and info.approved_by is None and not info.auto_approve and info.origin == "batch"
    assert "plays of at least 10 min" in info.settings and "change cap 20 pts per 500 exposures" in info.settings
    tester = open_tester(out)
    with pytest.raises(TestNotRunningError, match="is draft, not running"):
        tester.assign(t.test_id, "drama")
    assert tester.counts(t.test_id) == (0, 0)
    r = genart("bandit", "list", "--out", out)
    assert r.returncode == 0 and "draft" in r.stdout
    r = genart("bandit", "approve", t.test_id, "--reviewer", "ana", "--out", out)
    assert r.returncode == 0, r.stderr
    assert "running, approved by ana" in r.stdout
    info = api.test_info(out, t.test_id)
    assert info.status == "running" and info.approved_by == "ana"
    states = api.review_states(out, t.run_id)
    arms = [a.variant_id for a in tester.arms(t.test_id) if a.variant_id]
    assert arms and all(states[v].status == "approve" and states[v].reviewer == "ana" for v in arms)
    assert tester.assign(t.test_id, "drama").arm_id


@pytest.mark.slow
def test_a_hand_off_in_the_app_starts_the_draft_with_the_approved_variants(batch_draft, tmp_path):
    _, folder, report = batch_draft
    out = copy_of(folder, tmp_path)
    (t,) = report.titles
    run = api.load_run(out, t.run_id)
    chosen = run["drama"][-1].variant.id  # the person prefers another than the ranking's top-k
    api.record_decision(out, t.run_id, chosen, "approve", reviewer="bo")
    api.handoff_to_test(out, t.run_id, reviewer="bo", test_id=t.test_id,
                        config=open_tester(out).config(t.test_id))
    info = api.test_info(out, t.test_id)
    assert info.status == "running" and info.approved_by == "bo"
    assert {a.arm_id for a in open_tester(out).arms(t.test_id)} == {chosen, "control"}


@pytest.mark.slow
def test_auto_approve_is_an_explicit_choice_recorded_in_the_test(title, tmp_path):
    cat = tmp_path / "catalog.yaml"
    cat.write_text(CATALOG.format(src=title))
    r = genart("batch", cat, "--out", tmp_path / "out", "--auto-approve")
    assert r.returncode == 0, r.stderr
    out = tmp_path / "out"
    (info,) = api.list_tests(out)
    assert info.status == "running" and info.approved_by == "auto-approve" and info.auto_approve
    # the loop adds an auto-approved test's proposals at once, and the review log says who approved
    tester = open_tester(out)
    traffic(tester, info.test_id, 900, {"control": 0.3}, seed=3, value=12.0)  # plays of 12 min (reward play:10)
    step = api.loop_step(out, info.test_id)
    assert len(step.proposals) == 1 and len(step.added) == 1 and step.waiting == 0
    vid = step.added[0][1]
    assert [(d.action, d.reviewer) for d in api.decisions(out, info.run_id, variant_id=vid)] == \
        [("proposed", "genart loop"), ("approve", "auto-approve")]
