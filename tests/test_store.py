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
