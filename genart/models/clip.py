"""The open_clip model as an embedder: images and texts to unit vectors in one space.

A loaded model, not a score: it lives with the other loaded models (``genart.models.load_clip`` builds
it), and the rank stage's CLIP scores (``genart.rank.clip``) use it. torch is imported inside its
methods, so importing this module stays cheap.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
from PIL import Image

from genart.errors import InvalidArgumentError, ModelLoadError


def unit_rows(x: np.ndarray) -> np.ndarray:
    """``x`` with each row scaled to length 1 (float32; a zero row stays zero): cosines become dot products."""
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
        return unit_rows(np.concatenate(out, axis=0))

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
        return unit_rows(np.concatenate(out, axis=0))

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
        return unit_rows(np.concatenate(out, axis=0))


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
