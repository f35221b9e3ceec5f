"""CLIP embeddings and the two CLIP scores: affinity to a profile's anchors, fidelity to the key frame.

``ClipEmbedder`` wraps an open_clip model (eval mode, its own preprocess and tokenizer); torch is
imported inside its methods. ``ClipScorer`` needs only numpy: it takes any object with
``fingerprint`` / ``embed_images`` / ``embed_texts`` (the torch-free fake in ``genart.testing`` too).
"""

from __future__ import annotations

from collections import OrderedDict
from pathlib import Path
from typing import Any, Protocol, Sequence

import numpy as np
from PIL import Image

from genart.errors import InvalidArgumentError, ModelLoadError
from genart.types import KeyFrame, ScoreSet, TasteProfile, Variant


class Embedder(Protocol):
    fingerprint: str

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...


def _l2(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x.astype(np.float64), axis=-1, keepdims=True)
    return (x / np.maximum(norms, 1e-12)).astype(np.float32)


class ClipEmbedder:
    """An open_clip model that turns images and texts into unit vectors in one space.

    Build it with ``genart.models.load_clip(preset)`` (cached per process) or ``from_open_clip``.
    """

    def __init__(self, model: Any, preprocess: Any, tokenizer: Any, *, device: Any, fingerprint: str) -> None:
        self.model = model.eval()
        self.preprocess = preprocess
        self.tokenizer = tokenizer
        self.device = device
        self.fingerprint = fingerprint
        visual = getattr(model, "visual", None)
        self.dim = int(getattr(visual, "output_dim", 0) or 0)
        # image-image cosines of trained CLIP: unrelated photographs about 0.4-0.6, crops and grades of one
        # frame 0.85-0.95, near-duplicates above 0.95
        self.similarity_levels = (0.6, 0.95)

    @classmethod
    def from_open_clip(cls, model_name: str, weights: Path | str, *, device: Any = "cpu", fingerprint: str = "",
                       model_id: str | None = None, how: str = "") -> "ClipEmbedder":
        """``open_clip.create_model_and_transforms(model_name, pretrained=weights)`` on ``device``.

        Raises:
            ModelLoadError: the architecture is unknown or the weights do not fit it.
        """
        import open_clip

        try:
            model, _, preprocess = open_clip.create_model_and_transforms(
                model_name, pretrained=str(weights), device=device, precision="fp32")
            tokenizer = open_clip.get_tokenizer(model_name)
        except Exception as exc:  # unknown architecture, mismatched state dict, unreadable file
            raise ModelLoadError(model_id or model_name, looked=[str(weights)],
                                 detail=f"could not load: {type(exc).__name__}: {exc}", how=how) from exc
        return cls(model, preprocess, tokenizer, device=device, fingerprint=fingerprint or f"{model_name}@{weights}")

    def _empty(self) -> np.ndarray:
        return np.zeros((0, self.dim), dtype=np.float32)

    def embed_images(self, images: Sequence[Image.Image], batch_size: int = 32) -> np.ndarray:
        """(N, D) float32 unit vectors, computed ``batch_size`` images at a time."""
        import torch

        if batch_size < 1:
            raise InvalidArgumentError("batch_size", batch_size, "an integer >= 1")
        if len(images) == 0:
            return self._empty()
        out = []
        with torch.inference_mode():
            for start in range(0, len(images), batch_size):
                chunk = images[start : start + batch_size]
                x = torch.stack([self.preprocess(im.convert("RGB")) for im in chunk]).to(self.device)
                feats = self.model.encode_image(x)
                out.append(feats.float().cpu().numpy())
        return _l2(np.concatenate(out, axis=0))

    def embed_tensors(self, pixels: Sequence[Any], batch_size: int = 32) -> np.ndarray:
        """(N, D) float32 unit vectors of images given as (3, H, W) uint8 tensors on any device (the
        batch job's finished variants, before they leave the accelerator), preprocessed as tensors by
        the model's own transforms: those before its to-tensor step (resize, centre crop) on the uint8
        pixels, as on a PIL image, then levels / 255 and those after it (normalise). Within float
        rounding of ``embed_images`` of the same pictures (torchvision's tensor resize is Pillow's
        filter), not bit for bit.

        Raises:
            InvalidArgumentError: ``batch_size`` < 1.
            NotImplementedError: the preprocessing has a step that takes only PIL images.
        """
        import torch

        if batch_size < 1:
            raise InvalidArgumentError("batch_size", batch_size, "an integer >= 1")
        if len(pixels) == 0:
            return self._empty()
        before, after = _tensor_transforms(self.preprocess)
        out = []
        with torch.inference_mode():
            for start in range(0, len(pixels), batch_size):
                chunk = []
                for px in pixels[start : start + batch_size]:
                    x = px
                    for t in before:
                        x = t(x)
                    x = x.to(torch.float32) / 255.0
                    for t in after:
                        x = t(x)
                    chunk.append(x)
                feats = self.model.encode_image(torch.stack(chunk).to(self.device))
                out.append(feats.float().cpu().numpy())
        return _l2(np.concatenate(out, axis=0))

    def embed_texts(self, texts: Sequence[str], batch_size: int = 256) -> np.ndarray:
        """(N, D) float32 unit vectors."""
        import torch

        if len(texts) == 0:
            return self._empty()
        out = []
        with torch.inference_mode():
            for start in range(0, len(texts), batch_size):
                tokens = self.tokenizer(list(texts[start : start + batch_size])).to(self.device)
                out.append(self.model.encode_text(tokens).float().cpu().numpy())
        return _l2(np.concatenate(out, axis=0))


def _tensor_transforms(preprocess: Any) -> tuple[list[Any], list[Any]]:
    """An open_clip/torchvision preprocessing split at its to-tensor step: (the steps before it, which
    work on uint8 tensors as on PIL images; the steps after it), the RGB-mode step dropped."""
    steps = list(getattr(preprocess, "transforms", []))
    names = [getattr(t, "__name__", None) or type(t).__name__ for t in steps]  # a function, or a transform
    cut = next((i for i, n in enumerate(names) if "ToTensor" in n), None)
    if cut is None:
        raise NotImplementedError("the CLIP preprocessing has no to-tensor step to split at")
    before = [t for t, n in zip(steps[:cut], names[:cut]) if "ConvertMode" not in n and "convert_to_rgb" not in n]
    for t in before:
        if type(t).__name__ not in ("Resize", "CenterCrop"):
            raise NotImplementedError(f"the CLIP preprocessing step {t!r} takes PIL images only")
    return before, steps[cut + 1:]


def _open_image(image: "Image.Image | None", path: Path | None, what: str, ident: str) -> Image.Image:
    from genart.imaging import pixels_of

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
        from genart.rank.features import untitled_view

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
        emb = _l2(both[: len(images)])
        # fidelity on what genart did not add: a titled variant is compared without its title plate
        shown = emb.copy()
        if titled:
            shown[titled] = _l2(both[len(images) + len(kf_images) :])
        frames = _l2(self.keyframe_embeddings([v.keyframe for v in variants]))
        pos_sim = (emb @ _l2(pos).T).mean(axis=1) if len(pos) else np.zeros(len(variants))
        neg_sim = (emb @ _l2(neg).T).mean(axis=1) if len(neg) else np.zeros(len(variants))
        affinity = pos_sim - neg_sim
        fidelity = np.einsum("nd,nd->n", shown.astype(np.float64), frames.astype(np.float64))
        return [ScoreSet.of({"affinity": float(a), "fidelity": float(np.clip(f, -1.0, 1.0))})
                for a, f in zip(affinity, fidelity, strict=True)]
