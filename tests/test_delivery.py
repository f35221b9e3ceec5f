"""Delivery formats: a preset's ``delivery`` setting (validated), JPEG files encoded by the same batched
encoder the accelerator uses, carrying the same provenance as a PNG (XMP in APP1, genart's fields in
COM, C2PA when configured), and CLIP embeddings taken from tensors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genart.config import load_models_config, parse_models_yaml
from genart.errors import ConfigError
from genart.imaging import image_format, image_text, jpeg_bytes, with_jpeg_text
from genart.provenance import IPTC_DST, XMP_KEY, read_png_provenance, read_provenance
from genart.store.db import Store
from genart.types import GenerationParams, KeyFrame, RunManifest, Variant

torch = pytest.importorskip("torch")


def variant(media_dir: Path, name: str = "coffee.png", **kw) -> Variant:
    im = Image.open(media_dir / "images" / name).convert("RGB").resize((320, 180))
    kf = KeyFrame(id="kf1", source="clip.mp4", t_s=12.5, frame_index=300, shot=2, width=640, height=360)
    params = GenerationParams(preset="classic", method="classic", profile_id="romance", profile_version="v1",
                              keyframe_id="kf1", seed=7, width=320, height=180, aspect="16:9", grade="golden-hour",
                              title="The Long Night")
    return Variant(id="v-" + name, profile_id="romance", keyframe=kf, params=params,
                   digital_source_type="composite", image=im, **kw)


def store_with_run(root: Path, run_id: str = "r1") -> Store:
    store = Store(root)
    store.start_run(RunManifest(run_id=run_id, created_at="now", genart_version="t", source="s",
                                source_sha256="0" * 64, preset="classic", preset_spec="{}", models=(), profiles=(),
                                frames=1, variants_per_frame=1, seed=0))
    return store


def test_delivery_defaults_and_a_bad_format_names_the_field_and_line():
    spec = load_models_config().preset("tiny")
    assert (spec.delivery.format, spec.delivery.finishing) == ("png", "auto")
    text = ("version: 1\ndefault_preset: c\npresets:\n  c:\n    kind: classic\n    ranker: {method: features}\n"
            "    delivery:\n      format: webp\n")
    with pytest.raises(ConfigError) as e:
        parse_models_yaml(text, "m.yaml")
    assert "delivery.format" in str(e.value) and "m.yaml:8" in str(e.value), str(e.value)
    with pytest.raises(ConfigError, match="finishing"):
        parse_models_yaml(text.replace("format: webp", "finishing: gpu"), "m.yaml")
    ok = parse_models_yaml(text.replace("format: webp", "format: jpeg\n      quality: 85"), "m.yaml").preset("c")
    assert (ok.delivery.format, ok.delivery.quality) == ("jpeg", 85)


def test_jpeg_variant_carries_the_pngs_provenance_and_is_found_by_its_hash(media_dir, tmp_path):
    (png,) = store_with_run(tmp_path).add_variants("r1", [variant(media_dir)], software="genart test")
    (jpg,) = store_with_run(tmp_path / "j").add_variants("r1", [variant(media_dir)], software="genart test",
                                                         fmt="jpeg", quality=90)
    assert png.path.suffix == ".png" and jpg.path.suffix == ".jpg"
    assert image_format(jpg.path.read_bytes()) == "jpeg"
    a, b = read_provenance(png.path), read_provenance(jpg.path)
    assert a == b and read_png_provenance is read_provenance
    assert b["DigitalSourceType"] == IPTC_DST + "composite"
    assert b["genart"]["params"]["title"] == "The Long Night" and b["genart"]["keyframe"]["timecode"]
    assert b["xmp"]["Iptc4xmpExt:DigitalSourceType"] == IPTC_DST + "composite"
    with Image.open(jpg.path) as im:  # what other readers see: Pillow's own XMP and comment fields
        assert b"Iptc4xmpExt:DigitalSourceType" in im.info["xmp"]
        assert json.loads(im.info["comment"])["Software"] == "genart test"
        assert np.abs(np.asarray(im, np.int16) - np.asarray(variant(media_dir).image, np.int16)).mean() < 4
    sha = jpg.path.stem
    assert Store(tmp_path / "j").resolve("elsewhere/x.jpg", sha) == jpg.path  # the store's own copy, by hash


def test_a_jpeg_the_device_encoded_is_stored_as_it_is_plus_its_metadata(media_dir, tmp_path):
    v = variant(media_dir)
    pixels = torch.from_numpy(np.array(v.image)).permute(2, 0, 1)
    (encoded,) = jpeg_bytes([pixels], 80)
    data = Store.variant_bytes(Variant(**{**v.__dict__, "encoded": encoded}), "genart test", fmt="jpeg")
    # the scan data is the device's, untouched: only the APP1 (XMP) and COM segments were inserted
    assert data.endswith(encoded[20:]) and data[:20] == encoded[:20] and len(data) > len(encoded)
    assert Store.variant_bytes(Variant(**{**v.__dict__, "encoded": encoded}), fmt="png")[:4] == b"\x89PNG"


def test_jpeg_text_round_trips_and_refuses_what_does_not_fit(tmp_path):
    (data,) = jpeg_bytes([torch.zeros(3, 16, 16, dtype=torch.uint8)], 90)
    text = {XMP_KEY: '<x:xmpmeta xmlns:x="adobe:ns:meta/"></x:xmpmeta>', "genart": '{"a": 1}', "Software": "ü"}
    path = tmp_path / "a.jpg"
    path.write_bytes(with_jpeg_text(data, text))
    assert image_text(path) == text
    with pytest.raises(ValueError, match="do not fit"):
        with_jpeg_text(data, {"genart": "x" * 70_000})
    with pytest.raises(ValueError, match="not a JPEG"):
        with_jpeg_text(b"\x89PNG\r\n\x1a\n....", text)


def test_c2pa_signs_jpeg_variants_too(media_dir, tmp_path, monkeypatch):
    pytest.importorskip("c2pa", reason="c2pa-python is optional")
    from genart.provenance import make_test_credentials, read_c2pa

    chain, key = make_test_credentials(tmp_path / "creds")
    monkeypatch.setenv("GENART_C2PA_CERT", chain)
    monkeypatch.setenv("GENART_C2PA_KEY", key)
    (v,) = store_with_run(tmp_path / "s", "r").add_variants("r", [variant(media_dir)], software="genart 0.test",
                                                           fmt="jpeg")
    report = read_c2pa(v.path)
    assert report is not None and report["state"] == "Valid"  # signed and untampered (a test CA: untrusted)
    assert {s["code"] for s in report["status"]} <= {"signingCredential.untrusted"}
    actions = next(a for a in report["manifest"]["assertions"] if a["label"].startswith("c2pa.actions"))
    assert actions["data"]["actions"][0]["digitalSourceType"] == IPTC_DST + "composite"
    params = next(a for a in report["manifest"]["assertions"] if a["label"] == "org.genart.params")["data"]
    assert params["variant_id"] == v.id
    assert read_provenance(v.path)["genart"]["variant_id"] == v.id  # XMP and COM survive the signing


@pytest.mark.slow
def test_clip_embeddings_from_tensors_are_those_of_the_images(media_dir, genart_cache):
    from genart.models import load_clip
    from genart.rank.embed import CachingEmbedder

    clip = load_clip(load_models_config().preset("tiny"))
    images = [Image.open(media_dir / "images" / n).convert("RGB").resize(s)
              for n, s in (("obama.jpg", (1024, 576)), ("chelsea.png", (682, 1024)), ("coffee.png", (800, 800)))]
    pixels = [torch.from_numpy(np.array(im)).permute(2, 0, 1) for im in images]
    a, b = clip.embed_images(images), clip.embed_tensors(pixels)
    assert a.shape == b.shape and np.all((a * b).sum(axis=1) > 0.9999)
    cached = CachingEmbedder(clip)
    got = cached.embed_tensors(pixels, images)
    assert cached.computed_images == 3 and np.allclose(got, b, atol=1e-6)
    again = cached.embed_images(images)  # what a scorer asks for next: from memory, not the model
    assert cached.computed_images == 3 and np.array_equal(again, got)
