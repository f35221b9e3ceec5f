"""The ``Generator`` contract (``genart.generate.Generator``), one class of tests bound to every generator,
as diffusers' ``PipelineTesterMixin`` is to its pipelines: classic, tiny, tiny + ControlNet, tiny +
inpainting, and a fake written against the protocol alone. Each binding says how to build its generator and what else its variants must record; the
tests are the same for all: n variants per frame in order, aspects cycled with matching sizes, the
same seed giving the same variants, the parameters that made them recorded, and the batch job
(``genart.batch.gpu.generate_slots``) making the very same variant for each slot as ``generate``.

The diffusion bindings build torch models (tiny, random weights, 64 px): marked ``slow``.
"""

from __future__ import annotations

import random
from dataclasses import replace
from fractions import Fraction
from typing import Any, Sequence

import numpy as np
import pytest

from genart.config import PresetSpec, load_models_config
from genart.generate import Generator
from genart.generate.seeds import variant_seed
from genart.types import GenerationParams, KeyFrame, TasteProfile, Variant, stable_id

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
ASPECTS = ("16:9", "1:1", "2:3")
N = 3  # variants per frame: one per aspect
SEED = 11


def _tiny(**generator: Any) -> PresetSpec:
    data = load_models_config().preset("tiny").model_dump(mode="json")
    data["generator"].update(generator)
    return PresetSpec.model_validate(data)


def _pixels(v) -> np.ndarray:
    return np.asarray(v.image.convert("RGB"))


class GeneratorContract:
    """The contract tests; a binding sets ``make_generator`` (and may ask for real photos)."""

    photos = False  # add ../shared/media's two_people.jpg (faces a 1:1 crop must keep: outpainting)

    def make_generator(self) -> Generator:  # pragma: no cover - every binding overrides it
        raise NotImplementedError

    def check_params(self, gen: Any, variants: list) -> None:
        """What this binding's variants record beyond the common parameters."""

    # --- fixtures: each binding's generator and its variants, made once per class -------------------
    @pytest.fixture(scope="class")
    def gen(self, genart_cache) -> Generator:
        gen = self.make_generator()
        assert isinstance(gen, Generator)
        return gen

    @pytest.fixture(scope="class")
    def frames(self, request) -> list:
        from tests.test_diffusion import make_frame

        frames = [make_frame(40), make_frame(41, 120, 160)]
        if self.photos:
            from tests.test_generate import photo_frame

            frames.append(photo_frame(request.getfixturevalue("media_dir"), "two_people.jpg"))
        return frames

    @pytest.fixture(scope="class")
    def profile(self):
        from tests.test_diffusion import make_profile

        return make_profile(aspects=ASPECTS, strengths=(0.5, 0.75), version="v-contract")

    @pytest.fixture(scope="class")
    def made(self, gen, frames, profile) -> list:
        return gen.generate(frames, profile, N, seed=SEED, title="The Contract", genre="drama")

    # --- the contract ---------------------------------------------------------------------------
    def test_n_variants_per_frame_in_frame_then_index_order(self, made, frames, profile) -> None:
        assert [(v.keyframe.id, v.params.keyframe_id) for v in made] == [(kf.id, kf.id) for kf in frames
                                                                         for _ in range(N)]
        assert all(v.profile_id == v.params.profile_id == profile.id for v in made)
        assert len({v.id for v in made}) == len(made)  # no two variants alike

    def test_aspects_cycle_and_each_image_has_its_aspect_and_recorded_size(self, made) -> None:
        for i, v in enumerate(made):
            assert v.params.aspect == ASPECTS[i % N]
            assert v.image.size == (v.params.width, v.params.height)
            w, h = (int(x) for x in v.params.aspect.split(":"))
            assert abs(Fraction(*v.image.size) / Fraction(w, h) - 1) < 0.02, (v.params.aspect, v.image.size)

    def test_same_seed_same_variants_another_seed_others(self, gen, made, frames, profile) -> None:
        again = gen.generate(frames, profile, N, seed=SEED, title="The Contract", genre="drama")
        assert [v.id for v in again] == [v.id for v in made]
        assert all(np.array_equal(_pixels(a), _pixels(b)) for a, b in zip(made, again, strict=True))
        other = gen.generate(frames[:1], profile, N, seed=SEED + 1, title="The Contract", genre="drama")
        assert not {v.id for v in other} & {v.id for v in made}

    def test_params_record_what_made_each_variant(self, gen, made, profile) -> None:
        for i, v in enumerate(made):
            p = v.params
            assert p.seed == variant_seed(SEED, v.keyframe.id, profile.id, i % N)
            assert p.profile_version == profile.version and p.preset
            assert p.title == "The Contract" or p.title_status == "skipped"
        self.check_params(gen, made)

    def test_the_batch_job_makes_the_same_variant_for_each_slot(self, gen, made, frames, profile) -> None:
        from genart.batch.gpu import BatchState, Slot, generate_slots

        slots = [Slot("run", profile, kf, i, SEED, "The Contract", "drama") for kf in frames for i in range(N)]
        got: dict = {}
        generate_slots(gen, slots, lambda pairs, dt: got.update((s.key, v) for s, v in pairs), BatchState(batch_size=4))
        assert len(got) == len(made)
        for s, v in zip(slots, made, strict=True):
            b = got[s.key]
            assert b.id == v.id and b.params == v.params
            assert np.array_equal(_pixels(b), _pixels(v)), f"slot {s.key} differs from generate's variant"


# --- the bindings -----------------------------------------------------------------------------------
class TestClassic(GeneratorContract):
    def make_generator(self) -> Generator:
        from genart.pipeline import load_stages

        return load_stages(load_models_config().preset("classic")).generator

    def check_params(self, gen, variants) -> None:
        assert all(v.params.method == "classic" and v.params.model_id is None for v in variants)


class _Diffusion(GeneratorContract):
    spec: PresetSpec

    def make_generator(self) -> Generator:
        from genart.generate.diffusion import DiffusionGenerator
        from genart.models import load_diffusion

        return DiffusionGenerator(load_diffusion(self.spec), self.spec)

    def check_params(self, gen, variants) -> None:
        for i, v in enumerate(variants):
            assert v.params.method == "img2img" and v.params.model_id == gen.model.model_id
            assert v.params.strength == (0.5, 0.75)[i % N % 2] and v.params.steps >= 1
            assert v.params.controlnet is None


@pytest.mark.slow
class TestTiny(_Diffusion):
    spec = _tiny()


@pytest.mark.slow
class TestTinyControlNet(_Diffusion):
    spec = _tiny(controlnet={"builder": "tiny", "model_id": "genart/tiny-controlnet", "conditioning_scale": 1.0})

    def check_params(self, gen, variants) -> None:
        assert type(gen.model.pipe).__name__ == "StableDiffusionControlNetImg2ImgPipeline"
        for v in variants:
            assert v.params.controlnet.startswith("genart/tiny-controlnet@") and "canny" in v.params.controlnet
        super().check_params(gen, [replace(v, params=replace(v.params, controlnet=None)) for v in variants])


@pytest.mark.slow
class TestTinyInpaint(_Diffusion):
    spec = _tiny(inpaint={"builder": "tiny", "model_id": "genart/tiny-sd-inpaint"})
    photos = True

    def check_params(self, gen, variants) -> None:
        super().check_params(gen, variants)
        kinds = [v.params.reframe for v in variants]
        painted = [k for k in kinds if k.startswith("outpaint:")]
        assert painted and all(k.startswith("outpaint:genart/tiny-sd-inpaint@") for k in painted), kinds
        assert set(kinds) - set(painted) <= {"crop", "mirror-fill"}, kinds


class FakeGenerator:
    """A generator written against the protocol alone: a flat colour drawn from each variant's seed, at
    the classic preset's delivery size of its aspect. ``break_with`` breaks one clause of the contract."""

    def __init__(self, break_with: str = "") -> None:
        self.finish = load_models_config().preset("classic").finish
        self.break_with = break_with

    def generate(self, keyframes: Sequence[KeyFrame], profile: TasteProfile, variants_per_frame: int, *,
                 seed: int = 0, title: str = "", genre: str = "", progress: Any = None,
                 title_overlay: bool | None = None, titles: Any = None) -> list[Variant]:
        from PIL import Image

        from genart.generate.classic import overlay_title

        text = overlay_title(profile, title, titles, title_overlay) or None
        out = []
        for kf in keyframes:
            for i in range(variants_per_frame):
                aspect = profile.aspects[(i + (self.break_with == "aspects")) % len(profile.aspects)]
                vseed = variant_seed(seed, kf.id, profile.id, i) if self.break_with != "seed" else random.getrandbits(31)
                w, h = self.finish.size(aspect)
                params = GenerationParams(preset="fake", method="fake", profile_id=profile.id,
                                          profile_version=profile.version, keyframe_id=kf.id, seed=vseed, width=w,
                                          height=h, aspect=aspect, grade="none", title=text,
                                          title_status="placed" if text else None)
                colour = tuple(random.Random(vseed).randrange(256) for _ in range(3))
                out.append(Variant(id=stable_id(kf.id, profile.id, profile.version, params.as_dict()),
                                   profile_id=profile.id, keyframe=kf, params=params,
                                   digital_source_type="trainedAlgorithmicMedia", image=Image.new("RGB", (w, h), colour)))
        return out[::-1] if self.break_with == "order" else out


class TestFake(GeneratorContract):
    def make_generator(self) -> Generator:
        return FakeGenerator()


@pytest.mark.parametrize("clause, test", [
    ("order", "test_n_variants_per_frame_in_frame_then_index_order"),
    ("aspects", "test_aspects_cycle_and_each_image_has_its_aspect_and_recorded_size"),
    ("seed", "test_same_seed_same_variants_another_seed_others"),
])
def test_the_contract_fails_a_generator_that_breaks_it(clause: str, test: str) -> None:
    """Each clause of the contract can fail: a fake breaking it fails that contract test."""
    from tests.test_diffusion import make_frame, make_profile

    gen, frames = FakeGenerator(break_with=clause), [make_frame(40), make_frame(41, 120, 160)]
    profile = make_profile(aspects=ASPECTS, version="v-contract")
    made = gen.generate(frames, profile, N, seed=SEED, title="The Contract", genre="drama")
    kwargs = {"gen": gen, "made": made, "frames": frames, "profile": profile}
    method = getattr(TestFake(), test)
    names = method.__code__.co_varnames[1:method.__code__.co_argcount]
    with pytest.raises(AssertionError):
        method(**{k: kwargs[k] for k in names})
