"""DiffusionGenerator on the tiny preset: real diffusers img2img, random weights, CPU."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from genart.config import PresetSpec, load_models_config
from genart.errors import ImageReadError, InvalidArgumentError
from genart.generate.diffusion import DiffusionGenerator, aspect_label, steps_for, target_size, variant_seed
from genart.types import Grade, KeyFrame, ScoreSet, TasteProfile, VisualTargets, stable_id

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")




def make_profile(**kw: object) -> TasteProfile:
    base = dict(
        id="noir", name="Noir", description="dark and moody", version="v1",
        prompt="a {genre} poster for {title}, moody light", negative_prompt="blurry, text",
        anchors_positive=("a dark moody poster",), anchors_negative=("a bright cheerful poster",),
        strengths=(), steps=None, guidance=None, targets=VisualTargets(), grade=Grade(), aspects=("16:9",),
        locale="en", weights=ScoreSet(),
    )
    base.update(kw)
    return TasteProfile(**base)  # type: ignore[arg-type]


def make_frame(i: int, w: int = 160, h: int = 90, path: Path | None = None) -> KeyFrame:
    rng = np.random.default_rng(i)
    # smooth colour fields plus noise: something a VAE can encode meaningfully
    yy, xx = np.mgrid[0:h, 0:w]
    base = np.stack([xx / w, yy / h, (xx + yy) / (w + h)], axis=-1) * 255
    arr = np.clip(base + rng.normal(0, 20, base.shape), 0, 255).astype(np.uint8)
    im = Image.fromarray(arr)
    if path is not None:
        im.save(path)
        return KeyFrame(id=f"kf{i}", source="test.mp4", t_s=float(i), frame_index=i, shot=i, width=w, height=h, path=path)
    return KeyFrame(id=f"kf{i}", source="test.mp4", t_s=float(i), frame_index=i, shot=i, width=w, height=h, image=im)


def with_batch(spec: PresetSpec, batch_size: int) -> PresetSpec:
    return spec.model_copy(update={"generator": spec.generator.model_copy(update={"batch_size": batch_size})})


def px(im: Image.Image) -> np.ndarray:
    return np.asarray(im, dtype=np.int16)


@pytest.fixture(scope="module")
def spec() -> PresetSpec:
    return load_models_config().preset("tiny")


@pytest.fixture(scope="module")
def model(spec: PresetSpec, genart_cache: Path):
    from genart.models import load_diffusion

    return load_diffusion(spec)


@pytest.fixture(scope="module")
def gen(model, spec: PresetSpec) -> DiffusionGenerator:
    """The raw img2img core (no reframe/grade/title: tests/test_generate.py covers those)."""
    return DiffusionGenerator(model, spec, finish=False)


# --- pure helpers (fast) ---------------------------------------------------------------------------
def test_helpers() -> None:
    assert target_size(1920, 1080, 512) == (512, 288)
    assert target_size(1080, 1920, 512) == (288, 512)
    assert target_size(160, 90, 64) == (64, 40)
    assert all(v % 8 == 0 for v in target_size(1001, 777, 64))
    assert aspect_label(512, 288) == "16:9" and aspect_label(768, 512) == "3:2"
    assert steps_for(2, 0.35) == 3 and steps_for(2, 0.5) == 2 and steps_for(1, 0.25) == 4
    s = variant_seed(0, "kf0", "noir", 0)
    assert s == variant_seed(0, "kf0", "noir", 0) and 0 <= s < 2**63
    assert len({variant_seed(0, "kf0", "noir", i) for i in range(4)} | {variant_seed(1, "kf0", "noir", 0)}) == 5


# --- the generator (slow) --------------------------------------------------------------------------
@pytest.mark.slow
def test_variants_have_full_params_and_stable_ids(gen: DiffusionGenerator, model, spec: PresetSpec) -> None:
    profile = make_profile()
    frames = [make_frame(0), make_frame(1)]
    out = gen.generate(frames, profile, 3, seed=7, title="Night Train", genre="thriller")
    assert len(out) == 6
    assert [(v.keyframe.id, i) for v, i in zip(out, [0, 1, 2] * 2)] == [(f.id, i) for f in frames for i in range(3)]
    ladder = spec.generator.strengths
    for n, v in enumerate(out):
        p = v.params
        i = n % 3
        assert p.preset == "tiny" and p.method == "img2img" and p.grade == "none"
        assert p.profile_id == "noir" and p.profile_version == "v1" and p.keyframe_id == v.keyframe.id
        assert p.seed == variant_seed(7, v.keyframe.id, "noir", i)
        assert p.strength == ladder[i % len(ladder)]
        assert int(p.steps * p.strength) >= 1 and p.steps >= spec.generator.steps
        assert p.guidance == spec.generator.guidance
        assert p.prompt == "a thriller poster for Night Train, moody light" and p.negative_prompt == "blurry, text"
        assert p.model_id == "genart/tiny-sd" and p.revision == model.revision
        assert p.scheduler == "EulerAncestralDiscreteScheduler"
        assert (p.width, p.height) == v.image.size == (64, 40) and p.aspect == "8:5"
        assert v.id == stable_id(v.keyframe.id, "noir", "v1", p.as_dict())
        assert v.digital_source_type == "trainedAlgorithmicMedia" and v.profile_id == "noir" and v.path is None
    assert len({v.id for v in out}) == 6
    again = gen.generate(frames, profile, 3, seed=7, title="Night Train", genre="thriller")
    assert [v.id for v in again] == [v.id for v in out]


@pytest.mark.slow
def test_seed_determinism_and_batch_invariance(gen: DiffusionGenerator) -> None:
    profile = make_profile(strengths=(0.5,))
    frames = [make_frame(0), make_frame(1), make_frame(2)]
    batch = gen.generate(frames, profile, 2, seed=3)  # one batch of 6
    again = gen.generate(frames, profile, 2, seed=3)
    for a, b in zip(batch, again):
        assert np.array_equal(px(a.image), px(b.image))  # same seed, same pixels
    other = gen.generate(frames, profile, 2, seed=4)
    for a, b in zip(batch, other):
        assert np.abs(px(a.image) - px(b.image)).mean() > 5  # other seed, other picture
    assert np.abs(px(batch[0].image) - px(batch[1].image)).mean() > 5  # variants of a frame differ
    alone = gen.generate([frames[1]], profile, 1, seed=3)[0]  # variant 0 of frame 1, made alone
    assert alone.id == batch[2].id
    assert np.abs(px(alone.image) - px(batch[2].image)).max() <= 3


@pytest.mark.slow
def test_frames_and_prompts_are_encoded_once(gen: DiffusionGenerator, model, spec: PresetSpec) -> None:
    profile = make_profile(version="v-encode-once")
    frames = [make_frame(10), make_frame(11, w=90, h=160), make_frame(12)]
    vae0, text0 = model.vae_encode_count, model.text_encode_count
    calls: list[tuple[str, int, int]] = []
    small = DiffusionGenerator(model, with_batch(spec, 2), finish=False)
    out = small.generate(frames, profile, 4, seed=0, progress=lambda *a: calls.append(a))
    assert len(out) == 12
    assert model.vae_encode_count - vae0 == 3  # once per frame, not per variant
    assert model.text_encode_count - text0 == 1
    small.generate(frames[:1], profile, 2, seed=0)
    assert model.text_encode_count - text0 == 1  # same profile version and prompt: cached
    small.generate(frames[:1], profile, 1, seed=0, title="Another Title")
    assert model.text_encode_count - text0 == 2
    # progress: batches of at most 2, ending at the total
    assert calls[0] == ("generate", 0, 12) and calls[-1] == ("generate", 12, 12)
    steps = [b - a for (_, a, _), (_, b, _) in zip(calls, calls[1:])]
    assert all(1 <= s <= 2 for s in steps)
    assert out[4].image.size == (40, 64)  # portrait frame keeps its aspect
    # chunking does not change the pictures
    big = gen.generate(frames, profile, 4, seed=0)
    for a, b in zip(out, big):
        assert a.id == b.id and np.abs(px(a.image) - px(b.image)).max() <= 3


@pytest.mark.slow
def test_keyframe_from_path_low_strength_and_guidance(gen: DiffusionGenerator, tmp_path: Path) -> None:
    kf = make_frame(20, path=tmp_path / "frame.png")
    assert kf.image is None
    profile = make_profile(strengths=(0.25,), steps=1, guidance=3.0, version="v-cfg")
    (v,) = gen.generate([kf], profile, 1, seed=1)
    assert v.params.steps == 4 and v.params.guidance == 3.0  # raised so int(steps * strength) >= 1
    same = gen.generate([make_frame(20)], profile, 1, seed=1)[0]
    assert np.array_equal(px(v.image), px(same.image))
    with pytest.raises(InvalidArgumentError):
        gen.generate([kf], profile, 0)
    with pytest.raises(ImageReadError, match="neither pixels nor a stored path"):  # the one loader's family
        gen.generate([KeyFrame(id="x", source="s", t_s=0, frame_index=0, shot=0, width=1, height=1)], profile, 1)
    assert gen.generate([], profile, 2) == []


@pytest.mark.slow
def test_same_noise_as_stock_diffusers_call(model, spec: PresetSpec) -> None:
    """Passing pre-encoded latents gives what the stock img2img call gives for the same seed and frame.

    The stock pipeline samples the VAE posterior where genart takes its mean, so this pipeline's
    posterior variance is set to ~0 (its log-variance channels to the clamp minimum) on a separate copy.
    """
    import torch

    from genart.models import DiffusionModel, load_pipeline

    pipe = load_pipeline(Path(model.local_path), model_id="tiny", variant=None, dtype=torch.float32)
    with torch.no_grad():
        pipe.vae.quant_conv.weight[4:].zero_()
        pipe.vae.quant_conv.bias[4:].fill_(-30.0)
    fresh = DiffusionModel(pipe=pipe, model_id="genart/tiny-sd", revision=None, local_path=model.local_path,
                           random_weights=True, scheduler=type(pipe.scheduler).__name__, device=torch.device("cpu"),
                           dtype=torch.float32)
    gen = DiffusionGenerator(fresh, spec, finish=False)
    profile = make_profile(strengths=(0.5, 1.0))
    frames = [make_frame(30), make_frame(31)]
    ours = gen.generate(frames, profile, 2, seed=5)
    for v in ours:
        image = gen.prepare_frame(v.keyframe)
        stock = pipe(prompt=v.params.prompt, image=image, strength=v.params.strength,
                     num_inference_steps=v.params.steps, guidance_scale=v.params.guidance,
                     generator=torch.Generator("cpu").manual_seed(v.params.seed), output_type="pil").images[0]
        assert np.abs(px(stock) - px(v.image)).max() <= 3


@pytest.mark.slow
def test_own_decode_gives_the_pipelines_pil_pixels_exactly(gen: DiffusionGenerator) -> None:
    """decode_latents (8-bit conversion on the device) against the pipeline's own decode + PIL postprocess."""
    import torch

    pipe = gen.model.pipe
    latents = torch.randn((3, 4, 12, 20), generator=torch.Generator("cpu").manual_seed(0)) * 2.0
    ours = gen.decode_latents(latents)
    with torch.inference_mode():
        x = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    stock = pipe.image_processor.postprocess(x, output_type="pil")
    assert [im.size for im in ours] == [(160, 96)] * 3
    for a, b in zip(ours, stock, strict=True):
        assert np.array_equal(px(a), px(b))
    assert len({px(a).tobytes() for a in ours}) == 3  # three different pictures, not one repeated
