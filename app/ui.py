"""The review app's Blocks layout: four steps, each a tab, every event a named, scriptable endpoint.

Only glue lives here: components, events, the keyboard, and turning genart's typed errors into one
message a person reads (a message box; never a traceback, never "Error" on the outputs). The work is
done by ``app.handlers`` (plain functions over ``genart.api``). Long actions (finding key frames,
generating, regenerating, simulating, exporting) run in a worker thread while the event streams a
progress bar with counts and the time left into a visible slot, their button disabled until they end.
Generation and regeneration share one queue (``concurrency_id="gpu"``, one at a time): the models are
loaded once per process and used by one job at a time. Session state holds plain values only (ids,
the version a reviewer saw, a dict of edited prompts), never a model.
"""

from __future__ import annotations

import functools
import logging
from pathlib import Path
from typing import Any, Callable, Iterator

import gradio as gr

from app import handlers as h
from genart.errors import DecisionConflictError, GenartError, UploadError

log = logging.getLogger("genart.app")

# event options splatted into gradio listeners (typed per keyword there, so these are dict[str, Any])
GPU: dict[str, Any] = {"concurrency_id": "gpu", "concurrency_limit": 1}
QUIET: dict[str, Any] = {"show_progress": "hidden"}  # long actions draw their own bar; quick ones need none
HIDDEN: dict[str, Any] = {"api_visibility": "undocumented"}

CSS = """
.gradio-container { max-width: 1500px !important; }
#app-head { margin: 0 0 2px 0; }
#app-head h2 { margin: 0; font-size: 1.25em; }
#app-head p { margin: 0; color: var(--body-text-color-subdued); font-size: .9em; }
.ga-progress { min-height: 44px; padding: 6px 10px; border-radius: 8px; font-size: .95em; }
.ga-progress-idle { color: var(--body-text-color-subdued); min-height: 0; }
.ga-progress-idle:empty { padding: 0; }
#find-progress:has(.ga-progress-idle:empty), #gen-progress:has(.ga-progress-idle:empty),
#regen-progress:has(.ga-progress-idle:empty), #export-progress:has(.ga-progress-idle:empty),
#sim-progress:has(.ga-progress-idle:empty) { display: none !important; }
#keyframes .caption-label, #chosen-frames .caption-label { white-space: normal !important; overflow: visible !important;
  text-overflow: clip !important; max-width: 100% !important; }
.ga-progress-running { background: var(--background-fill-secondary); border: 1px solid var(--border-color-primary); }
.ga-progress-error { background: #fff4e5; border: 1px solid #f0b45a; color: #7a4b00; }
.ga-bar { height: 12px; border-radius: 6px; background: var(--neutral-200); overflow: hidden; }
.ga-fill { height: 100%; background: var(--color-accent); transition: width .25s linear; }
.ga-progress-text { margin-top: 4px; font-variant-numeric: tabular-nums; }
.ga-grid { position: relative; display: grid; grid-template-columns: repeat(auto-fill, minmax(146px, 1fr)); gap: 8px;
  max-height: calc(100vh - 300px); min-height: 220px; overflow-y: auto; padding: 4px; align-content: start; }
.ga-tile { position: relative; padding: 2px; border: 2px solid transparent; border-radius: 8px;
  background: var(--background-fill-secondary); cursor: pointer; text-align: left; }
.ga-tile.ga-current { border-color: var(--color-accent); box-shadow: 0 0 0 2px var(--color-accent-soft); }
.ga-thumb { display: flex; align-items: center; justify-content: center; height: 150px; }
.ga-thumb img { max-width: 100%; max-height: 150px; object-fit: contain; }
.ga-cap { display: block; font-size: .8em; padding: 2px 4px; font-variant-numeric: tabular-nums; }
.ga-badge { display: inline-block; font-size: .72em; font-weight: 600; padding: 1px 6px; border-radius: 9px;
  background: #e8e8e8; color: #333; }
.ga-tile .ga-badge, .ga-mx .ga-badge { position: absolute; top: 6px; left: 6px; }
.ga-badge-approve { background: #1f8a3b; color: #fff; }
.ga-badge-reject { background: #c0392b; color: #fff; }
.ga-badge-flag { background: #e6a117; color: #222; }
.ga-badge-pending { background: rgba(255,255,255,.88); color: #444; border: 1px solid #bbb; }
.ga-tile.ga-reject img { opacity: .55; }
.ga-mark { position: absolute; top: 6px; right: 6px; background: rgba(0,0,0,.65); color: #fff; border-radius: 9px;
  font-size: .75em; padding: 0 5px; }
.ga-mark-note { right: 28px; }
.ga-empty { padding: 24px; color: var(--body-text-color-subdued); }
#viewer { align-self: flex-start; }
#decisions button { min-width: 0; }
#variant-headline p { margin: 0; font-size: 1.02em; }
@media (max-height: 800px) { #app-head p { display: none; } }
.ga-flags { margin: 4px 0; padding-left: 0; list-style: none; }
.ga-flags li { padding: 3px 8px; border-radius: 6px; margin: 2px 0; font-size: .92em; }
.ga-warn { background: #fff4e5; color: #6b4200; }
.ga-note { background: #eef4ff; color: #1c3d7a; }
.ga-keys { font-size: .8em; color: var(--body-text-color-subdued); }
.ga-keys kbd { border: 1px solid #bbb; border-bottom-width: 2px; border-radius: 4px; padding: 0 4px; font-size: .95em; }
#viewer.ga-lightbox { position: fixed; inset: 0; z-index: 1000; background: #16181c; padding: 12px 18px;
  overflow-y: auto; max-width: none !important; }
#viewer.ga-lightbox p, #viewer.ga-lightbox strong, #viewer.ga-lightbox .ga-keys { color: #eee !important; }
#viewer.ga-lightbox .ga-keys kbd { border-color: #888; color: #eee; }
#viewer.ga-lightbox #variant-full, #viewer.ga-lightbox #variant-source {
  height: calc(100vh - 175px) !important; background: #0d0e10; border-color: #333; }
#viewer.ga-lightbox #note textarea { background: #24272d; color: #eee; }
#viewer.ga-lightbox .image-container, #viewer.ga-lightbox .image-frame, #viewer.ga-lightbox .image-container button {
  height: 100% !important; }
#viewer.ga-lightbox #variant-full img, #viewer.ga-lightbox #variant-source img {
  max-height: calc(100vh - 185px) !important; height: auto; width: auto; max-width: 100%; object-fit: contain; }
#viewer.ga-lightbox .ga-below { display: none; }
/* the tile at the 160 px it is used at, whatever its aspect (a square one would fill the box) */
#variant-tile img { max-width: 160px !important; max-height: 188px !important; width: auto !important; height: auto !important; object-fit: contain; }
.ga-compare { display: grid; grid-template-columns: repeat(var(--n), minmax(0, 1fr)); gap: 12px; }
.ga-cmp-cell { margin: 0; display: flex; flex-direction: column; align-items: center; }
.ga-cmp-cell img { max-width: 100%; height: calc(100vh - 290px); min-height: 260px; object-fit: contain; }
.ga-cmp-cell figcaption { font-size: .9em; padding: 4px; text-align: center; }
.ga-matrix { border-collapse: separate; border-spacing: 8px; width: auto !important; }
.ga-matrix th, .ga-matrix td { border: none !important; padding: 0 !important; background: none !important; }
.ga-matrix th { font-weight: 600; text-align: center; }
.ga-matrix tbody th { padding-right: 8px !important; text-align: right; }
.ga-matrix td { vertical-align: top; }
.ga-mx { position: relative; border: 2px solid transparent; border-radius: 8px; padding: 2px; cursor: pointer;
  background: var(--background-fill-secondary); }
.ga-mx img { max-width: 240px; max-height: 220px; display: block; }
.ga-none { color: #999; text-align: center; }
.ga-seg { margin-bottom: 14px; }
.ga-seg h4 { margin: 6px 0 2px 0; }
.ga-seg p { margin: 0 0 6px 0; }
.ga-arms { display: grid; grid-template-columns: repeat(auto-fill, minmax(340px, 1fr)); gap: 10px; }
.ga-arm { display: flex; gap: 10px; padding: 8px; border: 1px solid var(--border-color-primary); border-radius: 10px;
  background: var(--background-fill-secondary); }
.ga-arm-control { border-style: dashed; }
.ga-export ul { margin: 4px 0 0 0; padding-left: 18px; }
.ga-export li { font-size: .9em; color: #6b4200; }
.ga-arm img, .ga-nopic { width: 160px; max-height: 200px; object-fit: contain; }
.ga-nopic { display: flex; align-items: center; justify-content: center; height: 120px; border: 1px dashed #aaa;
  border-radius: 6px; font-size: .8em; color: #777; text-align: center; padding: 6px; }
.ga-arm-name { font-weight: 600; margin-bottom: 4px; }
.ga-arm dl { display: grid; grid-template-columns: auto 1fr; gap: 1px 10px; margin: 0; font-size: .9em;
  font-variant-numeric: tabular-nums; }
.ga-arm dt { color: var(--body-text-color-subdued); }
.ga-arm dd { margin: 0; }
.ga-pbest { display: inline-block; width: 60px; height: 8px; background: #ddd; border-radius: 4px; vertical-align: middle; }
.ga-pbest span { display: block; height: 100%; background: var(--color-accent); border-radius: 4px; }
.ga-verdict { font-size: .75em; padding: 1px 8px; border-radius: 9px; background: #ddd; color: #333;
  text-transform: uppercase; letter-spacing: .03em; }
.ga-verdict-winner { background: #1f8a3b; color: #fff; }
.ga-verdict-leading { background: #2d6cdf; color: #fff; }
.ga-verdict-inconclusive { background: #e6a117; color: #222; }
#history table td, #history table th { white-space: normal !important; word-break: normal !important; }
#note { margin-top: 2px; }
"""

#: Keyboard review in the Review step: arrows step, A/R/F decide, N writes a note, L opens the lightbox.
JS = """
() => {
  if (window.__genartKeys) return;
  window.__genartKeys = true;
  const press = (id) => { const b = document.getElementById(id); if (b && !b.disabled) b.click(); };
  document.addEventListener('keydown', (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const viewer = document.getElementById('viewer');
    if (!viewer || viewer.getClientRects().length === 0) return;  // the Review step is not on screen
    const t = e.target, tag = ((t && t.tagName) || '').toLowerCase();
    if (tag === 'input' || tag === 'textarea' || tag === 'select' || (t && t.isContentEditable)) {
      if (e.key === 'Escape') t.blur();
      return;
    }
    const k = e.key.length === 1 ? e.key.toLowerCase() : e.key;
    const keys = {ArrowRight: 'next-btn', j: 'next-btn', ArrowLeft: 'prev-btn', k: 'prev-btn',
                  a: 'approve', r: 'reject', f: 'flag'};
    if (k === 'n') {
      const box = document.querySelector('#note textarea, #note input');
      if (box) { e.preventDefault(); box.focus({preventScroll: true}); box.scrollIntoView({block: 'nearest'}); }
    } else if (k === 'l') {
      e.preventDefault(); viewer.classList.toggle('ga-lightbox');
    } else if (k === 'Escape') {
      viewer.classList.remove('ga-lightbox');
    } else if (keys[k]) {
      e.preventDefault(); press(keys[k]);
    }
  });
}
"""

GRID_JS = ("element.addEventListener('click', (e) => { const t = e.target.closest('[data-vid]'); "
           "if (t) trigger('click', {vid: t.dataset.vid}); }); "
           "watch('value', () => { const g = element.querySelector('.ga-grid'), c = element.querySelector('.ga-current'); "
           "if (!g || !c) return; const top = c.offsetTop; "
           "if (top < g.scrollTop || top + c.offsetHeight > g.scrollTop + g.clientHeight) g.scrollTop = top - 8; });")
KEYS_HELP = ('<div class="ga-keys"><kbd>←</kbd> <kbd>→</kbd> step · <kbd>A</kbd> approve · <kbd>R</kbd> reject · '
             '<kbd>F</kbd> flag · <kbd>N</kbd> note · <kbd>L</kbd> lightbox · <kbd>Esc</kbd> close. '
             'A decision moves on to the next pending variant.</div>')

_TITLES = {UploadError: "Upload refused", DecisionConflictError: "Not saved: someone else decided first"}


def error_text(exc: GenartError) -> str:
    return exc.message + (f" — {exc.hint}" if exc.hint else "")


def failed(exc: BaseException) -> str:
    """Say what went wrong in one message box and return the sentence (for the progress slot too).

    A failure never raises into Gradio: that would mark every output with "Error" and replace the
    gallery, history and summary. genart's typed errors say what to do; anything else is a bug, told
    plainly, with the traceback in the server log.
    """
    if isinstance(exc, GenartError):
        title = next((t for cls, t in _TITLES.items() if isinstance(exc, cls)), "Cannot do that")
        text = error_text(exc)
    else:
        log.error("review app handler failed", exc_info=exc)
        title = "Something went wrong"
        text = f"unexpected error ({type(exc).__name__}: {exc}); everything finished so far is saved"
    gr.Warning(text, title=title, duration=20)
    return text


def skips(n: int) -> tuple:
    return tuple(gr.skip() for _ in range(n))


def guarded(n_outputs: int) -> Callable:
    """A handler that reports a failure as one message and leaves its outputs as they were."""

    def wrap(fn: Callable) -> Callable:
        @functools.wraps(fn)
        def run(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:  # meant as an error (a stale decision): the event fails, its .failure refreshes
                raise
            except Exception as exc:
                failed(exc)
                return skips(n_outputs) if n_outputs != 1 else gr.skip()

        return run

    return wrap


def long_action(work: Callable, tracker: h.ProgressTracker, done: Callable, n_rest: int, n_buttons: int = 1,
                ) -> Iterator[tuple]:
    """Stream a long action: (progress slot, its buttons..., the rest of the outputs).

    Buttons are disabled while it runs and enabled again however it ends; ``done(result)`` returns
    ``(rest, note)``: the outputs, and the line left in the progress slot.
    """
    rest_skip = skips(n_rest)
    off, on = tuple(gr.Button(interactive=False) for _ in range(n_buttons)), \
        tuple(gr.Button(interactive=True) for _ in range(n_buttons))
    yield (h.progress_html(tracker.view()), *off, *rest_skip)
    try:
        result = None
        for item in h.with_progress(work, tracker):
            if isinstance(item, tuple):
                result = item[0]
                break
            yield (h.progress_html(item), *skips(n_buttons), *rest_skip)
        rest, note = done(result)
    except Exception as exc:
        yield (h.progress_html(None, error=failed(exc)), *on, *rest_skip)
        return
    yield (h.progress_html(None, idle=note), *on, *rest)


def _who(request: gr.Request | None, typed: str | None) -> str:
    return h.reviewer_name(getattr(request, "username", None) if request is not None else None, typed)


def _trends_frame(view: h.TestView, y: str):
    import pandas as pd

    rows = [r for r in view.trends if r.get(y) is not None]
    return pd.DataFrame(rows, columns=["segment", "arm", "exposures", "share", "click rate"])


def build_app(out: str | Path = "runs", *, max_upload_mb: int = h.DEFAULT_MAX_UPLOAD_MB) -> gr.Blocks:
    """The app over the store in ``out``. Launch it with ``app.launch`` (safe defaults), not directly."""
    out = Path(out)
    max_bytes = int(max_upload_mb) * 2**20
    profile_choices = h.profile_choices()
    default_profiles = [pid for _, pid in profile_choices if pid in ("romance", "thriller")] or \
        [pid for _, pid in profile_choices[:2]]
    first_kind = h.preset_kind(h.default_preset())

    # Gradio copies what it shows into its cache: files older than a day are removed, checked daily
    with gr.Blocks(title="genart review", analytics_enabled=False, delete_cache=(86_400, 86_400)) as demo:
        gr.Markdown("## genart · artwork review\nUpload a title, pick key frames and taste profiles, generate, review "
                    "the ranked variants, hand the approved ones to a test, export the delivery package.",
                    elem_id="app-head")
        stage = gr.State("")  # the staged upload's id
        edits = gr.State({})  # this run's edited prompts
        # the variant on screen and the version of it the reviewer is looking at (the conflict check): kept
        # off the screen, but components, so the decision endpoints name them (API clients pass them)
        cur = gr.Textbox("", label="variant", visible="hidden", elem_id="variant-id")
        seen = gr.Number(0, precision=0, label="version", visible="hidden", elem_id="version")
        shown = gr.State([])  # the variant ids the grid shows, in order (stepping, bulk decisions)
        control_path = gr.State("")  # today's artwork, stored
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
                        find_progress = gr.HTML(h.progress_html(None, idle="Upload a video (or stills) to start."),
                                                elem_id="find-progress")
                    with gr.Column(scale=3):
                        stage_info = gr.Markdown(elem_id="stage-info")
                        kf_gallery = gr.Gallery(label="Key frames (timecode · shot · quality · faces)", columns=4,
                                                height=340, object_fit="contain", elem_id="keyframes")
                        kf_pick = gr.CheckboxGroup(label="Use these key frames", elem_id="keyframe-pick")
                        to_generate = gr.Button("Next: profiles and generation →", elem_id="to-generate")

            # --- 2 ----------------------------------------------------------------------------
            with gr.Tab("2 · Generate", id="generate"):
                with gr.Row():
                    with gr.Column(scale=5):
                        chosen = gr.Gallery(label="Key frames for this run (from step 1)", columns=4, height=240,
                                            object_fit="contain", allow_preview=False, elem_id="chosen-frames")
                        profiles = gr.CheckboxGroup(profile_choices, value=default_profiles,
                                                    label="Taste profiles (reviewed in the order you tick them)",
                                                    elem_id="profiles")
                        profiles_md = gr.Markdown(h.profiles_note(default_profiles, first_kind), elem_id="profiles-note")
                    with gr.Column(scale=4):
                        preset = gr.Dropdown(h.preset_choices(), value=h.default_preset(), label="Preset",
                                             elem_id="preset")
                        preset_md = gr.Markdown(h.preset_info(h.default_preset()), elem_id="preset-info")
                        estimate_md = gr.Markdown(h.estimate([], default_profiles, 3), elem_id="estimate")
                        gen_btn = gr.Button("Generate", variant="primary", elem_id="generate-btn")
                        gen_progress = gr.HTML(h.progress_html(None), elem_id="gen-progress")
                        gen_info = gr.Markdown(elem_id="gen-info")
                        with gr.Row():
                            variants = gr.Slider(1, 8, value=3, step=1, label="Variants per key frame and profile",
                                                 elem_id="variants", scale=3)
                            seed = gr.Number(0, precision=0, minimum=0, label="Run seed (same seed, same variants)",
                                             elem_id="seed", scale=2)
                        with gr.Group(visible=first_kind == "classic", elem_id="classic-controls") as classic_box:
                            with gr.Row():
                                grade = gr.Dropdown(h.grade_choices(), value="", label="Look (colour grade)",
                                                    elem_id="grade")
                                grade_amount = gr.Slider(0, 1.5, value=1.0, step=0.05, label="Look strength",
                                                         elem_id="grade-amount")
                            aspects = gr.CheckboxGroup(h.aspect_choices(), value=[], elem_id="aspects",
                                                       label="Aspect ratios (none ticked: each profile's own)")
                            with gr.Row():
                                title_on = gr.Checkbox(True, label="Lay the title on the artwork", elem_id="title-on")
                                title_text = gr.Textbox(label="Title text on the artwork",
                                                        placeholder="the title from step 1", elem_id="title-text")
                            title_pos = gr.Radio(h.TITLE_POSITIONS, value="auto",
                                                 label="Title position (faces, text and the subject stay clear)",
                                                 elem_id="title-position")
                        with gr.Group(visible=first_kind != "classic", elem_id="diffusion-controls") as diffusion_box:
                            edit_profile = gr.Dropdown(profile_choices,
                                                       value=default_profiles[0] if default_profiles else None,
                                                       label="Edit a profile's prompt for this run",
                                                       elem_id="edit-profile")
                            first_prompt, first_desc = h.prompt_for({}, default_profiles[0] if default_profiles else None)
                            profile_desc = gr.Markdown(first_desc)
                            prompt_box = gr.Textbox(first_prompt, label="Prompt for this run ({title}, {genre} and "
                                                    "{subject} are filled in)", lines=3, elem_id="prompt")
                            with gr.Row():
                                own_strength = gr.Checkbox(True, label="Each profile's own strengths",
                                                           elem_id="own-strength")
                                strength = gr.Slider(0.05, 1.0, value=0.5, step=0.05, label="Strength for every profile",
                                                     elem_id="strength")

            # --- 3 ----------------------------------------------------------------------------
            with gr.Tab("3 · Review", id="review"):
                with gr.Row(equal_height=True):
                    run_dd = gr.Dropdown([], label="Run", show_label=False, container=False, scale=4, elem_id="run")
                    refresh_runs = gr.Button("↻", scale=0, min_width=44, elem_id="refresh-runs")
                    reviewer = gr.Textbox(label="Your name", show_label=False, container=False, scale=2,
                                          placeholder="Your name (for the audit trail)", elem_id="reviewer")
                    export_btn = gr.Button("⇩ Export delivery package", scale=1, elem_id="export-btn")
                run_info = gr.Markdown(elem_id="run-info")
                export_progress = gr.HTML(h.progress_html(None), elem_id="export-progress", padding=False)
                with gr.Row(equal_height=True, visible=False) as export_row:
                    export_info = gr.HTML(elem_id="export-info", scale=3)
                    export_file = gr.File(label="Delivery package", interactive=False, visible=False, scale=1,
                                          elem_id="export-file")
                with gr.Row(equal_height=True):
                    profile_radio = gr.Radio([], label="Profile", show_label=False, container=False, elem_id="profile",
                                             scale=4)
                    status_f = gr.Radio(h.STATUS_FILTERS, value="all", label="Status", show_label=False,
                                        container=False, elem_id="status-filter", scale=4)
                    aspect_f = gr.Dropdown([("All aspects", "all")], value="all", label="Aspect", show_label=False,
                                           container=False, elem_id="aspect-filter", scale=1, min_width=120)
                with gr.Tabs(selected="variants") as sub:
                    with gr.Tab("Variants", id="variants"):
                        with gr.Row():
                            with gr.Column(scale=5, min_width=360):
                                grid_count = gr.Markdown(elem_id="grid-count")
                                grid = gr.HTML(h.grid_html(h.GalleryView((), (), "")), js_on_load=GRID_JS,
                                               elem_id="grid")
                                with gr.Row():
                                    bulk_approve = gr.Button("✓ Approve all shown", size="sm", elem_id="bulk-approve")
                                    bulk_reject = gr.Button("✗ Reject all shown", size="sm", elem_id="bulk-reject")
                            with gr.Column(scale=7, elem_id="viewer"):
                                headline = gr.Markdown("Pick a variant in the grid.", elem_id="variant-headline")
                                flags = gr.HTML(elem_id="variant-flags", padding=False, visible=False)
                                with gr.Row(elem_id="decisions"):
                                    prev_btn = gr.Button("◀", size="sm", min_width=40, scale=0, elem_id="prev-btn")
                                    approve_btn = gr.Button("✓ Approve (A)", variant="primary", size="sm", elem_id="approve")
                                    reject_btn = gr.Button("✗ Reject (R)", variant="stop", size="sm", elem_id="reject")
                                    flag_btn = gr.Button("⚑ Flag (F)", size="sm", elem_id="flag")
                                    next_btn = gr.Button("▶", size="sm", min_width=40, scale=0, elem_id="next-btn")
                                    light_btn = gr.Button("⛶ (L)", size="sm", min_width=60, scale=0, elem_id="lightbox-btn")
                                note = gr.Textbox(show_label=False, placeholder="Note (N): saved with your next decision",
                                                  lines=1, max_lines=3, container=False, elem_id="note")
                                with gr.Row(elem_id="pictures"):
                                    big = gr.Image(label="Variant", type="filepath", interactive=False, height=400,
                                                   buttons=["fullscreen", "download"], elem_id="variant-full", scale=3)
                                    source = gr.Image(label="Source frame", type="filepath", interactive=False,
                                                      height=400, buttons=["fullscreen"], elem_id="variant-source",
                                                      scale=2)
                                gr.HTML(KEYS_HELP, elem_id="keys-help", padding=False)
                                before_after = gr.ImageSlider(label="Before / after: drag to compare", type="filepath",
                                                              visible=False, max_height=420, elem_id="before-after")
                                with gr.Row():
                                    reroll_btn = gr.Button("↻ Re-roll (random seed)", elem_id="reroll-btn")
                                regen_progress = gr.HTML(h.progress_html(None), elem_id="regen-progress")
                                with gr.Accordion("Regenerate with settings", open=False,
                                                  elem_id="regen-panel") as regen_panel:
                                    with gr.Row():
                                        regen_seed = gr.Textbox(label="Seed", placeholder="random", elem_id="regen-seed")
                                        regen_aspect = gr.Dropdown(h.aspect_choices(), label="Aspect (classic)",
                                                                   elem_id="regen-aspect")
                                        regen_amount = gr.Slider(0, 1.5, value=1.0, step=0.05,
                                                                 label="Look strength (classic)", elem_id="regen-amount")
                                    with gr.Row():
                                        regen_strength = gr.Slider(0.05, 1.0, value=0.5, step=0.05,
                                                                   label="Strength (diffusion)", elem_id="regen-strength")
                                        regen_prompt = gr.Textbox(label="Prompt (diffusion)", lines=2,
                                                                  elem_id="regen-prompt")
                                    regen_btn = gr.Button("Regenerate", elem_id="regen-btn")
                                with gr.Row(elem_classes="ga-below"):
                                    tile = gr.Image(label="At 160 px", type="filepath", interactive=False,
                                                    width=160, height=190, scale=0, min_width=176, buttons=[],
                                                    elem_id="variant-tile")
                                    breakdown = gr.Dataframe(headers=list(h.BREAKDOWN_HEADERS), interactive=False,
                                                             label="Score breakdown: contributions add up to the total",
                                                             column_widths=["34%", "20%", "20%", "26%"],
                                                             elem_id="scores", scale=3)
                                params = gr.Markdown(elem_id="variant-params", elem_classes="ga-below")
                    with gr.Tab("Compare", id="compare"):
                        compare_pick = gr.Dropdown([], multiselect=True, label="Variants side by side (two or more)",
                                                   elem_id="compare-pick")
                        compare_view = gr.HTML(h.compare_html(out, None, None), elem_id="compare-view")
                    with gr.Tab("Frame × profiles × aspects", id="matrix"):
                        matrix_kf = gr.Dropdown([], label="Key frame", elem_id="matrix-keyframe")
                        matrix_view = gr.HTML(js_on_load=GRID_JS, elem_id="matrix-view")
                    with gr.Tab("History", id="history-tab"):
                        history = gr.Dataframe(headers=list(h.HISTORY_HEADERS), interactive=False, wrap=True,
                                               column_widths=["180px", "120px", "130px", "190px", "auto"],
                                               label="Audit trail, newest first", elem_id="history")
                to_test = gr.Button("Next: hand off approved variants →", elem_id="to-test")

            # --- 4 ----------------------------------------------------------------------------
            with gr.Tab("4 · Test", id="test") as test_tab:
                with gr.Row():
                    with gr.Column(scale=2):
                        test_id = gr.Textbox(label="New test id", elem_id="test-id")
                        segments = gr.CheckboxGroup([], label="Segments (one per profile with approved variants)",
                                                    elem_id="segments")
                        include_control = gr.Checkbox(True, label="Include today's artwork as a control arm",
                                                      elem_id="include-control")
                        control_up = gr.Image(label="Today's artwork (the control arm's picture)", type="filepath",
                                              sources=["upload"], height=200, elem_id="control-upload")
                        control_info = gr.Markdown(elem_id="control-info")
                        policy = gr.Dropdown(list(h.POLICIES), value="ts", label="Policy", elem_id="policy")
                        with gr.Accordion("Test settings", open=False, elem_id="test-settings"):
                            floor = gr.Slider(0.0, 0.2, value=0.01, step=0.005, elem_id="floor",
                                              label="Exploration floor (every arm keeps at least this share)")
                            stop_p = gr.Slider(0.8, 0.99, value=0.95, step=0.01, elem_id="stop-probability",
                                               label="A winner when its P(best) reaches")
                            min_imp = gr.Number(100, precision=0, minimum=0, elem_id="min-impressions",
                                                label="…and every arm has at least this many impressions")
                        handoff_btn = gr.Button("Hand off approved variants", variant="primary", interactive=False,
                                                elem_id="handoff")
                        handoff_info = gr.Markdown("Approve variants in step 3 first.", elem_id="handoff-info")
                    with gr.Column(scale=5):
                        with gr.Row(equal_height=True):
                            test_dd = gr.Dropdown([], label="Test", elem_id="test", scale=3)
                            impressions = gr.Number(2000, precision=0, label="Simulated impressions",
                                                    elem_id="impressions", scale=1)
                            sim_btn = gr.Button("Simulate traffic (demo)", elem_id="simulate", scale=1)
                            live = gr.Checkbox(False, label="Refresh every 2 s", elem_id="live", scale=1)
                        sim_progress = gr.HTML(h.progress_html(None), elem_id="sim-progress")
                        results_info = gr.Markdown(elem_id="results-info")
                        arms = gr.HTML(h.arms_html(h.TestView("", (), "")), elem_id="arms")
                        with gr.Row(visible=False) as plots_row:
                            share_plot = gr.LinePlot(x="exposures", y="share", color="arm", title="Share of impressions",
                                                     x_title="impressions in the segment", y_title="share (%)",
                                                     color_title="arm", height=300, elem_id="share-plot")
                            ctr_plot = gr.LinePlot(x="exposures", y="click rate", color="arm",
                                                   title="Click rate so far", x_title="impressions in the segment",
                                                   y_title="click rate (%)", color_title="arm", height=300,
                                                   elem_id="ctr-plot")
                        with gr.Accordion("Results as a table", open=False):
                            results = gr.Dataframe(headers=list(h.RESULT_HEADERS), interactive=False, wrap=True,
                                                   elem_id="results")
                timer = gr.Timer(2.0, active=False)

        # --- events: 1 ----------------------------------------------------------------------------
        def ui_find(files, n):
            tracker = h.ProgressTracker()

            def done(view):
                pick = gr.CheckboxGroup(choices=list(view.choices), value=list(view.selected))
                note = f"Found {len(view.items)} key frame(s) in {tracker.view().elapsed_s:.0f} s."
                return (view.stage_id, list(view.items), pick, view.summary), note

            yield from long_action(lambda p: h.stage_upload(out, files, n, max_bytes=max_bytes, progress=p),
                                   tracker, done, 4)

        find_btn.click(ui_find, [upload, max_frames], [find_progress, find_btn, stage, kf_gallery, kf_pick, stage_info],
                       api_name="find_keyframes", **QUIET)
        to_generate.click(lambda: gr.Tabs(selected="generate"), None, tabs, api_name="goto_generate", **HIDDEN)

        # --- events: 2 ----------------------------------------------------------------------------
        @guarded(2)
        def ui_frames(sid, kf_ids, profs, n, asp):
            return h.chosen_frames(out, sid, kf_ids), h.estimate(kf_ids, profs, n, asp)

        @guarded(2)
        def ui_profiles(kf_ids, profs, n, asp, preset_name):
            return h.profiles_note(profs, h.preset_kind(preset_name)), h.estimate(kf_ids, profs, n, asp)

        @guarded(1)
        def ui_estimate(kf_ids, profs, n, asp):
            return h.estimate(kf_ids, profs, n, asp)

        @guarded(4)
        def ui_preset(name, profs):
            kind = h.preset_kind(name)
            return (h.preset_info(name), gr.Group(visible=kind == "classic"), gr.Group(visible=kind != "classic"),
                    h.profiles_note(profs, kind))

        @guarded(2)
        def ui_prompt_for(ed, pid):
            return h.prompt_for(ed, pid)

        @guarded(1)
        def ui_set_prompt(ed, pid, text):
            return h.set_prompt(ed, pid, text)

        def ui_generate(sid, kf_ids, profs, preset_name, n, s, t, g, ed, pid, text, grade_name, amount, asp, t_on,
                        t_text, t_pos, own, stren):
            tracker = h.ProgressTracker(len(kf_ids or ()) * len(profs or ()) * int(n or 1))
            try:
                ed = h.set_prompt(ed, pid, text) if pid else ed
            except Exception as exc:  # a profile gone since the page loaded
                failed(exc)
                ed = ed or {}
            look = h.Look(grade=grade_name or "", grade_amount=float(amount if amount is not None else 1.0),
                          aspects=tuple(asp or ()), title_overlay=bool(t_on), title_text=t_text or "",
                          title_position=t_pos or "auto", strength=None if own else float(stren))

            def work(p):
                return h.generate(out, sid, kf_ids, profs, preset_name, n, s, t, g, ed, look=look, progress=p)

            def done(run):
                gr.Info(f"Run {run.run_id} is ready for review")
                choices = h.run_choices(out)
                note = f"Done in {tracker.view().elapsed_s:.0f} s."
                return (gr.Dropdown(choices=choices, value=run.run_id), run.summary, ed,
                        gr.Tabs(selected="review")), note

            yield from long_action(work, tracker, done, 4)

        stage.change(ui_frames, [stage, kf_pick, profiles, variants, aspects], [chosen, estimate_md],
                     api_name="chosen_frames", **QUIET, **HIDDEN)
        kf_pick.change(ui_frames, [stage, kf_pick, profiles, variants, aspects], [chosen, estimate_md],
                       api_name="pick_keyframes", **QUIET, **HIDDEN)
        profiles.change(ui_profiles, [kf_pick, profiles, variants, aspects, preset], [profiles_md, estimate_md],
                        api_name="pick_profiles", **QUIET, **HIDDEN)
        variants.change(ui_estimate, [kf_pick, profiles, variants, aspects], estimate_md, api_name="estimate", **QUIET)
        aspects.change(ui_estimate, [kf_pick, profiles, variants, aspects], estimate_md, api_name="pick_aspects",
                       **QUIET, **HIDDEN)
        preset.change(ui_preset, [preset, profiles], [preset_md, classic_box, diffusion_box, profiles_md],
                      api_name="preset_info", **QUIET)
        edit_profile.change(ui_prompt_for, [edits, edit_profile], [prompt_box, profile_desc], api_name="prompt_for",
                            **QUIET)
        prompt_box.input(ui_set_prompt, [edits, edit_profile, prompt_box], edits, api_name="set_prompt",
                         trigger_mode="always_last", **QUIET)
        gen_btn.click(ui_generate, [stage, kf_pick, profiles, preset, variants, seed, title, genre, edits, edit_profile,
                                    prompt_box, grade, grade_amount, aspects, title_on, title_text, title_pos,
                                    own_strength, strength],
                      [gen_progress, gen_btn, run_dd, gen_info, edits, tabs], api_name="generate", **GPU, **QUIET)

        # --- events: 3 ----------------------------------------------------------------------------
        def _grid(rid, pid, status, aspect, current):
            view = h.gallery(out, rid, pid, status or "all", aspect or "all")
            return h.grid_html(view, current), list(view.variant_ids), view.summary

        def _detail(rid, vid):
            """The viewer's outputs (DETAIL) for one variant; blanks when there is none. The regeneration
            seed is the reviewer's own entry, never the variant's: a refresh leaves what they typed there
            (one that lands late, after a selection or the lightbox closing, would otherwise wipe it)."""
            view = h.variant_detail(out, rid, vid) if vid else None
            if view is None:
                return ("", 0, "Pick a variant in the grid.", gr.HTML("", visible=False), None,
                        gr.Image(value=None, label="Source frame"),
                        None, [], "", gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(), gr.skip(),
                        gr.ImageSlider(visible=False))
            flagged = h.warnings_html(view)
            return (view.variant_id, view.state.version, view.headline, gr.HTML(flagged, visible=bool(flagged)), view.image,
                    gr.Image(value=view.keyframe_image, label=view.keyframe_label), view.image,
                    h.breakdown_rows(view), view.params, "", gr.skip(), gr.Dropdown(value=view.aspect),
                    gr.Slider(value=view.grade_amount), gr.Slider(value=view.strength or 0.5),
                    view.prompt, gr.ImageSlider(visible=False))

        detail_outputs = [cur, seen, headline, flags, big, source, tile, breakdown, params, note, regen_seed,
                          regen_aspect, regen_amount, regen_strength, regen_prompt, before_after]
        grid_outputs = [grid, shown, grid_count]

        @guarded(2)
        def ui_load(saved, request: gr.Request):
            choices = h.run_choices(out)
            wanted = request.query_params.get("run") if request is not None else None
            ids = [rid for _, rid in choices]
            value = wanted if wanted in ids else (ids[0] if ids else None)
            user = getattr(request, "username", None)
            who = gr.Textbox(value=user, interactive=False) if user else gr.Textbox(value=saved or "")
            return gr.Dropdown(choices=choices, value=value), who

        @guarded(1)
        def ui_runs(current):
            choices = h.run_choices(out)
            ids = [rid for _, rid in choices]
            return gr.Dropdown(choices=choices, value=current if current in ids else (ids[0] if ids else None))

        n_open = 9 + len(grid_outputs) + len(detail_outputs)

        @guarded(n_open)
        def ui_open(rid):
            view = h.open_run(out, rid)
            first = view.profiles[0] if view.profiles else None
            hist = [list(r) for r in h.history(out, rid)]
            html, ids, count = _grid(rid, first, "all", "all", None)
            vid = ids[0] if ids else ""
            html = h.grid_html(h.gallery(out, rid, first), vid) if vid else html
            kind = view.kind
            return (gr.Radio(choices=list(view.profiles), value=first), view.summary, gr.Radio(value="all"),
                    gr.Dropdown(choices=[("All aspects", "all")] + [(a, a) for a in view.aspects], value="all"),
                    gr.Dropdown(choices=list(view.keyframes), value=view.keyframes[0][1] if view.keyframes else None),
                    gr.Dropdown(choices=h.compare_choices(out, rid), value=ids[:2]), h.compare_html(out, rid, ids[:2]),
                    hist,
                    gr.Accordion(label="Regenerate with settings (seed, aspect, look strength)" if kind == "classic"
                                 else "Regenerate with settings (seed, strength, prompt)"),
                    html, ids, count, *_detail(rid, vid))

        open_outputs = [profile_radio, run_info, status_f, aspect_f, matrix_kf, compare_pick, compare_view, history,
                        regen_panel]

        @guarded(len(grid_outputs) + len(detail_outputs))
        def ui_filter(rid, pid, status, aspect, current):
            html, ids, count = _grid(rid, pid, status, aspect, current)
            vid = current if current in ids else (ids[0] if ids else "")
            if vid != current:
                html = _grid(rid, pid, status, aspect, vid)[0]
            return (html, ids, count, *_detail(rid, vid))

        @guarded(len(detail_outputs) + 1)
        def ui_pick(rid, pid, status, aspect, evt: gr.EventData):
            vid = getattr(evt, "_data", {}) or {}
            vid = vid.get("vid") if isinstance(vid, dict) else None
            if not vid:
                return skips(len(detail_outputs) + 1)
            return (*_detail(rid, vid), _grid(rid, pid, status, aspect, vid)[0])

        @guarded(len(detail_outputs) + 2)
        def ui_pick_cell(rid, evt: gr.EventData):
            data = getattr(evt, "_data", {}) or {}
            vid = data.get("vid") if isinstance(data, dict) else None
            if not vid:
                return skips(len(detail_outputs) + 2)
            view = h.variant_detail(out, rid, vid)
            if view is None:  # no run open
                return skips(len(detail_outputs) + 2)
            return (*_detail(rid, vid), gr.Radio(value=view.profile_id), gr.Tabs(selected="variants"))

        def make_step(delta):
            @guarded(len(detail_outputs) + 1)
            def ui_step(rid, pid, status, aspect, ids, current):
                vid = h.step(ids, current, delta)
                if not vid:
                    return skips(len(detail_outputs) + 1)
                return (*_detail(rid, vid), _grid(rid, pid, status, aspect, vid)[0])

            ui_step.__name__ = "ui_next" if delta > 0 else "ui_prev"
            return ui_step

        after_decision = [*detail_outputs, *grid_outputs, run_info, history, compare_pick]

        def _after_decision(rid, vid, pid):
            detail = _detail(rid, vid)
            view = h.gallery(out, rid, pid)
            hist = [list(r) for r in h.history(out, rid)]
            return (*detail, list(view.items), hist, h.open_run(out, rid).summary)

        def make_decide(action):
            @guarded(len(after_decision))
            def ui_decide(rid, vid, typed, text, version, pid, status, aspect, ids, request: gr.Request):
                who = _who(request, typed)
                try:
                    done = h.decide(out, rid, vid, action, who, text, version)
                except DecisionConflictError as exc:
                    # refused as stale: an error, to a person and to an API client alike (gradio_client raises);
                    # the refresh chained on failure shows what the other reviewer decided, the note kept
                    raise gr.Error(error_text(exc), title="Not saved: someone else decided first",
                                   print_exception=False) from None
                gr.Info(done.message)
                nxt = h.next_pending(out, rid, ids, vid)
                target = nxt or vid
                html, new_ids, count = _grid(rid, pid, status, aspect, target)
                detail = _detail(rid, target)
                if nxt is None:
                    gr.Info("Every variant shown is decided.")
                return (*detail, html, new_ids, count, h.open_run(out, rid).summary,
                        [list(r) for r in h.history(out, rid)], gr.Dropdown(choices=h.compare_choices(out, rid)))

            ui_decide.__name__ = f"ui_{action}"
            return ui_decide

        @guarded(len(after_decision))
        def ui_after_refusal(rid, vid, text, pid, status, aspect):
            detail = list(_detail(rid, vid))
            detail[detail_outputs.index(note)] = text  # the reviewer's note stays, to decide again with
            html, new_ids, count = _grid(rid, pid, status, aspect, vid)
            return (*detail, html, new_ids, count, h.open_run(out, rid).summary,
                    [list(r) for r in h.history(out, rid)], gr.skip())

        def make_bulk(action):
            @guarded(len(after_decision))
            def ui_bulk(rid, vid, typed, text, pid, status, aspect, ids, request: gr.Request):
                who = _who(request, typed)
                done = h.decide_many(out, rid, ids, action, who, text)
                gr.Info(done.message)
                html, new_ids, count = _grid(rid, pid, status, aspect, vid)
                target = vid if vid in new_ids else (new_ids[0] if new_ids else "")
                if target != vid:
                    html = _grid(rid, pid, status, aspect, target)[0]
                return (*_detail(rid, target), html, new_ids, count, h.open_run(out, rid).summary,
                        [list(r) for r in h.history(out, rid)], gr.Dropdown(choices=h.compare_choices(out, rid)))

            ui_bulk.__name__ = f"ui_bulk_{action}"
            return ui_bulk

        regen_rest = [*detail_outputs, *grid_outputs, run_info, history, compare_pick, compare_view]

        def _regen(rid, vid, typed, pid, status, shown_aspect, request, **settings):
            tracker = h.ProgressTracker()
            try:
                who = _who(request, typed)
            except Exception as exc:
                yield (h.progress_html(None, error=failed(exc)), *skips(2 + len(regen_rest)))
                return

            def work(p):
                return h.regenerate(out, rid, vid, who, progress=p, **settings)

            def done(new):
                old = h.variant_detail(out, rid, vid)
                rank = f"ranked #{new.rank}" if new.rank else f"rejected by the ranking: {new.rejected}"
                gr.Info(f"New variant (seed {new.variant.params.seed}) {rank}")
                html, ids, count = _grid(rid, pid, status, shown_aspect, new.variant.id)
                detail = list(_detail(rid, new.variant.id))
                detail[-1] = gr.ImageSlider(value=(old.image, str(new.path)), visible=True,
                                            label=f"Before ({old.label}) / after: drag to compare")
                pair = [vid, new.variant.id]
                titles = {vid: "before", new.variant.id: "after"}
                return ((*detail, html, ids, count, h.open_run(out, rid).summary,
                         [list(r) for r in h.history(out, rid)],
                         gr.Dropdown(choices=h.compare_choices(out, rid), value=pair),
                         h.compare_html(out, rid, pair, titles)),
                        f"New variant in {tracker.view().elapsed_s:.0f} s: {rank}.")

            yield from long_action(work, tracker, done, len(regen_rest), n_buttons=2)

        def ui_reroll(rid, vid, typed, pid, status, aspect, request: gr.Request):
            yield from _regen(rid, vid, typed, pid, status, aspect, request)

        def ui_regenerate(rid, vid, typed, pid, status, aspect, s, asp, amount, stren, prompt, request: gr.Request):
            kind = h.open_run(out, rid).kind if rid else "classic"
            if kind == "classic":
                settings = {"seed": s, "aspect": asp or None, "grade_amount": amount}
            else:
                settings = {"seed": s, "strength": stren, "prompt": prompt}
            yield from _regen(rid, vid, typed, pid, status, aspect, request, **settings)

        @guarded(1)
        def ui_compare(rid, ids):
            return h.compare_html(out, rid, ids)

        @guarded(1)
        def ui_matrix(rid, kf_id):
            return h.matrix_html(out, rid, h.matrix(out, rid, kf_id))

        def ui_export(rid):
            tracker = h.ProgressTracker()

            def done(pkg):
                gr.Info(pkg.message)
                return (gr.Row(visible=True), gr.File(value=pkg.path, visible=True), h.export_html(pkg)), \
                    f"Written in {tracker.view().elapsed_s:.0f} s."

            yield from long_action(lambda p: h.export(out, rid, progress=p), tracker, done, 3)

        demo.load(ui_load, saved_reviewer, [run_dd, reviewer], api_name="load_app", **QUIET)
        reviewer.change(lambda name: name, reviewer, saved_reviewer, api_name="remember_reviewer", **HIDDEN, **QUIET)
        refresh_runs.click(ui_runs, run_dd, run_dd, api_name="list_runs", **QUIET)
        run_dd.change(ui_open, run_dd, [*open_outputs, *grid_outputs, *detail_outputs], api_name="open_run", **QUIET)
        filter_in = [run_dd, profile_radio, status_f, aspect_f, cur]
        for comp, name in ((profile_radio, "gallery"), (status_f, "filter_status"), (aspect_f, "filter_aspect")):
            comp.input(ui_filter, filter_in, [*grid_outputs, *detail_outputs], api_name=name, **QUIET)
        grid.click(ui_pick, [run_dd, profile_radio, status_f, aspect_f], [*detail_outputs, grid],
                   api_name="variant", **QUIET)
        matrix_view.click(ui_pick_cell, run_dd, [*detail_outputs, profile_radio, sub], api_name="matrix_pick",
                          **QUIET, **HIDDEN)
        step_in = [run_dd, profile_radio, status_f, aspect_f, shown, cur]
        next_btn.click(make_step(1), step_in, [*detail_outputs, grid], api_name="next_variant", **QUIET)
        prev_btn.click(make_step(-1), step_in, [*detail_outputs, grid], api_name="previous_variant", **QUIET)
        light_btn.click(None, None, None, js="() => document.getElementById('viewer').classList.toggle('ga-lightbox')",
                        api_name="lightbox", **HIDDEN)
        decide_in = [run_dd, cur, reviewer, note, seen, profile_radio, status_f, aspect_f, shown]
        for btn, action in ((approve_btn, "approve"), (reject_btn, "reject"), (flag_btn, "flag")):
            btn.click(make_decide(action), decide_in, after_decision, api_name=action, **QUIET).failure(
                ui_after_refusal, [run_dd, cur, note, profile_radio, status_f, aspect_f], after_decision,
                api_name=f"{action}_refused", **QUIET, **HIDDEN)
        bulk_in = [run_dd, cur, reviewer, note, profile_radio, status_f, aspect_f, shown]
        bulk_approve.click(make_bulk("approve"), bulk_in, after_decision, api_name="approve_shown", **QUIET)
        bulk_reject.click(make_bulk("reject"), bulk_in, after_decision, api_name="reject_shown", **QUIET)
        regen_out = [regen_progress, reroll_btn, regen_btn, *regen_rest]
        reroll_btn.click(ui_reroll, [run_dd, cur, reviewer, profile_radio, status_f, aspect_f], regen_out,
                         api_name="reroll", **GPU, **QUIET)
        regen_btn.click(ui_regenerate, [run_dd, cur, reviewer, profile_radio, status_f, aspect_f, regen_seed,
                                        regen_aspect, regen_amount, regen_strength, regen_prompt], regen_out,
                        api_name="regenerate", **GPU, **QUIET)
        compare_pick.input(ui_compare, [run_dd, compare_pick], compare_view, api_name="compare", **QUIET)
        matrix_kf.change(ui_matrix, [run_dd, matrix_kf], matrix_view, api_name="matrix", **QUIET)
        export_btn.click(ui_export, run_dd, [export_progress, export_btn, export_row, export_file, export_info],
                         api_name="export", **QUIET)
        to_test.click(lambda: gr.Tabs(selected="test"), None, tabs, api_name="goto_test", **HIDDEN)

        # --- events: 4 ----------------------------------------------------------------------------
        def _results(view: h.TestView):
            info = view.summary + (f"  \nFrom a shell: `{view.cli}`" if view.cli else "")
            if view.trends:
                plots = (gr.Row(visible=True), _trends_frame(view, "share"), _trends_frame(view, "click rate"))
            else:  # hidden, never emptied: a native plot given an empty frame draws no lines afterwards
                plots = (gr.Row(visible=False), gr.skip(), gr.skip())
            return (info, h.arms_html(view), *plots, [list(r) for r in view.rows])

        results_out = [results_info, arms, plots_row, share_plot, ctr_plot, results]

        @guarded(5)
        def ui_test_setup(rid):
            segs = h.approved_profiles(out, rid)
            tests = h.test_choices(out, rid)
            info = (f"Ready: approved variants in {', '.join(segs)}." if segs else
                    "Nothing approved in this run yet: approve variants in step 3 first.")
            return (gr.CheckboxGroup(choices=segs, value=segs), h.default_test_id(rid),
                    gr.Dropdown(choices=tests, value=tests[-1] if tests else None),
                    gr.Button(interactive=bool(segs)), info)

        @guarded(2)
        def ui_control(rid, image):
            if not image:
                return "", ""
            view = h.save_control(out, rid, image)
            return view.path, view.summary

        @guarded(2 + len(results_out))
        def ui_handoff(rid, typed, tid, segs, control, ctrl_path, pol, fl, sp, mi, request: gr.Request):
            who = _who(request, typed)
            done = h.handoff(out, rid, who, tid, segs, control, pol, control_image=ctrl_path or None,
                             options=h.test_options(fl, sp, mi))
            tests = h.test_choices(out, rid)
            gr.Info(f"Test {done.test_id} created")
            return (done.message, gr.Dropdown(choices=tests, value=done.test_id),
                    *_results(h.test_results(out, done.test_id)))

        @guarded(len(results_out))
        def ui_results(tid):
            return _results(h.test_results(out, tid))

        def ui_simulate(tid, n):
            tracker = h.ProgressTracker()

            def work(p):
                last = None
                total = max(1, int(n or 0))
                for i, view in enumerate(h.simulate(out, tid, n)):
                    last = view
                    p("simulate", min(total, (i + 1) * total // 4), total)
                return last

            def done(view):
                return _results(view), f"Simulated {int(n or 0)} impressions in {tracker.view().elapsed_s:.0f} s."

            yield from long_action(work, tracker, done, len(results_out))

        setup_out = [segments, test_id, test_dd, handoff_btn, handoff_info]
        test_tab.select(ui_test_setup, run_dd, setup_out, api_name="test_setup", **QUIET)
        run_dd.change(ui_test_setup, run_dd, setup_out, api_name="test_setup_for_run", **QUIET, **HIDDEN)
        control_up.change(ui_control, [run_dd, control_up], [control_path, control_info], api_name="control_artwork",
                          **QUIET)
        handoff_btn.click(ui_handoff, [run_dd, reviewer, test_id, segments, include_control, control_path, policy,
                                       floor, stop_p, min_imp],
                          [handoff_info, test_dd, *results_out], api_name="handoff", **QUIET)
        test_dd.change(ui_results, test_dd, results_out, api_name="test_results", **QUIET)
        sim_btn.click(ui_simulate, [test_dd, impressions], [sim_progress, sim_btn, *results_out], api_name="simulate",
                      concurrency_limit=1, concurrency_id="simulate", **QUIET)
        live.change(lambda on: gr.Timer(active=bool(on)), live, timer, api_name="live_results", **HIDDEN, **QUIET)
        timer.tick(ui_results, test_dd, results_out, api_name="poll_results", **HIDDEN, **QUIET)
    return demo
