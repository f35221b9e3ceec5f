"""Contract suites. Subclass one in a test module, provide the factory methods, and pytest runs the
whole contract against your implementation.

    class TestMyScorer(ScorerContract):
        def make_scorer(self): return MyScorer()
        def make_variants(self): return [...]
        def make_profile(self): return ...
"""

from __future__ import annotations

import math

import numpy as np


class ScorerContract:
    """Every scorer: named, finite, deterministic, batch-invariant, one ScoreSet per variant."""

    atol = 1e-5

    def make_scorer(self):  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def make_variants(self):  # pragma: no cover
        raise NotImplementedError

    def make_profile(self):  # pragma: no cover
        raise NotImplementedError

    def test_one_named_scoreset_per_variant(self):
        scorer, variants = self.make_scorer(), self.make_variants()
        out = scorer.score(variants, self.make_profile())
        assert len(out) == len(variants)
        assert scorer.names, "a scorer must name its scores"
        for s in out:
            assert tuple(s) == tuple(scorer.names)

    def test_finite(self):
        scorer = self.make_scorer()
        for s in scorer.score(self.make_variants(), self.make_profile()):
            assert all(math.isfinite(v) for _, v in s.items), s

    def test_deterministic(self):
        profile, variants = self.make_profile(), self.make_variants()
        a = self.make_scorer().score(variants, profile)
        b = self.make_scorer().score(variants, profile)
        for x, y in zip(a, b):
            np.testing.assert_allclose([v for _, v in x.items], [v for _, v in y.items], atol=self.atol)

    def test_batch_invariant(self):
        scorer, profile, variants = self.make_scorer(), self.make_profile(), self.make_variants()
        together = scorer.score(variants, profile)
        alone = [self.make_scorer().score([v], profile)[0] for v in variants]
        for x, y in zip(together, alone):
            np.testing.assert_allclose([v for _, v in x.items], [v for _, v in y.items], atol=self.atol)

    def test_scores_differ_between_different_images(self):
        scorer, variants = self.make_scorer(), self.make_variants()
        out = scorer.score(variants, self.make_profile())
        rows = {tuple(round(v, 6) for _, v in s.items) for s in out}
        assert len(rows) > 1, "a scorer that gives every image the same scores ranks nothing"


class EmbedderContract:
    """Every embedder: unit float32 vectors, deterministic, batch-invariant, one per input."""

    atol = 1e-5

    def make_embedder(self):  # pragma: no cover - provided by subclasses
        raise NotImplementedError

    def make_images(self):  # pragma: no cover
        raise NotImplementedError

    def test_unit_vectors_one_per_image(self):
        emb, images = self.make_embedder(), self.make_images()
        x = emb.embed_images(images)
        assert x.shape[0] == len(images) and x.dtype == np.float32
        np.testing.assert_allclose(np.linalg.norm(x, axis=1), 1.0, atol=1e-4)
        assert emb.embed_images([]).shape[0] == 0

    def test_deterministic_and_batch_invariant(self):
        images = self.make_images()
        a = self.make_embedder().embed_images(images)
        b = self.make_embedder().embed_images(images, batch_size=1)
        np.testing.assert_allclose(a, b, atol=self.atol)
        alone = self.make_embedder().embed_images(images[-1:])
        np.testing.assert_allclose(alone[0], a[-1], atol=self.atol)

    def test_fingerprint_names_the_model(self):
        assert isinstance(self.make_embedder().fingerprint, str) and self.make_embedder().fingerprint

    def test_different_images_give_different_vectors(self):
        """``make_images`` gives pictures that differ: an embedder that maps two of them to one vector
        (a constant, a collapsed model) would pass every check above and tell nothing apart."""
        x = self.make_embedder().embed_images(self.make_images())
        for i in range(len(x)):
            for j in range(i + 1, len(x)):
                assert np.abs(x[i] - x[j]).max() > 10 * self.atol, f"images {i} and {j} got the same vector"
