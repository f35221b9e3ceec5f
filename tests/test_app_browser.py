"""The review app in a real browser (Debian's chromium driven by playwright): the whole flow, from
upload to a handed-off bandit test, on the ``classic`` and ``tiny`` presets, asserting what a person
sees. Screenshots of the main screens go to ``test-output/screenshots/``."""

from __future__ import annotations

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


pytest.importorskip("gradio", reason="the review app needs gradio (pip install gradio)")
sync_api = pytest.importorskip("playwright.sync_api", reason="browser tests need playwright (pip install playwright)")
CHROMIUM = _chromium()
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(CHROMIUM is None, reason="chromium not found (apt-get install -y chromium, or set GENART_CHROMIUM)"),
]
expect = sync_api.expect
# playwright's default 5 s per expectation is too short on a loaded two-core CI machine (an upload's
# file list once took longer there): 30 s, and what does not come still fails
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def server(tmp_path_factory, genart_cache):
    """The app on loopback over a fresh store, in this process (so it shares the tiny model cache)."""
    if not MEDIA.is_dir():
        pytest.skip(f"real media folder not found at {MEDIA}")
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


def shot(page, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def tab(page, name: str) -> None:
    page.get_by_role("tab", name=name).click()


def captions(page, gallery: str) -> list[str]:
    return [c.strip() for c in page.locator(f"#{gallery} .caption-label").all_inner_texts()]


def set_number(page, elem_id: str, value: object) -> None:
    box = page.locator(f"#{elem_id} input[type=number]").first
    box.fill(str(value))
    box.press("Enter")


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
    page.locator("#variants-gallery button.thumbnail-item").first.click()
    expect(page.locator("#variant-headline")).to_contain_text("#1 for", timeout=30_000)


def test_classic_flow_from_upload_to_a_handed_off_test(server, page):
    url, out = server
    video = MEDIA / "videos" / "chaplin.mp4"

    # 1. a video in, key frames out, with timecodes and scores; the person drops one of them
    caps = upload_and_find_keyframes(page, url, [video], 2, "The Kid", "comedy")
    assert len(caps) == 2
    assert all(re.match(r"^\d\. \d\d:\d\d:\d\d\.\d{3} · shot \d+ · quality \d\.\d\d · faces \d+$", c) for c in caps), caps
    expect(page.locator("#stage-info")).to_contain_text("2 key frame(s)")
    page.locator("#keyframe-pick label").nth(1).click()  # untick the second frame
    expect(page.locator("#keyframe-pick label.selected")).to_have_count(1)
    shot(page, "01_title_keyframes_classic")

    # 2. profiles and preset, then generate
    page.locator("#to-generate").click()
    expect(page.locator("#prompt textarea")).to_have_value(re.compile(r"romantic film still"))
    expect(page.locator("#preset input").first).to_have_value("classic")
    shot(page, "02_generate_settings_classic")
    page.locator("#generate-btn").click()

    # 3. review: the app moved to the review step with the new run's ranked variants
    expect(page.locator("#variants-gallery .caption-label").first).to_be_visible(timeout=120_000)
    expect(page.locator("#gen-info")).to_contain_text("done (classic)")
    caps = captions(page, "variants-gallery")
    assert len(caps) == 2  # one key frame kept x 2 variants, for the first profile (romance)
    assert caps[0].startswith("#1 · ") and caps[1].startswith("#2 · ") and all("pending review" in c for c in caps)
    totals = [float(c.split(" · ")[1]) for c in caps]
    assert totals[0] >= totals[1]
    expect(page.locator("#run-info")).to_contain_text("1 key frame(s)")
    open_first_variant(page)
    expect(page.locator("#scores")).to_contain_text("affinity")
    expect(page.locator("#scores")).to_contain_text("fidelity")
    expect(page.locator("#variant-source")).to_contain_text("Source frame 00:00:")
    expect(page.locator("#variant-full img")).to_be_visible()
    tile = page.locator("#variant-tile img").bounding_box()
    assert tile is not None and 100 <= tile["width"] <= 161, tile  # shown at the size it will be used

    # an action without a name is refused with a message, not a traceback
    page.locator("#approve").click()
    toast(page, "your name")
    close_toasts(page)
    page.locator("#reviewer input, #reviewer textarea").first.fill("Ana")
    page.locator("#note textarea").fill("strong silhouette")
    page.locator("#approve").click()
    toast(page, "approved by Ana")
    expect(page.locator("#variants-gallery .caption-label").first).to_contain_text("✓ approved")
    expect(page.locator("#history")).to_contain_text("Ana")
    expect(page.locator("#history")).to_contain_text("strong silhouette")
    expect(page.locator("#variant-headline")).to_contain_text("approved by Ana")
    close_toasts(page)
    shot(page, "03_review_approved_classic")

    # the zoomed view: the gallery's preview of the picked variant
    page.locator("#variants-gallery button.thumbnail-item").nth(1).click()
    expect(page.locator("#variants-gallery .preview img, #variants-gallery img").first).to_be_visible()

    # 4. the approval survives a reload (and the reviewer's name is remembered by the browser)
    page.reload()
    tab(page, "3 · Review")
    expect(page.locator("#variants-gallery .caption-label").first).to_contain_text("✓ approved", timeout=30_000)
    expect(page.locator("#reviewer input, #reviewer textarea").first).to_have_value("Ana")
    expect(page.locator("#history")).to_contain_text("approve")
    shot(page, "04_review_after_reload_classic")

    # 5. hand off the approved variant and watch simulated traffic come in
    tab(page, "4 · Test")
    expect(page.locator("#segments label.selected")).to_have_count(1)
    expect(page.locator("#segments")).to_contain_text("romance")
    page.locator("#handoff").click()
    expect(page.locator("#handoff-info")).to_contain_text("created by Ana", timeout=30_000)
    expect(page.locator("#arms")).to_contain_text("control")
    set_number(page, "impressions", 600)
    page.locator("#simulate").click()
    expect(page.locator("#results-info")).to_contain_text("600 impressions", timeout=60_000)
    expect(page.locator("#results")).to_contain_text("romance")
    expect(page.locator("#reward-plot img")).to_be_visible()
    expect(page.locator("#share-plot img")).to_be_visible()
    close_toasts(page)
    shot(page, "05_test_results_classic")


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
    page.screenshot(path=str(SHOTS / "06_bad_upload_error.png"))  # the viewport: message boxes are fixed there


def test_tiny_flow_with_an_edited_prompt_regeneration_and_handoff(server, page):
    url, out = server
    still = MEDIA / "images" / "two_people.jpg"
    caps = upload_and_find_keyframes(page, url, [still], 1, "Two", "drama")
    assert len(caps) == 1 and caps[0].startswith("1. 00:00:00.000")

    page.locator("#to-generate").click()
    page.locator("#profiles label").filter(has_text="thriller").click()  # untick: romance only
    expect(page.locator("#profiles label.selected")).to_have_count(1)
    page.locator("#prompt textarea").fill("a tender poster of {title}, warm light")
    page.locator("#preset input").first.click()
    page.get_by_role("option", name="tiny").click()
    expect(page.locator("#preset input").first).to_have_value("tiny")
    expect(page.get_by_text("random weights", exact=False).first).to_be_visible()
    set_number(page, "variants", 1)
    shot(page, "07_generate_settings_tiny")
    page.locator("#generate-btn").click()

    expect(page.locator("#gen-info")).to_contain_text("done (tiny)", timeout=180_000)
    expect(page.locator("#run-info")).to_contain_text("preset tiny")
    expect(page.locator("#variants-gallery .caption-label")).to_have_count(1)
    expect(page.locator("#variants-gallery .caption-label").first).to_contain_text("pending review")
    open_first_variant(page)
    expect(page.locator("#variant-params")).to_contain_text("a tender poster of Two, warm light")
    expect(page.locator("#variant-params")).to_contain_text("strength")

    page.locator("#reviewer input, #reviewer textarea").first.fill("Ben")
    page.locator("#regen-panel").click()
    set_number(page, "regen-seed", 7)
    set_number(page, "regen-strength", 0.8)
    page.locator("#regen-btn").click()
    toast(page, "new variant")
    expect(page.locator("#variants-gallery .caption-label")).to_have_count(2, timeout=60_000)
    expect(page.locator("#variant-params")).to_contain_text("strength 0.8")
    expect(page.locator("#history")).to_contain_text("regenerated")
    page.locator("#approve").click()
    toast(page, "approved by Ben")
    expect(page.locator("#variants-gallery")).to_contain_text("✓ approved")
    close_toasts(page)
    shot(page, "08_review_regenerated_tiny")

    tab(page, "4 · Test")
    page.locator("#handoff").click()
    expect(page.locator("#handoff-info")).to_contain_text("created by Ben", timeout=30_000)
    set_number(page, "impressions", 300)
    page.locator("#simulate").click()
    expect(page.locator("#results-info")).to_contain_text("300 impressions", timeout=60_000)
    expect(page.locator("#reward-plot img")).to_be_visible()
    close_toasts(page)
    shot(page, "09_test_results_tiny")


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
            expect(pg.locator("#run-info")).to_contain_text(run.run_id)
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
        ben.screenshot(path=str(SHOTS / "10_conflict_second_reviewer.png"))
        close_toasts(ben)
        ben.locator("#reject").click()  # now deciding on what he has seen
        toast(ben, "rejected by Ben (version 2)")
        rows = [(d.reviewer, d.action, d.version) for d in api.decisions(out, run.run_id)]
        assert rows == [("Ana", "approve", 1), ("Ben", "reject", 2)]
    finally:
        for c in contexts:
            c.close()
