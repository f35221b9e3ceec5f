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


def _runs_python(args) -> bool:
    """Whether a subprocess command line starts this Python or the ``genart`` command (a fresh interpreter
    that imports genart: the cost, about a second on two cores, that keeps such tests out of the unit tier)."""
    import sys

    argv = [args] if isinstance(args, (str, bytes, os.PathLike)) else list(args or ())
    if not argv:
        return False
    first = os.fsdecode(argv[0])
    words = first.split() if len(argv) == 1 else [first]  # a shell string: "genart run ..."
    exe = words[0] if words else ""
    return (os.path.realpath(exe) == os.path.realpath(sys.executable) if os.sep in exe else False) \
        or Path(exe).name in ("genart", "python", "python3", Path(sys.executable).name)


@pytest.fixture(autouse=True)
def _unit_tier_starts_no_python(request, monkeypatch):
    """A unit test (not marked ``slow``) that starts a Python or ``genart`` process fails, saying to mark it.

    The unit tier (``make test-fast``) stays under a minute on two cores only if its tests run in this
    process; a test that starts an interpreter is an integration test (see CONTRIBUTING.md, "Tiers").
    Other programs (tesseract, fc-match) are not refused: libraries call them inside a function under test.
    """
    import subprocess

    # the genuine __init__, also under a guard already in place (a pytester session inside a unit test)
    real_init = getattr(subprocess.Popen.__init__, "__wrapped__", subprocess.Popen.__init__)
    if request.node.get_closest_marker("slow") is not None:
        monkeypatch.setattr(subprocess.Popen, "__init__", real_init)
        yield
        return
    name = request.node.nodeid

    def guarded_init(self, args, *a, **kw):
        if _runs_python(args):
            pytest.fail(f"{name} starts a Python process ({args!r}) in the unit tier: mark it "
                        "@pytest.mark.slow (the integration tier, `make test-slow`)", pytrace=False)
        real_init(self, args, *a, **kw)

    guarded_init.__wrapped__ = real_init  # type: ignore[attr-defined]
    monkeypatch.setattr(subprocess.Popen, "__init__", guarded_init)
    yield
