"""The review app's handlers and API functions, without a browser: plain inputs in, plain values out,
typed errors for bad input, an append-only audit trail that two reviewers cannot overwrite."""

from __future__ import annotations

import importlib.util
import json
import threading
from pathlib import Path

import pytest

from genart import api
from genart.errors import (
    DecisionConflictError,
    EmptySourceError,
    InsecureBindError,
    InvalidArgumentError,
    ReviewError,
    UnknownPresetError,
    UnknownRunError,
    UnknownVariantError,
    UnsupportedMediaError,
    UploadError,
)
from genart.types import Box
from genart.store.exposure_log import SqlExposureLog

# found, not imported: importing gradio at collection costs seconds of every run, even of the unit tier
pytestmark = pytest.mark.skipif(importlib.util.find_spec("gradio") is None,
                                reason="the review app needs gradio (pip install gradio)")

from app import handlers as h  # noqa: E402

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
STILLS = [MEDIA / "images" / "two_people.jpg", MEDIA / "images" / "chelsea.png"]
VIDEO = MEDIA / "videos" / "chaplin.mp4"


def _need_media() -> None:
    from tests.media import need_media

    need_media(*STILLS)


@pytest.fixture(scope="module")
def classic_run(tmp_path_factory):
    """A classic run of two stills: 2 key frames x 2 variants x 2 profiles, made through the handlers."""
    _need_media()
    out = tmp_path_factory.mktemp("app-store")
    stage = h.stage_upload(out, [str(p) for p in STILLS], 2)
    done = h.generate(out, stage.stage_id, list(stage.selected), ["romance", "thriller"], "classic", 2, 0,
                      "The Test", "comedy", {})
    return out, stage, done.run_id


# --- step 1: uploads -------------------------------------------------------------------------------
@pytest.mark.slow
def test_stage_upload_of_stills_shows_key_frames_with_timecodes(classic_run):
    out, stage, _ = classic_run
    assert len(stage.items) == 2 and len(stage.choices) == 2
    assert stage.selected == tuple(kid for _, kid in stage.choices)
    for path, caption in stage.items:
        assert Path(path).is_file() and Path(path).resolve().is_relative_to(Path(out).resolve() / "uploads")
        assert caption.split(" · ")[0].endswith(("00:00:00.000", "00:00:01.000")) and "quality" in caption
    # the stage survives the request: it can be loaded back by id alone
    again = api.load_stage(out, stage.stage_id)
    assert [k.id for k in again.keyframes] == list(stage.selected)
    assert again.source.is_relative_to(Path(out).resolve() / "uploads")  # a copy, not the gradio temp file


@pytest.mark.slow
def test_stage_upload_of_a_video(tmp_path):
    from tests.media import need_media

    need_media(VIDEO)
    view = h.stage_upload(tmp_path, str(VIDEO), 2)
    assert 1 <= len(view.items) <= 2
    assert all(" · shot " in c for _, c in view.items)
    assert "chaplin.mp4" in view.summary


def test_upload_refusals_are_typed_and_say_why(tmp_path):
    _need_media()
    with pytest.raises(UploadError, match="no file uploaded"):
        h.stage_upload(tmp_path, None)
    with pytest.raises(UploadError, match="the limit is"):
        h.stage_upload(tmp_path, [str(STILLS[0])], max_bytes=1000)
    notes = tmp_path / "notes.txt"
    notes.write_text("hello")
    with pytest.raises(UploadError, match="not a video or an image"):
        h.stage_upload(tmp_path, [str(notes)])
    fake = tmp_path / "movie.mp4"
    fake.write_bytes(b"this is not a video at all" * 100)
    with pytest.raises((UnsupportedMediaError, EmptySourceError), match="movie.mp4") as err:
        h.stage_upload(tmp_path / "store", [str(fake)])
    assert str(tmp_path) not in str(err.value)  # names the upload, not the server's temporary path
    with pytest.raises(UploadError, match="not a mix"):
        h.stage_upload(tmp_path, [str(VIDEO), str(STILLS[0])])
    with pytest.raises(InvalidArgumentError, match="key frames"):
        h.stage_upload(tmp_path, [str(STILLS[0])], 0)
    # nothing half-made was left behind by the refused uploads
    assert not (tmp_path / "store" / "uploads").exists() or not any((tmp_path / "store" / "uploads").iterdir())


# --- step 2: profiles, prompts, generation ----------------------------------------------------------
def test_prompt_edits_are_plain_data():
    original, desc = h.prompt_for({}, "romance")
    assert "{title}" in original and desc
    edits = h.set_prompt({}, "romance", "a tender {genre} moment in {title}")
    assert edits == {"romance": "a tender {genre} moment in {title}"}
    assert h.prompt_for(edits, "romance")[0] == "a tender {genre} moment in {title}"
    assert h.set_prompt(edits, "romance", original) == {}  # back to the file's prompt: no edit
    assert h.set_prompt(edits, "romance", "  ") == {}


@pytest.mark.slow
def test_generate_refuses_bad_input_before_doing_anything(classic_run):
    out, stage, _ = classic_run
    runs_before = len(api.list_runs(out))
    with pytest.raises(InvalidArgumentError, match="uploaded"):
        h.generate(out, "", list(stage.selected), ["romance"], "classic", 1, 0)
    with pytest.raises(InvalidArgumentError, match="key frame"):
        h.generate(out, stage.stage_id, [], ["romance"], "classic", 1, 0)
    with pytest.raises(InvalidArgumentError, match="profile"):
        h.generate(out, stage.stage_id, list(stage.selected), [], "classic", 1, 0)
    with pytest.raises(InvalidArgumentError, match="variants per frame"):
        h.generate(out, stage.stage_id, list(stage.selected), ["romance"], "classic", 0, 0)
    with pytest.raises(InvalidArgumentError, match="seed"):
        h.generate(out, stage.stage_id, list(stage.selected), ["romance"], "classic", 1, "abc")
    with pytest.raises(UnknownPresetError, match="known presets"):
        h.generate(out, stage.stage_id, list(stage.selected), ["romance"], "nope", 1, 0)
    with pytest.raises(InvalidArgumentError, match="placeholders"):
        h.generate(out, stage.stage_id, list(stage.selected), ["romance"], "classic", 1, 0, prompts={"romance": "a {bad}"})
    with pytest.raises(InvalidArgumentError, match="stage id"):
        h.generate(out, "../../etc", list(stage.selected), ["romance"], "classic", 1, 0)
    assert len(api.list_runs(out)) == runs_before


@pytest.mark.slow
def test_generate_uses_only_the_kept_key_frames_and_the_edited_prompt(classic_run):
    out, stage, _ = classic_run
    keep = stage.selected[1]
    done = h.generate(out, stage.stage_id, [keep], ["romance"], "classic", 1, 3, prompts={"romance": "x {title}"})
    run = api.load_run(out, done.run_id)
    assert [k.id for k in run.keyframes] == [keep]
    assert {rv.variant.keyframe.id for _, items in run.ranked for rv in items} == {keep}
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["profiles"]["romance"] != api.get_profile("romance").version  # edited: its own version
    assert done.run_id in [rid for _, rid in h.run_choices(out)]


# --- step 3: review -----------------------------------------------------------------------------------
@pytest.mark.slow
def test_load_run_reads_back_what_the_run_made(classic_run):
    out, _, run_id = classic_run
    run = api.load_run(out, run_id)
    assert [pid for pid, _ in run.ranked] == ["romance", "thriller"]
    for _, items in run.ranked:
        assert [rv.rank for rv in items] == list(range(1, len(items) + 1))
        assert all(rv.path.is_file() for rv in items)
    result = json.loads((run.out_dir / "result.json").read_text())
    for pid, items in run.ranked:
        assert [rv.variant.id for rv in items] == [d["variant_id"] for d in result["profiles"][pid]]
    with pytest.raises(UnknownRunError, match=run_id):  # the message lists the runs there are
        api.load_run(out, "no-such-run")


@pytest.mark.slow
def test_gallery_is_best_first_with_scores_and_review_state(classic_run):
    out, _, run_id = classic_run
    view = h.open_run(out, run_id)
    assert view.profiles == ("romance", "thriller") and "pending review" in view.summary
    g = h.gallery(out, run_id, "romance")
    assert len(g.items) == 4 and len(g.variant_ids) == 4 and g.summary == "4 of 4 shown"
    totals = [float(c.split(" · ")[2]) for _, c in g.items]
    assert totals[0] == max(totals)  # best first; the next places are picked for diversity (MMR)
    assert g.items[0][1].startswith("#1 · ") and g.items[0][1].endswith("pending review")
    d = h.variant_detail(out, run_id, g.variant_ids[0])
    assert Path(d.image).is_file() and Path(d.keyframe_image).is_file()
    assert d.keyframe_label.startswith("Source frame 00:00:0")
    names = [n for n, _, _ in d.scores]
    assert {"affinity", "fidelity", "quality"} <= set(names)
    ws = dict((n, w) for n, _, w in d.scores)  # the profile's weights (1.0, 0.6, 0.3) as the total uses them
    assert ws["affinity"] / ws["fidelity"] == pytest.approx(1.0 / 0.6) and ws["quality"] / ws["affinity"] == pytest.approx(0.3)
    assert "romance #1" in d.headline and "pending review" in d.headline
    assert d.variant_id not in d.headline + d.params  # internal ids stay in state, not on screen
    assert d.state.version == 0 and "seed" in d.params


@pytest.mark.slow
def test_decisions_are_logged_with_reviewer_and_time_and_stale_ones_refused(classic_run):
    out, _, run_id = classic_run
    vid = h.gallery(out, run_id, "thriller").variant_ids[0]
    with pytest.raises(InvalidArgumentError, match="your name"):
        h.decide(out, run_id, vid, "approve", h.reviewer_name(None, " "))
    done = h.decide(out, run_id, vid, "approve", "Ana", "strong face", 0)
    assert done.state.status == "approve" and done.state.version == 1 and done.state.reviewer == "Ana"
    # Ben still looks at version 0: his reject is refused, Ana's approval stands
    with pytest.raises(DecisionConflictError, match="Ana chose 'approve'"):
        h.decide(out, run_id, vid, "reject", "Ben", "too dark", 0)
    assert api.review_states(out, run_id)[vid].status == "approve"
    # after looking again (version 1) he may decide, and both entries stay in the history
    h.decide(out, run_id, vid, "flag", "Ben", "check the licence " + "with legal " * 20, 1)
    rows = h.history(out, run_id, vid)
    assert [(r[1], r[2]) for r in rows] == [("Ben", "flag"), ("Ana", "approve")]
    assert [d.version for d in reversed(api.decisions(out, run_id, variant_id=vid))] == [2, 1]
    assert rows[0][0] >= rows[1][0] and rows[1][0].startswith("20")
    assert rows[0][3].startswith("thriller #") and vid not in " ".join(rows[0])  # the variant by name
    assert rows[0][4].endswith("with legal") and len(rows[0][4]) > 200  # the whole note, never cut
    notes = h.variant_detail(out, run_id, vid).notes
    assert notes[0].startswith("Ben (flag): check the licence") and notes[1] == "Ana (approve): strong face"
    caption = dict(zip(h.gallery(out, run_id, "thriller").variant_ids, (c for _, c in h.gallery(out, run_id, "thriller").items)))[vid]
    assert caption.endswith("⚑ flagged")
    with pytest.raises(InvalidArgumentError, match="action"):
        h.decide(out, run_id, vid, "delete", "Ben")
    with pytest.raises(UnknownVariantError):
        h.decide(out, run_id, "nope", "approve", "Ben")
    assert h.reviewer_name("signed-in", "typed") == "signed-in"


@pytest.mark.slow
def test_two_reviewers_at_once_never_overwrite_each_other(classic_run):
    out, _, run_id = classic_run
    vid = h.gallery(out, run_id, "thriller").variant_ids[-1]
    # 1) both saw the same version and click at the same moment: exactly one decision is saved
    for _round in range(4):
        seen = api.review_states(out, run_id)[vid].version
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def click(who: str, action: str) -> None:
            barrier.wait()  # noqa: B023 - this round's threads are joined before the next round
            try:
                results[who] = api.record_decision(out, run_id, vid, action, who, expected_version=seen)  # noqa: B023
            except DecisionConflictError as exc:
                results[who] = exc  # noqa: B023

        threads = [threading.Thread(target=click, args=("Ana", "approve")),
                   threading.Thread(target=click, args=("Ben", "reject"))]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        won = [w for w, r in results.items() if not isinstance(r, Exception)]
        lost = [w for w, r in results.items() if isinstance(r, DecisionConflictError)]
        assert len(won) == 1 and len(lost) == 1, results
        state = api.review_states(out, run_id)[vid]
        assert state.version == seen + 1 and state.reviewer == won[0]
    # 2) many writers without a version: every decision is appended, none lost, versions unique
    before = len(api.decisions(out, run_id, variant_id=vid))
    barrier = threading.Barrier(6)

    def many(i: int) -> None:
        barrier.wait()
        for k in range(3):
            api.record_decision(out, run_id, vid, "flag", f"reviewer-{i}", f"note {k}")

    threads = [threading.Thread(target=many, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    log = api.decisions(out, run_id, variant_id=vid)
    assert len(log) == before + 18
    assert sorted(d.version for d in log) == list(range(1, len(log) + 1))


@pytest.mark.slow
def test_regenerate_adds_a_variant_and_keeps_the_old_one_with_its_decisions(classic_run):
    out, _, run_id = classic_run
    g = h.gallery(out, run_id, "romance")
    old = g.variant_ids[1]
    h.decide(out, run_id, old, "reject", "Ana", "crop too tight")
    with pytest.raises(InvalidArgumentError, match="classic preset"):
        h.regenerate(out, run_id, old, "Ana", 5, 0.5, None)
    with pytest.raises(InvalidArgumentError, match="seed"):
        h.regenerate(out, run_id, old, "Ana", -1)
    old_frame = h.variant_detail(out, run_id, old).keyframe_image
    new = h.regenerate(out, run_id, old, "Ana", 12345)
    assert new.variant.id != old and str(new.variant.keyframe.path) == old_frame  # same source frame
    after = h.gallery(out, run_id, "romance")
    assert len(after.variant_ids) == len(g.variant_ids) + 1 and new.variant.id in after.variant_ids
    assert api.review_states(out, run_id)[old].status == "reject"  # nothing already done is lost
    entry = api.decisions(out, run_id, variant_id=new.variant.id)[0]
    assert entry.action == "regenerated" and entry.reviewer == "Ana" and old in entry.note
    with pytest.raises(InvalidArgumentError, match="exists already"):
        h.regenerate(out, run_id, old, "Ana", 12345)


@pytest.mark.slow
def test_tiny_preset_run_and_regenerate_with_new_strength_and_prompt(tmp_path, genart_cache):
    _need_media()
    stage = h.stage_upload(tmp_path, [str(STILLS[0])], 1)
    done = h.generate(tmp_path, stage.stage_id, list(stage.selected), ["romance"], "tiny", 1, 0, "Tiny", "drama",
                      {"romance": "an edited prompt for {title}"})
    run = api.load_run(tmp_path, done.run_id)
    first = run.profiles["romance"][0]
    assert first.variant.params.prompt == "an edited prompt for Tiny"
    new = h.regenerate(tmp_path, done.run_id, first.variant.id, "Ana", 9, "0.8", "noir poster of {title}")
    assert new.variant.params.strength == 0.8 and new.variant.params.prompt == "noir poster of Tiny"
    with pytest.raises(InvalidArgumentError, match="strength"):
        h.regenerate(tmp_path, done.run_id, first.variant.id, "Ana", 10, 1.5)
    assert len(h.gallery(tmp_path, done.run_id, "romance").items) == 2


# --- step 4: hand-off ----------------------------------------------------------------------------------
def _bandit_ready() -> bool:
    try:
        import genart.bandit.handoff  # noqa: F401
        import genart.bandit.report  # noqa: F401
        import genart.bandit.tester  # noqa: F401
    except ImportError:
        return False
    return True


@pytest.mark.slow
def test_handoff_needs_approved_variants(tmp_path):
    _need_media()
    if not _bandit_ready():
        pytest.skip("the bandit stage (genart.bandit handoff/tester/report) is not in this checkout yet")
    stage = h.stage_upload(tmp_path, [str(STILLS[1])], 1)
    run_id = h.generate(tmp_path, stage.stage_id, list(stage.selected), ["romance"], "classic", 1, 0).run_id
    with pytest.raises(ReviewError, match="no approved variants"):
        h.handoff(tmp_path, run_id, "Ana", None, ["romance"])
    with pytest.raises(InvalidArgumentError, match="segment"):
        h.handoff(tmp_path, run_id, "Ana", None, [])


@pytest.mark.slow
def test_handoff_then_simulated_traffic_fills_the_report(classic_run):
    if not _bandit_ready():
        pytest.skip("the bandit stage (genart.bandit handoff/tester/report) is not in this checkout yet")
    out, _, run_id = classic_run
    for pid in ("romance", "thriller"):
        vid = h.gallery(out, run_id, pid).variant_ids[0]
        st = api.review_states(out, run_id)[vid]
        if st.status != "approve":
            h.decide(out, run_id, vid, "approve", "Ana", "", st.version)
    assert h.approved_profiles(out, run_id) == ["romance", "thriller"]
    done = h.handoff(out, run_id, "Ana", "handler-test", ["romance", "thriller"], True, "ts")
    assert done.test_id == "handler-test" and "Ana" in done.message
    assert h.test_choices(out, run_id) == ["handler-test"]
    record = api.handoffs(out, run_id)[0]
    assert record.reviewer == "Ana" and all(a.test_id == "handler-test" for a in record.arms)
    assert {a.segment for a in record.arms} == {"romance", "thriller"} and sum(a.is_control for a in record.arms) == 2
    before = h.test_results(out, "handler-test")
    for seg in before.segments:  # before any traffic: priors shown as priors, no click rate, no verdict yet
        assert seg.verdict == "no traffic yet"
        assert all(a.click_rate is None and a.ci is None and 0.0 < a.prior < 1.0 for a in seg.arms)
    assert all(r[4] == "—" for r in before.rows)
    views = list(h.simulate(out, "handler-test", 400, steps=2))
    assert len(views) == 2
    imp = [sum(r[2] for r in v.rows) for v in views]
    assert imp == [200, 400]  # results come in as the traffic does
    assert "handler-test" in views[-1].summary and "--store" in views[-1].cli
    # the plots' data: every arm of every segment, its share of the segment's impressions per window
    last = views[-1]
    arms_per_segment = {seg.segment: len(seg.arms) for seg in last.segments}
    assert {r["segment"] for r in last.trends} == {"romance", "thriller"}
    for seg, n_arms in arms_per_segment.items():
        final = max(r["exposures"] for r in last.trends if r["segment"] == seg)
        shares = [r["share"] for r in last.trends if r["segment"] == seg and r["exposures"] == final]
        assert len(shares) == n_arms and sum(shares) == pytest.approx(100.0, abs=0.05)
    assert not any(len(str(r["arm"])) == 16 and str(r["arm"]).isalnum() for r in last.trends)  # names, not ids


# --- progress: one bar, with counts and the time left ---------------------------------------------------
class _Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def test_progress_counts_every_variant_of_the_run_and_estimates_the_time_left():
    clock = _Clock()
    tracker = h.ProgressTracker(12, clock=clock)  # 2 profiles x 6 variants
    tracker("models", 0, 1)
    clock.t += 2
    tracker("models", 1, 1)
    for done in range(1, 7):  # the first profile: the generator counts 1..6
        clock.t += 1
        tracker("generate", done, 6)
    view = tracker.view()
    assert (view.done, view.total) == (6, 12) and view.fraction == pytest.approx(0.5)
    assert view.eta_s == pytest.approx(6.0)  # 6 made in 6 s since generation began: 6 s for the other 6
    assert view.text == "generating variants · 6/12 · 8 s · about 6 s left"
    clock.t += 1
    tracker("generate", 1, 6)  # the second profile starts its own count again
    assert (tracker.view().done, tracker.view().total) == (7, 12)
    tracker("rank", 3, 6)
    assert tracker.view().label == "ranking" and 0.97 <= tracker.view().fraction < 1.0
    html = h.progress_html(tracker.view())
    assert 'role="progressbar"' in html and "ranking · 3/6" in html and 'class="ga-fill" style="width:' in html
    assert "ga-progress-error" in h.progress_html(None, error="bad <input>") and "&lt;input&gt;" in \
        h.progress_html(None, error="bad <input>")


def test_long_work_streams_its_progress_and_hands_back_its_result_or_its_error():
    import time

    def work(progress):
        for i in range(1, 4):
            time.sleep(0.15)
            progress("frames", i, 3)
        return "the result"

    items = list(h.with_progress(work, h.ProgressTracker(), every_s=0.05))
    views = [i for i in items if isinstance(i, h.ProgressView)]
    assert items[-1] == ("the result",) and views  # the bar moved while the work ran
    assert max(v.done for v in views) >= 2 and all(v.total == 3 for v in views if v.stage == "frames")

    def broken(progress):
        raise UnknownRunError("nope", ["a"])

    with pytest.raises(UnknownRunError, match="nope"):  # the work's own typed error, in the caller's thread
        list(h.with_progress(broken, h.ProgressTracker(), every_s=0.05))


# --- step 2: creative controls ----------------------------------------------------------------------------
def test_the_estimate_says_how_many_variants_a_generate_makes():
    text = h.estimate(["a", "b"], ["romance", "thriller"], 3)
    assert text.startswith("**12 variant(s)**") and "2 key frame(s) × 2 profile(s) × 3 each" in text
    assert "16:9, 2:3, 1:1" in text  # each profile's own aspects, in their order
    assert "cycle through 1:1, 9:16" in h.estimate(["a"], ["romance"], 2, ["1:1", "9:16"])
    assert "only the first 1 aspect" in h.estimate(["a"], ["romance"], 1, ["1:1", "9:16"])
    assert h.estimate([], ["romance"], 2).startswith("Choose a key frame")
    assert h.seed_value("") is None and h.seed_value(" random ") is None and h.seed_value("0") == 0
    with pytest.raises(InvalidArgumentError, match="seed"):
        h.seed_value("0.5")


@pytest.mark.slow
def test_classics_own_controls_change_what_it_makes_and_the_run_keeps_the_chosen_profile_order(classic_run):
    out, stage, _ = classic_run
    look = h.Look(grade="teal-night", grade_amount=0.5, aspects=("1:1",), title_overlay=True, title_text="KID",
                  title_position="top")
    done = h.generate(out, stage.stage_id, [stage.selected[0]], ["thriller", "romance"], "classic", 2, 0,
                      "The Test", "comedy", look=look)
    run = api.load_run(out, done.run_id)
    assert [pid for pid, _ in run.ranked] == ["thriller", "romance"]  # the order they were ticked in
    assert h.open_run(out, done.run_id).profiles == ("thriller", "romance")
    made = [rv.variant.params for _, items in run.ranked for rv in items]
    assert {p.aspect for p in made} == {"1:1"} and {p.grade for p in made} == {"teal-night 50%"}
    assert {p.title for p in made} <= {"KID", None} and any(p.title == "KID" for p in made)
    manifest = json.loads(run.manifest_path.read_text())
    assert manifest["profiles"]["romance"] != api.get_profile("romance").version  # its own version
    plain = h.generate(out, stage.stage_id, [stage.selected[0]], ["romance"], "classic", 1, 0, "The Test",
                       look=h.Look(title_overlay=False))
    assert all(rv.variant.params.title is None for _, items in api.load_run(out, plain.run_id).ranked for rv in items)
    # a regeneration is made the way the run made its variants: same look, no title where the run had none
    first = api.load_run(out, done.run_id).profiles["romance"][0]
    again = h.regenerate(out, done.run_id, first.variant.id, "Ana")
    assert again.variant.params.grade == "teal-night 50%" and again.variant.params.aspect == "1:1"
    with pytest.raises(InvalidArgumentError, match="grade"):
        h.generate(out, stage.stage_id, [stage.selected[0]], ["romance"], "classic", 1, 0, look=h.Look(grade="sepia"))
    with pytest.raises(InvalidArgumentError, match="aspect"):
        h.generate(out, stage.stage_id, [stage.selected[0]], ["romance"], "classic", 1, 0, look=h.Look(aspects=("5:1",)))


def test_the_title_goes_where_the_team_asks_when_faces_allow():
    import numpy as np

    from genart.generate.title import plan_title
    from genart.types import TitleStyle

    top, bottom = TitleStyle(position="top"), TitleStyle(position="bottom")
    assert plan_title(1280, 720, "The Kid", "en-US", style=bottom).box[1] > 360
    assert plan_title(1280, 720, "The Kid", "en-US", style=top).box[1] < 200
    busy_bottom = np.zeros((72, 128))
    busy_bottom[50:, :] = 0.3  # below the subject threshold, but busier than the top
    assert plan_title(1280, 720, "The Kid", "en-US", saliency=busy_bottom, style=bottom).box[1] > 360  # as asked
    assert plan_title(1280, 720, "The Kid", "en-US", saliency=busy_bottom).box[1] < 360  # auto: the quiet top
    face = Box(500, 150, 280, 200)  # a face at the top: the title keeps clear of it, at the bottom
    assert plan_title(1280, 720, "The Kid", "en-US", [face], style=top).box[1] > 360


# --- step 3: the grid, keyboard review, bulk decisions, warnings, compare ---------------------------------
@pytest.mark.slow
def test_grid_filters_by_status_and_aspect_and_shows_badges(classic_run):
    out, _, run_id = classic_run
    g = h.gallery(out, run_id, "thriller")
    h.decide(out, run_id, g.variant_ids[1], "reject", "Ana", 'too <b>dark</b> "really"')
    rejected = h.gallery(out, run_id, "thriller", "reject")
    assert g.variant_ids[1] in rejected.variant_ids and all(t.status == "reject" for t in rejected.tiles)
    assert g.variant_ids[1] not in h.gallery(out, run_id, "thriller", "pending").variant_ids
    aspect = g.tiles[0].caption.split(" · ")[1]
    assert all(t.caption.split(" · ")[1] == aspect for t in h.gallery(out, run_id, "thriller", "all", aspect).tiles)
    html = h.grid_html(h.gallery(out, run_id, "thriller"), g.variant_ids[0])
    assert html.count('class="ga-tile') == len(g.tiles) and 'ga-badge-reject">✗ rejected' in html
    assert "<b>dark" not in html and "&lt;b&gt;dark" in html  # a note is text, never markup
    assert f'data-vid="{g.variant_ids[0]}"' in html and "ga-current" in html
    with pytest.raises(InvalidArgumentError, match="status filter"):
        h.gallery(out, run_id, "thriller", "deleted")


@pytest.mark.slow
def test_keyboard_review_steps_to_the_next_pending_variant(tmp_path):
    _need_media()
    stage = h.stage_upload(tmp_path, [str(STILLS[0])], 1)
    run_id = h.generate(tmp_path, stage.stage_id, list(stage.selected), ["romance"], "classic", 4, 0).run_id
    ids = list(h.gallery(tmp_path, run_id, "romance").variant_ids)
    assert h.step(ids, ids[0], 1) == ids[1] and h.step(ids, ids[0], -1) == ids[-1] and h.step(ids, None, 1) == ids[0]
    h.decide(tmp_path, run_id, ids[1], "approve", "Ana")
    assert h.next_pending(tmp_path, run_id, ids, ids[0]) == ids[2]  # ids[1] is decided: skipped
    h.decide(tmp_path, run_id, ids[3], "flag", "Ana")
    assert h.next_pending(tmp_path, run_id, ids, ids[2]) == ids[0]  # wraps round to the start
    h.decide(tmp_path, run_id, ids[0], "reject", "Ana")
    h.decide(tmp_path, run_id, ids[2], "approve", "Ana")
    assert h.next_pending(tmp_path, run_id, ids, ids[2]) is None  # all decided


@pytest.mark.slow
def test_bulk_decisions_apply_to_what_is_shown_and_never_overwrite_a_concurrent_one(tmp_path, monkeypatch):
    _need_media()
    stage = h.stage_upload(tmp_path, [str(STILLS[1])], 1)
    run_id = h.generate(tmp_path, stage.stage_id, list(stage.selected), ["romance"], "classic", 3, 0).run_id
    ids = list(h.gallery(tmp_path, run_id, "romance").variant_ids)
    h.decide(tmp_path, run_id, ids[0], "approve", "Ana")
    real = api.review_states

    def stale(out, rid, **kw):  # the states are read, then Ben decides on one before the bulk action writes
        states = real(out, rid, **kw)
        api.record_decision(out, rid, ids[2], "reject", "Ben", "not this one")
        return states

    monkeypatch.setattr(h.api, "review_states", stale)
    done = h.decide_many(tmp_path, run_id, ids, "approve", "Cy", "batch")
    monkeypatch.setattr(h.api, "review_states", real)
    assert done.decided == (ids[1],) and done.skipped == (ids[2],) and "left as they are" in done.message
    states = api.review_states(tmp_path, run_id)
    assert [states[v].status for v in ids] == ["approve", "approve", "reject"]
    assert states[ids[2]].reviewer == "Ben" and len(api.decisions(tmp_path, run_id, variant_id=ids[0])) == 1
    with pytest.raises(InvalidArgumentError, match="variants"):
        h.decide_many(tmp_path, run_id, [], "approve", "Cy")


@pytest.mark.slow
def test_the_score_breakdown_adds_up_and_warnings_are_on_the_variant(classic_run):
    from dataclasses import replace

    from genart.types import Contribution

    out, _, run_id = classic_run
    vid = h.gallery(out, run_id, "romance").variant_ids[0]
    d = h.variant_detail(out, run_id, vid)
    assert {r.score for r in d.breakdown} >= {"affinity", "fidelity", "quality", "legibility", "safety"}
    assert sum(r.contribution for r in d.breakdown) == pytest.approx(d.total, abs=1e-9)
    weight = sum(r.weight for r in d.breakdown)
    for r in d.breakdown:  # each line is its score times its weight over the sum of the weights
        assert r.contribution == pytest.approx(r.value * r.weight / weight, abs=1e-9)
    rows = h.breakdown_rows(d)
    assert rows[-1][0] == "total" and rows[-1][3] == pytest.approx(round(d.total, 4), abs=1e-4)
    rv = api.load_run(out, run_id).profiles["romance"][0]
    told = replace(rv, explanation=(Contribution("affinity", 0.5, 1.0, 0.5),))  # the ranking's own explanation wins
    assert api.score_breakdown(told) == told.explanation
    # a row ranked before explanations were stored: worked out as the ranking combines, adding up the same
    untold = api.score_breakdown(replace(rv, explanation=()), "classic")
    assert untold and all(isinstance(c, Contribution) for c in untold)
    assert sum(c.contribution for c in untold) == pytest.approx(rv.total, abs=1e-6)
    worried = replace(rv, needs_review="two faces, one with eyes closed", rejected=None,
                      variant=replace(rv.variant, params=replace(rv.variant.params, title_status="skipped",
                                                                 title_reason="no face-free place", upscale=2.2)))
    warns = h.variant_warnings(worried)
    assert any("Needs a person's look: two faces" in w for w in warns)
    assert any(w == "No title: no face-free place" for w in warns) and any("Enlarged 2.2×" in w for w in warns)
    plain = h.variant_warnings(rv)  # this one only says what its finishing really did
    assert not any(w.startswith(("Needs", "No title", "Enlarged", "Rejected")) for w in plain)
    assert any("not from the source frame" in w for w in plain) == (rv.variant.params.synthetic_share > 0.005)


@pytest.mark.slow
def test_default_regenerate_is_a_one_click_reroll(classic_run):
    out, _, run_id = classic_run
    g = h.gallery(out, run_id, "thriller")
    old = h.variant_detail(out, run_id, g.variant_ids[0])
    first = h.regenerate(out, run_id, old.variant_id, "Ana", "", None, "")  # the form's empty fields: defaults
    second = h.regenerate(out, run_id, old.variant_id, "Ana")
    assert len({old.variant_id, first.variant.id, second.variant.id}) == 3  # a random seed each time
    for new in (first, second):
        assert str(new.variant.keyframe.path) == old.keyframe_image and new.variant.params.aspect == old.aspect
    other = next(a for a in ("16:9", "1:1") if a != old.aspect)
    assert h.regenerate(out, run_id, old.variant_id, "Ana", aspect=other).variant.params.aspect == other
    html = h.compare_html(out, run_id, [old.variant_id, first.variant.id], {first.variant.id: "after"})
    assert html.count("<figure") == 2 and "<b>after</b>" in html and "--n:2" in html
    assert "two or more" in h.compare_html(out, run_id, [old.variant_id])


@pytest.mark.slow
def test_one_frame_across_profiles_and_aspects(classic_run):
    out, stage, run_id = classic_run
    run = api.load_run(out, run_id)
    kf = run.keyframes[0].id
    m = h.matrix(out, run_id, kf)
    assert m.profiles == ("romance", "thriller") and len(m.cells) == 2 and all(len(r) == len(m.aspects) for r in m.cells)
    for pid, row in zip(m.profiles, m.cells):
        for aspect, rv in zip(m.aspects, row):
            if rv is None:
                continue
            assert rv.profile_id == pid and rv.variant.params.aspect == aspect and rv.variant.keyframe.id == kf
            same = [x for x in run.profiles[pid] if x.variant.keyframe.id == kf and x.variant.params.aspect == aspect]
            assert rv.rank == min(x.rank for x in same)  # the best-placed one
    html = h.matrix_html(out, run_id, m)
    assert html.count("<tr>") == 3 and html.count("data-vid=") == sum(rv is not None for r in m.cells for rv in r)


# --- delivery package ------------------------------------------------------------------------------------
@pytest.mark.slow
def test_export_writes_only_approved_variants_at_delivery_sizes_with_a_manifest(tmp_path):
    import hashlib
    import zipfile

    from PIL import Image

    from genart.errors import NothingApprovedError
    from genart.usecases.export import delivery_sizes

    _need_media()
    stage = h.stage_upload(tmp_path, [str(STILLS[0])], 1)
    run_id = h.generate(tmp_path, stage.stage_id, list(stage.selected), ["romance", "romance-ja"], "classic", 3, 0,
                        "Two").run_id
    with pytest.raises(NothingApprovedError, match="no approved variants to export"):
        api.export_package(tmp_path, run_id, tmp_path / "none.zip")
    assert not (tmp_path / "none.zip").exists()
    approved = []
    for pid in ("romance", "romance-ja"):
        ids = h.gallery(tmp_path, run_id, pid).variant_ids
        for vid in ids[:2]:
            h.decide(tmp_path, run_id, vid, "approve", "Ana")
            approved.append(vid)
        h.decide(tmp_path, run_id, ids[2], "reject", "Ana")
    done = h.export(tmp_path, run_id)
    with zipfile.ZipFile(done.path) as z:
        names = z.namelist()
        manifest = json.loads(z.read("manifest.json"))
        assert sorted(f["variant_id"] for f in manifest["files"]) == sorted(approved)  # approved only
        assert set(names) == {f["path"] for f in manifest["files"]} | {"manifest.json"}
        for f in manifest["files"]:
            data = z.read(f["path"])
            assert hashlib.sha256(data).hexdigest() == f["sha256"]
            w, hgt = delivery_sizes("classic")[f["aspect"]]
            with Image.open(__import__("io").BytesIO(data)) as im:
                assert im.size == (w, hgt) and f["size"] == f"{w}x{hgt}"
                assert im.text["DigitalSourceType"].endswith(f["provenance"]["digital_source_type"])  # still labelled
            folder = f"{f['profile']}/{f['aspect'].replace(':', 'x')}/"
            assert f["path"].startswith(folder) and f["path"].endswith(f"_{f['locale']}_{f['rank']:02d}.png")
            assert f["segment"] == f["profile"] and f["source_timecode"].startswith("00:00:")
            assert f["provenance"]["label"] and f["provenance"]["iptc_uri"].startswith("http://cv.iptc.org/")
    assert {f["locale"] for f in manifest["files"]} == {"en-US", "ja-JP"}
    assert manifest["streamer"]["min_per_type_and_language"] == 3 and manifest["streamer"]["recommended"] == [5, 7]
    counts = {(c["aspect"], c["locale"]): c for c in manifest["counts"]}
    assert all(c["count"] < 3 and c["status"] == "below the minimum" for c in counts.values())
    assert any("below the minimum of Prime Video" in w for w in done.warnings) and manifest["warnings"] == list(done.warnings)


@pytest.mark.slow
def test_cli_export_says_one_line_when_nothing_is_approved(classic_run, tmp_path):
    from typer.testing import CliRunner

    from genart.cli import app as cli

    out, stage, _ = classic_run
    run_id = h.generate(out, stage.stage_id, [stage.selected[0]], ["romance"], "classic", 1, 5).run_id
    res = CliRunner().invoke(cli, ["export", run_id, "--out", str(out), "--to", str(tmp_path / "p.zip")],
                             env={"COLUMNS": "200"})  # a terminal wide enough for the line not to wrap
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [line for line in res.output.splitlines() if line.strip()]
    assert len(lines) == 1 and "no approved variants to export" in lines[0]
    vid = h.gallery(out, run_id, "romance").variant_ids[0]
    h.decide(out, run_id, vid, "approve", "Ana")
    res = CliRunner().invoke(cli, ["export", run_id, "--out", str(out), "--to", str(tmp_path / "p.zip")],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "1 picture (1 cover en-US)" in res.output and (tmp_path / "p.zip").is_file()
    assert "warning: 1 cover (16:9) picture(s) for en-US: below the minimum of Prime Video" in res.output


# --- step 4: the test with pictures ----------------------------------------------------------------------
def test_verdicts_in_plain_words():
    def arm(aid, imp, p):
        return h.ArmView("s", aid, aid.upper(), "", False, 0.5, imp, imp // 10, 0.1 if imp else None, None,
                         p if imp else None, "")

    assert h.verdict([arm("a", 0, 0), arm("b", 0, 0)], None, "collecting")[0] == "no traffic yet"
    kind, text, about = h.verdict([arm("a", 500, 0.97), arm("b", 500, 0.03)], "a", "P(best) 0.97 >= 0.95")
    assert (kind, about) == ("winner", "a") and text.startswith("Winner: A (P(best) 97%")
    assert h.verdict([arm("a", 200, 0.7), arm("b", 200, 0.3)], None, "undecided")[:1] == ("leading",)
    assert h.verdict([arm("a", 200, 0.5), arm("b", 200, 0.5)], None, "undecided")[0] == "inconclusive"


@pytest.mark.slow
def test_todays_artwork_is_the_control_arms_picture_ranked_like_any_variant(tmp_path):
    if not _bandit_ready():
        pytest.skip("the bandit stage (genart.bandit handoff/tester/report) is not in this checkout yet")
    _need_media()
    stage = h.stage_upload(tmp_path, [str(STILLS[0])], 1)
    run_id = h.generate(tmp_path, stage.stage_id, list(stage.selected), ["romance"], "classic", 2, 0).run_id
    for vid in h.gallery(tmp_path, run_id, "romance").variant_ids:
        h.decide(tmp_path, run_id, vid, "approve", "Ana")
    control = h.save_control(tmp_path, run_id, str(STILLS[1]))
    assert Path(control.path).is_file() and Path(control.path).is_relative_to((tmp_path / "uploads").resolve())
    assert "romance: total 0." in control.summary and "would place #" in control.summary
    with pytest.raises(UploadError, match="not an image"):
        h.save_control(tmp_path, run_id, str(VIDEO))
    ranked = api.rank_artwork(tmp_path, run_id, control.path)["romance"]
    approved = api.approved_variants(tmp_path, run_id)
    done = h.handoff(tmp_path, run_id, "Ana", "with-control", ["romance"], True, "ts", control_image=control.path,
                     options=h.test_options(0.02, 0.9, 50))
    report = api.test_report(tmp_path, done.test_id, plots=False).report
    assert report.stop_probability == 0.9  # the team's stopping rule reached the bandit stage
    with pytest.raises(InvalidArgumentError, match="floor"):
        h.handoff(tmp_path, run_id, "Ana", "bad-floor", ["romance"], True, "ts", options=h.test_options(0.9))
    arms = api.handoffs(tmp_path, run_id)[0].arms
    ctrl = next(a for a in arms if a.is_control)
    assert str(ctrl.image_path) == control.path
    lo, hi = min(rv.total for rv in approved), max(rv.total for rv in approved)
    expected = 0.4 + (min(max(ranked.total, lo), hi) - lo) / (hi - lo) * 0.2 if hi > lo else 0.5
    assert ctrl.prior_mean == pytest.approx(expected)  # its total placed among the approved ones' totals
    view = h.test_results(tmp_path, done.test_id)
    html = h.arms_html(view)
    assert html.count("<img") == len(arms) and "Today&#x27;s artwork (control)" in html
    assert "prior</dt>" in html and "impressions</dt><dd>none yet" in html
    list(h.simulate(tmp_path, done.test_id, 300, steps=1))
    after = h.test_results(tmp_path, done.test_id)
    seg = after.segments[0]
    assert seg.verdict in ("winner", "leading", "inconclusive") and seg.text
    assert all(a.impressions > 0 and a.click_rate is not None and a.prob_best is not None for a in seg.arms)
    assert sum(a.prob_best for a in seg.arms) == pytest.approx(1.0, abs=1e-6)
    assert "P(best)</dt>" in h.arms_html(after)


# --- the app: safety and endpoints -------------------------------------------------------------------
def test_launch_refuses_a_public_bind_without_auth(tmp_path, monkeypatch):
    from app import is_loopback, launch, parse_auth

    monkeypatch.delenv("GENART_APP_AUTH", raising=False)
    with pytest.raises(InsecureBindError, match="0.0.0.0"):
        launch(tmp_path, host="0.0.0.0")
    assert is_loopback("127.0.0.1") and is_loopback("::1") and is_loopback("localhost")
    assert not is_loopback("0.0.0.0") and not is_loopback("192.168.1.5") and not is_loopback("example.com")
    assert parse_auth("ana:secret:with:colons,ben:pw") == [("ana", "secret:with:colons"), ("ben", "pw")]
    assert parse_auth("") is None
    with pytest.raises(InvalidArgumentError, match="USER:PASSWORD"):
        parse_auth("ana")
    with pytest.raises(InvalidArgumentError, match="USER:PASSWORD"):
        parse_auth("ana:")


def test_cli_app_command_refuses_a_public_bind_without_auth(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from genart.cli import app as cli

    monkeypatch.delenv("GENART_APP_AUTH", raising=False)
    res = CliRunner().invoke(cli, ["app", "--host", "0.0.0.0", "--out", str(tmp_path)])
    assert res.exit_code != 0
    assert "without authentication" in res.output and "Traceback" not in res.output


@pytest.mark.slow
def test_every_event_has_an_api_name_and_gpu_events_share_one_queue(tmp_path):
    from app import build_app

    demo = build_app(tmp_path)
    fns = list(demo.fns.values())
    assert fns and all(fn.api_name for fn in fns), [fn.name for fn in fns if not fn.api_name]
    by_name = {fn.api_name: fn for fn in fns}
    for name in ("find_keyframes", "generate", "gallery", "variant", "approve", "reject", "flag", "regenerate",
                 "handoff", "simulate", "test_results", "open_run", "list_runs"):
        assert name in by_name, name
    gpu = [by_name["generate"], by_name["regenerate"]]
    assert {fn.concurrency_id for fn in gpu} == {"gpu"} and all(fn.concurrency_limit == 1 for fn in gpu)


@pytest.mark.slow
def test_refreshing_a_variant_keeps_the_regeneration_seed_the_reviewer_typed(classic_run):
    """Every event that shows a variant's details (opening a run, a grid pick, next / previous, the refresh
    after a decision) fills the viewer and the regeneration boxes the variant sets (aspect, strength,
    prompt) but leaves the seed box alone: a refresh landing after the reviewer typed a seed kept
    wiping it, and Regenerate then sent an empty seed (a random re-roll)."""
    from app import build_app

    out, _, run_id = classic_run
    demo = build_app(out)
    by_name = {fn.api_name: fn for fn in demo.fns.values()}
    ids = list(h.gallery(out, run_id, "romance").variant_ids)

    def outputs(name, *args):
        fn = by_name[name]
        got = fn.fn(*args)
        return {getattr(block, "elem_id", None): value for block, value in zip(fn.outputs, got)}

    for name, args in (("open_run", (run_id,)), ("next_variant", (run_id, "romance", "all", "all", ids, ids[0])),
                       ("previous_variant", (run_id, "romance", "all", "all", ids, ids[1]))):
        shown = outputs(name, *args)
        assert shown["regen-seed"] == {"__type__": "update"}, name  # gr.skip(): what was typed stays
        assert shown["regen-strength"] != {"__type__": "update"}, name  # the variant's own settings do come in


@pytest.mark.slow
def test_served_files_are_limited_to_the_run_folders(classic_run):
    """A running app serves the store's images, and not its database or anything else on disk."""
    import httpx

    from app import launch

    out, _, run_id = classic_run
    demo_app, url, _ = launch(out, port=None, prevent_thread_lock=True, quiet=True, max_upload_mb=5)
    try:
        image = api.load_run(out, run_id).profiles["romance"][0].path.resolve()
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/config").json()["max_file_size"] == 5 * 2**20  # the upload limit
            assert client.get(f"/gradio_api/file={image}").status_code == 200
            for secret in (Path(out).resolve() / "genart.sqlite", Path("/etc/passwd"),
                           Path(__file__).resolve()):
                assert client.get(f"/gradio_api/file={secret}").status_code in (403, 404), secret
        from gradio_client import Client

        client = Client(url, verbose=False)
        choices = client.predict(None, api_name="/list_runs")
        assert choices  # the app is a scriptable endpoint too
    finally:
        import gradio as gr

        gr.close_all()


@pytest.mark.slow
def test_with_auth_nothing_is_served_before_signing_in(classic_run, monkeypatch):
    import httpx

    import gradio as gr
    from app import launch

    out, _, run_id = classic_run
    monkeypatch.setenv("GENART_APP_AUTH", "ana:s3cret")
    _, url, _ = launch(out, prevent_thread_lock=True, quiet=True)
    try:
        image = api.load_run(out, run_id).profiles["romance"][0].path.resolve()
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get(f"/gradio_api/file={image}").status_code in (401, 403)
            assert client.post("/login", data={"username": "ana", "password": "wrong"}).status_code >= 400
            assert client.post("/login", data={"username": "ana", "password": "s3cret"}).status_code == 200
            assert client.get(f"/gradio_api/file={image}").status_code == 200
    finally:
        gr.close_all()


# --- reliability at the edges (issue 16) ------------------------------------------------------------
def _approve_first(out, run_id, profiles=("romance", "thriller")) -> None:
    for pid in profiles:
        vid = h.gallery(out, run_id, pid).variant_ids[0]
        st = api.review_states(out, run_id)[vid]
        if st.status != "approve":
            h.decide(out, run_id, vid, "approve", "Ana", "", st.version)


@pytest.mark.slow
def test_concurrent_handoffs_of_one_run_to_one_test_are_recorded_once(classic_run):
    if not _bandit_ready():
        pytest.skip("the bandit stage is not in this checkout")
    out, _, run_id = classic_run
    _approve_first(out, run_id)
    barrier = threading.Barrier(8)
    results: list[object] = []

    def hand(i: int) -> None:
        barrier.wait()
        try:
            results.append(h.handoff(out, run_id, f"reviewer-{i}", "race-test", ["romance", "thriller"]))
        except Exception as exc:  # collected: the assertion below shows it
            results.append(exc)

    threads = [threading.Thread(target=hand, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert all(isinstance(r, h.HandoffDone) for r in results), results
    records = [r for r in api.handoffs(out, run_id) if r.test_id == "race-test"]
    assert len(records) == 1, records  # one audit row, however many hand-offs raced
    assert {r.message for r in results} == {results[0].message}  # every caller was told the same record


@pytest.mark.slow
@pytest.mark.parametrize("bad", ["has space", "nul\x00byte", "<b>x</b>", "x" * 129])
def test_handoff_refuses_test_ids_the_bandit_service_refuses(classic_run, bad):
    if not _bandit_ready():
        pytest.skip("the bandit stage is not in this checkout")
    from genart.bandit.tester import Tester

    out, _, run_id = classic_run
    _approve_first(out, run_id)
    before = len(api.handoffs(out, run_id))
    with pytest.raises(InvalidArgumentError, match="test id"):
        h.handoff(out, run_id, "Ana", bad, ["romance"])
    with pytest.raises(InvalidArgumentError, match="segment"):
        h.handoff(out, run_id, "Ana", "fine-id", [bad])
    assert len(api.handoffs(out, run_id)) == before
    assert bad not in Tester(SqlExposureLog(Path(out) / "genart.sqlite")).tests()


@pytest.mark.slow
def test_a_copied_store_serves_its_own_images_from_another_directory(tmp_path, monkeypatch):
    """Made with a relative --out from one folder, copied elsewhere, the original removed, the app started
    from '/': key frames, variants, the hand-off's arms and the bandit arms all point into the copy."""
    import shutil

    import httpx

    import gradio as gr
    from app import launch
    from genart.bandit.tester import Tester

    _need_media()
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    out = Path("store")  # relative, as a user types it
    stage = h.stage_upload(out, [str(STILLS[1])], 1)
    run_id = h.generate(out, stage.stage_id, list(stage.selected), ["romance"], "classic", 1, 0).run_id
    _approve_first(out, run_id, ("romance",))
    h.handoff(out, run_id, "Ana", "copy-test", ["romance"], include_control=False)
    shutil.copytree(tmp_path / "work" / "store", tmp_path / "copy")
    shutil.rmtree(tmp_path / "work")
    monkeypatch.chdir("/")
    copy = tmp_path / "copy"
    run = api.load_run(copy, run_id)
    paths = [rv.path for _, items in run.ranked for rv in items] + [k.path for k in run.keyframes]
    arms = [a.image_path for r in api.handoffs(copy, run_id) for a in r.arms]
    arms += [a.image_path for a in Tester(SqlExposureLog(copy / "genart.sqlite")).arms("copy-test")]
    for p in paths + arms:
        assert p is not None and Path(p).is_file() and Path(p).resolve().is_relative_to(copy.resolve()), p
    assert api.load_stage(copy, stage.stage_id).source.resolve().is_relative_to(copy.resolve())
    _, url, _ = launch(copy, prevent_thread_lock=True, quiet=True)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            for p in paths:
                assert client.get(f"/gradio_api/file={Path(p).resolve()}").status_code == 200, p
    finally:
        gr.close_all()


@pytest.mark.slow
def test_an_upload_that_is_a_decompression_bomb_gets_a_clear_message(tmp_path):
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    comp = zlib.compressobj(9)
    row = b"\x00" + b"\x00" * 2500
    data = b"".join(comp.compress(row) for _ in range(20000)) + comp.flush()
    bomb = tmp_path / "poster.png"  # 20000 x 20000 pixels in about 50 KB
    bomb.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 20000, 20000, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    with pytest.raises(UnsupportedMediaError, match="image too large: poster.png declares 400.0 MP") as err:
        h.stage_upload(tmp_path / "store", [str(bomb)])
    assert str(tmp_path) not in str(err.value)  # names the upload, not the server's copy of it
    from app.ui import error_text

    assert "GENART_MAX_IMAGE_PIXELS" in error_text(err.value)  # what the app shows, with the hint


@pytest.mark.slow
def test_sign_in_attempts_are_rate_limited_per_client_with_a_growing_delay(tmp_path, monkeypatch):
    """200 wrong passwords as fast as a client can send them: only the first few are checked, the rest
    are 429s with Retry-After, the right password is refused too until the delay has passed."""
    import time

    import httpx

    import gradio as gr
    from app import launch

    monkeypatch.delenv("GENART_APP_AUTH", raising=False)
    creds = tmp_path / "reviewers.txt"
    creds.write_text("# one per line\nana:s3cret, with a comma\n")
    _, url, _ = launch(tmp_path / "store", auth_file=creds, prevent_thread_lock=True, quiet=True)
    try:
        with httpx.Client(base_url=url, timeout=30) as c:
            def login(password: str) -> httpx.Response:
                return c.post("/login", data={"username": "ana", "password": password})

            codes = [login(f"guess-{i}").status_code for i in range(200)]
            assert codes[:4] == [400, 400, 400, 400]  # three free, the fourth starts a 1 s lock-out
            assert codes.count(429) >= 190, codes
            r = login("s3cret, with a comma")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 1  # locked out: not even checked
            time.sleep(float(r.headers["retry-after"]) + 0.2)
            assert login("wrong again").status_code == 400  # checked: the delay has passed, and now it grows
            r = login("s3cret, with a comma")
            assert r.status_code == 429 and int(r.headers["retry-after"]) >= 2
            time.sleep(float(r.headers["retry-after"]) + 0.2)
            assert login("s3cret, with a comma").status_code == 200  # the password from the file
            assert login("a typo").status_code == 400  # a success cleared the record
    finally:
        gr.close_all()


def test_the_cli_takes_the_password_from_a_file_not_the_command_line(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from genart.cli import app as cli

    monkeypatch.delenv("GENART_APP_AUTH", raising=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("# nothing\n")
    res = CliRunner().invoke(cli, ["app", "--host", "0.0.0.0", "--auth-file", str(empty), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "holds no entry" in res.output and "Traceback" not in res.output
    bad = tmp_path / "bad.txt"
    bad.write_text("ana\n")
    res = CliRunner().invoke(cli, ["app", "--host", "0.0.0.0", "--auth-file", str(bad), "--out", str(tmp_path)])
    assert res.exit_code == 2 and "USER:PASSWORD" in res.output


@pytest.mark.slow
def test_a_stale_decision_is_an_error_to_api_clients(classic_run):
    """Through the running app with gradio_client (its REST API): a decision on a version someone else
    has moved past raises, with the conflict's message; it is not a 'success' with a toast."""
    import gradio as gr
    from app import launch
    from gradio_client import Client

    out, _, run_id = classic_run
    vid = h.gallery(out, run_id, "romance").variant_ids[-1]
    seen = api.review_states(out, run_id)[vid].version
    _, url, _ = launch(out, prevent_thread_lock=True, quiet=True)
    try:
        client = Client(url, verbose=False)
        client.predict(None, api_name="/list_runs")  # what the page does first: the session's run choices
        client.predict(run_id, api_name="/open_run")
        client.predict(run_id, vid, "Ana", "first look", seen, "romance", api_name="/approve")  # succeeds
        assert api.review_states(out, run_id)[vid].version == seen + 1
        with pytest.raises(Exception, match="changed while you were looking") as err:  # Ben still saw `seen`
            client.predict(run_id, vid, "Ben", "too dark", seen, "romance", api_name="/reject")
        assert type(err.value).__name__ == "AppError"
        assert api.review_states(out, run_id)[vid].status == "approve"  # nothing overwritten
        assert [d.reviewer for d in api.decisions(out, run_id, variant_id=vid)][-1] == "Ana"
    finally:
        gr.close_all()
