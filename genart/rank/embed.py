"""Embeddings computed once: by image content hash and model fingerprint, in memory and in the store.

``CachingEmbedder`` wraps any embedder (``ClipEmbedder``, ``FakeEmbedder``) with the same interface.
Every scorer of a preset (affinity, fidelity, aesthetic, zero-shot safety) and the diversity step share
one, so an image goes through the vision tower once per model, however many scores need it, and a
second run over the same pictures reads the vectors back from the store instead of recomputing them.

The persistent side is any ``EmbeddingCache`` (``genart.store.embedding_tables.StoreEmbeddingCache``
in the pipeline): the rank stage never imports the store.
"""

from __future__ import annotations

import hashlib
import threading
import weakref
from collections import OrderedDict
from typing import TYPE_CHECKING, Mapping, Protocol, Sequence

import numpy as np
from PIL import Image

from genart.errors import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    from genart.rank.clip import Embedder


class EmbeddingCache(Protocol):
    """Where embeddings outlive the process: vectors by (model fingerprint, image key)."""

    def get_many(self, fingerprint: str, keys: Sequence[str]) -> dict[str, np.ndarray]: ...

    def put_many(self, fingerprint: str, items: Mapping[str, np.ndarray]) -> None: ...


def image_key(image: Image.Image) -> str:
    """sha256 of the decoded RGB pixels and size: the same picture gets the same key whether it came
    as a PNG, a JPEG re-read or pixels in memory (PNG metadata does not change it)."""
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    h = hashlib.sha256(f"{rgb.width}x{rgb.height}:".encode())
    h.update(rgb.tobytes())
    return h.hexdigest()


class CachingEmbedder:
    """An embedder that remembers: images by pixel hash, texts by their string, per model fingerprint.

    Args:
        inner: the embedder that computes (has ``fingerprint``, ``embed_images``, ``embed_texts``).
        persistent: an ``EmbeddingCache`` (the store); None keeps vectors in memory only.
        memory: how many image vectors to keep in memory (least recently used go first).
        batch_size: images per forward pass for the misses.

    ``computed_images`` / ``computed_texts`` count what actually went through the model.
    """

    def __init__(self, inner: Embedder, persistent: EmbeddingCache | None = None, *, memory: int = 8192,
                 batch_size: int = 32) -> None:
        if batch_size < 1:
            raise InvalidArgumentError("batch_size", batch_size, "an integer >= 1")
        self.inner = inner
        self.persistent = persistent
        self.fingerprint = str(inner.fingerprint)
        self.dim = int(getattr(inner, "dim", 0) or 0)
        self.memory = memory
        self.batch_size = batch_size
        self._images: OrderedDict[str, np.ndarray] = OrderedDict()
        self._texts: OrderedDict[str, np.ndarray] = OrderedDict()
        self.computed_images = 0
        self.computed_texts = 0
        # pixel hashes by image object: every scorer asks for the same PIL images in one ranking, and
        # hashing a 512 px picture costs about as much as the tiny model's forward (images are treated
        # as immutable once they are in a Variant, as everywhere in genart)
        self._keys: dict[int, tuple[weakref.ref, str]] = {}
        # the batch job embeds finished images on its decode thread (``embed_tensors``) while its write
        # thread scores earlier ones: one at a time through the caches and the model
        self._lock = threading.RLock()

    def _key(self, image: Image.Image) -> str:
        hit = self._keys.get(id(image))
        if hit is not None and hit[0]() is image:
            return hit[1]
        key = image_key(image)
        if len(self._keys) > 4 * self.memory:
            self._keys = {i: v for i, v in self._keys.items() if v[0]() is not None}
        try:
            self._keys[id(image)] = (weakref.ref(image), key)
        except TypeError:  # an image type without weak references: just do not memoise
            pass
        return key

    def _keep(self, cache: OrderedDict, key: str, value: np.ndarray) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.memory:
            cache.popitem(last=False)

    def embed_tensors(self, pixels: Sequence[object], images: Sequence[Image.Image]) -> np.ndarray:
        """``embed_images(images)``, computed from ``pixels`` (the same pictures as (3, H, W) uint8
        tensors, on the accelerator) by the inner embedder's ``embed_tensors``: the vectors are then
        remembered under the images' pixel hashes, so the scorers that later ask for ``images`` get
        them without a PIL preprocessing or a second pass through the model. An inner embedder without
        ``embed_tensors`` embeds the images.

        Raises:
            InvalidArgumentError: ``pixels`` and ``images`` differ in length.
        """
        if len(pixels) != len(images):
            raise InvalidArgumentError("pixels", len(pixels), f"one tensor per image ({len(images)})")
        inner = getattr(self.inner, "embed_tensors", None)
        if inner is None:
            return self.embed_images(images)
        with self._lock:
            keys = [self._key(im) for im in images]
            todo = {k: i for i, k in reversed(list(enumerate(keys))) if k not in self._images}
            if todo:
                vecs = np.asarray(inner([pixels[i] for i in todo.values()], batch_size=self.batch_size), np.float32)
                self.computed_images += len(todo)
                new = dict(zip(todo, vecs))
                for k, v in new.items():
                    self._keep(self._images, k, v)
                if self.persistent is not None:
                    self.persistent.put_many(self.fingerprint, new)
        return self.embed_images(images)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int | None = None) -> np.ndarray:
        """(N, D) float32 unit vectors; only images never seen by this model are computed, in batches."""
        with self._lock:
            return self._embed_images(images, batch_size)

    def _embed_images(self, images: Sequence[Image.Image], batch_size: int | None) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), np.float32)
        keys = [self._key(im) for im in images]
        found: dict[str, np.ndarray] = {}
        for k in keys:
            v = self._images.get(k)
            if v is not None:
                found[k] = v
                self._images.move_to_end(k)
        missing = list(dict.fromkeys(k for k in keys if k not in found))
        if missing and self.persistent is not None:
            for k, v in self.persistent.get_many(self.fingerprint, missing).items():
                found[k] = np.asarray(v, np.float32)
                self._keep(self._images, k, found[k])
            missing = [k for k in missing if k not in found]
        if missing:
            first: dict[str, Image.Image] = {}
            for k, im in zip(keys, images):
                first.setdefault(k, im)
            vecs = np.asarray(self.inner.embed_images([first[k] for k in missing],
                                                      batch_size=batch_size or self.batch_size), np.float32)
            self.computed_images += len(missing)
            new = dict(zip(missing, vecs))
            for k, v in new.items():
                found[k] = v
                self._keep(self._images, k, v)
            if self.persistent is not None:
                self.persistent.put_many(self.fingerprint, new)
        out = np.stack([found[k] for k in keys]).astype(np.float32)
        if not self.dim:
            self.dim = out.shape[1]
        return out

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """(N, D) float32 unit vectors; each distinct text is encoded once per process."""
        with self._lock:
            return self._embed_texts(texts)

    def _embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), np.float32)
        missing = list(dict.fromkeys(t for t in texts if t not in self._texts))
        if missing:
            vecs = np.asarray(self.inner.embed_texts(missing), np.float32)
            self.computed_texts += len(missing)
            for t, v in zip(missing, vecs):
                self._keep(self._texts, t, v)
        out = np.stack([self._texts[t] for t in texts]).astype(np.float32)
        if not self.dim:
            self.dim = out.shape[1]
        return out
