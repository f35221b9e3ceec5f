"""The rank stage beyond affinity/fidelity: aesthetic head, safety, legibility, MMR diversity, the
embedding cache in the store, rejection reasons that persist, and ranking any image."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageFilter

from genart.config import load_models_config
from genart.errors import ConfigError, InvalidArgumentError, ModelLoadError
from genart.profiles import get_profiles
from genart.rank.aesthetic import AestheticHead, AestheticScorer, load_aesthetic, random_head
from genart.rank.clip import ClipScorer
from genart.rank.combine import RankOptions, combined_total, explain, rank_for_profile, score_variants
from genart.rank.diversity import FeatureEmbedder, diverse_order
from genart.rank.embed import CachingEmbedder, image_key
from genart.rank.legibility import LegibilityScorer, legibility
from genart.rank.safety import SafetyScorer
from genart.testing.contracts import EmbedderContract, ScorerContract
from genart.testing.fakes import FakeEmbedder, FixedScorer, MemoryEmbeddingCache
from genart.types import GenerationParams, KeyFrame, RunManifest, ScoreSet, Variant
from tests.media import need_media

MEDIA_IMAGES = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "images"
PHOTOS = ("astronaut.png", "coffee.png", "chelsea.png", "rocket.jpg", "two_people.jpg", "camera.png")


def _photo(name: str, width: int = 256) -> Image.Image:
    path = MEDIA_IMAGES / name
    need_media(path)
    with Image.open(path) as im:
        im = im.convert("RGB")
    return im.resize((width, max(1, int(width * im.height / im.width))))


def _variant(vid: str, im: Image.Image, kf: KeyFrame | None = None, profile_id: str = "romance") -> Variant:
    kf = kf or KeyFrame(id=f"kf-{vid}", source="s", t_s=0.0, frame_index=0, shot=0, width=im.width,
                        height=im.height, image=im)
    params = GenerationParams("test", "img2img", profile_id, "v", kf.id, 0, im.width, im.height, "x", "none")
    return Variant(id=vid, profile_id=profile_id, keyframe=kf, params=params,
                   digital_source_type="trainedAlgorithmicMedia", image=im)


class _Photos:
    """Real photos, and variants of them (a crop, a blur), each claiming its own photo as source."""

    def make_variants(self):
        out = []
        for name in PHOTOS[:3]:
            im = _photo(name)
            kf = KeyFrame(id=name, source=name, t_s=0, frame_index=0, shot=0, width=im.width, height=im.height, image=im)
            out.append(_variant(f"{name}-0", im, kf))
            out.append(_variant(f"{name}-1", im.crop((10, 10, 200, 160)).filter(ImageFilter.GaussianBlur(2)), kf))
        return out

    def make_profile(self):
        return get_profiles(["romance"])[0]


# --- the contract every scorer passes ---------------------------------------------------------------
class TestLegibilityContract(_Photos, ScorerContract):
    def make_scorer(self):
        return LegibilityScorer()


@pytest.mark.slow
class TestSafetyNsfwContract(_Photos, ScorerContract):
    def make_scorer(self):
        return SafetyScorer(None, nsfw=True)


class TestSafetyZeroShotContract(_Photos, ScorerContract):
    def make_scorer(self):
        return SafetyScorer(CachingEmbedder(FakeEmbedder()), nsfw=False)


class TestAestheticContract(_Photos, ScorerContract):
    def make_scorer(self):
        return AestheticScorer(CachingEmbedder(FakeEmbedder()), random_head(64, "mlp"))


class TestClipScorerOnCachingEmbedderContract(_Photos, ScorerContract):
    def make_scorer(self):
        return ClipScorer(CachingEmbedder(FakeEmbedder(), MemoryEmbeddingCache()))


class TestFeatureEmbedderContract(EmbedderContract):
    def make_embedder(self):
        return FeatureEmbedder()

    def make_images(self):
        return [_photo(n, 128) for n in PHOTOS[:4]]


class TestCachingEmbedderContract(EmbedderContract):
    def make_embedder(self):
        return CachingEmbedder(FakeEmbedder())

    def make_images(self):
        return [_photo(n, 128) for n in PHOTOS[:4]]


# --- safety: the real classifier on real photos -------------------------------------------------------
@pytest.mark.slow
def test_nsfw_classifier_rates_the_real_photos_safe():
    paths = sorted(p for p in MEDIA_IMAGES.glob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg"))
    need_media(MEDIA_IMAGES)
    assert paths, f"no photos in {MEDIA_IMAGES}"
    scorer = SafetyScorer(None, nsfw=True)
    variants = [_variant(p.stem, Image.open(p).convert("RGB")) for p in paths]
    scores = scorer.score(variants, get_profiles(["drama"])[0])
    for v, s in zip(variants, scores):
        assert tuple(s) == ("nsfw", "safety")
        assert 0.0 <= s["nsfw"] < 0.2, (v.id, s["nsfw"])  # Yahoo: below 0.2 is safe
        assert scorer.reject(s) is None
    assert len({round(s["nsfw"], 6) for s in scores}) > 1  # a real model, not a constant


def test_zero_shot_rejects_with_the_reason_and_thresholds_gate():
    scorer = SafetyScorer(CachingEmbedder(FakeEmbedder()), nsfw=False, gore_threshold=1.0, weapons_threshold=0.0)
    s = scorer.score([_variant("a", _photo("coffee.png"))], get_profiles(["drama"])[0])[0]
    assert set(s) == {"gore", "weapons", "safety"}
    assert s["safety"] == pytest.approx(1 - max(s["gore"], s["weapons"]))
    why = scorer.reject(s)
    assert why and why.startswith("unsafe:") and "weapons" in why and "gore" not in why
    with pytest.raises(InvalidArgumentError):
        SafetyScorer(None, nsfw=False)


# --- rejection reasons persist ------------------------------------------------------------------------
@pytest.mark.slow
def test_rejection_reasons_round_trip_through_the_store(tmp_path):
    from genart.store.db import Store

    profile = get_profiles(["drama"])[0]
    ims = [_photo(n, 96) for n in PHOTOS[:3]]
    variants = [_variant(f"v{i}", im, profile_id="drama") for i, im in enumerate(ims)]
    table = {"v0": {"affinity": 0.9, "fidelity": 0.9}, "v1": {"affinity": 0.8, "fidelity": 0.1},
             "v2": {"affinity": 0.7, "fidelity": 0.8}}
    gate = SafetyScorer(CachingEmbedder(FakeEmbedder()), nsfw=False, gore_threshold=1.0, weapons_threshold=1.0)
    gate.thresholds["gore"] = -1.0  # every picture "unsafe": a real gate with a test threshold
    rows = rank_for_profile(variants[:2], profile, [FixedScorer({k: table[k] for k in ("v0", "v1")})],
                            fidelity_threshold=0.5)
    rows += rank_for_profile(variants[2:], profile, [FixedScorer({"v2": table["v2"]}), gate], fidelity_threshold=0.5)
    store = Store(tmp_path)
    store.start_run(RunManifest(run_id="r1", created_at="2026-01-01T00:00:00", genart_version="t", source="s",
                                source_sha256="0" * 64, preset="classic", preset_spec="{}", models=(), profiles=(),
                                frames=1, variants_per_frame=1, seed=0))
    store.add_variants("r1", variants)
    store.add_rankings("r1", rows)
    back = {vid: (rank, why) for vid, rank, _, why in Store(tmp_path).rankings("r1", "drama")}
    assert back["v0"] == (1, None)
    assert back["v1"][0] is None and "fidelity 0.100 below" in back["v1"][1]
    assert back["v2"][0] is None and back["v2"][1].startswith("unsafe: gore")
    assert Store(tmp_path).scores("r1", "v2", "drama")["gore"] == pytest.approx(rows[-1].scores["gore"])
    # ranked again (a resumed job): the new rows replace the old ones, stale score names included
    again = rank_for_profile(variants, profile, [FixedScorer({k: {"affinity": 1 - v["affinity"], "fidelity": 0.9}
                                                              for k, v in table.items()})], fidelity_threshold=0.5)
    store.add_rankings("r1", again)
    back = Store(tmp_path).rankings("r1", "drama")
    assert [(vid, rank, why) for vid, rank, _, why in back] == [("v2", 1, None), ("v1", 2, None), ("v0", 3, None)]
    assert Store(tmp_path).scores("r1", "v2", "drama") == {"affinity": pytest.approx(0.3), "fidelity": 0.9}
    store.add_rankings("r1", [])  # nothing to store: nothing changes
    assert len(Store(tmp_path).rankings("r1", "drama")) == 3


# --- combined score and MMR ---------------------------------------------------------------------------
def test_ranking_with_fakes_orders_by_the_combined_score():
    profile = replace(get_profiles(["romance"])[0], weights=ScoreSet.of({"affinity": 2.0, "fidelity": 1.0}))
    ims = [_photo(n, 64) for n in PHOTOS[:4]]
    table = {"a": {"affinity": 0.9, "fidelity": 0.5, "aesthetic": 0.1}, "b": {"affinity": 0.5, "fidelity": 1.0, "aesthetic": 0.9},
             "c": {"affinity": 0.8, "fidelity": 0.6, "aesthetic": 0.0}, "d": {"affinity": 1.0, "fidelity": 0.95, "aesthetic": 0.5}}
    variants = [_variant(k, im) for k, im in zip(table, ims)]
    extra = ScoreSet.of({"aesthetic": 1.0, "affinity": 99.0})  # the profile's own affinity weight wins
    ranked = rank_for_profile(variants, profile, [FixedScorer(table)], fidelity_threshold=0.0,
                              options=RankOptions(extra_weights=extra))
    for r in ranked:
        s = table[r.variant.id]
        assert r.total == pytest.approx((2 * s["affinity"] + s["fidelity"] + s["aesthetic"]) / 4)
    assert [r.total for r in ranked] == sorted((r.total for r in ranked), reverse=True)
    assert [r.rank for r in ranked] == [1, 2, 3, 4]
    assert combined_total(ScoreSet.of({"x": 1.0}), ScoreSet()) == 0.0  # nothing weighted: 0
    why = explain(ranked[0].scores, profile.weights, extra)
    assert why == ranked[0].explanation
    assert sum(c.contribution for c in why) == pytest.approx(ranked[0].total, abs=1e-12)
    assert why[0].score == "affinity" and {c.score for c in why} == set(ranked[0].scores)
    assert [c.weight for c in why] == [0.5, 0.25, 0.25]  # 2 : 1 : 1 of the weighting, summing to 1
    assert all(c.contribution == pytest.approx(c.value * c.weight) for c in why)


def test_diverse_order_removes_near_copies_and_keeps_order_monotone():
    rng = np.random.default_rng(0)
    centres = np.eye(16)[:3] * 3.0  # three unrelated looks
    emb = np.concatenate([c + 0.01 * rng.normal(size=(3, 16)) for c in centres])  # 3 clusters of near-copies
    rel = np.array([0.99, 0.98, 0.97, 0.6, 0.59, 0.58, 0.5, 0.49, 0.48])
    assert diverse_order(rel, emb, lam=1.0).order == tuple(range(9))  # by total alone
    placed = diverse_order(rel, emb, lam=0.6)
    assert placed.order[:3] == (0, 3, 6)  # one per cluster, each cluster's best, best first
    assert placed.order[3:] == (1, 2, 4, 5, 7, 8)  # then the near-copies, by total
    assert all(placed.near_copy[3:]) and not any(placed.near_copy[:3])
    assert all(a >= b for a, b in zip(placed.rank_scores, placed.rank_scores[1:]))
    assert placed.rank_scores[0] == rel[0] and placed.penalties[0] == 0.0
    assert placed.similar_to[3] == 0 and placed.similar_to[5] == 1  # copies of #1 and of #2 (places 0-based)
    assert diverse_order(rel, emb, lam=0.6, k=3).order == placed.order  # the first 3 picked, the rest scored
    assert diverse_order(rel, emb, 0.6).order[:3] == diverse_order(rel[:9], emb, 0.6, k=9).order[:3]
    assert diverse_order([], np.zeros((0, 4))).order == ()
    with pytest.raises(InvalidArgumentError):
        diverse_order(rel, emb[:4])
    with pytest.raises(InvalidArgumentError):
        diverse_order(rel, emb, lam=0.0)
    with pytest.raises(InvalidArgumentError):
        diverse_order(rel, emb, levels=(0.9, 0.5))


def test_top_k_covers_different_frames_not_near_copies():
    """Three near-copies of the best frame score highest; MMR's top 3 still shows three frames."""
    profile = get_profiles(["romance"])[0]
    best = _photo("astronaut.png", 128)
    copies = [_variant(f"astro{i}", best.rotate(0.5 * i), profile_id="romance") for i in range(3)]
    others = [_variant(n, _photo(n, 128)) for n in ("coffee.png", "rocket.jpg", "chelsea.png")]
    table = {"astro0": 0.95, "astro1": 0.94, "astro2": 0.93, "coffee.png": 0.8, "rocket.jpg": 0.79, "chelsea.png": 0.78}
    fixed = FixedScorer({k: {"affinity": v, "fidelity": 1.0} for k, v in table.items()})
    plain = rank_for_profile(copies + others, profile, [fixed], fidelity_threshold=0.0, top_k=3)
    assert [r.variant.id for r in plain] == ["astro0", "astro1", "astro2"]
    for diversity in (FeatureEmbedder(), CachingEmbedder(FakeEmbedder())):
        top = rank_for_profile(copies + others, profile, [fixed], fidelity_threshold=0.0, top_k=3,
                               options=RankOptions(diversity=diversity, mmr_lambda=0.5))
        ids = [r.variant.id for r in top]
        assert ids[0] == "astro0" and sum(i.startswith("astro") for i in ids) == 1, ids
        assert [r.rank for r in top] == [1, 2, 3]


# --- embeddings cached by image hash and model fingerprint, in the store -------------------------------
def test_embeddings_are_cached_in_the_store_by_image_hash_and_fingerprint(tmp_path):
    from genart.store.db import Store
    from genart.store.embedding_tables import EmbeddingRow, StoreEmbeddingCache

    ims = [_photo(n, 96) for n in PHOTOS[:4]]
    first = CachingEmbedder(FakeEmbedder(), StoreEmbeddingCache(Store(tmp_path)), batch_size=2)
    a = first.embed_images(ims + ims[:1])  # a repeated picture is computed once
    assert first.computed_images == 4 and first.inner.image_calls == 1  # the misses in one call
    again = CachingEmbedder(FakeEmbedder(), StoreEmbeddingCache(Store(tmp_path)))  # a new process, same store
    b = again.embed_images([im.copy() for im in ims])
    assert again.computed_images == 0 and again.inner.image_calls == 0
    np.testing.assert_allclose(a[:4], b, atol=1e-7)
    with Store(tmp_path).session() as s:
        rows = s.query(EmbeddingRow).all()
        assert {r.image_key for r in rows} == {image_key(im) for im in ims}
        assert {r.fingerprint for r in rows} == {FakeEmbedder.fingerprint}

    class Other(FakeEmbedder):
        fingerprint = "another-model"

    other = CachingEmbedder(Other(dim=64), StoreEmbeddingCache(Store(tmp_path)))
    other.embed_images(ims[:1])
    assert other.computed_images == 1  # another model never reuses these vectors
    # texts: once per process
    first.embed_texts(["a warm sunset", "a cold night"])
    first.embed_texts(["a warm sunset"])
    assert first.computed_texts == 2 and first.inner.text_calls == 1


def test_all_clip_scores_share_one_forward_per_image():
    emb = CachingEmbedder(FakeEmbedder())
    profile = get_profiles(["romance"])[0]
    variants = _Photos().make_variants()
    scorers = [ClipScorer(emb), AestheticScorer(emb, random_head(64)), SafetyScorer(emb, nsfw=False)]
    rank_for_profile(variants, profile, scorers, fidelity_threshold=-1.0, options=RankOptions(diversity=emb))
    # each distinct picture once (the "-0" variants are their key frames' pixels: the same hash)
    assert emb.computed_images == len({image_key(v.image) for v in variants}) == len(variants)
    texts = emb.computed_texts
    rank_for_profile(variants, profile, scorers, fidelity_threshold=-1.0, options=RankOptions(diversity=emb))
    assert emb.computed_images == len(variants) and emb.computed_texts == texts


def test_scores_taken_in_parts_beforehand_rank_the_same():
    """The batch job scores each chunk of images while they are in memory and ranks later: given those
    scores for some variants, ranking scores only the others and orders everything as at once."""
    emb = CachingEmbedder(FakeEmbedder())
    profile = get_profiles(["romance"])[0]
    variants = _Photos().make_variants()
    scorers = [ClipScorer(emb), AestheticScorer(emb, random_head(64)), SafetyScorer(emb, nsfw=False)]
    options = RankOptions(diversity=emb, diverse_k=3)
    at_once = rank_for_profile(variants, profile, scorers, fidelity_threshold=-1.0, options=options)
    half = len(variants) // 2
    parts = score_variants(variants[:2], profile, scorers, options) + score_variants(variants[2:half], profile,
                                                                                      scorers, options)
    assert all(p.embedding is not None and p.embedding.shape == (64,) for p in parts)

    class Counting:  # the real scorers, counting what they are asked to score
        def __init__(self, inner):
            self.inner, self.seen = inner, []
            self.reject = getattr(inner, "reject", None)

        def score(self, vs, prof):
            self.seen += [v.id for v in vs]
            return self.inner.score(vs, prof)

    counted = [Counting(s) for s in scorers]
    later = rank_for_profile(variants, profile, counted, fidelity_threshold=-1.0, options=options,
                             scored={v.id: p for v, p in zip(variants[:half], parts)})
    assert all(c.seen == [v.id for v in variants[half:]] for c in counted)
    assert [(r.variant.id, r.rank, r.rejected) for r in later] == [(r.variant.id, r.rank, r.rejected) for r in at_once]
    for a, b in zip(later, at_once):
        assert a.total == pytest.approx(b.total, abs=1e-6) and a.scores.as_dict().keys() == b.scores.as_dict().keys()
    without_vectors = {v.id: replace(p, embedding=None) for v, p in zip(variants[:half], parts)}
    with pytest.raises(ValueError, match="diversity vectors"):
        rank_for_profile(variants, profile, scorers, fidelity_threshold=-1.0, options=options, scored=without_vectors)


# --- aesthetic head -------------------------------------------------------------------------------------
def test_aesthetic_heads_round_trip_as_safetensors(tmp_path):
    for kind, n_layers in (("linear", 1), ("mlp", 5)):
        head = random_head(48, kind, seed=3)
        path = head.to_safetensors(tmp_path / f"{kind}.safetensors")
        back = AestheticHead.from_safetensors(path, kind)
        assert back.kind == kind and len(back.layers) == n_layers and back.in_dim == 48
        x = np.random.default_rng(0).normal(size=(5, 48))
        np.testing.assert_allclose(back(x), head(x), atol=1e-4)
        assert back(x * 3.0) == pytest.approx(back(x))  # unit-normalised input, as LAION trained it
    from safetensors.numpy import load_file

    assert sorted(load_file(str(tmp_path / "mlp.safetensors"))) == sorted(
        f"layers.{i}.{p}" for i in (0, 2, 4, 6, 7) for p in ("weight", "bias"))  # LAION's names
    with pytest.raises(ModelLoadError, match="file holds a linear head"):
        AestheticHead.from_safetensors(tmp_path / "linear.safetensors", "mlp")
    with pytest.raises(InvalidArgumentError):
        random_head(48)(np.zeros((2, 32)))


def test_laion_pth_converts_to_safetensors(tmp_path):
    torch = pytest.importorskip("torch")
    from genart.rank.aesthetic import main

    layers = torch.nn.Sequential(torch.nn.Linear(32, 1024), torch.nn.Dropout(0.2), torch.nn.Linear(1024, 128),
                                 torch.nn.Dropout(0.2), torch.nn.Linear(128, 64), torch.nn.Dropout(0.1),
                                 torch.nn.Linear(64, 16), torch.nn.Linear(16, 1)).eval()
    torch.save({f"layers.{k}": v for k, v in layers.state_dict().items()}, tmp_path / "laion.pth")
    assert main(["convert", str(tmp_path / "laion.pth"), str(tmp_path / "out.safetensors")]) == 0
    head = AestheticHead.from_safetensors(tmp_path / "out.safetensors", "mlp")
    x = torch.nn.functional.normalize(torch.randn(4, 32), dim=-1)
    with torch.no_grad():
        want = layers(x).numpy()[:, 0]
    np.testing.assert_allclose(head(x.numpy()), want, atol=1e-4)


def test_a_preset_naming_absent_aesthetic_weights_fails_with_how_to_get_them(tmp_path, monkeypatch):
    monkeypatch.setenv("GENART_CACHE", str(tmp_path))
    turbo = load_models_config().preset("turbo")
    with pytest.raises(ModelLoadError) as err:
        load_aesthetic(turbo, 512)
    msg = str(err.value)
    assert "sa_0_4_vit_b_32_linear.safetensors" in msg and str(tmp_path) in msg
    assert "python -m genart.rank.aesthetic convert" in msg and "LAION-AI/aesthetic-predictor" in msg
    # once the converted file is there it loads; a head for another CLIP size is refused
    random_head(512, "linear").to_safetensors(tmp_path / "weights" / "aesthetic" / "sa_0_4_vit_b_32_linear.safetensors")
    assert load_aesthetic(turbo, 512).kind == "linear"
    with pytest.raises(ConfigError, match="768"):
        load_aesthetic(turbo, 768)
    assert load_aesthetic(load_models_config().preset("classic"), 512) is None
    # a random ("tiny") head only where the preset says random_weights
    tiny = load_models_config().preset("tiny")
    assert load_aesthetic(tiny, 32).in_dim == 32
    with pytest.raises(ConfigError, match="random_weights"):
        load_aesthetic(tiny.model_copy(update={"random_weights": False}), 32)


def test_models_yaml_refuses_pickled_aesthetic_weights():
    from genart.config import parse_models_yaml

    text = """
default_preset: x
presets:
  x:
    kind: classic
    ranker:
      method: features
      aesthetic: {weights: head.pth}
"""
    with pytest.raises(ConfigError, match="ranker.aesthetic"):
        parse_models_yaml(text)


# --- legibility -----------------------------------------------------------------------------------------
def test_legibility_prefers_crisp_contrasty_pictures_at_thumbnail_size():
    for name in ("astronaut.png", "camera.png", "coffee.png"):
        im = _photo(name, 640)
        sharp = legibility(np.asarray(im))
        blurred = legibility(np.asarray(im.filter(ImageFilter.GaussianBlur(6))))
        flat = legibility((np.asarray(im) * 0.25 + 96).astype(np.uint8))
        assert sharp > blurred and sharp > flat + 0.2, (name, sharp, blurred, flat)
        assert 0.0 <= flat < sharp <= 1.0


# --- any image, through the public API ------------------------------------------------------------------
@pytest.mark.slow
def test_rank_variants_scores_an_existing_thumbnail_beside_others(tmp_path):
    from genart.api import rank_variants, variant_from_image

    paths = [MEDIA_IMAGES / n for n in PHOTOS[:4]]
    need_media(*paths)
    thumb = variant_from_image(paths[0])
    assert thumb.image is not None and thumb.path == paths[0] and thumb.profile_id == ""
    assert variant_from_image(paths[0]).id == thumb.id  # stable
    others = [variant_from_image(p, profile_id="romance", source=p) for p in paths[1:]]
    result = rank_variants([thumb] + others, ["romance", "drama"], preset="classic", top_k=2, out=tmp_path)
    assert [r.rank for r in result["romance"]] == [1, 2]
    assert len(result["drama"]) == 1  # only the thumbnail is for every profile
    for r in result["romance"] + result["drama"]:
        assert {"affinity", "fidelity", "quality", "legibility", "nsfw", "safety"} <= set(r.scores)
        assert r.scores["fidelity"] == pytest.approx(1.0, abs=1e-6)  # its own source
        assert r.rejected is None
    from genart.errors import SourceNotFoundError

    with pytest.raises(SourceNotFoundError):
        variant_from_image(tmp_path / "nope.png")
    with pytest.raises(InvalidArgumentError):
        rank_variants([thumb], ["romance"], preset="classic", top_k=0)
