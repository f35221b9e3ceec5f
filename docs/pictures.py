"""Remake the README's two pictures: the overview of `make demo`'s run, and the review app on that run.

    python docs/pictures.py            # writes docs/demo-overview.jpg and docs/review-app.jpg
    python docs/pictures.py runs/demo  # the same from a store `make demo` made already

It runs what `make demo` runs (``genart demo --out runs/demo``, offline, the ``classic`` preset) in a
scratch folder, shrinks the run's overview.png to a JPEG, then serves the review app on that store and
photographs its review screen with Debian's chromium driven by playwright (as tests/test_app_browser.py
does). Both files stay well under 200 KB so the repository stays small.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from PIL import Image

DOCS = Path(__file__).resolve().parent
WIDTH = 1100  # px: sharp on a laptop's README page, small on disk
MAX_BYTES = 200_000


def save_small(image: Image.Image, path: Path) -> int:
    """``image`` at WIDTH px wide as an optimised JPEG, quality lowered until it is under MAX_BYTES."""
    image = image.convert("RGB")
    if image.width > WIDTH:
        image = image.resize((WIDTH, round(image.height * WIDTH / image.width)), Image.LANCZOS)
    for quality in (82, 76, 70, 64, 58):
        image.save(path, "JPEG", quality=quality, optimize=True, progressive=True)
        if path.stat().st_size < MAX_BYTES:
            break
    return path.stat().st_size


def demo_run(scratch: Path) -> Path:
    """`make demo`'s command in ``scratch``; the store folder it wrote."""
    env = dict(os.environ, HF_HUB_OFFLINE="1", GRADIO_ANALYTICS_ENABLED="False")
    subprocess.run([sys.executable, "-m", "genart.cli", "demo", "--out", "runs/demo"], cwd=scratch, env=env,
                   check=True)
    return scratch / "runs" / "demo"


def screenshot_app(store: Path, path: Path) -> int:
    """The review step of the app on ``store``'s newest run, its first variant opened."""
    from playwright.sync_api import expect, sync_playwright

    from app import launch

    _, url, _ = launch(store, prevent_thread_lock=True, quiet=True)
    chromium = os.environ.get("GENART_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        page = browser.new_page(viewport={"width": 1400, "height": 1050})
        page.set_default_timeout(60_000)
        page.goto(url)
        page.get_by_role("tab", name="3 · Review").click()
        expect(page.locator("#variants-gallery .caption-label").first).to_be_visible(timeout=60_000)
        page.locator("#variants-gallery button.thumbnail-item").first.click()
        expect(page.locator("#variant-headline")).to_contain_text("#1 for", timeout=30_000)
        page.evaluate("window.scrollTo(0, 0)")  # the tabs, the run and the gallery, not the buttons below
        page.wait_for_timeout(1500)  # let the large image finish loading
        raw = path.with_suffix(".raw.png")
        page.screenshot(path=str(raw), full_page=False)
        browser.close()
    with Image.open(raw) as im:
        size = save_small(im, path)
    raw.unlink()
    return size


def main() -> None:
    scratch = Path(tempfile.mkdtemp(prefix="genart-pictures-"))
    try:
        store = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else demo_run(scratch)
        overview = max((store / "runs").glob("*/overview.png"), key=lambda p: p.stat().st_mtime)
        with Image.open(overview) as im:
            print(f"{DOCS / 'demo-overview.jpg'}: {save_small(im, DOCS / 'demo-overview.jpg')} bytes")
        print(f"{DOCS / 'review-app.jpg'}: {screenshot_app(store, DOCS / 'review-app.jpg')} bytes")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


if __name__ == "__main__":
    main()
