"""The review app's Blocks layout: four steps, each a tab, every event a named, scriptable endpoint.

Only glue lives here: components, events, and turning genart's typed errors into messages a person
reads (never a traceback). The work is done by ``app.handlers`` (plain functions over
``genart.api``). Generation and regeneration share one queue (``concurrency_id="gpu"``, one at a
time): the models are loaded once per process and used by one job at a time. Session state holds
plain values only (ids, a dict of edited prompts), never a model.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import gradio as gr

from app import handlers as h
from genart.errors import DecisionConflictError, GenartError, UploadError

log = logging.getLogger("genart.app")

GPU = {"concurrency_id": "gpu", "concurrency_limit": 1}
STAGE_LABELS = {"frames": "finding key frames", "models": "loading models", "generate": "generating",
                "rank": "ranking"}
CSS = """
.tile-160 img { width: 160px !important; height: auto !important; object-fit: contain; }
.tile-160 { max-width: 200px; }
#variants-gallery .caption-label, #keyframes .caption-label { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: 100% !important; }
#variant-headline p { font-size: 1.05em; }
"""

_TITLES = {UploadError: "Upload refused", DecisionConflictError: "Not saved: someone else decided first"}


def error_text(exc: GenartError) -> str:
    return exc.message + (f" — {exc.hint}" if exc.hint else "")


@contextmanager
def shown_errors() -> Iterator[None]:
    """genart's typed errors become a message box with the message and the hint; anything else too,
    without the traceback (which goes to the server log)."""
    try:
        yield
    except gr.Error:
        raise
    except GenartError as exc:
        title = next((t for cls, t in _TITLES.items() if isinstance(exc, cls)), "Cannot do that")
        raise gr.Error(error_text(exc), title=title, print_exception=False) from None
    except Exception as exc:  # a bug: say so plainly, keep the details in the log
        log.exception("review app handler failed")
        raise gr.Error(f"unexpected error ({type(exc).__name__}: {exc}); everything finished so far is saved",
                       title="Something went wrong", print_exception=False) from None


def _bar(progress: gr.Progress):
    def update(stage: str, done: int, total: int) -> None:
        progress((done, max(total, 1)), desc=STAGE_LABELS.get(stage, stage))

    return update


def _who(request: gr.Request | None, typed: str | None) -> str:
    return h.reviewer_name(getattr(request, "username", None) if request is not None else None, typed)


def build_app(out: str | Path = "runs", *, max_upload_mb: int = h.DEFAULT_MAX_UPLOAD_MB) -> gr.Blocks:
    """The app over the store in ``out``. Launch it with ``app.launch`` (safe defaults), not directly."""
    out = Path(out)
    max_bytes = int(max_upload_mb) * 2**20
    profile_choices = h.profile_choices()
    default_profiles = [pid for _, pid in profile_choices if pid in ("romance", "thriller")] or \
        [pid for _, pid in profile_choices[:2]]

    # Gradio copies what it shows into its cache: files older than a day are removed, checked daily
    with gr.Blocks(title="genart review", analytics_enabled=False, delete_cache=(86_400, 86_400)) as demo:
        gr.Markdown("# genart · artwork review\nUpload a title, pick key frames and taste profiles, generate, "
                    "review the ranked variants, and hand the approved ones to a bandit test.")
        edits = gr.State({})
        variant_ids = gr.State([])
        saved_reviewer = gr.BrowserState("", storage_key="genart-reviewer")

        with gr.Tabs(selected="title") as tabs:
            # --- 1 ----------------------------------------------------------------------------
            with gr.Tab("1 · Title", id="title"):
                with gr.Row():
                    with gr.Column(scale=2):
                        upload = gr.File(label=f"Video, or several stills (up to {int(max_upload_mb)} MB each)",
                                         file_count="multiple", file_types=list(h.MEDIA_EXTS), elem_id="upload")
                        with gr.Row():
                            title = gr.Textbox(label="Title", placeholder="e.g. The Kid", elem_id="title-name")
                            genre = gr.Textbox(label="Genre", placeholder="e.g. comedy", elem_id="genre")
                        max_frames = gr.Slider(1, 12, value=4, step=1, label="Key frames to find", elem_id="max-frames")
                        find_btn = gr.Button("Find key frames", variant="primary", elem_id="find-keyframes")
                    with gr.Column(scale=3):
                        stage_info = gr.Markdown("Upload a video (or stills) to start.", elem_id="stage-info")
                        kf_gallery = gr.Gallery(label="Key frames (timecode · shot · quality · faces)", columns=4,
                                                height=320, object_fit="contain", elem_id="keyframes")
                        kf_pick = gr.CheckboxGroup(label="Use these key frames", elem_id="keyframe-pick")
                        stage_id = gr.Textbox(label="Stage id", interactive=False, elem_id="stage-id")
                        to_generate = gr.Button("Next: profiles and generation →", elem_id="to-generate")

            # --- 2 ----------------------------------------------------------------------------
            with gr.Tab("2 · Generate", id="generate"):
                with gr.Row():
                    with gr.Column():
                        profiles = gr.CheckboxGroup(profile_choices, value=default_profiles, label="Taste profiles",
                                                    elem_id="profiles")
                        edit_profile = gr.Dropdown(profile_choices, value=default_profiles[0] if default_profiles else None,
                                                   label="Edit a profile's prompt for this run", elem_id="edit-profile")
                        first_prompt, first_desc = h.prompt_for({}, default_profiles[0] if default_profiles else None)
                        profile_desc = gr.Markdown(first_desc)
                        prompt_box = gr.Textbox(first_prompt, label="Prompt for this run ({title}, {genre} and "
                                                "{subject} are filled in)", lines=3, elem_id="prompt")
                    with gr.Column():
                        preset = gr.Dropdown(h.preset_choices(), value=h.default_preset(), label="Preset",
                                             elem_id="preset")
                        preset_md = gr.Markdown(h.preset_info(h.default_preset()))
                        variants = gr.Slider(1, 8, value=2, step=1, label="Variants per key frame and profile",
                                             elem_id="variants")
                        seed = gr.Number(0, precision=0, label="Seed", elem_id="seed")
                        gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                        gen_info = gr.Markdown(elem_id="gen-info")

            # --- 3 ----------------------------------------------------------------------------
            with gr.Tab("3 · Review", id="review"):
                with gr.Row():
                    run_dd = gr.Dropdown([], label="Run", scale=3, elem_id="run")
                    refresh_runs = gr.Button("↻ runs", scale=0, elem_id="refresh-runs")
                    reviewer = gr.Textbox(label="Your name (for the audit trail)", scale=2, elem_id="reviewer")
                run_info = gr.Markdown(elem_id="run-info")
                profile_radio = gr.Radio([], label="Profile", elem_id="profile")
                with gr.Row():
                    with gr.Column(scale=3):
                        gallery = gr.Gallery(label="Ranked variants, best first (click one to review it)", columns=4,
                                             height=520, object_fit="contain", allow_preview=True, elem_id="variants-gallery")
                    with gr.Column(scale=4):
                        headline = gr.Markdown("Pick a variant in the gallery.", elem_id="variant-headline")
                        rejected = gr.Markdown(elem_id="variant-rejected")
                        with gr.Row():
                            big = gr.Image(label="Variant (full size)", type="filepath", interactive=False, height=300,
                                           buttons=["fullscreen", "download"], elem_id="variant-full")
                            source = gr.Image(label="Source frame", type="filepath", interactive=False, height=300,
                                              buttons=["fullscreen"], elem_id="variant-source")
                        with gr.Row():
                            tile = gr.Image(label="As a 160 px tile", type="filepath", interactive=False, width=160,
                                            min_width=160, scale=0, elem_classes=["tile-160"], elem_id="variant-tile")
                            scores = gr.Dataframe(headers=["score", "value", "weight"], label="Score breakdown",
                                                  interactive=False, elem_id="scores")
                        params = gr.Markdown(elem_id="variant-params")
                        with gr.Row():
                            variant_id = gr.Textbox(label="Variant id", interactive=False, elem_id="variant-id")
                            version = gr.Number(label="Version seen", precision=0, interactive=False,
                                                elem_id="version")
                        note = gr.Textbox(label="Note (optional)", lines=2, elem_id="note")
                        with gr.Row():
                            approve_btn = gr.Button("✓ Approve", variant="primary", elem_id="approve")
                            reject_btn = gr.Button("✗ Reject", variant="stop", elem_id="reject")
                            flag_btn = gr.Button("⚑ Flag", elem_id="flag")
                        with gr.Accordion("Regenerate this variant", open=False, elem_id="regen-panel"):
                            with gr.Row():
                                regen_seed = gr.Number(None, precision=0, label="New seed (empty: random)",
                                                       elem_id="regen-seed")
                                regen_strength = gr.Number(None, label="Strength 0-1 (diffusion presets)",
                                                           elem_id="regen-strength")
                            regen_prompt = gr.Textbox(label="New prompt (diffusion presets; empty: unchanged)",
                                                      lines=2, elem_id="regen-prompt")
                            regen_btn = gr.Button("Regenerate", elem_id="regen-btn")
                gr.Markdown("### History (audit trail)")
                history = gr.Dataframe(headers=list(h.HISTORY_HEADERS), interactive=False, wrap=True,
                                       elem_id="history")
                to_test = gr.Button("Next: hand off approved variants →", elem_id="to-test")

            # --- 4 ----------------------------------------------------------------------------
            with gr.Tab("4 · Test", id="test") as test_tab:
                with gr.Row():
                    with gr.Column(scale=2):
                        test_id = gr.Textbox(label="New test id", elem_id="test-id")
                        segments = gr.CheckboxGroup([], label="Segments (one per profile with approved variants)",
                                                    elem_id="segments")
                        include_control = gr.Checkbox(True, label="Include the current artwork as a control arm")
                        policy = gr.Dropdown(list(h.POLICIES), value="ts", label="Policy", elem_id="policy")
                        handoff_btn = gr.Button("Hand off approved variants", variant="primary", elem_id="handoff")
                        handoff_info = gr.Markdown(elem_id="handoff-info")
                    with gr.Column(scale=3):
                        arms = gr.Dataframe(headers=list(h.ARM_HEADERS), label="Arms", interactive=False,
                                            elem_id="arms")
                        test_dd = gr.Dropdown([], label="Test", elem_id="test")
                        with gr.Row():
                            impressions = gr.Number(2000, precision=0, label="Simulated impressions",
                                                    elem_id="impressions")
                            sim_btn = gr.Button("Simulate traffic (demo)", elem_id="simulate")
                            live = gr.Checkbox(False, label="Refresh every 2 s", elem_id="live")
                results_info = gr.Markdown(elem_id="results-info")
                results = gr.Dataframe(headers=list(h.RESULT_HEADERS), label="Results per segment",
                                       interactive=False, elem_id="results")
                with gr.Row():
                    reward_plot = gr.Image(label="Cumulative reward", type="filepath", interactive=False,
                                           elem_id="reward-plot")
                    share_plot = gr.Image(label="Arm share over time", type="filepath", interactive=False,
                                          elem_id="share-plot")
                timer = gr.Timer(2.0, active=False)

        # --- events: 1 ----------------------------------------------------------------------------
        def ui_stage(files, n, progress=gr.Progress()):
            with shown_errors():
                view = h.stage_upload(out, files, n, max_bytes=max_bytes, progress=_bar(progress))
            return (view.stage_id, list(view.items), gr.CheckboxGroup(choices=list(view.choices),
                                                                      value=list(view.selected)), view.summary)

        find_btn.click(ui_stage, [upload, max_frames], [stage_id, kf_gallery, kf_pick, stage_info],
                       api_name="find_keyframes")
        to_generate.click(lambda: gr.Tabs(selected="generate"), None, tabs, api_name="goto_generate",
                          api_visibility="undocumented")

        # --- events: 2 ----------------------------------------------------------------------------
        def ui_preset(name):
            with shown_errors():
                return h.preset_info(name)

        def ui_prompt_for(ed, pid):
            with shown_errors():
                return h.prompt_for(ed, pid)

        def ui_set_prompt(ed, pid, text):
            with shown_errors():
                return h.set_prompt(ed, pid, text)

        def ui_generate(sid, kf_ids, profs, preset_name, n, s, t, g, ed, pid, text, progress=gr.Progress()):
            with shown_errors():
                ed = h.set_prompt(ed, pid, text) if pid else ed
                done = h.generate(out, sid, kf_ids, profs, preset_name, n, s, t, g, ed, progress=_bar(progress))
                choices = h.run_choices(out)
            gr.Info(f"run {done.run_id} is ready for review")
            return gr.Dropdown(choices=choices, value=done.run_id), done.summary, ed, gr.Tabs(selected="review")

        preset.change(ui_preset, preset, preset_md, api_name="preset_info")
        edit_profile.change(ui_prompt_for, [edits, edit_profile], [prompt_box, profile_desc], api_name="prompt_for")
        prompt_box.input(ui_set_prompt, [edits, edit_profile, prompt_box], edits, api_name="set_prompt",
                         trigger_mode="always_last")
        gen_btn.click(ui_generate, [stage_id, kf_pick, profiles, preset, variants, seed, title, genre, edits,
                                    edit_profile, prompt_box], [run_dd, gen_info, edits, tabs],
                      api_name="generate", **GPU)

        # --- events: 3 ----------------------------------------------------------------------------
        def ui_load(saved, request: gr.Request):
            with shown_errors():
                choices = h.run_choices(out)
            wanted = request.query_params.get("run") if request is not None else None
            ids = [rid for _, rid in choices]
            value = wanted if wanted in ids else (ids[0] if ids else None)
            user = getattr(request, "username", None)
            who = gr.Textbox(value=user, interactive=False) if user else gr.Textbox(value=saved or "")
            return gr.Dropdown(choices=choices, value=value), who

        def ui_runs(current):
            with shown_errors():
                choices = h.run_choices(out)
            ids = [rid for _, rid in choices]
            return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))

        def ui_open(rid):
            with shown_errors():
                view = h.open_run(out, rid)
                hist = [list(r) for r in h.history(out, rid)]
                first = view.profiles[0] if view.profiles else None
                g = h.gallery(out, rid, first)  # here too: the radio fires no change when the profile stays
            return (gr.Radio(choices=list(view.profiles), value=first), view.summary, hist, list(g.items),
                    list(g.variant_ids), "")

        def ui_gallery(rid, pid):
            with shown_errors():
                view = h.gallery(out, rid, pid)
            return list(view.items), list(view.variant_ids), ""

        def ui_select(ids, evt: gr.SelectData):
            return ids[evt.index] if ids and evt.index is not None and evt.index < len(ids) else ""

        def _detail(rid, vid):
            view = h.variant_detail(out, rid, vid)
            if view is None:
                return ("Pick a variant in the gallery.", "", None, gr.Image(value=None, label="Source frame"), None,
                        [], "", None)
            why = f"⚠ **Rejected by the ranking:** {h.md_escape(view.rejected)}" if view.rejected else ""
            rows = [[name, round(v, 4), "" if w is None else w] for name, v, w in view.scores]
            return (view.headline, why, view.image, gr.Image(value=view.keyframe_image, label=view.keyframe_label),
                    view.image, rows, view.params, view.state.version)

        detail_outputs = [headline, rejected, big, source, tile, scores, params, version]

        def ui_detail(rid, vid):
            with shown_errors():
                return _detail(rid, vid)

        def _after_decision(rid, vid, pid):
            detail = _detail(rid, vid)
            view = h.gallery(out, rid, pid)
            hist = [list(r) for r in h.history(out, rid)]
            return (*detail, list(view.items), hist, h.open_run(out, rid).summary)

        def make_decide(action):
            def ui_decide(rid, vid, typed, text, seen, pid, request: gr.Request):
                # a decision refused as stale (DecisionConflictError) is an error, to a person and to an
                # API client alike (gradio_client raises, the REST stream says "error"); the refresh
                # event chained on failure then shows what the other reviewer decided
                with shown_errors():
                    who = _who(request, typed)
                    done = h.decide(out, rid, vid, action, who, text, seen)
                    after = _after_decision(rid, vid, pid)
                gr.Info(done.message)
                return (*after[:-1], "", after[-1])

            ui_decide.__name__ = f"ui_{action}"
            return ui_decide

        def ui_after_refusal(rid, vid, pid, text):
            with shown_errors():
                after = _after_decision(rid, vid, pid)
            return (*after[:-1], text, after[-1])  # the reviewer's note stays, to decide again with

        def ui_regenerate(rid, vid, typed, s, strength, prompt, pid, request: gr.Request, progress=gr.Progress()):
            with shown_errors():
                who = _who(request, typed)
                new = h.regenerate(out, rid, vid, who, s, strength, prompt, progress=_bar(progress))
                view = h.gallery(out, rid, pid)
                hist = [list(r) for r in h.history(out, rid)]
                summary = h.open_run(out, rid).summary
            gr.Info(f"new variant {new.variant.id} ranked #{new.rank}" if new.rank else
                    f"new variant {new.variant.id} (rejected by the ranking: {new.rejected})")
            return list(view.items), list(view.variant_ids), new.variant.id, hist, summary

        demo.load(ui_load, saved_reviewer, [run_dd, reviewer], api_name="load_app")
        reviewer.change(lambda name: name, reviewer, saved_reviewer, api_name="remember_reviewer",
                        api_visibility="undocumented")
        refresh_runs.click(ui_runs, run_dd, run_dd, api_name="list_runs")
        run_dd.change(ui_open, run_dd, [profile_radio, run_info, history, gallery, variant_ids, variant_id],
                      api_name="open_run")
        profile_radio.change(ui_gallery, [run_dd, profile_radio], [gallery, variant_ids, variant_id],
                             api_name="gallery")
        gallery.select(ui_select, variant_ids, variant_id, api_name="select_variant")
        variant_id.change(ui_detail, [run_dd, variant_id], detail_outputs, api_name="variant")
        for btn, action in ((approve_btn, "approve"), (reject_btn, "reject"), (flag_btn, "flag")):
            btn.click(make_decide(action), [run_dd, variant_id, reviewer, note, version, profile_radio],
                      [*detail_outputs, gallery, history, note, run_info], api_name=action
                      ).failure(ui_after_refusal, [run_dd, variant_id, profile_radio, note],
                                [*detail_outputs, gallery, history, note, run_info], api_name=f"{action}_refused",
                                api_visibility="undocumented")
        regen_btn.click(ui_regenerate, [run_dd, variant_id, reviewer, regen_seed, regen_strength, regen_prompt,
                                        profile_radio], [gallery, variant_ids, variant_id, history, run_info],
                        api_name="regenerate", **GPU)
        to_test.click(lambda: gr.Tabs(selected="test"), None, tabs, api_name="goto_test",
                      api_visibility="undocumented")

        # --- events: 4 ----------------------------------------------------------------------------
        def ui_test_setup(rid):
            with shown_errors():
                segs = h.approved_profiles(out, rid)
                tests = h.test_choices(out, rid)
            return (gr.CheckboxGroup(choices=segs, value=segs), h.default_test_id(rid),
                    gr.Dropdown(choices=tests, value=tests[-1] if tests else None))

        def ui_handoff(rid, typed, tid, segs, control, pol, request: gr.Request):
            with shown_errors():
                who = _who(request, typed)
                done = h.handoff(out, rid, who, tid, segs, control, pol)
                tests = h.test_choices(out, rid)
            gr.Info(f"test {done.test_id} created")
            return done.message, [list(r) for r in done.arms], gr.Dropdown(choices=tests, value=done.test_id)

        def _results(view):
            plots = list(view.plots) + [None, None]
            return view.summary, [list(r) for r in view.rows], plots[0], plots[1]

        def ui_results(tid):
            with shown_errors():
                return _results(h.test_results(out, tid))

        def ui_simulate(tid, n):
            with shown_errors():
                steps = h.simulate(out, tid, n)
                first = next(steps)
            yield _results(first)
            with shown_errors():
                for view in steps:
                    yield _results(view)

        test_tab.select(ui_test_setup, run_dd, [segments, test_id, test_dd], api_name="test_setup")
        handoff_btn.click(ui_handoff, [run_dd, reviewer, test_id, segments, include_control, policy],
                          [handoff_info, arms, test_dd], api_name="handoff")
        test_dd.change(ui_results, test_dd, [results_info, results, reward_plot, share_plot], api_name="test_results")
        sim_btn.click(ui_simulate, [test_dd, impressions], [results_info, results, reward_plot, share_plot], api_name="simulate",
                      concurrency_limit=1, concurrency_id="simulate")
        live.change(lambda on: gr.Timer(active=bool(on)), live, timer, api_name="live_results",
                    api_visibility="undocumented")
        timer.tick(ui_results, test_dd, [results_info, results, reward_plot, share_plot], api_name="poll_results",
                   api_visibility="undocumented", show_progress="hidden")
    return demo
