"""CLIP embeddings and the two CLIP scores: affinity to a profile's anchors, fidelity to the key frame.

``ClipEmbedder`` (an open_clip model, eval mode, its own preprocess and tokenizer) is a loaded model:
it lives in ``genart.models.clip`` and is re-exported here. ``ClipScorer`` needs only numpy: it takes any object with
``fingerprint`` / ``embed_images`` / ``embed_texts`` (the torch-free fake in ``genart.testing`` too).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image

from genart.models.clip import ClipEmbedder, unit_rows
from genart.rank.registry import ScorerContext, fidelity_check, register_scorer
from genart.types import KeyFrame, ScoreSet, TasteProfile, Variant
from genart.imaging import pixels_of
from genart.rank.features import untitled_view

__all__ = ["ClipEmbedder", "ClipScorer", "Embedder", "unit_rows"]


class Embedder(Protocol):
    fingerprint: str

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def _open_image(image: "Image.Image | None", path: Path | None, what: str, ident: str) -> Image.Image:
    return pixels_of(image, path, what, ident)  # one loader, one error family (ImageReadError)


class ClipScorer:
    """``affinity`` and ``fidelity`` for variants, from any embedder.

    - affinity: mean cosine to the profile's positive anchors minus mean cosine to its negative ones
      (a side without anchors counts 0). Anchors are encoded once per profile version.
    - fidelity: cosine between a variant and its source key frame; a key frame is embedded once. A
      titled variant (``params.title_box``) is compared with its title plate replaced by the frame's own
      pixels there (one more forward for it), so the title never reads as misrepresentation.
    """

    names = ("affinity", "fidelity")

    def __init__(self, embedder: Embedder, cache_size: int = 4096) -> None:
        self.embedder = embedder
        self.cache_size = cache_size
        self._anchors: OrderedDict[tuple[str, str, str], tuple[np.ndarray, np.ndarray]] = OrderedDict()
        self._frames: OrderedDict[str, np.ndarray] = OrderedDict()

    def _remember(self, cache: OrderedDict, key: Any, value: Any) -> None:
        cache[key] = value
        cache.move_to_end(key)
        while len(cache) > self.cache_size:
            cache.popitem(last=False)

    def anchor_embeddings(self, profile: TasteProfile) -> tuple[np.ndarray, np.ndarray]:
        """(positive, negative) anchor embeddings, cached per (profile, version)."""
        key = (profile.id, profile.version, self.embedder.fingerprint)
        hit = self._anchors.get(key)
        if hit is None:
            pos = list(profile.anchors_positive)
            neg = list(profile.anchors_negative)
            both = self.embedder.embed_texts(pos + neg) if pos or neg else np.zeros((0, 0), np.float32)
            hit = (both[: len(pos)], both[len(pos) :])
            self._remember(self._anchors, key, hit)
        return hit

    def keyframe_embeddings(self, keyframes: Sequence[KeyFrame]) -> np.ndarray:
        """(N, D) embeddings of key frames, each computed once per key frame id."""
        todo: dict[str, KeyFrame] = {}
        for kf in keyframes:
            if kf.id not in self._frames and kf.id not in todo:
                todo[kf.id] = kf
        if todo:
            images = [_open_image(kf.image, kf.path, "keyframe", kf.id) for kf in todo.values()]
            embs = self.embedder.embed_images(images)
            for kid, emb in zip(todo, embs, strict=True):
                self._remember(self._frames, kid, np.asarray(emb, dtype=np.float32))
        rows = []
        for kf in keyframes:
            emb = self._frames[kf.id]
            self._frames.move_to_end(kf.id)
            rows.append(emb)
        return np.stack(rows) if rows else np.zeros((0, 0), np.float32)

    @staticmethod
    def _untitled(variant: Variant, image: Image.Image) -> Image.Image:
        """The variant with its title plate replaced by the key frame's pixels there (``features.untitled_view``)."""

        kf = variant.keyframe
        source = np.asarray(_open_image(kf.image, kf.path, "keyframe", kf.id).convert("RGB"))
        view = untitled_view(np.asarray(image.convert("RGB")), source, variant)
        return Image.fromarray(view) if view is not None else image

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        if len(variants) == 0:
            return []
        pos, neg = self.anchor_embeddings(profile)
        images = [_open_image(v.image, v.path, "variant", v.id) for v in variants]
        # key frames not embedded yet go through the model in the same batch as the variants
        todo: dict[str, KeyFrame] = {}
        for v in variants:
            if v.keyframe.id not in self._frames and v.keyframe.id not in todo:
                todo[v.keyframe.id] = v.keyframe
        kf_images = [_open_image(kf.image, kf.path, "keyframe", kf.id) for kf in todo.values()]
        titled = [i for i, v in enumerate(variants) if v.params.title_box is not None]
        views = [self._untitled(variants[i], images[i]) for i in titled]
        both = self.embedder.embed_images(images + kf_images + views)
        for kid, e in zip(todo, both[len(images) : len(images) + len(kf_images)], strict=True):
            self._remember(self._frames, kid, np.asarray(e, dtype=np.float32))
        emb = unit_rows(both[: len(images)])
        # fidelity on what genart did not add: a titled variant is compared without its title plate
        shown = emb.copy()
        if titled:
            shown[titled] = unit_rows(both[len(images) + len(kf_images) :])
        frames = unit_rows(self.keyframe_embeddings([v.keyframe for v in variants]))
        pos_sim = (emb @ unit_rows(pos).T).mean(axis=1) if len(pos) else np.zeros(len(variants))
        neg_sim = (emb @ unit_rows(neg).T).mean(axis=1) if len(neg) else np.zeros(len(variants))
        affinity = pos_sim - neg_sim
        fidelity = np.einsum("nd,nd->n", shown.astype(np.float64), frames.astype(np.float64))
        return [ScoreSet.of({"affinity": float(a), "fidelity": float(np.clip(f, -1.0, 1.0))})
                for a, f in zip(affinity, fidelity, strict=True)]


@register_scorer("clip", checks=lambda spec: (fidelity_check(
    "CLIP cosine of the variant with its source frame (title plate replaced by the frame)",
    spec.ranker.fidelity_threshold),))
def _clip_scorer(ctx: ScorerContext) -> ClipScorer:
    """``affinity`` and ``fidelity`` on the preset's shared CLIP embedder."""
    return ClipScorer(ctx.embedder())
