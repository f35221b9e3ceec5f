"""Unit tests of the orchestration use cases (``genart.usecases``) on a store built directly.

The integration tier exercises these use cases on a whole real run (``classic_run``: frames, generation,
ranking, 20-50 s). Here a store is written through the ``Store`` API alone (one run, one small key frame,
two profiles, two tiny variants each, their rankings) in a few milliseconds, so the default tier proves
what review, hand-off, testing and export do with a run, without media or models.
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genart import api
from genart.config import load_models_config
from genart.errors import (
    DecisionConflictError,
    InvalidArgumentError,
    ManifestError,
    NothingApprovedError,
    UnknownRunError,
    UnknownVariantError,
)
from genart.profiles import get_profiles
from genart.rank.combine import combined_total
from genart.store.db import Store
from genart.types import GenerationParams, KeyFrame, RankedVariant, RunManifest, RunResult, ScoreSet, Variant

RUN_ID = "20260101-000000-abc123"
PROFILES = ("romance", "thriller")


@dataclass(frozen=True)
class Fixture:
    """What the tests need to know about the stored run without reading it back through the code under test."""

    out: Path
    run_id: str
    ids: dict[str, tuple[str, ...]]  # profile id -> its variant ids, best first
    totals: dict[str, float]  # variant id -> the total stored for it


def _picture(rng: np.random.Generator, w: int, h: int) -> Image.Image:
    return Image.fromarray(rng.integers(0, 255, (h, w, 3), dtype=np.uint8))


@pytest.fixture
def store_run(tmp_path: Path) -> Fixture:
    """One finished ``classic`` run written through the Store API: a 64x36 key frame, and for each of
    two real profiles two 16:9 variants (64x36) ranked 1 and 2, each total combined from its scores
    with the profile's weights and the preset's extra weights (legibility: a score the profiles leave
    to the preset), as ``genart.rank.combine`` does."""
    rng = np.random.default_rng(7)
    store = Store(tmp_path)
    profs = get_profiles(list(PROFILES))
    manifest = RunManifest(
        run_id=RUN_ID, created_at="2026-01-01T00:00:00+00:00", genart_version="test", source="/media/clip.mp4",
        source_sha256="0" * 64, preset="classic", preset_spec="{}", models=(),
        profiles=tuple((p.id, p.version) for p in profs), frames=1, variants_per_frame=2, seed=0,
        title="Test Title", genre="drama")
    store.start_run(manifest)
    kf = KeyFrame(id="kf-1", source="/media/clip.mp4", t_s=1.5, frame_index=36, shot=0, width=64, height=36,
                  image=_picture(rng, 64, 36))
    kf = store.add_keyframes(RUN_ID, [kf])[0]
    extra = ScoreSet.of(load_models_config().preset("classic").ranker.extra_weights)
    variants, ranked = [], []
    ids: dict[str, tuple[str, ...]] = {}
    totals: dict[str, float] = {}
    for p in profs:
        mine = []
        for i, (affinity, fidelity, quality, legibility) in enumerate(((0.8, 0.9, 0.7, 0.3), (0.4, 0.6, 0.5, 0.9))):
            params = GenerationParams(preset="classic", method="classic", profile_id=p.id, profile_version=p.version,
                                      keyframe_id=kf.id, seed=i, width=64, height=36, aspect="16:9", grade="warm")
            v = Variant(id=f"{p.id}-v{i}", profile_id=p.id, keyframe=replace(kf, image=None), params=params,
                        digital_source_type="algorithmicallyEnhanced", image=_picture(rng, 64, 36))
            scores = ScoreSet.of({"affinity": affinity, "fidelity": fidelity, "quality": quality,
                                   "legibility": legibility, "nsfw": 0.01})
            total = combined_total(scores, p.weights, extra)
            variants.append(v)
            mine.append(v.id)
            totals[v.id] = total
            ranked.append(RankedVariant(variant=v, profile_id=p.id, scores=scores, total=total, rank=i + 1,
                                        rank_score=total))
        ids[p.id] = tuple(mine)
    store.add_variants(RUN_ID, variants, software="genart test")
    store.add_rankings(RUN_ID, ranked)
    store.finish_run(RUN_ID, "done")
    run_dir = tmp_path / "runs" / RUN_ID  # the manifest file a run writes beside its rows (export reads it)
    run_dir.mkdir(parents=True)
    (run_dir / "manifest.json").write_text(json.dumps(manifest.to_json()), encoding="utf-8")
    store.engine.dispose()  # the use cases open the store themselves, as every surface does
    return Fixture(out=tmp_path, run_id=RUN_ID, ids=ids, totals=totals)


# --- runs ----------------------------------------------------------------------------------------------
def test_list_runs_and_load_run_give_the_run_back_typed(store_run: Fixture, tmp_path_factory) -> None:
    runs = api.list_runs(store_run.out)
    assert [r.run_id for r in runs] == [RUN_ID]
    assert runs[0].status == "done" and runs[0].preset == "classic" and runs[0].title == "Test Title"
    assert runs[0].profiles == PROFILES and runs[0].error is None
    assert api.list_runs(tmp_path_factory.mktemp("empty")) == []  # a folder with no store yet: no runs

    run = api.load_run(store_run.out, RUN_ID)
    assert isinstance(run, RunResult) and run.preset == "classic"
    assert [pid for pid, _ in run.ranked] == list(PROFILES)  # the manifest's profile order
    for pid, items in run.ranked:
        assert tuple(rv.variant.id for rv in items) == store_run.ids[pid]
        assert [rv.rank for rv in items] == [1, 2] and all(rv.profile_id == pid for rv in items)
        for rv in items:
            assert rv.total == pytest.approx(store_run.totals[rv.variant.id])
            assert rv.variant.path is not None and rv.variant.path.is_file()
            assert rv.variant.keyframe.id == "kf-1" and rv.variant.params.aspect == "16:9"
    assert [k.id for k in run.keyframes] == ["kf-1"] and run.keyframes[0].path.is_file()
    assert api.load_run(store_run.out, RUN_ID) is run  # nothing changed: the cached result comes back

    with pytest.raises(UnknownRunError, match=RUN_ID):  # the message lists the runs there are
        api.load_run(store_run.out, "no-such-run")


# --- review ----------------------------------------------------------------------------------------------
def test_decisions_set_the_states_and_only_the_approved_ones_count(store_run: Fixture) -> None:
    out, rid = store_run.out, store_run.run_id
    good, bad = store_run.ids["romance"]
    states = api.review_states(out, rid)
    assert set(states) == {v for ids in store_run.ids.values() for v in ids}  # every variant, pending at first
    assert all(s.status == "pending" and s.version == 0 for s in states.values())
    assert api.approved_variants(out, rid) == []

    done = api.record_decision(out, rid, good, "approve", "  Ana  ", "strong face")
    assert (done.action, done.reviewer, done.note, done.version, done.profile_id) == (
        "approve", "Ana", "strong face", 1, "romance")  # the name is trimmed, the profile found from the variant
    api.record_decision(out, rid, bad, "reject", "Ben", expected_version=0)

    states = api.review_states(out, rid)
    assert (states[good].status, states[good].version, states[good].reviewer) == ("approve", 1, "Ana")
    assert (states[bad].status, states[bad].reviewer) == ("reject", "Ben")
    assert all(states[v].status == "pending" for v in store_run.ids["thriller"])
    approved = api.approved_variants(out, rid)
    assert [rv.variant.id for rv in approved] == [good]  # the rejected and the pending ones stay out
    assert approved[0].profile_id == "romance" and approved[0].rank == 1


def test_a_stale_or_invalid_decision_is_refused_with_a_typed_error_and_nothing_saved(store_run: Fixture) -> None:
    out, rid = store_run.out, store_run.run_id
    vid = store_run.ids["thriller"][0]
    api.record_decision(out, rid, vid, "approve", "Ana", expected_version=0)
    # Ben still looks at version 0: refused, naming who changed it
    with pytest.raises(DecisionConflictError, match=r"version 0, it is now version 1 \(Ana chose 'approve'"):
        api.record_decision(out, rid, vid, "reject", "Ben", expected_version=0)
    for reviewer in ("", "   ", None, "x" * 129):
        with pytest.raises(InvalidArgumentError, match="reviewer"):
            api.record_decision(out, rid, vid, "reject", reviewer)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentError, match="action"):
        api.record_decision(out, rid, vid, "delete", "Ben")
    with pytest.raises(InvalidArgumentError, match="note"):
        api.record_decision(out, rid, vid, "flag", "Ben", "n" * 4001)
    with pytest.raises(InvalidArgumentError, match="expected_version"):
        api.record_decision(out, rid, vid, "flag", "Ben", expected_version=-1)
    with pytest.raises(UnknownVariantError, match="nope"):
        api.record_decision(out, rid, "nope", "approve", "Ben")
    with pytest.raises(UnknownRunError):
        api.record_decision(out, "no-such-run", vid, "approve", "Ben")
    # none of those was written: Ana's approval is the one entry, and it stands
    assert [(d.reviewer, d.action) for d in api.decisions(out, rid)] == [("Ana", "approve")]
    assert api.review_states(out, rid)[vid].status == "approve"
    # after looking again (version 1) Ben may decide, and his decision wins
    api.record_decision(out, rid, vid, "reject", "Ben", expected_version=1)
    assert api.review_states(out, rid)[vid].status == "reject" and api.approved_variants(out, rid) == []


def test_the_decision_log_is_append_only_and_oldest_first(store_run: Fixture) -> None:
    out, rid = store_run.out, store_run.run_id
    a, b = store_run.ids["romance"]
    steps = [(a, "approve", "Ana"), (b, "flag", "Ben"), (a, "reject", "Cy"), (a, "approve", "Ana")]
    for vid, action, who in steps:
        api.record_decision(out, rid, vid, action, who)
    log = api.decisions(out, rid)
    assert [(d.variant_id, d.action, d.reviewer) for d in log] == steps  # nothing overwritten, in order
    assert [d.created_at for d in log] == sorted(d.created_at for d in log)
    mine = api.decisions(out, rid, variant_id=a)
    assert [d.version for d in mine] == [1, 2, 3] and [d.action for d in mine] == ["approve", "reject", "approve"]
    assert api.review_states(out, rid)[a].version == 3 and api.review_states(out, rid)[b].version == 1
    with pytest.raises(UnknownRunError):
        api.decisions(out, "no-such-run")


def test_the_score_breakdown_adds_up_to_the_total(store_run: Fixture) -> None:
    from genart.types import Contribution

    run = api.load_run(store_run.out, store_run.run_id)
    for pid, items in run.ranked:
        weights = get_profiles([pid])[0].weights
        for rv in items:
            assert rv.explanation == ()  # stored without one: worked out the way the ranking combines
            rows = api.score_breakdown(rv, "classic")
            assert {c.score for c in rows} == {"affinity", "fidelity", "quality", "legibility", "nsfw"}
            assert sum(c.contribution for c in rows) == pytest.approx(rv.total, abs=1e-9)
            assert [abs(c.contribution) for c in rows] == sorted((abs(c.contribution) for c in rows), reverse=True)
            for c in rows:
                assert c.contribution == pytest.approx(c.value * c.weight, abs=1e-12)
            if weights.get("nsfw") is None:  # a safety gate nobody weights counts nothing
                assert next(c for c in rows if c.score == "nsfw").contribution == 0.0
    rv = run.ranked[0][1][0]
    told = replace(rv, explanation=(Contribution("affinity", 0.5, 1.0, 0.5),))  # the ranking's own one wins
    assert api.score_breakdown(told) == told.explanation
    from genart.errors import UnknownPresetError

    with pytest.raises(UnknownPresetError):
        api.score_breakdown(rv, "no-such-preset")


# --- hand-off and the bandit test ------------------------------------------------------------------------
def _approve_two(fx: Fixture) -> list[str]:
    """Approve each profile's best variant, reject its second: the arms a hand-off should make."""
    chosen = []
    for pid in PROFILES:
        best, second = fx.ids[pid]
        api.record_decision(fx.out, fx.run_id, best, "approve", "Ana")
        api.record_decision(fx.out, fx.run_id, second, "reject", "Ana")
        chosen.append(best)
    return chosen


def test_handoff_opens_a_bandit_test_with_the_approved_variants_as_arms(store_run: Fixture) -> None:
    out, rid = store_run.out, store_run.run_id
    with pytest.raises(NothingApprovedError, match="no approved variants to hand off"):
        api.handoff_to_test(out, rid, reviewer="Ana")
    with pytest.raises(InvalidArgumentError, match="reviewer"):
        api.handoff_to_test(out, rid, reviewer=" ")
    assert api.handoffs(out, rid) == [] and api.list_tests(out) == []  # nothing half-done by a refusal
    chosen = _approve_two(store_run)

    rec = api.handoff_to_test(out, rid, reviewer="Ana", origin="api")
    test_id = f"{rid}-test"
    assert rec.run_id == rid and rec.test_id == test_id and rec.reviewer == "Ana"
    by_segment: dict[str, list[str]] = {}
    for arm in rec.arms:
        by_segment.setdefault(arm.segment, []).append(arm.arm_id)
    # one segment per profile with approved variants: its approved variant, then the control
    assert by_segment == {"romance": [chosen[0], "control"], "thriller": [chosen[1], "control"]}
    assert all(a.test_id == test_id and 0.0 < a.prior_mean < 1.0 for a in rec.arms)

    tests = {t.test_id: t for t in api.list_tests(out)}
    assert set(tests) == {test_id} and tests[test_id].status == "running"
    assert tests[test_id].approved_by == "Ana" and tests[test_id].run_id == rid
    assert api.handoffs(out, rid) == [rec]

    # the same hand-off again changes nothing and gives back the first record
    again = api.handoff_to_test(out, rid, reviewer="Ben")
    assert again == rec and again.reviewer == "Ana"
    assert api.handoffs(out, rid) == [rec] and [t.test_id for t in api.list_tests(out)] == [test_id]
    # other arms under the same test id are refused, never merged into the running test
    from genart.errors import TestConflictError

    api.record_decision(out, rid, store_run.ids["romance"][1], "approve", "Ana")
    with pytest.raises(TestConflictError):
        api.handoff_to_test(out, rid, reviewer="Ana")
    assert api.handoffs(out, rid) == [rec]


def test_a_handed_off_test_takes_simulated_traffic_and_reports_it(store_run: Fixture) -> None:
    out, rid = store_run.out, store_run.run_id
    _approve_two(store_run)
    rec = api.handoff_to_test(out, rid, reviewer="Ana")
    with pytest.raises(InvalidArgumentError, match="impressions"):
        api.simulate_test(out, rec.test_id, impressions=0)
    api.simulate_test(out, rec.test_id, impressions=200, seed=1)

    snap = api.test_report(out, rec.test_id, plots=False)
    assert snap.test_id == rec.test_id and snap.plots == ()
    segs = {s.segment: s for s in snap.report.segments}
    assert set(segs) == set(PROFILES)
    shown = 0
    for seg in segs.values():
        assert {a.arm_id for a in seg.arms} == {a.arm_id for a in rec.arms if a.segment == seg.segment}
        shown += sum(a.impressions for a in seg.arms)
    assert shown == 200  # every simulated impression logged against one arm of one segment
    trends = api.test_timeline(out, rec.test_id, points=4)
    assert {(t.segment, t.arm_id) for t in trends} == {(a.segment, a.arm_id) for a in rec.arms}
    for seg in PROFILES:  # each window's shares of a segment add up to 1
        mine = [t for t in trends if t.segment == seg]
        for k in range(len(mine[0].share)):
            assert sum(t.share[k] for t in mine) == pytest.approx(1.0)

    ev = api.evaluate_test(out, rec.test_id, candidates=("uniform", "control"), methods=("ips",), n_boot=20)
    assert ev.n == 200 and [n for n, _ in ev.candidates] == ["uniform", "control"]
    assert [(c, e.method) for c, e in ev.estimates] == [("uniform", "ips"), ("control", "ips")]
    assert all(e.ci_low <= e.value <= e.ci_high for _, e in ev.estimates)
    with pytest.raises(InvalidArgumentError, match="method"):
        api.evaluate_test(out, rec.test_id, methods=("guess",))

    stopped = api.stop_test(out, rec.test_id)  # each segment keeps its winner, or its best posterior mean
    assert stopped.status == "stopped" and [t.status for t in api.list_tests(out)] == ["stopped"]
    assert api.test_report(out, rec.test_id, plots=False).report.status == "stopped"


def test_variant_facts_measure_what_each_stored_variant_shows(store_run: Fixture) -> None:
    out, rid = store_run.out, store_run.run_id
    vid = store_run.ids["romance"][0]
    facts = api.variant_facts(out, rid, [vid])
    assert list(facts) == [vid]  # only the variants asked for
    f = facts[vid]
    # no faces found in the key frame, a 16:9 picture without a title, made by the classic method
    assert (f["face"], f["two_shot"], f["portrait"], f["square"], f["title"], f["generated"]) == (0, 0, 0, 0, 0, 0)
    assert 0.0 <= f["dark"] <= 1.0 and 0.0 <= f["saturated"] <= 1.0 and f["strong_grade"] == 1.0
    assert set(api.variant_facts(out, rid)) == {v for ids in store_run.ids.values() for v in ids}
    with pytest.raises(UnknownRunError):
        api.variant_facts(out, "no-such-run")


def test_a_title_or_stage_that_is_not_there_is_a_typed_error(store_run: Fixture) -> None:
    with pytest.raises(InvalidArgumentError, match="a catalogue title this store ran"):
        api.title_run(store_run.out, "no-such-title")  # no batch job ran in this store
    with pytest.raises(InvalidArgumentError, match="stage id"):
        api.load_stage(store_run.out, "../etc")  # not an id stage_source gives
    with pytest.raises(InvalidArgumentError, match="a stage in"):
        api.load_stage(store_run.out, "20260101-000000-abcdef")  # well formed, but no such stage


# --- export ----------------------------------------------------------------------------------------------
def test_export_packages_only_the_approved_variants_at_delivery_size(store_run: Fixture) -> None:
    from genart.usecases.export import delivery_sizes

    out, rid = store_run.out, store_run.run_id
    target = out / "pkg" / "delivery.zip"
    with pytest.raises(NothingApprovedError, match="no approved variants to export"):
        api.export_package(out, rid, target)
    assert not target.exists()
    chosen = _approve_two(store_run)

    pkg = api.export_package(out, rid, target)
    assert pkg.zip_path == target.resolve() and sorted(f.variant_id for f in pkg.files) == sorted(chosen)
    size = delivery_sizes("classic")["16:9"]
    with zipfile.ZipFile(target) as z:
        manifest = json.loads(z.read("manifest.json"))
        assert set(z.namelist()) == {f.path for f in pkg.files} | {"manifest.json"}
        for f in pkg.files:
            assert f.path.startswith(f"{f.profile_id}/16x9/") and f.artwork_type == "cover"
            with Image.open(io.BytesIO(z.read(f.path))) as im:
                assert im.size == size == (f.width, f.height)
                assert im.text["DigitalSourceType"].endswith("algorithmicallyEnhanced")  # still labelled
    assert sorted(f["variant_id"] for f in manifest["files"]) == sorted(chosen)
    assert manifest["run_id"] == rid and (manifest["title"], manifest["genre"]) == ("Test Title", "drama")
    # a cover of a titled run without the title treatment is said in the warnings
    assert sum("a cover without the title treatment" in w for w in pkg.warnings) == len(chosen)
    # one picture per type and language is below Prime Video's minimum of 3: said, never hidden
    assert all(c.status == "below the minimum" for c in pkg.counts)
    assert any("below the minimum of Prime Video" in w for w in pkg.warnings)
    with pytest.raises(InvalidArgumentError, match="streamer"):
        api.export_package(out, rid, target, streamer="nobody")


def test_export_takes_title_and_genre_from_an_older_manifest_and_names_a_broken_one(store_run: Fixture) -> None:
    """The package's title comes from the run's ``manifest.json`` read as a ``RunManifest``: one written
    before ``checks`` and ``profile_order`` existed still gives it; a broken one is a typed error that
    names the file, and no package is left half-written."""
    out, rid = store_run.out, store_run.run_id
    _approve_two(store_run)
    path = out / "runs" / rid / "manifest.json"
    doc = json.loads(path.read_text(encoding="utf-8"))
    del doc["checks"], doc["profile_order"]
    path.write_text(json.dumps(doc), encoding="utf-8")
    with zipfile.ZipFile(api.export_package(out, rid, out / "old.zip").zip_path) as z:
        package = json.loads(z.read("manifest.json"))
    assert (package["title"], package["genre"]) == ("Test Title", "drama")
    path.write_text('{"run_id": "' + rid + '"', encoding="utf-8")
    with pytest.raises(ManifestError, match="not JSON") as err:
        api.export_package(out, rid, out / "broken.zip")
    assert str(path) in str(err.value) and not (out / "broken.zip").exists()
