"""ClipEmbedder (tiny open_clip, real loader) and ClipScorer (also with a numpy embedder, no torch)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Sequence

import numpy as np
import pytest
from PIL import Image

from genart.config import load_models_config
from genart.rank.base import Scorer
from genart.rank.clip import ClipScorer
from genart.types import GenerationParams, Grade, KeyFrame, ScoreSet, TasteProfile, Variant, VisualTargets

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")




def image(seed: int, w: int = 80, h: int = 60) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8))


def frame(i: int, im: Image.Image | None = None, path: Path | None = None) -> KeyFrame:
    im = image(i) if im is None and path is None else im
    return KeyFrame(id=f"kf{i}", source="s.mp4", t_s=float(i), frame_index=i, shot=0, width=80, height=60,
                    image=im, path=path)


def variant(kf: KeyFrame, n: int, im: Image.Image | None, path: Path | None = None) -> Variant:
    params = GenerationParams(preset="tiny", method="img2img", profile_id="p", profile_version="v1", keyframe_id=kf.id,
                              seed=n, width=80, height=60, aspect="4:3", grade="none")
    return Variant(id=f"{kf.id}-{n}", profile_id="p", keyframe=kf, params=params,
                   digital_source_type="trainedAlgorithmicMedia", image=im, path=path)


def profile(pos: tuple[str, ...] = ("a warm sunset",), neg: tuple[str, ...] = ("a cold night",), version: str = "v1") -> TasteProfile:
    return TasteProfile(id="p", name="P", description="", version=version, prompt="x", negative_prompt="",
                        anchors_positive=pos, anchors_negative=neg, strengths=(), steps=None, guidance=None,
                        targets=VisualTargets(), grade=Grade(), aspects=(), locale="en", weights=ScoreSet())


class PixelEmbedder:
    """A deterministic numpy embedder (mean colour per 2x2 cell; text -> hashed vector), counting calls."""

    fingerprint = "pixels-v1"

    def __init__(self) -> None:
        self.image_calls = 0
        self.text_calls = 0

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        self.image_calls += 1
        rows = [np.asarray(im.convert("RGB").resize((2, 2)), dtype=np.float32).ravel() - 127.5 for im in images]
        x = np.stack(rows)
        return x / np.linalg.norm(x, axis=1, keepdims=True)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        rows = []
        for t in texts:
            seed = int(hashlib.sha256(t.encode()).hexdigest()[:8], 16)
            rows.append(np.random.default_rng(seed).normal(size=12))
        x = np.stack(rows).astype(np.float32)
        return x / np.linalg.norm(x, axis=1, keepdims=True)


# --- ClipScorer arithmetic, no torch -------------------------------------------------------------
def test_scorer_math_and_caches() -> None:
    emb = PixelEmbedder()
    scorer = ClipScorer(emb)
    assert isinstance(scorer, Scorer) and scorer.names == ("affinity", "fidelity")
    kfs = [frame(0), frame(1)]
    vs = [variant(kfs[0], 0, image(10)), variant(kfs[0], 1, kfs[0].image), variant(kfs[1], 0, image(11))]
    prof = profile(pos=("warm", "sunset"), neg=("cold",))
    scores = scorer.score(vs, prof)
    assert [tuple(s) for s in scores] == [("affinity", "fidelity")] * 3
    v = emb.embed_images([x.image for x in vs])
    pos, neg = emb.embed_texts(["warm", "sunset"]), emb.embed_texts(["cold"])
    k = emb.embed_images([kfs[0].image, kfs[0].image, kfs[1].image])
    for i, s in enumerate(scores):
        assert s["affinity"] == pytest.approx(float((v[i] @ pos.T).mean() - (v[i] @ neg.T).mean()), abs=1e-5)
        assert s["fidelity"] == pytest.approx(float(v[i] @ k[i]), abs=1e-5)
    assert scores[1]["fidelity"] == pytest.approx(1.0, abs=1e-6)  # a variant that is its key frame

    emb.image_calls = emb.text_calls = 0
    scorer.score(vs[:1], prof)
    assert emb.text_calls == 0  # anchors cached per profile version
    assert emb.image_calls == 1  # the variant only: key frame embeddings cached by id
    scorer.score(vs[:1], profile(pos=("warm",), neg=("cold",), version="v2"))
    assert emb.text_calls == 1

    # an empty side counts 0; no anchors at all: affinity 0
    only_pos = scorer.score(vs[:1], profile(pos=("warm",), neg=(), version="v3"))[0]
    assert only_pos["affinity"] == pytest.approx(float(v[0] @ emb.embed_texts(["warm"])[0]), abs=1e-5)
    assert scorer.score(vs[:1], profile(pos=(), neg=(), version="v4"))[0]["affinity"] == 0.0
    assert scorer.score([], prof) == []
    # batch invariance: alone equals in the batch
    alone = ClipScorer(PixelEmbedder()).score(vs[2:], prof)[0]
    assert alone["affinity"] == pytest.approx(scores[2]["affinity"], abs=1e-6)
    assert alone["fidelity"] == pytest.approx(scores[2]["fidelity"], abs=1e-6)


def test_scorer_reads_paths(tmp_path: Path) -> None:
    kf_path, v_path = tmp_path / "kf.png", tmp_path / "v.png"
    image(1).save(kf_path)
    image(1).save(v_path)
    kf = frame(1, path=kf_path)
    assert kf.image is None
    s = ClipScorer(PixelEmbedder()).score([variant(kf, 0, None, path=v_path)], profile())[0]
    assert s["fidelity"] == pytest.approx(1.0, abs=1e-6)


# --- the real (tiny) open_clip model -------------------------------------------------------------
@pytest.fixture(scope="module")
def embedder(genart_cache: Path):
    from genart.models import load_clip

    spec = load_models_config().preset("tiny")
    emb = load_clip(spec)
    assert load_clip(spec) is emb
    return emb


@pytest.mark.slow
def test_embeddings_unit_norm_deterministic_batch_invariant(embedder) -> None:
    assert not embedder.model.training
    imgs = [image(i, w=40 + 10 * i, h=50) for i in range(5)]
    a = embedder.embed_images(imgs)
    assert a.shape == (5, 32) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, embedder.embed_images(imgs))
    one_by_one = embedder.embed_images(imgs, batch_size=1)
    assert np.abs(one_by_one - a).max() < 1e-5
    alone = embedder.embed_images(imgs[3:4])
    assert np.abs(alone[0] - a[3]).max() < 1e-5
    assert embedder.embed_images([]).shape == (0, 32)

    t = embedder.embed_texts(["a warm sunset", "a cold night", "a warm sunset"])
    assert t.shape == (3, 32) and t.dtype == np.float32
    assert np.allclose(np.linalg.norm(t, axis=1), 1.0, atol=1e-5)
    assert np.abs(t[0] - t[2]).max() < 1e-6 and np.abs(t[0] - t[1]).max() > 1e-3
    assert embedder.embed_texts([]).shape == (0, 32)


@pytest.mark.slow
def test_clip_scorer_with_tiny_clip(embedder) -> None:
    scorer = ClipScorer(embedder)
    kfs = [frame(0), frame(1)]
    vs = [variant(kfs[0], 0, kfs[0].image), variant(kfs[0], 1, image(20)), variant(kfs[1], 0, image(21))]
    scores = scorer.score(vs, profile())
    for s in scores:
        assert tuple(s) == ("affinity", "fidelity")
        assert all(np.isfinite(s[name]) for name in s)
        assert -2.0 <= s["affinity"] <= 2.0 and -1.0 <= s["fidelity"] <= 1.0
    assert scores[0]["fidelity"] == pytest.approx(1.0, abs=1e-4)
    again = ClipScorer(embedder).score(vs[1:2], profile())[0]
    assert again["affinity"] == pytest.approx(scores[1]["affinity"], abs=1e-5)
    assert again["fidelity"] == pytest.approx(scores[1]["fidelity"], abs=1e-5)


# --- the tiny CLIP stack: every CLIP-based scorer, the embedding cache in the store -------------------
def _tiny_variants():
    kfs = [frame(0), frame(1)]
    return [variant(kfs[0], 0, kfs[0].image), variant(kfs[0], 1, image(20)), variant(kfs[1], 0, image(21)),
            variant(kfs[1], 1, image(22))]


def _tiny_cached():
    from genart.models import load_clip
    from genart.rank.embed import CachingEmbedder

    return CachingEmbedder(load_clip(load_models_config().preset("tiny")))


from genart.testing.contracts import EmbedderContract, ScorerContract  # noqa: E402


def _photos() -> list[Image.Image]:
    """Four real photographs at different sizes and aspects, so the model's own resize and centre crop
    run as they do on key frames."""
    from tests.media import MEDIA, need_media

    out = []
    for name, width in (("astronaut.png", 96), ("coffee.png", 160), ("chelsea.png", 120), ("rocket.jpg", 64)):
        need_media(MEDIA / "images" / name)
        with Image.open(MEDIA / "images" / name) as im:
            im = im.convert("RGB")
        out.append(im.resize((width, max(1, int(width * im.height / im.width)))))
    return out


@pytest.mark.slow
@pytest.mark.usefixtures("genart_cache")
class TestTinyClipEmbedderContract(EmbedderContract):
    """The real ClipEmbedder the ranking uses (open_clip's classes at toy size, random weights, loaded
    by ``load_clip`` from the tiny preset's weights file): random weights still give one unit vector
    per picture, the same one in any batch, and different pictures different vectors."""

    def make_embedder(self):
        from genart.models import load_clip

        return load_clip(load_models_config().preset("tiny"))

    def make_images(self):
        return _photos()


@pytest.mark.slow
@pytest.mark.usefixtures("genart_cache")
class TestTinyCachingClipEmbedderContract(EmbedderContract):
    """The cache the ranking wraps around it changes nothing of that (a fresh cache per embedder, so
    the batch checks go through the model, not through vectors the cache remembers)."""

    def make_embedder(self):
        return _tiny_cached()

    def make_images(self):
        return _photos()


@pytest.mark.slow
class TestTinyAestheticContract(ScorerContract):
    def make_scorer(self):
        from genart.rank.aesthetic import AestheticScorer, load_aesthetic

        emb = _tiny_cached()
        return AestheticScorer(emb, load_aesthetic(load_models_config().preset("tiny"), emb.inner.dim))

    def make_variants(self):
        return _tiny_variants()

    def make_profile(self):
        return profile()


@pytest.mark.slow
class TestTinyZeroShotSafetyContract(ScorerContract):
    def make_scorer(self):
        from genart.rank.safety import SafetyScorer

        return SafetyScorer(_tiny_cached(), nsfw=False)

    def make_variants(self):
        return _tiny_variants()

    def make_profile(self):
        return profile()


@pytest.mark.slow
def test_tiny_rankers_embed_each_image_once_and_cache_in_the_store(tmp_path) -> None:
    from genart.pipeline import load_rankers
    from genart.rank.combine import rank_for_profile
    from genart.store.db import Store

    spec = load_models_config().preset("tiny")
    scorers, options = load_rankers(spec, Store(tmp_path))
    names = [n for s in scorers for n in s.names]
    assert names == ["affinity", "fidelity", "aesthetic", "quality", "legibility", "nsfw", "gore", "weapons", "safety"]
    vs = _tiny_variants()
    rows = rank_for_profile(vs, profile(), scorers, fidelity_threshold=spec.ranker.fidelity_threshold, options=options)
    emb = options.diversity
    assert emb.computed_images == 5  # 4 variants + 1 other key frame (variant 0 is its key frame's pixels)
    assert all(r.rejected is None for r in rows)  # tiny: random CLIP gates nothing; Open-NSFW rates noise safe
    again_scorers, again = load_rankers(spec, Store(tmp_path))
    rows2 = rank_for_profile(vs, profile(), again_scorers, fidelity_threshold=-1.0, options=again)
    assert again.diversity.computed_images == 0  # read back from the store
    by_id = {r.variant.id: r for r in rows}
    for r in rows2:
        np.testing.assert_allclose([v for _, v in r.scores.items], [v for _, v in by_id[r.variant.id].scores.items],
                                   atol=1e-6)
