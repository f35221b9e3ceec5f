"""``genart batch``: the catalogue's errors, the CLI, kill-and-resume (SIGKILL), OOM back-off, and the
accelerate and Ray engines, all on the CPU with the ``classic`` or ``tiny`` preset and tiny catalogues."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genart.batch import load_catalog, parse_catalog, run_catalog
from genart.errors import CatalogError

REPO = Path(__file__).resolve().parents[1]


# --- fixtures --------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def media(tmp_path_factory) -> Path:
    """Two titles of public-domain stills that scikit-image ships (no download)."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("titles")
    for folder, names in (("still-life", ("astronaut", "coffee", "chelsea")), ("space", ("rocket", "camera"))):
        (d / folder).mkdir()
        for n in names:
            Image.fromarray(getattr(data, n)()).convert("RGB").save(d / folder / f"{n}.png")
    (d / "same-size").mkdir()  # frames of one size: their variants can share a batch
    for n in ("astronaut", "coffee", "chelsea"):
        Image.fromarray(getattr(data, n)()).convert("RGB").crop((0, 0, 300, 300)).save(d / "same-size" / f"{n}.png")
    return d


def write_catalog(folder: Path, *, preset: str = "classic", frames: int = 2, variants: int = 2,
                  profiles: str = "[romance, thriller]", titles: tuple[str, ...] = ("still-life", "space")) -> Path:
    lines = [f"preset: {preset}", f"profiles: {profiles}", f"frames: {frames}", f"variants_per_frame: {variants}",
             "top_k: 2", "titles:"]
    for t in titles:
        lines += [f"  - id: {t}", f"    source: {t}", f"    title: {t.title()}", "    genre: drama"]
    path = folder / f"catalog-{preset}-{frames}-{variants}-{len(titles)}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path


def ledger(out: Path, kind: str = "variant") -> list[tuple]:
    with sqlite3.connect(out / "genart.sqlite") as db:
        return db.execute("SELECT pk, run_id, profile_id, keyframe_id, idx, variant_id, finished_at FROM batch_units "
                          "WHERE kind = ? ORDER BY pk", (kind,)).fetchall()


def variants(out: Path) -> list[tuple]:
    with sqlite3.connect(out / "genart.sqlite") as db:
        return db.execute("SELECT run_id, variant_id, image_sha256, path FROM variants ORDER BY run_id, variant_id"
                          ).fetchall()


def assert_complete(out: Path, report) -> None:
    """Every title done; every variant stored exactly once, with one ledger row and its image on disk."""
    from genart.imaging import sha256_file

    rows = variants(out)
    units = ledger(out)
    expected = sum(t.expected for t in report.titles)
    assert all(t.status == "done" and t.images == t.expected for t in report.titles), report.titles
    assert len(rows) == expected == len(units)
    assert len({(r[0], r[1]) for r in rows}) == len(rows)  # no variant twice
    assert len({u[1:5] for u in units}) == len(units)  # no slot twice
    assert {(u[1], u[5]) for u in units} == {(r[0], r[1]) for r in rows}
    for r in rows:
        assert not Path(r[3]).is_absolute()  # stored relative to the store's folder, so the folder can move
        assert (out / r[3]).exists() and sha256_file(out / r[3]) == r[2]
    ranks = ledger(out, "rank")
    assert len({u[1:3] for u in ranks}) == len(ranks) >= len(report.titles)
    assert len(ledger(out, "handoff")) == len(report.titles)


# --- the catalogue ---------------------------------------------------------------------------------
GOOD = """\
preset: classic
profiles: [romance]
titles:
  - id: a
    source: {src}
    title: A
  - id: b
    source: {src}
    genre: drama
"""


@pytest.mark.slow
@pytest.mark.parametrize("edit, entry, field, line", [
    (("    genre: drama", "    genere: drama"), "titles[1] ('b')", "genere", 9),
    (("    genre: drama", "    frames: many"), "titles[1] ('b')", "frames", 9),
    (("    genre: drama", "    profiles: [romance, nope]"), "titles[1] ('b')", "profiles", 9),
    (("  - id: b\n    source: {src}", "  - id: b\n    source: missing-folder"), "titles[1] ('b')", "source", 8),
    (("  - id: b", "  - id: a"), "titles[1] ('a')", "id", 7),
    (("  - id: b", "  - id: 'b c'"), "titles[1] ('b c')", "id", 7),
    (("preset: classic", "preset: nope"), None, "preset", 1),
])
def test_malformed_catalogue_names_entry_and_field(tmp_path, media, edit, entry, field, line):
    text = GOOD.replace(*edit).format(src=media / "space")
    path = tmp_path / "cat.yaml"
    path.write_text(text)
    with pytest.raises(CatalogError) as e:
        load_catalog(path)
    msg = str(e.value)
    assert f"{path}:{line}:" in msg, msg
    assert f"field '{field}'" in msg, msg
    if entry:
        assert f"entry {entry}" in msg, msg
    assert e.value.entry == entry and e.value.line == line


def test_good_catalogue_defaults_and_relative_sources(tmp_path, media):
    (media / "relative.yaml").write_text(GOOD.format(src="space"))  # relative to the catalogue's folder
    cat = load_catalog(media / "relative.yaml")
    assert [t.id for t in cat.titles] == ["a", "b"] and cat.preset == "classic"
    assert cat.titles[0].source == (media / "space").resolve() and cat.titles[1].genre == "drama"
    assert cat.titles[0].frames == 4 and cat.titles[0].variants_per_frame == 2
    with pytest.raises(CatalogError, match="exactly one of 'source'"):
        parse_catalog("titles:\n  - id: x\n", tmp_path / "c.yaml")
    assert parse_catalog("titles:\n  - demo: true\n", tmp_path / "c.yaml").titles[0].id == "demo"


def test_cli_reports_a_bad_catalogue_in_one_line(tmp_path, media):
    from genart.cli import app

    path = tmp_path / "cat.yaml"
    path.write_text(GOOD.format(src=media / "space").replace("genre: drama", "genre: [x]"))
    r = CliRunner().invoke(app, ["batch", str(path), "--out", str(tmp_path / "out")])
    assert r.exit_code == 2 and "titles[1] ('b')" in r.stderr and "genre" in r.stderr and "Traceback" not in r.output


# --- kill and resume -------------------------------------------------------------------------------
@pytest.mark.slow
def test_sigkill_mid_run_then_resume_stores_every_variant_once(tmp_path, media):
    """SIGKILL the job while it commits variants; the same command finishes without redoing a thing."""
    cat = write_catalog(media, frames=3, variants=2)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "genart.cli", "batch", str(cat), "--out", str(out), "--json"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        before: list[tuple] = []
        while time.monotonic() < deadline and proc.poll() is None:
            if (out / "genart.sqlite").exists():
                try:
                    before = ledger(out)
                except sqlite3.OperationalError:  # the table is not created yet
                    before = []
                if len(before) >= 4:
                    break
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before it could be killed: make the catalogue bigger"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = ledger(out)  # what was committed when it died
    expected = 2 * 3 * 2 + 2 * 2 * 2  # profiles x key frames x variants: 3 stills, then 2
    assert 0 < len(before) < expected

    r = CliRunner().invoke(__import__("genart.cli", fromlist=["app"]).app,
                           ["batch", str(cat), "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert sum(t["expected"] for t in data["titles"]) == expected
    after = ledger(out)
    assert after[:len(before)] == before  # finished units untouched: same rows, same times
    assert sum(t["made_now"] for t in data["titles"]) == expected - len(before)  # nothing finished redone
    report = run_catalog(cat, out)  # a third run has nothing left to do
    assert sum(t.made_now for t in report.titles) == 0 and ledger(out) == after
    assert_complete(out, report)
    assert report.summary_csv.read_text().count("\n") == 3
    assert {t["title_id"] for t in json.loads(report.summary_json.read_text())["titles"]} == {"still-life", "space"}


# --- OOM back-off ----------------------------------------------------------------------------------
@pytest.mark.slow
def test_oom_halves_the_batch_and_output_is_complete_and_identical(tmp_path, media, genart_cache, monkeypatch):
    import numpy as np
    import torch
    from PIL import Image

    from genart.config import load_models_config
    from genart.models import load_diffusion

    # one profile, one variant per frame: the three frames' variants share a strength, so one batch of 3
    cat = write_catalog(media, preset="tiny", frames=3, variants=1, profiles="[romance]", titles=("same-size",))
    model = load_diffusion(load_models_config().preset("tiny"))
    vae0, text0 = model.vae_encode_count, model.text_encode_count
    ref = run_catalog(cat, tmp_path / "ref", batch_size=4)
    assert ref.oom_retries == 0 and ref.batch_size == 4
    assert model.vae_encode_count - vae0 == 3  # each key frame VAE-encoded once
    assert model.text_encode_count - text0 <= 1  # the prompt once (or cached from an earlier test)

    unet = model.pipe.unet
    real = unet.forward
    seen: list[int] = []

    def forward(sample, *args, **kwargs):  # a real CUDA OOM error whenever the batch is over 2
        seen.append(sample.shape[0])
        if sample.shape[0] > 2:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB (simulated)")
        return real(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", forward)
    got = run_catalog(cat, tmp_path / "oom", batch_size=4)
    assert got.oom_retries == 1 and got.batch_size == 2
    assert seen[0] == 3 and max(seen[1:]) == 2  # 3 failed; then 2 and 1
    assert_complete(tmp_path / "oom", got)
    a, b = variants(tmp_path / "ref"), variants(tmp_path / "oom")
    assert [r[:2] for r in a] == [r[:2] for r in b]  # the same variants (ids hash every parameter)
    for ra, rb in zip(a, b):  # and the same pixels, up to float rounding of another batch size
        pa, pb = (np.asarray(Image.open(root / r[3]), np.int16) for root, r in ((tmp_path / "ref", ra), (tmp_path / "oom", rb)))
        assert np.abs(pa - pb).max() <= 1


def test_buckets_are_powers_of_two_up_to_the_batch_size():
    from genart.batch.gpu import bucket

    assert [bucket(n, 8) for n in range(1, 9)] == [1, 2, 4, 4, 8, 8, 8, 8]
    assert [bucket(n, 6) for n in (1, 2, 3, 5, 6)] == [1, 2, 4, 6, 6]


@pytest.mark.slow
def test_fixed_shapes_pad_every_call_to_a_bucket_and_keep_the_images(media, genart_cache, monkeypatch):
    """With ``--compile`` each call is padded to a bucket so a compiled model meets few shapes: the
    accelerator sees only bucket sizes, and the images are those of unpadded calls."""
    import numpy as np

    from genart.batch.gpu import BatchState, Slot, generate_slots
    from genart.config import load_models_config
    from genart.frames import extract_keyframes
    from genart.usecases.stages import load_stages
    from genart.profiles import get_profiles

    gen = load_stages(load_models_config().preset("tiny")).generator
    kfs = extract_keyframes(media / "same-size", max_frames=3)
    profile = get_profiles(["romance"])[0]
    slots = [Slot("r", profile, kf, i, 7, "T", "drama") for kf in kfs for i in range(2)]
    unet = gen.model.pipe.unet
    real, seen = unet.forward, []

    def forward(sample, *args, **kwargs):  # the real UNet, noting the batch it is given
        seen.append(sample.shape[0])
        return real(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", forward)
    made = {}
    for fixed in (False, True):
        state = BatchState(batch_size=4, fixed_shapes=fixed)
        seen.clear()
        out: dict = {}
        generate_slots(gen, slots, lambda pairs, dt: out.update((s.key, v) for s, v in pairs), state)  # noqa: B023 - called within
        made[fixed] = (out, list(seen), state)
    (plain, plain_seen, plain_state), (padded, padded_seen, padded_state) = made[False], made[True]
    assert sorted(plain_state.sizes) == sorted(padded_state.sizes) and 3 in plain_state.sizes  # an odd chunk
    assert set(padded_seen) <= {1, 2, 4} and padded_state.shapes == padded_seen and 3 in plain_seen
    assert plain.keys() == padded.keys() == {s.key for s in slots}
    for key, v in plain.items():
        assert v.id == padded[key].id
        diff = np.abs(np.asarray(v.image, np.int16) - np.asarray(padded[key].image, np.int16))
        assert diff.max() <= 1, key  # float rounding of another batch size at most


@pytest.mark.slow
def test_diffusion_job_failing_mid_run_resumes_only_the_missing_slots(tmp_path, media, genart_cache, monkeypatch):
    """A real failure in the UNet after the first chunk: the rerun makes only the slots not committed,
    and the job ends with exactly the variants a one-shot run makes."""
    from genart.config import load_models_config
    from genart.models import load_diffusion

    cat = write_catalog(media, preset="tiny", frames=3, variants=2, profiles="[romance]", titles=("same-size",))
    unet = load_diffusion(load_models_config().preset("tiny")).pipe.unet
    real = unet.forward
    calls = []

    def failing(sample, *args, **kwargs):
        calls.append(sample.shape[0])
        if len(calls) > 1:
            raise RuntimeError("device lost (simulated)")
        return real(sample, *args, **kwargs)

    monkeypatch.setattr(unet, "forward", failing)
    with pytest.raises(RuntimeError, match="device lost"):
        run_catalog(cat, tmp_path / "out", batch_size=2)
    monkeypatch.setattr(unet, "forward", real)
    before = ledger(tmp_path / "out")
    assert len(before) == 2  # the first chunk was committed before the failure
    report = run_catalog(cat, tmp_path / "out", batch_size=2)
    assert sum(t.made_now for t in report.titles) == 6 - 2 and ledger(tmp_path / "out")[:2] == before
    assert_complete(tmp_path / "out", report)
    run_catalog(cat, tmp_path / "once", batch_size=2)
    assert [r[:3] for r in variants(tmp_path / "out")] == [r[:3] for r in variants(tmp_path / "once")]


@pytest.mark.slow
def test_images_are_scored_while_in_memory_and_rank_as_from_their_pngs(tmp_path, media, genart_cache, monkeypatch):
    """The job scores each chunk on the finishing thread, beside the accelerator: the ranking after
    generation decodes no PNG, and its order and totals are those of ranking the stored PNGs afresh."""
    from genart.config import load_models_config
    from genart.rank import combine
    from genart.usecases.stages import load_stages

    cat = write_catalog(media, preset="tiny", frames=3, variants=2, profiles="[romance, thriller]",
                        titles=("same-size",))
    real = combine._with_pixels
    decoded: list[str] = []

    def spy(vs):  # the real function; noting every variant it has to read from disk
        decoded.extend(v.id for v in vs if v.image is None)
        return real(vs)

    monkeypatch.setattr(combine, "_with_pixels", spy)
    report = run_catalog(cat, tmp_path / "out", batch_size=4)
    assert_complete(tmp_path / "out", report)
    assert decoded == []
    monkeypatch.setattr(combine, "_with_pixels", real)

    from genart import api

    stages = load_stages(load_models_config().preset("tiny"))
    result = api.load_run(tmp_path / "out", report.titles[0].run_id)
    ranked = dict(result.ranked)
    assert set(ranked) == {"romance", "thriller"}
    for profile in load_catalog(cat).titles[0].profiles:
        rows = ranked[profile.id]
        fresh = stages.rank([rv.variant for rv in rows], profile)  # every scorer, on the PNGs
        assert [(r.variant.id, r.rank, round(r.total, 5)) for r in fresh] == \
            [(r.variant.id, r.rank, round(r.total, 5)) for r in rows], profile.id


# --- engines ---------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def local_reference(media, tmp_path_factory):
    cat = write_catalog(media)
    out = tmp_path_factory.mktemp("local")
    report = run_catalog(cat, out)
    assert_complete(out, report)
    return cat, out, report


@pytest.mark.slow
def test_accelerate_engine_splits_the_work_between_two_processes(tmp_path, local_reference):
    cat, ref_out, _ = local_reference
    out = tmp_path / "acc"
    report = run_catalog(cat, out, engine="accelerate", num_processes=2)
    assert_complete(out, report)
    assert variants(out)[0][1:3] == variants(ref_out)[0][1:3]
    assert [r[1:3] for r in variants(out)] == [r[1:3] for r in variants(ref_out)]
    with sqlite3.connect(out / "genart.sqlite") as db:
        workers = {w for (w,) in db.execute("SELECT DISTINCT worker FROM batch_units WHERE kind = 'variant'")}
    assert workers == {"accelerate:0/2", "accelerate:1/2"}


@pytest.mark.slow
def test_ray_engine_end_to_end_on_the_cpu(tmp_path, local_reference):
    pytest.importorskip("ray", reason="Ray is optional (pip install ray): the Ray engine's test needs it")
    cat, ref_out, _ = local_reference
    out = tmp_path / "ray"
    report = run_catalog(cat, out, engine="ray", ray_num_cpus=2)
    assert_complete(out, report)
    assert [r[1:3] for r in variants(out)] == [r[1:3] for r in variants(ref_out)]
    with sqlite3.connect(out / "genart.sqlite") as db:
        workers = {w for (w,) in db.execute("SELECT DISTINCT worker FROM batch_units WHERE kind = 'variant'")}
    assert workers and all(w.startswith("ray:") for w in workers)
    assert all(t.test_id for t in report.titles)


@pytest.mark.slow
def test_cli_summary_table_and_bad_engine(local_reference):
    from genart.cli import app

    cat, out, _ = local_reference
    r = CliRunner().invoke(app, ["batch", str(cat), "--out", str(out)])  # finished: nothing to redo
    assert r.exit_code == 0, r.output
    assert "still-life" in r.stdout and "space" in r.stdout and "batch_summary.csv" in r.stdout
    data = json.loads((out / "batch_summary.json").read_text())
    assert [t["made_now"] for t in data["titles"]] == [0, 0] and all(t["status"] == "done" for t in data["titles"])
    r = CliRunner().invoke(app, ["batch", str(cat), "--out", str(out), "--engine", "spark"])
    assert r.exit_code == 2 and "invalid --engine: 'spark'" in r.stderr and "local, accelerate, ray" in r.stderr


# --- the stages after the UNet, overlapped --------------------------------------------------------
def _tiny_job(media, spec=None):
    from genart.batch.gpu import Slot
    from genart.config import load_models_config
    from genart.frames import extract_keyframes
    from genart.generate.diffusion import DiffusionGenerator
    from genart.models import load_diffusion
    from genart.profiles import get_profiles

    spec = spec or load_models_config().preset("tiny")
    gen = DiffusionGenerator(load_diffusion(spec), spec)
    kfs = extract_keyframes(media / "same-size", max_frames=3)
    profile = get_profiles(["romance"])[0]
    return gen, [Slot("r", profile, kf, i, 7, "Title", "drama") for kf in kfs for i in range(2)]


def _tiny_with(watermark: bool = False, **delivery):
    """tiny with ``delivery`` settings and, unless asked, no watermark: its quantisation turns the float
    rounding of another batch size (or of the other finishing path) into a step of several levels, where
    these tests compare pixels (the watermark itself is tested in test_tensor_finish.py and test_finish.py)."""
    from genart.config import PresetSpec, load_models_config

    doc = load_models_config().preset("tiny").model_dump(mode="json")
    doc["delivery"] = {**doc["delivery"], **delivery}
    doc["finish"] = {**doc["finish"], "watermark": watermark}
    return PresetSpec.model_validate(doc)


@pytest.mark.slow
def test_the_unet_denoises_later_chunks_while_the_first_is_committed(media, genart_cache, monkeypatch):
    """The commit of chunk 0 is held until the UNet has denoised three more chunks: only a pipeline
    whose stages overlap gets there (a sequential one would wait forever, and fail after 120 s). The
    chunks still commit in order, each slot once, with the images a plain ``generate`` makes."""
    import threading

    import numpy as np

    from genart.batch.gpu import BatchState, generate_slots

    gen, slots = _tiny_job(media, _tiny_with())
    real, calls, ahead = gen.denoise, [], threading.Event()

    def denoise(*args, **kwargs):  # the real denoising, counted
        out = real(*args, **kwargs)
        calls.append(len(args[1]))
        if len(calls) >= 4:
            ahead.set()
        return out

    monkeypatch.setattr(gen, "denoise", denoise)
    committed: list = []

    def on_done(pairs, device_s):
        if not committed and not ahead.wait(120):
            raise AssertionError("the UNet waited for the commit of the chunk before")
        committed.extend(pairs)

    state = BatchState(batch_size=1)
    generate_slots(gen, slots, on_done, state)
    chunks = [s.key for i in range(2) for s in slots if s.idx == i]  # grouped by strength, frames in order
    assert len(calls) == len(slots) and [s.key for s, _ in committed] == chunks
    assert state.stage_s["denoise"] > 0 and state.stage_s["write"] > 0 and "denoise_wait" in state.stage_s
    plain = {v.id: v for v in gen.generate([s.kf for s in slots[::2]], slots[0].profile, 2, seed=7, title="Title",
                                           genre="drama")}
    for _, v in committed:  # float rounding of batches of 1 against batches of 3, then the grade's contrast
        assert np.abs(np.asarray(v.image, np.int16) - np.asarray(plain[v.id].image, np.int16)).max() <= 2


@pytest.mark.slow
@pytest.mark.parametrize("stage", ["decode", "write"])
def test_a_failing_stage_stops_the_job_and_keeps_the_chunks_before_it(media, genart_cache, monkeypatch, stage):
    from genart.batch.gpu import BatchState, generate_slots

    gen, slots = _tiny_job(media)
    committed: list = []
    if stage == "decode":
        real, n = gen.decode_levels, []

        def decode(latents):
            n.append(1)
            if len(n) == 3:
                raise RuntimeError("decoder broke (simulated)")
            return real(latents)

        monkeypatch.setattr(gen, "decode_levels", decode)
        on_done = lambda pairs, dt: committed.extend(pairs)  # noqa: E731
    else:
        def on_done(pairs, dt):
            if len(committed) == 2:
                raise RuntimeError("disk full (simulated)")
            committed.extend(pairs)

    with pytest.raises(RuntimeError, match="simulated"):
        generate_slots(gen, slots, on_done, BatchState(batch_size=1))
    assert len(committed) == 2  # the two chunks before the failure, in order; nothing after it


@pytest.mark.slow
def test_a_decode_out_of_memory_is_retried_in_halves(media, genart_cache, monkeypatch):
    import numpy as np
    import torch

    from genart.batch.gpu import BatchState, generate_slots

    gen, slots = _tiny_job(media, _tiny_with())
    ref: dict = {}
    generate_slots(gen, slots, lambda pairs, dt: ref.update((s.key, v) for s, v in pairs), BatchState(batch_size=4))
    vae = gen.model.pipe.vae
    real, seen = vae.decode, []

    def decode(z, *args, **kwargs):  # the real decoder, out of memory for more than one image
        seen.append(z.shape[0])
        if z.shape[0] > 1:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 8.00 GiB (simulated)")
        return real(z, *args, **kwargs)

    monkeypatch.setattr(vae, "decode", decode)
    got: dict = {}
    state = BatchState(batch_size=4)
    generate_slots(gen, slots, lambda pairs, dt: got.update((s.key, v) for s, v in pairs), state)
    assert state.decode_splits > 0 and state.oom_retries == 0 and max(seen) == 3 and 1 in seen
    assert got.keys() == ref.keys()
    for key, v in got.items():
        assert v.id == ref[key].id
        assert np.abs(np.asarray(v.image, np.int16) - np.asarray(ref[key].image, np.int16)).max() <= 1


@pytest.mark.slow
def test_tensor_finishing_in_the_job_matches_the_cpu_and_encodes_jpegs_there(tmp_path, media, genart_cache):
    """``delivery.finishing: tensor`` (what ``auto`` means on CUDA), run here on the CPU: the same
    variants as the CPU finishing, pixels within 2 levels; with ``format: jpeg`` each variant comes
    with its JPEG encoded from the device's tensor, and the store writes it with its provenance."""
    import io

    import numpy as np
    from PIL import Image

    from genart.batch.gpu import BatchState, generate_slots
    from genart.batch.runner import Ledger
    from genart.provenance import read_provenance

    made = {}
    for mode, spec in (("cpu", _tiny_with(finishing="cpu")), ("tensor", _tiny_with(finishing="tensor", format="jpeg"))):
        gen, slots = _tiny_job(media, spec)
        assert gen.tensor_finishing == (mode == "tensor")
        out: dict = {}
        generate_slots(gen, slots, lambda pairs, dt: out.update((s.key, (s, v)) for s, v in pairs),  # noqa: B023 - called within
                       BatchState(batch_size=4))
        made[mode] = out
    assert made["cpu"].keys() == made["tensor"].keys()
    on_device = 0
    for key, (_, a) in made["cpu"].items():
        b = made["tensor"][key][1]
        assert a.id == b.id and a.params == b.params and a.encoded is None
        assert np.abs(np.asarray(a.image, np.int16) - np.asarray(b.image, np.int16)).max() <= 2
        if b.params.reframe != "crop":  # left the frame: finished (and later encoded) on the CPU
            assert b.encoded is None
            continue
        on_device += 1
        with Image.open(io.BytesIO(b.encoded)) as im:  # the device's JPEG of the same pixels
            assert im.format == "JPEG" and im.size == b.image.size
            assert np.abs(np.asarray(im.convert("RGB"), np.int16) - np.asarray(b.image, np.int16)).mean() < 8
    assert on_device >= len(made["cpu"]) // 2
    from genart.types import RunManifest

    ledger = Ledger(tmp_path / "out")
    ledger.store.start_run(RunManifest(run_id="r", created_at="now", genart_version="t", source="s",
                                       source_sha256="0" * 64, preset="tiny", preset_spec="{}", models=(), profiles=(),
                                       frames=3, variants_per_frame=2, seed=7))
    stored = ledger.commit_variants(list(made["tensor"].values()), 1.0, "test", fmt="jpeg")
    for v in stored:
        assert v.path.suffix == ".jpg" and read_provenance(v.path)["genart"]["variant_id"] == v.id
    ledger.close()


def test_compile_mode_is_checked_before_anything_compiles(monkeypatch):
    from genart.batch.gpu import COMPILE_MODES, compile_mode
    from genart.errors import InvalidArgumentError

    monkeypatch.delenv("GENART_COMPILE_MODE", raising=False)
    assert compile_mode() == "default"
    monkeypatch.setenv("GENART_COMPILE_MODE", "reduce-overhead")  # CUDA graphs for the bucketed UNet shapes
    assert compile_mode() == "reduce-overhead" and "reduce-overhead" in COMPILE_MODES
    monkeypatch.setenv("GENART_COMPILE_MODE", "graphs")
    with pytest.raises(InvalidArgumentError, match="reduce-overhead"):
        compile_mode()


# --- one engine: a ControlNet preset through the batch job ------------------------------------------
def _models_with(tmp_path, name: str, **generator) -> Path:
    """A models.yaml (for ``$GENART_MODELS``) with preset ``name``: tiny with ``generator`` settings."""
    import yaml

    from genart.config import load_models_config

    doc = yaml.safe_load(Path(load_models_config().path).read_text())
    preset = json.loads(json.dumps(doc["presets"]["tiny"]))
    preset["generator"].update(generator)
    doc["presets"][name] = preset
    path = tmp_path / "models.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def _stored(out: Path) -> dict[tuple, tuple]:
    """Every stored variant by (profile, key frame's place, variant index): its id, params and pixels. The
    index is the batch ledger's where there is one, else the order ``genart run`` stores them in."""
    import numpy as np
    from PIL import Image

    from genart.store.db import Store

    store = Store(out)
    with sqlite3.connect(out / "genart.sqlite") as db:
        (run_id,) = db.execute("SELECT id FROM runs").fetchone()
        has_ledger = db.execute("SELECT 1 FROM sqlite_master WHERE name = 'batch_units'").fetchone()
        slots = dict(db.execute("SELECT variant_id, idx FROM batch_units WHERE kind = 'variant'").fetchall()
                     if has_ledger else [])
    by_kf = {kf.id: i for i, kf in enumerate(store.keyframes(run_id))}
    made, counts = {}, {}
    for v in store.variants(run_id):
        key = (v.profile_id, by_kf[v.keyframe.id])
        counts[key] = counts.get(key, -1) + 1
        idx = slots[v.id] if slots else counts[key]
        made[(*key, idx)] = (v.id, v.params, np.asarray(Image.open(store.resolve(v.path)).convert("RGB")))
    return made


@pytest.mark.slow
def test_controlnet_preset_through_genart_batch_is_the_variant_genart_run_makes(tmp_path, media, genart_cache,
                                                                                monkeypatch):
    """A ControlNet preset through ``genart batch``: the job succeeds, its variants are guided by the
    frames' canny edges (``params.controlnet``), and each is the variant ``genart run`` makes for the same
    frame, profile, seed and index (same id, which hashes every parameter, and the same pixels)."""
    from genart.cli import app

    cn = {"builder": "tiny", "model_id": "genart/tiny-controlnet", "conditioning_scale": 1.0}
    monkeypatch.setenv("GENART_MODELS", str(_models_with(tmp_path, "tiny-cn", controlnet=cn)))
    cat = write_catalog(tmp_path, preset="tiny-cn", frames=2, variants=2, profiles="[romance]", titles=("same-size",))
    cat.write_text(cat.read_text().replace("source: same-size", f"source: {media / 'same-size'}"))
    r = CliRunner().invoke(app, ["batch", str(cat), "--out", str(tmp_path / "batch")])
    assert r.exit_code == 0, r.output
    r = CliRunner().invoke(app, ["run", str(media / "same-size"), "--preset", "tiny-cn", "--profiles", "romance",
                                 "--frames", "2", "--variants", "2", "--seed", "0", "--title", "Same-Size",
                                 "--genre", "drama", "--out", str(tmp_path / "run")])
    assert r.exit_code == 0, r.output
    batch, run = _stored(tmp_path / "batch"), _stored(tmp_path / "run")
    assert len(batch) == 4 and batch.keys() == run.keys()
    for key, (vid, params, pixels) in batch.items():
        assert params.controlnet.startswith("genart/tiny-controlnet@") and "canny" in params.controlnet
        rid, rparams, rpixels = run[key]
        assert params == rparams and vid == rid
        assert pixels.shape == rpixels.shape and (pixels == rpixels).all()
