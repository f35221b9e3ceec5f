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
@pytest.mark.slow
def test_a_decompression_bomb_is_one_typed_line_from_run_and_frames(bombs, tmp_path, name):
    for cmd in (["run", bombs[name], "--preset", "classic", "--out", tmp_path / "o"],
                ["frames", bombs[name], "--out", tmp_path / "f"]):
        r = genart(*cmd)
        assert r.returncode == 2, r.stderr[-2000:]
        msg = one_line_error(r)
        assert "image too large" in msg and "the limit is 40 MP" in msg and "GENART_MAX_IMAGE_PIXELS" in msg, msg
    assert not (tmp_path / "f").exists() or not list((tmp_path / "f").glob("*.png"))  # nothing decoded or written


@pytest.mark.slow
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


@pytest.mark.slow
def test_the_limit_is_configurable_and_a_bad_value_is_a_typed_error(bombs, tmp_path):
    r = genart("frames", bombs["big"], "--out", tmp_path / "f", env={"GENART_MAX_IMAGE_PIXELS": "1e6"})
    assert r.returncode == 2 and "the limit is 1 MP" in one_line_error(r)
    r = genart("frames", bombs["big"], "--out", tmp_path / "f", env={"GENART_MAX_IMAGE_PIXELS": "lots"})
    assert r.returncode == 2 and "GENART_MAX_IMAGE_PIXELS must be a whole number" in one_line_error(r)


@pytest.mark.slow
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


# --- 6, 8, 11: the batch job -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def titles(tmp_path_factory, bombs) -> Path:
    """Two good titles of public-domain stills, a title whose only still is not an image (in a folder
    whose name holds Rich markup, ``[/``), and a title that is a decompression bomb."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("catalogue")
    for folder, names in (("still-life", ("astronaut", "coffee", "chelsea")), ("space", ("rocket", "camera"))):
        (d / folder).mkdir()
        for n in names:
            Image.fromarray(getattr(data, n)()).convert("RGB").save(d / folder / f"{n}.png")
    (d / "odd[" / "broken").mkdir(parents=True)
    (d / "odd[" / "broken" / "frame.png").write_bytes(b"\x89PNG\r\n\x1a\n not really a png")
    (d / "bomb").mkdir()
    (d / "bomb" / "bomb.png").write_bytes(bombs["bomb"].read_bytes())
    return d


def catalogue(media: Path, folder: Path, ids: tuple[str, ...], *, frames: int = 2, variants: int = 1,
              profiles: str = "[romance, thriller]", name: str = "cat.yaml") -> Path:
    sources = {"still-life": "still-life", "space": "space", "broken": "odd[/broken", "bomb": "bomb/bomb.png"}
    lines = ["preset: classic", f"profiles: {profiles}", f"frames: {frames}", f"variants_per_frame: {variants}",
             "top_k: 1", "titles:"]
    for t in ids:
        lines += [f"  - id: {t}", f"    source: '{media / sources[t]}'", f"    title: {t.title()}"]
    path = folder / name
    path.write_text("\n".join(lines) + "\n")
    return path


def units(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "genart.sqlite") as db:
        return db.execute("SELECT pk, run_id, kind, profile_id, keyframe_id, idx, worker, finished_at "
                          "FROM batch_units ORDER BY pk").fetchall()


@pytest.mark.slow
def test_a_bad_title_is_marked_failed_and_the_others_complete(titles, tmp_path):
    cat = catalogue(titles, tmp_path, ("still-life", "broken", "space", "bomb"))
    out = tmp_path / "runs[" / "out"  # a folder name that is Rich markup, too
    r = genart("batch", cat, "--out", out, env={"COLUMNS": "400"})
    assert r.returncode == 3, r.stderr[-3000:]  # finished, some titles failed (genart batch --help says so)
    assert "Traceback" not in r.stderr + r.stdout and "MarkupError" not in r.stderr
    assert "odd[/broken" in r.stdout  # the reason, with the path as it is: Rich markup escaped
    assert f"{out}/batch_summary.csv" in " ".join(r.stdout.split())
    assert "2 title(s) failed: broken, bomb" in " ".join(r.stderr.split())
    summary = {t["title_id"]: t for t in json.loads((out / "batch_summary.json").read_text())["titles"]}
    assert summary["still-life"]["status"] == summary["space"]["status"] == "done"
    assert summary["still-life"]["images"] == summary["still-life"]["expected"] == 4
    assert summary["space"]["images"] == summary["space"]["expected"] == 4
    assert summary["broken"]["status"] == "failed" and "odd[/broken" in summary["broken"]["error"]
    assert summary["bomb"]["status"] == "failed" and "image too large" in summary["bomb"]["error"]
    with sqlite3.connect(out / "genart.sqlite") as db:  # the ledger says it too
        runs = dict(db.execute("SELECT r.id, r.status || ': ' || coalesce(r.error, '') FROM runs r"))
    assert runs[summary["broken"]["run_id"]].startswith("failed: ") and "readable" in runs[summary["broken"]["run_id"]]
    assert sum(1 for v in runs.values() if v.startswith("done")) == 2
    before = units(out)
    assert {u[2] for u in before} == {"variant", "rank", "handoff"}

    # the same command again: the good titles are not redone, the bad ones are tried again
    r = genart("batch", cat, "--out", out, "--json")
    assert r.returncode == 3 and units(out) == before
    again = {t["title_id"]: t for t in json.loads(r.stdout)["titles"]}
    assert again["still-life"]["made_now"] == 0 and again["broken"]["status"] == "failed"

    # once the title's media is fixed, it completes and nothing else is touched
    import shutil

    (titles / "odd[" / "broken" / "frame.png").unlink()
    shutil.copy(titles / "space" / "rocket.png", titles / "odd[" / "broken" / "frame.png")
    cat = catalogue(titles, tmp_path, ("still-life", "broken", "space"), name="fixed.yaml")
    r = genart("batch", cat, "--out", out, "--json")
    assert r.returncode == 0, r.stderr[-2000:]
    fixed = {t["title_id"]: t for t in json.loads(r.stdout)["titles"]}
    assert all(t["status"] == "done" for t in fixed.values()) and fixed["broken"]["made_now"] == 2
    assert units(out)[:len(before)] == before


@pytest.mark.slow
def test_a_second_batch_job_on_the_same_folder_exits_2_naming_the_holder(titles, tmp_path):
    cat = catalogue(titles, tmp_path, ("still-life", "space"), frames=3, variants=2)
    out = tmp_path / "out"
    first = subprocess.Popen([sys.executable, "-m", "genart.cli", "batch", str(cat), "--out", str(out), "--json"],
                             env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and first.poll() is None:
            lock = out / "batch.lock"
            if lock.exists() and f'"pid": {first.pid}' in lock.read_text():
                break
            time.sleep(0.05)
        assert first.poll() is None, "the first job ended before the second could start"
        second = genart("batch", cat, "--out", out)
        assert first.poll() is None, "the first job ended while the second started: make the catalogue bigger"
        assert second.returncode == 2, second.stderr[-3000:]
        msg = one_line_error(second)
        assert f"another genart batch job is running on {out}: pid {first.pid} on " in msg, msg
        assert len([ln for ln in second.stderr.splitlines() if ln.startswith("error:")]) == 1
        stdout, stderr = first.communicate(timeout=300)
    finally:
        if first.poll() is None:
            first.kill()
    assert first.returncode == 0, stderr[-3000:]
    data = json.loads(stdout)
    assert all(t["status"] == "done" and t["images"] == t["expected"] for t in data["titles"])
    assert sum(t["images"] for t in data["titles"]) == 2 * 2 * (3 + 2)  # profiles x variants x key frames
    rows = units(out)
    assert {u[6] for u in rows} == {f"local:{first.pid}"}  # the refused job wrote nothing
    assert len({u[1:6] for u in rows}) == len(rows)


# --- 10, 15: a killed `genart run` is resumed by the same command; stale temporary files are swept -------
def variant_rows(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "genart.sqlite") as db:
        return db.execute("SELECT pk, run_id, profile_id, variant_id, image_sha256 FROM variants ORDER BY pk").fetchall()


@pytest.mark.slow
def test_sigkill_during_run_then_the_same_command_resumes_it(stills_dir, tmp_path):
    out = tmp_path / "out"
    cmd = ["run", stills_dir, "--preset", "classic", "-p", "romance,thriller,comedy,action", "--frames", "3",
           "--variants", "2", "--seed", "7", "--title", "Resume", "--out", out, "--json"]
    proc = subprocess.Popen([sys.executable, "-m", "genart.cli", *map(str, cmd)], env=ENV,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        before: list[tuple] = []
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                before = variant_rows(out)
            except sqlite3.OperationalError:  # the store is not made yet
                before = []
            if before:
                break
            time.sleep(0.02)
        assert proc.poll() is None, "the run ended before it could be killed: give it more profiles"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = variant_rows(out)
    with sqlite3.connect(out / "genart.sqlite") as db:
        (run_id, status), = db.execute("SELECT id, status FROM runs").fetchall()
        kf_before = db.execute("SELECT pk, keyframe_id, image_sha256 FROM keyframes ORDER BY pk").fetchall()
    assert status == "running" and 0 < len(before) < 4 * 3 * 2 and kf_before

    # a kill inside an atomic write leaves a temporary file; nobody writes it any more
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = __import__("genart.files", fromlist=["_HOST"])._HOST
    leftover = out / "runs" / run_id / f".result.json.{host}.{dead.pid}.abc123.tmp"
    leftover.write_text("{half a file")
    live = out / "runs" / run_id / f".result.json.{host}.{os.getpid()}.def456.tmp"  # a live writer's: kept
    live.write_text("{being written")

    r = genart(*cmd)
    assert r.returncode == 0, r.stderr[-3000:]
    data = json.loads(r.stdout)
    assert data["run_id"] == run_id  # the same run, not a new one
    after = variant_rows(out)
    assert after[:len(before)] == before  # the stored variants were kept as they were, not made again
    assert len(after) == 4 * 3 * 2 and len({(r[1], r[3]) for r in after}) == len(after)
    with sqlite3.connect(out / "genart.sqlite") as db:
        assert db.execute("SELECT status, error FROM runs").fetchall() == [("done", None)]
        assert db.execute("SELECT pk, keyframe_id, image_sha256 FROM keyframes ORDER BY pk").fetchall() == kf_before
        ranked = db.execute("SELECT profile_id, count(*) FROM rankings GROUP BY profile_id").fetchall()
    assert dict(ranked) == {"romance": 6, "thriller": 6, "comedy": 6, "action": 6}  # every variant ranked and visible
    assert not leftover.exists() and live.exists()
    live.unlink()

    # a finished run is not resumed: the same command again makes a new run
    r = genart(*cmd)
    assert r.returncode == 0 and json.loads(r.stdout)["run_id"] != run_id


@pytest.mark.slow
def test_a_run_in_progress_is_never_taken_over(stills_dir, tmp_path):
    """Two identical commands at once: the second does not resume the first's run while it is alive."""
    from genart.files import FileLock
    from genart.usecases.layout import run_lock_path
    from genart.store.db import Store

    out = tmp_path / "out"
    first = api.create_variants(stills_dir, profiles="romance", preset="classic", frames=1, variants_per_frame=1,
                                out=out)
    store = Store(out)
    with sqlite3.connect(out / "genart.sqlite") as db:  # as if it were still running in another process
        db.execute("UPDATE runs SET status = 'running'")
    holder = FileLock(run_lock_path(store, first.run_id))
    assert holder.acquire()
    try:
        second = api.create_variants(stills_dir, profiles="romance", preset="classic", frames=1,
                                     variants_per_frame=1, out=out)
    finally:
        holder.release()
    assert second.run_id != first.run_id
    third = api.create_variants(stills_dir, profiles="romance", preset="classic", frames=1, variants_per_frame=1,
                                out=out)
    assert third.run_id == first.run_id  # its holder is gone: the same command takes it up


# --- 5: concurrent runs on a fresh folder ---------------------------------------------------------------
@pytest.mark.slow
def test_concurrent_runs_on_a_fresh_folder_are_all_stored(stills_dir, tmp_path):
    out = tmp_path / "fresh"
    procs = [subprocess.Popen([sys.executable, "-m", "genart.cli", "run", str(stills_dir), "--preset", "classic",
                               "-p", "romance", "--frames", "1", "--variants", "1", "--seed", str(i), "--out",
                               str(out), "--json"], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for i in range(6)]
    results = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [e[-1500:] for _, e in results]
    ids = {json.loads(o)["run_id"] for o, _ in results}
    with sqlite3.connect(out / "genart.sqlite") as db:
        rows = dict(db.execute("SELECT id, status FROM runs"))
    assert len(ids) == 6 and rows == {i: "done" for i in ids}


# --- 13: bad profile files and API arguments are typed errors ---------------------------------------------
@pytest.mark.slow
def test_profiles_validate_on_a_folder_or_deep_yaml_is_one_line(tmp_path):
    folder = tmp_path / "romance.yaml"
    folder.mkdir()
    deep = tmp_path / "deep.yaml"
    deep.write_text("a: " + "[" * 5000 + "]" * 5000 + "\n")
    deep_map = tmp_path / "deepmap.yaml"
    deep_map.write_text("".join("  " * i + f"k{i}:\n" for i in range(5000)))
    for path, needle in ((folder, "is a folder"), (deep, "nested too deeply"), (deep_map, "nested too deeply")):
        r = genart("profiles", "validate", path)
        assert r.returncode == 2, r.stderr[-2000:]
        msg = one_line_error(r)
        assert needle in msg and str(path) in msg, msg


@pytest.mark.parametrize("kwargs, name", [({"source": None}, "source"), ({"profiles": None}, "profiles"),
                                          ({"profiles": [None]}, "profiles"), ({"source": 3}, "source")])
def test_the_api_raises_typed_errors_for_none(stills_dir, tmp_path, kwargs, name):
    args = {"source": stills_dir, "profiles": "romance", "preset": "classic", "out": tmp_path / "o", **kwargs}
    with pytest.raises(InvalidArgumentError, match=f"invalid {name}"):
        api.create_variants(**args)
    assert not (tmp_path / "o").exists()  # refused before anything was written
    with pytest.raises(InvalidArgumentError, match="invalid profiles"):
        api.rank_variants([], None)
