"""Reliability at the edges, through the real CLI (subprocesses) and the real API: images bounded before
decoding, one bad title never stops a catalogue, one batch job per folder, a killed run resumed by the
same command, concurrent runs on a fresh folder, stale temporary files swept, typed errors for bad
profile files and API arguments."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import pytest

from genart import api
from genart.errors import ImageTooLargeError, InvalidArgumentError, UnsupportedMediaError

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "HF_HUB_OFFLINE": "1"}


def genart(*args, cwd=None, env=None, timeout=300) -> subprocess.CompletedProcess:
    """The real ``genart`` command in a fresh process."""
    return subprocess.run([sys.executable, "-m", "genart.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env={**ENV, **(env or {})}, timeout=timeout)


def one_line_error(r: subprocess.CompletedProcess) -> str:
    """The error a command printed: no traceback, and the first line says what is wrong."""
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout, r.stderr[-3000:]
    lines = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert lines, r.stderr[-2000:]
    return " ".join(r.stderr.split())  # Rich wraps long lines: compare on one line


def bilevel_png(path: Path, width: int, height: int) -> Path:
    """A PNG that declares ``width`` x ``height`` pixels in a few KB (1 bit per pixel, one colour): what a
    decompression bomb looks like. Written row by row, so making it needs no memory."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    row = b"\x00" + b"\x55" * ((width + 7) // 8)
    comp = zlib.compressobj(9)
    data = b"".join(comp.compress(row) for _ in range(height)) + comp.flush()
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0))
                     + chunk(b"IDAT", data) + chunk(b"IEND", b""))
    return path


@pytest.fixture(scope="module")
def bombs(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("bombs")
    return {"bomb": bilevel_png(d / "bomb.png", 20000, 20000),  # 400 MP: past Pillow's own error limit
            "big": bilevel_png(d / "big.png", 9000, 9000),  # 81 MP: under Pillow's limit, over genart's
            "under": bilevel_png(d / "under.png", 7500, 5300)}  # 39.75 MP: just under genart's 40 MP


# --- 7. images are bounded before decoding ---------------------------------------------------------
@pytest.mark.parametrize("name", ["bomb", "big"])
def test_a_decompression_bomb_is_one_typed_line_from_run_and_frames(bombs, tmp_path, name):
    for cmd in (["run", bombs[name], "--preset", "classic", "--out", tmp_path / "o"],
                ["frames", bombs[name], "--out", tmp_path / "f"]):
        r = genart(*cmd)
        assert r.returncode == 2, r.stderr[-2000:]
        msg = one_line_error(r)
        assert "image too large" in msg and "the limit is 40 MP" in msg and "GENART_MAX_IMAGE_PIXELS" in msg, msg
    assert not (tmp_path / "f").exists() or not list((tmp_path / "f").glob("*.png"))  # nothing decoded or written


def test_the_limit_is_checked_from_the_header_and_memory_stays_bounded(bombs, tmp_path):
    """The peak memory of a real process: a bomb is refused without decoding it, and an image just under
    the limit is decoded and analysed in a few hundred MB (an 81 MP one took 962 MB before the limit)."""
    code = ("import resource, sys\n"
            "from genart.frames import extract_keyframes\n"
            "from genart.errors import GenartError\n"
            "base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
            "try:\n    extract_keyframes(sys.argv[1], max_frames=1); ok = 1\n"
            "except GenartError:\n    ok = 0\n"
            "print(ok, base, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)\n")

    def peak(path: Path) -> tuple[int, float]:
        p = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, env=ENV,
                           timeout=300)
        ok, base, top = p.stdout.split()
        return int(ok), (int(top) - int(base)) / 1024  # MB above what importing took

    ok, mb = peak(bombs["bomb"])
    assert ok == 0 and mb < 50, mb
    ok, mb = peak(bombs["big"])
    assert ok == 0 and mb < 50, mb
    ok, mb = peak(bombs["under"])
    assert ok == 1 and mb < 600, mb  # 119 MB of RGB, and the analysis on top


def test_the_limit_is_configurable_and_a_bad_value_is_a_typed_error(bombs, tmp_path):
    r = genart("frames", bombs["big"], "--out", tmp_path / "f", env={"GENART_MAX_IMAGE_PIXELS": "1e6"})
    assert r.returncode == 2 and "the limit is 1 MP" in one_line_error(r)
    r = genart("frames", bombs["big"], "--out", tmp_path / "f", env={"GENART_MAX_IMAGE_PIXELS": "lots"})
    assert r.returncode == 2 and "GENART_MAX_IMAGE_PIXELS must be a whole number" in one_line_error(r)


def test_a_bomb_among_stills_is_skipped_and_the_api_raises_unsupported_media(bombs, tmp_path, stills_dir):
    import shutil

    folder = tmp_path / "stills"
    folder.mkdir()
    shutil.copy(bombs["bomb"], folder / "a-bomb.png")
    shutil.copy(stills_dir / "coffee.png", folder / "b-coffee.png")
    r = genart("run", folder, "--preset", "classic", "-p", "romance", "--frames", "1", "--variants", "1",
               "--out", tmp_path / "o", "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    assert json.loads(r.stdout)["profiles"]["romance"][0]["keyframe"]["path"]
    assert "skipping unreadable still: image too large" in " ".join(r.stderr.split())
    for call in (lambda: api.create_variants(bombs["bomb"], preset="classic", out=tmp_path / "api"),
                 lambda: api.extract_keyframes(bombs["big"]),
                 lambda: api.variant_from_image(bombs["big"])):
        with pytest.raises(UnsupportedMediaError, match="image too large") as e:
            call()
        assert isinstance(e.value, ImageTooLargeError)
    with pytest.raises(InvalidArgumentError, match="image"):
        api.variant_from_image(None)
