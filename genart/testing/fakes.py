"""Torch-free fakes that behave like the real components: deterministic, content-dependent, fast.

``FakeEmbedder`` has the ``ClipEmbedder`` interface. Its image embedding is a fixed random projection
of a small colour thumbnail, so similar pictures embed close together and a picture's embedding does
not depend on what else is in the batch; its text embedding is a hashed bag of words in the same space.
"""

from __future__ import annotations

import hashlib
from typing import Sequence

import numpy as np

from genart.imaging import to_array
from genart.types import ScoreSet


class FakeEmbedder:
    fingerprint = "fake-embedder-v1"

    def __init__(self, dim: int = 64, thumb: int = 8) -> None:
        self.dim = dim
        self.thumb = thumb
        rng = np.random.default_rng(1234)
        self._proj = rng.standard_normal((thumb * thumb * 3, dim)).astype(np.float32)
        self.image_calls = 0
        self.text_calls = 0

    @staticmethod
    def _normalise(x: np.ndarray) -> np.ndarray:
        return (x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-8)).astype(np.float32)

    def embed_images(self, images: Sequence, batch_size: int = 32) -> np.ndarray:
        import cv2

        self.image_calls += 1
        rows = []
        for img in images:
            small = cv2.resize(to_array(img), (self.thumb, self.thumb), interpolation=cv2.INTER_AREA)
            vec = small.astype(np.float32).reshape(-1) / 255.0 - 0.5
            rows.append(vec @ self._proj)
        return self._normalise(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        self.text_calls += 1
        rows = []
        for text in texts:
            vec = np.zeros(self.dim, np.float32)
            for word in text.lower().split():
                h = int(hashlib.sha256(word.encode()).hexdigest()[:8], 16)
                vec[h % self.dim] += 1.0 if (h >> 8) % 2 else -1.0
            rows.append(vec if vec.any() else np.ones(self.dim, np.float32))
        return self._normalise(np.stack(rows)) if rows else np.zeros((0, self.dim), np.float32)


class FixedScorer:
    """A scorer that returns scores set by the test, by variant id: for testing the combination alone."""

    def __init__(self, table: dict[str, dict[str, float]]) -> None:
        self.table = table
        self.names = tuple(sorted({n for s in table.values() for n in s}))

    def score(self, variants, profile):
        return [ScoreSet.of({n: self.table[v.id][n] for n in self.names}) for v in variants]


class MemoryEmbeddingCache:
    """An in-memory ``EmbeddingCache`` (the store's is ``genart.store.embedding_tables.StoreEmbeddingCache``)."""

    def __init__(self) -> None:
        self.rows: dict[tuple[str, str], np.ndarray] = {}
        self.gets = 0
        self.puts = 0

    def get_many(self, fingerprint, keys):
        self.gets += 1
        return {k: self.rows[(fingerprint, k)] for k in keys if (fingerprint, k) in self.rows}

    def put_many(self, fingerprint, items):
        self.puts += 1
        for k, v in items.items():
            self.rows[(fingerprint, k)] = np.asarray(v, np.float32)
