"""The review app's handlers and API functions, without a browser: plain inputs in, plain values out,
typed errors for bad input, an append-only audit trail that two reviewers cannot overwrite."""

from __future__ import annotations

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

pytest.importorskip("gradio", reason="the review app needs gradio (pip install gradio)")

from app import handlers as h  # noqa: E402

MEDIA = Path(__file__).resolve().parents[1].parent / "shared" / "media"
STILLS = [MEDIA / "images" / "two_people.jpg", MEDIA / "images" / "chelsea.png"]
VIDEO = MEDIA / "videos" / "chaplin.mp4"


def _need_media() -> None:
    if not all(p.exists() for p in STILLS):
        pytest.skip(f"real media not found under {MEDIA}")


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


def test_stage_upload_of_a_video(tmp_path):
    if not VIDEO.exists():
        pytest.skip(f"real media not found: {VIDEO}")
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


def test_gallery_is_best_first_with_scores_and_review_state(classic_run):
    out, _, run_id = classic_run
    view = h.open_run(out, run_id)
    assert view.profiles == ("romance", "thriller") and "pending review" in view.summary
    g = h.gallery(out, run_id, "romance")
    assert len(g.items) == 4 and len(g.variant_ids) == 4
    totals = [float(c.split(" · ")[1]) for _, c in g.items]
    assert totals[0] == max(totals)  # best first; the next places are picked for diversity (MMR)
    assert g.items[0][1].startswith("#1 · ")
    d = h.variant_detail(out, run_id, g.variant_ids[0])
    assert Path(d.image).is_file() and Path(d.keyframe_image).is_file()
    assert d.keyframe_label.startswith("Source frame 00:00:0")
    names = [n for n, _, _ in d.scores]
    assert {"affinity", "fidelity", "quality"} <= set(names)
    assert dict((n, w) for n, _, w in d.scores)["affinity"] == 1.0  # the profile's weight beside the score
    assert "#1" in d.headline and "pending review" in d.headline
    assert d.state.version == 0 and "seed" in d.params


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
    h.decide(out, run_id, vid, "flag", "Ben", "check the licence", 1)
    rows = h.history(out, run_id, vid)
    assert [(r[1], r[2], r[5]) for r in rows] == [("Ben", "flag", "2"), ("Ana", "approve", "1")]
    assert rows[0][0] >= rows[1][0] and rows[1][0].startswith("20")
    caption = dict(zip(h.gallery(out, run_id, "thriller").variant_ids, (c for _, c in h.gallery(out, run_id, "thriller").items)))[vid]
    assert caption.endswith("⚑ flagged")
    with pytest.raises(InvalidArgumentError, match="action"):
        h.decide(out, run_id, vid, "delete", "Ben")
    with pytest.raises(UnknownVariantError):
        h.decide(out, run_id, "nope", "approve", "Ben")
    assert h.reviewer_name("signed-in", "typed") == "signed-in"


def test_two_reviewers_at_once_never_overwrite_each_other(classic_run):
    out, _, run_id = classic_run
    vid = h.gallery(out, run_id, "thriller").variant_ids[-1]
    # 1) both saw the same version and click at the same moment: exactly one decision is saved
    for round_ in range(4):
        seen = api.review_states(out, run_id)[vid].version
        barrier = threading.Barrier(2)
        results: dict[str, object] = {}

        def click(who: str, action: str) -> None:
            barrier.wait()
            try:
                results[who] = api.record_decision(out, run_id, vid, action, who, expected_version=seen)
            except DecisionConflictError as exc:
                results[who] = exc

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
    segs = {r[0] for r in done.arms}
    assert segs == {"romance", "thriller"} and sum(1 for r in done.arms if r[4] == "yes") == 2
    assert h.test_choices(out, run_id) == ["handler-test"]
    record = api.handoffs(out, run_id)[0]
    assert record.reviewer == "Ana" and all(a.test_id == "handler-test" for a in record.arms)
    views = list(h.simulate(out, "handler-test", 400, steps=2))
    assert len(views) == 2
    imp = [sum(r[2] for r in v.rows) for v in views]
    assert imp == [200, 400]  # results come in as the traffic does
    assert len(views[-1].plots) == 2 and all(Path(p).is_file() for p in views[-1].plots)
    assert "handler-test" in views[-1].summary


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
    assert bad not in Tester(Path(out) / "genart.sqlite").tests()


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
    arms += [a.image_path for a in Tester(copy / "genart.sqlite").arms("copy-test")]
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
