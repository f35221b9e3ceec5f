"""The review app in a real browser (Debian's chromium driven by playwright): the whole flow, from
upload through keyboard review, regeneration, compare views and a delivery package to a bandit test
with pictures, on the ``classic`` and ``tiny`` presets, asserting what a person sees (progress bars
with a real height, decisions above the fold at 1280x720, one message per failure). Screenshots of
the main screens go to ``test-output/screenshots/``."""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"
SHOTS = REPO / "test-output" / "screenshots"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run"]


def _chromium() -> str | None:
    for candidate in (os.environ.get("GENART_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser")):
        if candidate and Path(candidate).exists():
            return candidate
    return None


sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.slow,
    # found, not imported: importing gradio at collection costs seconds of every run, even of the unit tier
    pytest.mark.skipif(importlib.util.find_spec("gradio") is None, reason="the review app needs gradio (pip install gradio)"),
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (apt-get install -y chromium, or set GENART_CHROMIUM)"),
]
expect = sync_api.expect
# playwright's default 5 s per expectation is too short on a loaded two-core CI machine (an upload's
# file list once took longer there): 30 s, and what does not come still fails
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory, genart_cache):
    """The app on loopback over a fresh store, in this process (so it shares the tiny model cache)."""
    from tests.media import need_media

    need_media(MEDIA)
    import gradio as gr

    from app import launch

    out = tmp_path_factory.mktemp("browser-store")
    _, url, _ = launch(out, prevent_thread_lock=True, quiet=True, max_upload_mb=50)
    yield url, out
    gr.close_all()


@pytest.fixture(scope="module")
def browser():
    with sync_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    yield pg
    context.close()


def shot(page, name: str, full: bool = True) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=full)
    return path


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def captions(page, gallery: str) -> list[str]:
    return [c.strip() for c in page.locator(f"#{gallery} .caption-label").all_inner_texts()]


def set_number(page, elem_id: str, value: object) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


def fill_kept(page, selector: str, text: str) -> None:
    """Types ``text`` into a box once the box keeps it: a variant's details, still refreshing after the
    step before (the lightbox closing, a selection), reset the regeneration boxes, and a click that
    follows at once would send what was there before, as a person would see it there before clicking."""
    box = page.locator(selector).first
    for _ in range(10):
        box.fill(text)
        page.wait_for_timeout(500)
        if box.input_value() == text:
            break
    expect(box).to_have_value(text)


def toast(page, text: str):
    """A message box (gr.Info / gr.Warning / gr.Error) saying ``text``."""
    loc = page.locator(".toast-body").filter(has_text=text).first
    expect(loc).to_be_visible(timeout=60_000)
    return loc


def close_toasts(page) -> None:
    for btn in page.locator(".toast-close").all():
        try:
            btn.click(timeout=1000)
        except Exception:  # already gone
            pass


def upload_and_find_keyframes(page, url: str, files: list[Path], frames: int, title: str, genre: str) -> list[str]:
    page.goto(url)
    page.set_input_files("#upload input[type=file]", [str(f) for f in files])
    expect(page.locator("#upload")).to_contain_text(files[0].name)
    page.locator("#title-name textarea, #title-name input").first.fill(title)
    page.locator("#genre textarea, #genre input").first.fill(genre)
    set_number(page, "max-frames", frames)
    page.locator("#find-keyframes").click()
    expect(page.locator("#keyframes .caption-label").first).to_be_visible(timeout=90_000)
    return captions(page, "keyframes")


def open_first_variant(page) -> None:
    page.locator("#grid .ga-tile").first.click()
    expect(page.locator("#variant-headline")).to_contain_text("#1 ·", timeout=30_000)


#: Records every running progress bar the page shows (its slot, size, text, and whether its button was
#: disabled then), however briefly: a quick action's bar may come and go between two polls of a check.
WATCH_BARS = """() => {
  const buttons = {'find-progress': 'find-keyframes', 'gen-progress': 'generate-btn', 'regen-progress': 'reroll-btn',
                   'export-progress': 'export-btn', 'sim-progress': 'simulate'};
  window.__genartBars = [];
  new MutationObserver(() => {
    document.querySelectorAll('.ga-progress-running').forEach((el) => {
      const slot = el.closest('[id$="-progress"]');
      if (!slot) return;
      const r = el.getBoundingClientRect(), b = document.getElementById(buttons[slot.id]);
      window.__genartBars.push({slot: slot.id, h: r.height, w: r.width, text: el.innerText,
                                disabled: !!(b && b.disabled)});
    });
  }).observe(document.body, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


def bars_seen(page, slot: str) -> list[dict]:
    """What ``WATCH_BARS`` saw in ``slot``: the bar was on screen, with a real size, its button disabled."""
    seen = [b for b in page.evaluate("() => window.__genartBars || []") if b["slot"] == slot]
    assert seen, f"no progress bar was shown in #{slot}"
    assert max(b["h"] for b in seen) >= 20 and max(b["w"] for b in seen) > 100, seen[:3]  # not a 0 px element
    # the button is disabled while it runs (one DOM update may show the bar a moment before or after it)
    assert sum(b["disabled"] for b in seen) >= len(seen) / 2, seen
    return seen


def press(page, key: str) -> None:
    """A key press in the page (not in a text box), as a reviewer at the keyboard makes it."""
    page.locator("#variant-headline").click()
    page.keyboard.press(key)


def zip_manifest(path: Path) -> tuple[list[str], dict]:
    import json
    import zipfile

    with zipfile.ZipFile(path) as z:
        return z.namelist(), json.loads(z.read("manifest.json"))


def test_classic_flow_at_1280x720_from_upload_to_a_delivery_package(server, browser):
    """One walk through everything a creative team does, on a laptop-sized screen."""
    from genart import api

    url, out = server
    context = browser.new_context(viewport={"width": 1280, "height": 720})
    page = context.new_page()
    page.set_default_timeout(60_000)
    video = MEDIA / "videos" / "chaplin.mp4"
    try:
        # 1. a video in: one progress bar, with counts, the button disabled until the frames are there
        page.goto(url)
        page.evaluate(WATCH_BARS)
        page.set_input_files("#upload input[type=file]", [str(video)])
        expect(page.locator("#upload")).to_contain_text("chaplin.mp4")
        page.locator("#title-name textarea, #title-name input").first.fill("The Kid")
        page.locator("#genre textarea, #genre input").first.fill("comedy")
        set_number(page, "max-frames", 2)
        page.locator("#find-keyframes").click()
        expect(page.locator("#keyframes .caption-label").first).to_be_visible(timeout=90_000)
        expect(page.locator("#find-keyframes")).to_be_enabled()
        seen = bars_seen(page, "find-progress")
        assert any(re.search(r"finding key frames · \d+/\d+", b["text"]) for b in seen), seen[-1]  # with counts
        assert {b["slot"] for b in page.evaluate("() => window.__genartBars")} == {"find-progress"}  # one bar
        caps = captions(page, "keyframes")
        assert len(caps) == 2 and all(re.match(r"^\d\. \d\d:\d\d:\d\d\.\d{3} · shot \d+ · quality", c) for c in caps), caps
        assert page.get_by_text("Stage id").count() == 0  # internal fields stay in state
        page.locator("#keyframe-pick label").nth(1).click()  # untick the second frame
        expect(page.locator("#keyframe-pick label.selected")).to_have_count(1)
        shot(page, "01_title_keyframes_1280")

        # 2. the frames chosen in step 1, classic's own controls, the order profiles are ticked in, an estimate
        page.locator("#to-generate").click()
        expect(page.locator("#chosen-frames img")).to_have_count(1)
        expect(page.locator("#classic-controls").first).to_be_visible()
        expect(page.locator("#diffusion-controls").first).to_be_hidden()  # no prompt editor classic would ignore
        page.locator("#profiles label").filter(has_text="Romance (romance)").click()  # untick, then tick again:
        page.locator("#profiles label").filter(has_text="Romance (romance)").click()  # thriller is now first
        set_number(page, "variants", 3)
        expect(page.locator("#estimate")).to_contain_text("6 variant(s) will be made: 1 key frame(s) × 2 profile(s) × 3")
        shot(page, "02_generate_settings_1280")
        page.locator("#generate-btn").click()
        expect(page.locator("#gen-progress .ga-progress-running")).to_be_visible(timeout=60_000)
        expect(page.locator("#generate-btn")).to_be_disabled()
        shot(page, "03_generating_1280")

        # 3. review: the new run, profiles in the chosen order, decisions on screen without scrolling
        expect(page.locator("#grid .ga-tile").first).to_be_visible(timeout=180_000)
        seen = bars_seen(page, "gen-progress")
        assert any(re.search(r"generating variants · \d/6 · \d+ s", b["text"]) for b in seen), [b["text"] for b in seen]
        assert any("left" in b["text"] for b in seen), [b["text"] for b in seen]  # an estimate of the time left
        expect(page.locator("#profile label").first).to_have_text("thriller")
        expect(page.locator("#grid .ga-tile")).to_have_count(3)
        expect(page.locator("#variant-headline")).to_contain_text("thriller #1 ·")
        for button in ("#approve", "#reject", "#flag"):
            box = page.locator(button).bounding_box()
            assert box is not None and box["y"] + box["height"] <= 720, (button, box)  # above the fold
        assert page.get_by_text("Variant id").count() == 0 and page.get_by_text("Version seen").count() == 0
        tile = page.locator("#variant-tile img").bounding_box()
        assert tile is not None and 100 <= tile["width"] <= 161, tile  # shown at the size it will be used
        expect(page.locator("#scores")).to_contain_text("contribution")
        expect(page.locator("#scores")).to_contain_text("total")
        # nothing approved yet: the test step will not hand off
        tab(page, "4 · Test")
        expect(page.locator("#handoff")).to_be_disabled()
        tab(page, "3 · Review")

        # keyboard review: A approves and moves on to the next pending variant; N writes a note; R rejects
        press(page, "a")
        toast(page, "your name")  # one message, not a traceback, and nothing else changes
        expect(page.locator("#grid .ga-tile")).to_have_count(3)
        close_toasts(page)
        page.locator("#reviewer input, #reviewer textarea").first.fill("Ana")
        press(page, "a")
        toast(page, "approved by Ana")
        expect(page.locator("#grid .ga-tile").first.locator(".ga-badge")).to_have_text("✓ approved")
        expect(page.locator("#variant-headline")).to_contain_text("thriller #2 ·")  # the next pending one
        press(page, "n")
        page.keyboard.type("too dark at tile size")
        page.keyboard.press("Escape")
        press(page, "r")
        toast(page, "rejected by Ana")
        expect(page.locator("#grid .ga-tile").nth(1).locator(".ga-badge")).to_have_text("✗ rejected")
        expect(page.locator("#grid .ga-tile").nth(1).locator(".ga-mark-note")).to_have_count(1)
        press(page, "ArrowLeft")  # back to it: the note is shown on the variant
        expect(page.locator("#variant-flags")).to_contain_text("Ana (reject): too dark at tile size")
        press(page, "l")
        expect(page.locator("#viewer.ga-lightbox")).to_be_visible()
        big = page.locator("#variant-full img").bounding_box()
        assert big is not None and big["height"] >= 400, big  # a large picture, not a 300 px pane
        shot(page, "04_lightbox_1280", full=False)
        page.keyboard.press("Escape")
        expect(page.locator("#viewer.ga-lightbox")).to_have_count(0)
        close_toasts(page)
        shot(page, "05_review_keyboard_1280", full=False)

        # a regeneration that fails says so once and leaves the grid as it was (no "Error" pills)
        page.locator("#regen-panel").click()
        fill_kept(page, "#regen-seed input, #regen-seed textarea", "abc")
        page.locator("#regen-btn").click()
        toast(page, "invalid seed")
        expect(page.locator("#grid .ga-tile")).to_have_count(3)
        assert page.locator(".error").count() == 0 and "Traceback" not in page.content()
        close_toasts(page)
        # the default regenerate: one click, a random seed, then the new variant with a before/after
        page.locator("#reroll-btn").click()
        expect(page.locator("#before-after")).to_be_visible(timeout=120_000)
        bars_seen(page, "regen-progress")
        expect(page.locator("#grid .ga-tile")).to_have_count(4)
        expect(page.locator("#grid .ga-current")).to_have_count(1)
        expect(page.locator("#variant-headline")).to_contain_text("pending review")
        close_toasts(page)
        shot(page, "06_rerolled_before_after_1280")
        page.get_by_role("tab", name="Compare").click()
        expect(page.locator("#compare-view figure")).to_have_count(2)
        expect(page.locator("#compare-view")).to_contain_text("before")
        heights = [page.locator("#compare-view figure img").nth(i).bounding_box()["height"] for i in range(2)]
        assert min(heights) >= 300, heights  # side by side at the height of the view
        shot(page, "07_compare_1280", full=False)
        page.get_by_role("tab", name="Frame × profiles × aspects").click()
        expect(page.locator("#matrix-view tbody tr")).to_have_count(2)  # thriller and romance
        shot(page, "08_matrix_1280", full=False)
        page.get_by_role("tab", name="History").click()
        expect(page.locator("#history")).to_contain_text("regenerated")
        expect(page.locator("#history")).to_contain_text("too dark at tile size")
        page.get_by_role("tab", name="Variants").click()

        # filters and a bulk decision: approve every pending variant of this profile at once
        page.locator("#status-filter label").filter(has_text="Pending").click()
        expect(page.locator("#grid .ga-tile:not(.ga-pending)")).to_have_count(0)  # only pending ones shown
        n_pending = page.locator("#grid .ga-tile").count()
        assert n_pending == page.locator("#grid .ga-badge-pending").count() >= 1
        page.locator("#bulk-approve").click()
        toast(page, f"approved by Ana: {n_pending} variant(s)")
        expect(page.locator("#grid .ga-tile")).to_have_count(0)
        expect(page.locator("#run-info")).to_contain_text(f"{1 + n_pending} ✓ approved")
        close_toasts(page)

        # the delivery package: approved variants only, sizes and manifest as delivery needs them
        page.locator("#export-btn").click()
        expect(page.locator("#export-file")).to_be_visible(timeout=60_000)
        bars_seen(page, "export-progress")
        expect(page.locator("#export-info")).to_contain_text("Package ready")
        run_id = api.list_runs(out)[0].run_id
        names, manifest = zip_manifest(Path(out) / "runs" / run_id / f"{run_id}-delivery.zip")
        approved = {rv.variant.id for rv in api.approved_variants(out, run_id)}
        assert {f["variant_id"] for f in manifest["files"]} == approved and "manifest.json" in names
        assert all(f["path"] in names and f["sha256"] and f["provenance"]["label"] for f in manifest["files"])
        shot(page, "09_exported_1280")

        # 4. the test: today's artwork as the control, each arm's picture with its numbers, a verdict
        tab(page, "4 · Test")
        expect(page.locator("#handoff")).to_be_enabled()
        page.set_input_files("#control-upload input[type=file]", [str(MEDIA / "images" / "chelsea.png")])
        expect(page.locator("#control-info")).to_contain_text("would place #")
        page.locator("#handoff").click()
        expect(page.locator("#handoff-info")).to_contain_text("created by Ana", timeout=30_000)
        expect(page.locator("#arms .ga-arm")).to_have_count(len(approved) + 1)
        expect(page.locator("#arms .ga-arm img")).to_have_count(len(approved) + 1)  # a picture for every arm
        expect(page.locator("#arms")).to_contain_text("Today's artwork (control)")
        expect(page.locator("#arms")).to_contain_text("no traffic yet")
        expect(page.locator("#arms")).to_contain_text("(from the ranking)")  # a prior, not a click rate
        set_number(page, "impressions", 800)
        page.locator("#simulate").click()
        expect(page.locator("#results-info")).to_contain_text("800 impressions", timeout=60_000)
        bars_seen(page, "sim-progress")
        expect(page.locator("#arms .ga-verdict").first).to_have_text(re.compile("winner|leading|inconclusive"))
        expect(page.locator("#arms")).to_contain_text("P(best)")
        expect(page.locator("#share-plot .mark-line path").first).to_be_attached(timeout=30_000)  # lines drawn
        legend = page.locator("#share-plot").inner_text()
        assert not re.search(r"\b[0-9a-f]{16}\b", legend), legend  # arms by name, never by id
        close_toasts(page)
        shot(page, "10_test_results_1280")
    finally:
        context.close()


def test_bad_upload_shows_a_clear_error(server, page, tmp_path):
    url, _ = server
    fake = tmp_path / "not_a_video.mp4"
    fake.write_bytes(b"just some text, not a video\n" * 50)
    page.goto(url)
    page.set_input_files("#upload input[type=file]", [str(fake)])
    expect(page.locator("#upload")).to_contain_text("not_a_video.mp4")
    page.locator("#find-keyframes").click()
    box = toast(page, "not a readable video or image: not_a_video.mp4")
    expect(box).not_to_contain_text("/tmp/")  # the file's name, not the server's temporary path
    assert "Traceback" not in page.content()
    page.wait_for_timeout(500)
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SHOTS / "15_bad_upload_error.png"))  # the viewport: message boxes are fixed there


def test_tiny_flow_with_an_edited_prompt_regeneration_and_handoff(server, page):
    url, out = server
    still = MEDIA / "images" / "two_people.jpg"
    caps = upload_and_find_keyframes(page, url, [still], 1, "Two", "drama")
    assert len(caps) == 1 and caps[0].startswith("1. 00:00:00.000")

    page.locator("#to-generate").click()
    page.locator("#profiles label").filter(has_text="thriller").click()  # untick: romance only
    expect(page.locator("#profiles label.selected")).to_have_count(1)
    page.locator("#preset input").first.click()
    page.get_by_role("option", name="tiny").click()
    expect(page.locator("#preset input").first).to_have_value("tiny")
    expect(page.get_by_text("random weights", exact=False).first).to_be_visible()
    # a diffusion preset: its prompt and strength, not classic's look and title controls
    expect(page.locator("#diffusion-controls").first).to_be_visible()
    expect(page.locator("#classic-controls").first).to_be_hidden()
    page.locator("#prompt textarea").fill("a tender poster of {title}, warm light")
    set_number(page, "variants", 1)
    shot(page, "11_generate_settings_tiny")
    page.locator("#generate-btn").click()

    expect(page.locator("#gen-info")).to_contain_text("done (tiny)", timeout=180_000)
    expect(page.locator("#run-info")).to_contain_text("preset tiny")
    expect(page.locator("#grid .ga-tile")).to_have_count(1)
    expect(page.locator("#grid .ga-badge").first).to_have_text("pending review")
    open_first_variant(page)
    expect(page.locator("#variant-params")).to_contain_text("a tender poster of Two, warm light")
    expect(page.locator("#variant-params")).to_contain_text("strength")

    page.locator("#reviewer input, #reviewer textarea").first.fill("Ben")
    page.locator("#regen-panel").click()
    fill_kept(page, "#regen-seed input, #regen-seed textarea", "7")
    set_number(page, "regen-strength", 0.8)
    page.locator("#regen-btn").click()
    toast(page, "new variant")
    expect(page.locator("#grid .ga-tile")).to_have_count(2, timeout=60_000)
    expect(page.locator("#variant-params")).to_contain_text("strength 0.8")
    expect(page.locator("#before-after")).to_be_visible()
    page.locator("#approve").click()
    toast(page, "approved by Ben")
    expect(page.locator("#grid")).to_contain_text("✓ approved")
    page.get_by_role("tab", name="History").click()
    expect(page.locator("#history")).to_contain_text("regenerated")
    close_toasts(page)
    shot(page, "12_review_regenerated_tiny")

    tab(page, "4 · Test")
    page.locator("#handoff").click()
    expect(page.locator("#handoff-info")).to_contain_text("created by Ben", timeout=30_000)
    expect(page.locator("#arms .ga-nopic")).to_have_count(1)  # no artwork uploaded: the control says so
    set_number(page, "impressions", 300)
    page.locator("#simulate").click()
    expect(page.locator("#results-info")).to_contain_text("300 impressions", timeout=60_000)
    expect(page.locator("#share-plot .mark-line path").first).to_be_attached(timeout=30_000)
    close_toasts(page)
    shot(page, "13_test_results_tiny")


def test_two_reviewers_in_two_browsers_never_overwrite_each_other(server, browser):
    from genart import api

    url, out = server
    stage = api.stage_source(MEDIA / "images" / "chelsea.png", out, max_frames=1)
    run = api.create_run_from_stage(out, stage.stage_id, profiles="romance", preset="classic", variants_per_frame=1)
    contexts = [browser.new_context(viewport={"width": 1400, "height": 1000}) for _ in range(2)]
    try:
        pages = [c.new_page() for c in contexts]
        for pg, name in zip(pages, ("Ana", "Ben")):
            pg.set_default_timeout(60_000)
            pg.goto(f"{url}?run={run.run_id}")  # a link to one run
            tab(pg, "3 · Review")
            expect(pg.locator("#run-info")).to_contain_text("1 variant(s)")
            pg.locator("#reviewer input, #reviewer textarea").first.fill(name)
            open_first_variant(pg)
        ana, ben = pages
        ana.locator("#approve").click()
        toast(ana, "approved by Ana")
        # Ben still sees the variant as it was: his reject is refused and he is shown Ana's decision
        ben.locator("#reject").click()
        toast(ben, "changed while you were looking")
        expect(ben.locator("#variant-headline")).to_contain_text("approved by Ana")
        ben.wait_for_timeout(300)
        SHOTS.mkdir(parents=True, exist_ok=True)
        ben.screenshot(path=str(SHOTS / "14_conflict_second_reviewer.png"))
        close_toasts(ben)
        ben.locator("#reject").click()  # now deciding on what he has seen
        toast(ben, "rejected by Ben (version 2)")
        rows = [(d.reviewer, d.action, d.version) for d in api.decisions(out, run.run_id)]
        assert rows == [("Ana", "approve", 1), ("Ben", "reject", 2)]
    finally:
        for c in contexts:
            c.close()
