"""The finished diffusion variants (tiny preset): reframed around the faces of real photos, outpainted
with a tiny inpainting pipeline where a crop leaves the frame, graded, titled, and labelled in the PNG."""

from __future__ import annotations

import io
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genart.config import PresetSpec, load_models_config
from genart.frames.faces import detect_faces
from genart.generate.diffusion import DiffusionGenerator
from genart.generate.finish import faces_in, faces_through
from genart.generate.title import find_font
from genart.profiles import get_profiles
from genart.provenance import IPTC_DST, XMP_KEY, read_png_provenance, read_watermark
from genart.types import KeyFrame, stable_id

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
PHOTOS = ("astronaut.png", "obama.jpg", "two_people.jpg", "biden.jpg")
CATALOGUE = ("16:9", "2:3", "1:1", "9:16")




@pytest.fixture(scope="module")
def spec() -> PresetSpec:
    """tiny, plus a tiny inpainting pipeline for outpainting."""
    data = load_models_config().preset("tiny").model_dump(mode="json")
    data["generator"]["inpaint"] = {"builder": "tiny", "model_id": "genart/tiny-sd-inpaint"}
    return PresetSpec.model_validate(data)


@pytest.fixture(scope="module")
def gen(spec: PresetSpec, genart_cache) -> DiffusionGenerator:
    from genart.models import load_diffusion

    return DiffusionGenerator(load_diffusion(spec), spec)


def photo_frame(media_dir: Path, name: str) -> KeyFrame:
    im = Image.open(media_dir / "images" / name).convert("RGB")
    return KeyFrame(id=stable_id(name), source=name, t_s=12.5, frame_index=300, shot=2, width=im.width,
                    height=im.height, faces=tuple(detect_faces(im)), image=im)


@pytest.mark.slow
def test_reframes_every_aspect_keeping_the_faces(media_dir, gen: DiffusionGenerator) -> None:
    profile = replace(get_profiles(["thriller"])[0], aspects=CATALOGUE, strengths=(0.5,))  # one batch per frame size
    frames = [photo_frame(media_dir, p) for p in PHOTOS]
    assert all(kf.faces for kf in frames)
    vae0 = gen.model.vae_encode_count
    out = gen.generate(frames, profile, len(CATALOGUE), seed=2)
    assert gen.model.vae_encode_count - vae0 == len(frames)  # finishing never re-encodes the key frame
    kinds = set()
    for v in out:
        p = v.params
        aw, ah = (int(s) for s in p.aspect.split(":"))
        assert p.aspect in CATALOGUE and abs(v.image.width / v.image.height - aw / ah) < 0.03
        assert (p.width, p.height) == v.image.size and p.grade == profile.grade.name
        # the lead face lies inside the crop (in source pixels), and every other face is inside or outside,
        # never cut in two (two people side by side do not fit a 9:16 without a wide fill: the lead is kept)
        x, y, w, h = p.crop
        lead = max(v.keyframe.faces, key=lambda f: f.area)
        assert x - 2 <= lead.x and y - 2 <= lead.y and lead.x + lead.w <= x + w + 2 and lead.y + lead.h <= y + h + 2
        for f in v.keyframe.faces:
            inside = max(0.0, min(x + w, f.x + f.w) - max(x, f.x)) * max(0.0, min(y + h, f.y + f.h) - max(y, f.y))
            assert inside <= 0.25 * f.area or inside >= 0.75 * f.area, (v.keyframe.source, p)
        kinds.add(p.reframe.split(":")[0])
        assert v.digital_source_type == "trainedAlgorithmicMedia" and p.title is None and p.title_status is None
        assert (p.width, p.height) == gen.preset.finish.size(p.aspect)  # one delivery size per aspect
        assert p.synthetic_share <= gen.preset.finish.max_outpaint and p.upscale == pytest.approx(p.width / (
            p.crop[2] * target_raw(gen, v.keyframe)[0] / v.keyframe.width), rel=0.02)
        assert p.watermark == "genart"
    assert "crop" in kinds and kinds <= {"crop", "outpaint"}


@pytest.mark.slow
def test_outpaint_where_a_fill_would_be_too_wide(media_dir, gen: DiffusionGenerator) -> None:
    """A 1:1 of the two-person frame needs a window past the frame: with an inpainting model it keeps both
    people and outpaints (seeded: the same twice); without one a mirrored fill may make only 8%, so another
    crop (the lead alone, or both inside the frame) is taken instead of a wide fill."""
    kf = photo_frame(media_dir, "two_people.jpg")
    drama = get_profiles(["drama"])[0]
    profile = replace(drama, aspects=("1:1",), grade=replace(drama.grade, exposure=0.0, contrast=0.0, saturation=0.0,
                      warmth=0.0, tint=0.0, shadows_tint=(0, 0, 0), highlights_tint=(0, 0, 0), vignette=0.0, fade=0.0))
    (v,) = gen.generate([kf], profile, 1, seed=5)
    if not v.params.reframe.startswith("outpaint:"):
        pytest.skip(f"this frame's 1:1 needs no outpainting here ({v.params.reframe})")
    assert v.params.reframe.startswith("outpaint:genart/tiny-sd-inpaint@")
    assert 0.0 < v.params.synthetic_share <= gen.preset.finish.max_outpaint
    again = gen.generate([kf], profile, 1, seed=5)[0]
    assert np.array_equal(np.asarray(v.image), np.asarray(again.image))  # outpainting is seeded too
    plain = DiffusionGenerator(gen.model, replace_inpaint(gen.preset, None))
    (b,) = plain.generate([kf], profile, 1, seed=5)
    assert b.params.reframe in ("crop", "mirror-fill") and b.params.synthetic_share <= 0.08
    assert b.params.crop != v.params.crop


def replace_inpaint(spec: PresetSpec, inpaint: object) -> PresetSpec:
    return spec.model_copy(update={"generator": spec.generator.model_copy(update={"inpaint": inpaint})})


@pytest.mark.slow
@pytest.mark.parametrize("pid, titles", [("romance-ja", {"ja-JP": "夜行列車"}), ("action-hi", {"hi-IN": "रात की ट्रेन"}),
                                         ("romance", None)])
def test_title_in_the_profile_locale_clear_of_faces(media_dir, gen: DiffusionGenerator, pid: str, titles) -> None:
    profile = replace(get_profiles([pid])[0], aspects=("9:16", "2:3"))  # a portrait frame: room above and below
    text = (titles or {}).get(profile.locale, "Night Train")
    if find_font(text, profile.locale) is None:
        pytest.skip(f"no font for {profile.locale} here")
    kf = photo_frame(media_dir, "obama.jpg")
    out = gen.generate([kf], profile, 2, seed=1, title="Night Train", titles=titles)
    bare = gen.generate([kf], profile, 2, seed=1, title="Night Train", titles=titles, title_overlay=False)
    for v, b in zip(out, bare, strict=True):
        assert v.params.title == text and v.params.title_font
        assert v.digital_source_type == "compositeWithTrainedAlgorithmicMedia"
        assert b.params.title is None and b.digital_source_type == "trainedAlgorithmicMedia"
        diff = np.abs(np.asarray(v.image, np.int16) - np.asarray(b.image, np.int16)).max(axis=2)
        assert (diff > 0).mean() > 0.02  # the title is there
        rw, rh = target_raw(gen, kf)
        faces = faces_through(faces_in(kf, rw, rh), scaled_crop(v.params.crop, kf, rw, rh), v.image.size)
        assert faces
        for f in faces:  # ... and not one pixel of a face changed
            x0, y0 = max(0, int(f.x) + 1), max(0, int(f.y) + 1)
            assert diff[y0:int(f.y + f.h) - 1, x0:int(f.x + f.w) - 1].max() == 0, (pid, v.params.aspect)


def target_raw(gen: DiffusionGenerator, kf: KeyFrame) -> tuple[int, int]:
    from genart.generate.diffusion import target_size

    return target_size(kf.width, kf.height, gen.spec.resolution, gen.size_multiple())


def scaled_crop(crop, kf: KeyFrame, rw: int, rh: int):
    x, y, w, h = crop
    return (x * rw / kf.width, y * rh / kf.height, w * rw / kf.width, h * rh / kf.height)


@pytest.mark.slow
def test_metadata_round_trips_from_the_png(media_dir, gen: DiffusionGenerator, tmp_path: Path) -> None:
    from genart.store.db import Store

    kf = photo_frame(media_dir, "astronaut.png")
    profile = get_profiles(["sci-fi"])[0]
    variants = gen.generate([kf], profile, 2, seed=9, title="Star Road")
    store = Store(tmp_path)
    from genart.types import RunManifest

    store.start_run(RunManifest(run_id="r1", created_at="now", genart_version="t", source="s", source_sha256="0" * 64,
                                preset="tiny", preset_spec="{}", models=(), profiles=(), frames=1, variants_per_frame=2,
                                seed=9))
    saved = store.add_variants("r1", variants, software="genart test")
    for v in saved:
        meta = read_png_provenance(v.path)
        g = meta["genart"]
        assert g["variant_id"] == v.id and g["profile_id"] == "sci-fi"
        params = g["params"]
        for key in ("model_id", "revision", "scheduler", "seed", "strength", "steps", "guidance", "profile_id",
                    "profile_version", "keyframe_id", "prompt", "crop", "aspect", "grade", "title"):
            assert params[key] == json_like(getattr(v.params, key)), key
        assert g["keyframe"] == {"id": kf.id, "source": "astronaut.png", "t_s": 12.5, "timecode": "00:00:12.500",
                                 "frame": 300, "shot": 2}
        for key in ("synthetic_share", "upscale", "title_status", "title_box", "watermark"):
            assert params[key] == json_like(getattr(v.params, key)), key
        assert meta["DigitalSourceType"] == IPTC_DST + "compositeWithTrainedAlgorithmicMedia"
        xmp = meta["xmp"]
        assert xmp["Iptc4xmpExt:DigitalSourceType"] == IPTC_DST + "compositeWithTrainedAlgorithmicMedia"
        assert xmp["xmp:CreatorTool"] == "genart test" and xmp["genart:variant_id"] == v.id
        # IPTC 2025.1's AI fields (Iptc4xmpExt namespace): the model, its revision, the prompt
        assert xmp["Iptc4xmpExt:AISystemUsed"] == v.params.model_id
        assert xmp["Iptc4xmpExt:AIPromptInformation"] == v.params.prompt
        assert xmp.get("Iptc4xmpExt:AISystemVersionUsed") == (v.params.revision or None)
        with Image.open(v.path) as im:
            assert XMP_KEY in im.text and np.array_equal(np.asarray(im.convert("RGB")), np.asarray(v.image))
            # the imperceptible watermark, read back from the stored PNG and from a JPEG of it at quality 85
            assert v.params.watermark == "genart" and read_watermark(np.asarray(im.convert("RGB"))) == "genart"
            buf = io.BytesIO()
            im.convert("RGB").save(buf, format="JPEG", quality=85)
        assert read_watermark(np.asarray(Image.open(buf).convert("RGB"))) == "genart"


def json_like(value):
    return list(value) if isinstance(value, tuple) else value


@pytest.mark.slow
def test_controlnet_canny_guides_img2img(spec: PresetSpec, genart_cache) -> None:
    """A preset naming a ControlNet runs the ControlNet img2img pipeline with the frame's canny edges."""
    from genart.models import check_preset, load_diffusion
    from tests.test_diffusion import make_frame, make_profile

    data = spec.model_dump(mode="json")
    data["generator"]["inpaint"] = None
    plain_spec = PresetSpec.model_validate(data)
    data["generator"]["controlnet"] = {"builder": "tiny", "model_id": "genart/tiny-controlnet", "conditioning_scale": 1.0}
    cn_spec = PresetSpec.model_validate(data)
    assert [i.role for i in check_preset(cn_spec).items] == ["diffusion", "clip", "controlnet"]
    model = load_diffusion(cn_spec)
    assert type(model.pipe).__name__ == "StableDiffusionControlNetImg2ImgPipeline"
    assert load_diffusion(plain_spec) is not model  # not confused in the model cache
    gen = DiffusionGenerator(model, cn_spec, finish=False)
    plain = DiffusionGenerator(load_diffusion(plain_spec), plain_spec, finish=False)
    frames, profile = [make_frame(40), make_frame(41)], make_profile(strengths=(0.5,), version="v-cn")
    vae0 = model.vae_encode_count
    guided = gen.generate(frames, profile, 2, seed=3)
    assert model.vae_encode_count - vae0 == 2
    free = plain.generate(frames, profile, 2, seed=3)
    for g, f in zip(guided, free, strict=True):
        assert g.params.controlnet.startswith("genart/tiny-controlnet@") and "canny" in g.params.controlnet
        assert f.params.controlnet is None and g.params.seed == f.params.seed
        assert np.abs(np.asarray(g.image, np.int16) - np.asarray(f.image, np.int16)).mean() > 1  # the edges steer it
    alone = gen.generate(frames[1:], profile, 1, seed=3)[0]
    assert np.abs(np.asarray(alone.image, np.int16) - np.asarray(guided[2].image, np.int16)).max() <= 3


@pytest.mark.slow
def test_c2pa_content_credentials_when_a_certificate_is_set(media_dir, tmp_path: Path, monkeypatch) -> None:
    """Opt-in C2PA: signed offline with a private test CA; validates (untrusted signer), keeps the XMP."""
    pytest.importorskip("c2pa", reason="c2pa-python not installed (optional)")
    from genart.generate.classic import ClassicGenerator
    from genart.provenance import make_test_credentials, read_c2pa
    from genart.store.db import Store
    from genart.types import RunManifest

    chain, key = make_test_credentials(tmp_path / "creds")
    monkeypatch.setenv("GENART_C2PA_CERT", chain)
    monkeypatch.setenv("GENART_C2PA_KEY", key)
    kf = photo_frame(media_dir, "astronaut.png")
    variants = ClassicGenerator().generate([kf], get_profiles(["drama"])[0], 1, seed=0, title="Star Road")
    store = Store(tmp_path / "store")
    store.start_run(RunManifest(run_id="r2", created_at="now", genart_version="t", source="s", source_sha256="0" * 64,
                                preset="classic", preset_spec="{}", models=(), profiles=(), frames=1,
                                variants_per_frame=1, seed=0))
    (v,) = store.add_variants("r2", variants, software="genart 0.test")
    report = read_c2pa(v.path)
    assert report is not None and report["state"] == "Valid"
    assert {s["code"] for s in report["status"]} <= {"signingCredential.untrusted"}  # a test CA, honestly untrusted
    manifest = report["manifest"]
    actions = next(a for a in manifest["assertions"] if a["label"].startswith("c2pa.actions"))["data"]["actions"]
    assert actions[0]["digitalSourceType"] == IPTC_DST + "composite"
    params = next(a for a in manifest["assertions"] if a["label"] == "org.genart.params")["data"]
    assert params["variant_id"] == v.id and params["keyframe"]["timecode"] == "00:00:12.500"
    meta = read_png_provenance(v.path)  # the XMP and text chunks survive the signing
    assert meta["xmp"]["Iptc4xmpExt:DigitalSourceType"] == IPTC_DST + "composite"
    assert "Iptc4xmpExt:AISystemUsed" not in meta["xmp"]  # a captured frame: no AI system made it
    assert v.params.watermark is None  # classic captures carry no watermark unless configured
    monkeypatch.setenv("GENART_C2PA_KEY", str(tmp_path / "nope.pem"))
    from genart.errors import ConfigError

    with pytest.raises(ConfigError, match="cannot read"):
        store.add_variants("r2", variants)
