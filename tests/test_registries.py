"""The two registries: scorers by name (``genart.rank.registry``) and model sources by name
(``genart.models.sources``).

``TestEveryRegisteredScorer`` is the scorer contract's one binding: it runs ``ScorerContract`` over every
scorer the registry holds, built by its own factory for the test presets (``classic``: measured
features; ``tiny``: a CLIP preset, here on the torch-free ``FakeEmbedder``), so a newly registered
scorer is contract-tested without a line written for it.
"""

from __future__ import annotations

from typing import get_args

import pytest

from genart import pipeline
from genart.config import ClipSpec, ControlNetSpec, DiffusionSpec, InpaintSpec, PresetSpec, load_models_config, parse_models_yaml
from genart.errors import ModelLoadError, UnknownModelSourceError, UnknownScorerError
from genart.models import check_preset, pull_preset, sources
from genart.rank import registry, scorers
from genart.rank.combine import rank_for_profile
from genart.testing.contracts import ScorerContract
from genart.testing.fakes import FakeEmbedder
from genart.types import ScoreSet
from tests import test_rank

TEST_PRESETS = ("classic", "tiny")
SCORER_NAMES = sorted(scorers.available())


def _preset(name: str, **ranker: object) -> PresetSpec:
    spec = load_models_config().preset(name)
    return spec.model_copy(update={"ranker": spec.ranker.model_copy(update=ranker)})


def _built(name: str, preset: str) -> list:
    """The scorer ``name`` as the registry makes it for ``preset`` (empty: the preset turns it off)."""
    made, _ = scorers.build_rankers(_preset(preset, scorers=(name,)), clip=FakeEmbedder())
    return list(made)


# --- scorers ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("preset", TEST_PRESETS)
@pytest.mark.parametrize("name", SCORER_NAMES)
class TestEveryRegisteredScorer(test_rank._Photos, ScorerContract):
    """The scorer contract (named, finite, deterministic, batch-invariant, discriminating) for each
    registered scorer under each test preset that turns it on."""

    @pytest.fixture(autouse=True)
    def _which(self, name: str, preset: str) -> None:
        made = _built(name, preset)
        if not made:
            pytest.skip(f"preset '{preset}' turns the '{name}' scorer off")
        self.name, self.preset = name, preset

    def make_scorer(self):
        (scorer,) = _built(self.name, self.preset)
        return scorer


def test_the_registry_holds_the_shipped_scorers_and_each_runs_under_a_test_preset() -> None:
    assert {"clip", "features", "aesthetic", "technical", "legibility", "safety"} <= set(SCORER_NAMES)
    for name in SCORER_NAMES:
        assert any(_built(name, p) for p in TEST_PRESETS), f"no test preset turns '{name}' on: the contract skips it"


def test_shipped_presets_run_the_same_scorers_with_or_without_their_list() -> None:
    """models.yaml's ``scorers`` lists are each method's defaults: the classic preset ranks exactly as
    before the registry (features, technical, BRISQUE, legibility, Open-NSFW), and so does a preset
    whose models.yaml predates the list."""
    listed, _ = pipeline.load_rankers(load_models_config().preset("classic"))
    assert [type(s).__name__ for s in listed] == ["FeatureScorer", "TechnicalScorer", "BrisqueScorer",
                                                   "LegibilityScorer", "SafetyScorer"]
    unlisted, _ = pipeline.load_rankers(_preset("classic", scorers=None))
    assert [type(s) for s in unlisted] == [type(s) for s in listed]
    for name in ("classic", "tiny", "turbo", "quality"):
        spec = load_models_config().preset(name)
        assert spec.ranker.scorers == registry.DEFAULT_SCORERS[spec.ranker.method]


def test_tiny_scorers_share_one_embedder_with_diversity() -> None:
    made, options = scorers.build_rankers(load_models_config().preset("tiny"), clip=FakeEmbedder())
    assert [type(s).__name__ for s in made] == ["ClipScorer", "AestheticScorer", "TechnicalScorer",
                                                 "LegibilityScorer", "SafetyScorer"]
    shared = {id(s.embedder) for s in made if hasattr(s, "embedder")}
    assert shared == {id(options.diversity)}


def test_an_unknown_scorer_in_models_yaml_names_the_registered_ones() -> None:
    text = ("default_preset: a\npresets:\n  a:\n    kind: classic\n    ranker:\n      method: features\n"
            "      scorers: [features, sharpnes]\n")
    spec = parse_models_yaml(text, "my-models.yaml").preset("a")
    for build in (pipeline.load_rankers, pipeline.ranking_checks):
        with pytest.raises(UnknownScorerError) as err:
            build(spec)
        assert "'sharpnes'" in str(err.value) and "legibility" in str(err.value) and "technical" in str(err.value)
        assert "ranker.scorers" in str(err.value)


def test_a_new_scorer_is_one_registration_and_one_models_yaml_line(monkeypatch) -> None:
    """Registered under a name, listed in a preset, weighted there: it scores, counts in the total and
    shows in the explanation; its gate lands in the manifest's checks."""
    monkeypatch.setattr(registry, "_SCORERS", dict(registry._SCORERS))

    class Width:
        names = ("width",)

        def score(self, variants, profile):
            return [ScoreSet.of({"width": min(1.0, v.params.width / 1000)}) for v in variants]

    registry.register_scorer("width", checks=lambda spec: ("width: wider is better",))(lambda ctx: Width())
    spec = _preset("classic", scorers=("features", "width"), extra_weights={"width": 1.0})
    made, options = pipeline.load_rankers(spec)
    assert [type(s).__name__ for s in made] == ["FeatureScorer", "Width"]
    assert "width: wider is better" in pipeline.ranking_checks(spec)
    photos = test_rank._Photos()
    ranked = rank_for_profile(photos.make_variants(), photos.make_profile(), made, fidelity_threshold=-1.0,
                              options=options)
    for r in ranked:
        assert r.scores.get("width") == pytest.approx(min(1.0, r.variant.params.width / 1000))
        assert any(c.score == "width" and c.weight > 0 and c.contribution > 0 for c in r.explanation)


# --- model sources ---------------------------------------------------------------------------------------
def test_the_sources_models_yaml_accepts_are_the_registered_ones() -> None:
    assert set(sources.source_names()) == {"hub", "local", "tiny"}
    for spec in (DiffusionSpec, InpaintSpec, ControlNetSpec, ClipSpec):
        assert set(get_args(spec.model_fields["builder"].annotation)) == set(sources.source_names())
    for name in sources.source_names():
        source = sources.get_source(name)
        assert source.name == name
        for method in ("find", "how", "locate", "pull", "fingerprint"):
            assert callable(getattr(source, method))


def test_an_unknown_source_names_the_registered_ones() -> None:
    with pytest.raises(UnknownModelSourceError) as err:
        sources.get_source("s3", field="generator.builder")
    assert "'s3'" in str(err.value) and "hub, local, tiny" in str(err.value) and "generator.builder" in str(err.value)


def test_a_hub_reference_that_is_a_path_is_the_local_source() -> None:
    assert sources.source_name("hub", "stabilityai/sd-turbo") == "hub"
    assert sources.source_name("hub", "./my-models/sd") == "local"
    assert sources.source_name("hub", "/opt/models/sd") == "local"
    assert sources.source_name("file", "aesthetic/head.safetensors") == "local"
    assert sources.source_name("tiny", "genart/tiny-sd") == "tiny"


def test_an_absent_local_folder_says_where_it_looked_and_is_never_downloaded(tmp_path) -> None:
    folder = tmp_path / "no-such-sd"
    spec = _preset("tiny")
    gen = spec.generator.model_copy(update={"builder": "local", "model_id": str(folder), "controlnet": None,
                                            "inpaint": None})
    clip = spec.ranker.clip.model_copy(update={"builder": "local", "pretrained": str(tmp_path / "clip.safetensors"),
                                               "model": "ViT-B-32"})
    spec = spec.model_copy(update={"generator": gen, "random_weights": False,
                                   "ranker": spec.ranker.model_copy(update={"clip": clip, "aesthetic": None})})
    check = check_preset(spec)
    assert not check.ok
    by_role = {i.role: i for i in check.items}
    assert not by_role["diffusion"].present and str(folder) in by_role["diffusion"].where
    assert "local diffusers folder" in by_role["diffusion"].how
    assert not by_role["clip"].present
    with pytest.raises(ModelLoadError) as err:
        pull_preset(spec)  # offline or not, a local path is checked, not fetched
    assert str(folder) in str(err.value)
