"""Shared fixtures. Hub look-ups are switched off before anything imports huggingface_hub."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
MEDIA = REPO.parent / "shared" / "media"


@pytest.fixture(scope="session")
def media_dir() -> Path:
    """../shared/media beside the checkout: real third-party videos and photos (see its ATTRIBUTION.md)."""
    from tests.media import need_media

    need_media(MEDIA)
    return MEDIA


@pytest.fixture(scope="session")
def stills_dir(tmp_path_factory) -> Path:
    """A folder of three public-domain photos that scikit-image ships (no download)."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("stills")
    for name in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, name)()).save(d / f"{name}.png")
    return d


@pytest.fixture(scope="session", autouse=True)
def genart_cache(tmp_path_factory):
    """One cache folder for the whole session, so the tiny preset is built once and shared by every test
    (``GENART_TEST_CACHE`` keeps it across sessions)."""
    d = Path(os.environ.get("GENART_TEST_CACHE", tmp_path_factory.getbasetemp() / "genart-cache"))
    d.mkdir(parents=True, exist_ok=True)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GENART_CACHE", str(d))
        yield d
