"""The LAION aesthetic predictor's head: affine layers on the CLIP image embedding, and its weights.

A loaded model, like the CLIP it sits on: ``genart.models.load_aesthetic`` finds (or, for ``builder:
tiny``, builds) the preset's head through its model source (``genart.models.sources``) and caches it
per process. The
score made from it is ``genart.rank.aesthetic.AestheticScorer``.

Two published designs, both plain affine layers applied to the L2-normalised CLIP image embedding
(the "MLP" has dropout but no activations between its layers, exactly as LAION trained it):

- linear: ``D -> 1`` (LAION-AI/aesthetic-predictor, ``sa_0_4_vit_b_32_linear.pth`` for ViT-B-32,
  ``sa_0_4_vit_l_14_linear.pth`` for ViT-L-14);
- mlp: ``D -> 1024 -> 128 -> 64 -> 16 -> 1`` (christophschuhmann/improved-aesthetic-predictor,
  ``sac+logos+ava1-l14-linearMSE.pth`` for ViT-L-14).

Weights load from ``.safetensors`` only (numpy, no torch, never unpickled at run time); ``convert``
turns LAION's ``.pth`` into one (``python -m genart.rank.aesthetic convert SRC DST``).
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from genart.errors import InvalidArgumentError, ModelLoadError
from genart.config import cache_dir

if TYPE_CHECKING:  # pragma: no cover
    from genart.config import AestheticSpec

MLP_WIDTHS = (1024, 128, 64, 16, 1)


class AestheticHead:
    """A chain of affine layers ``[(W, b), ...]`` (W: out x in), applied to unit CLIP embeddings."""

    def __init__(self, layers: Sequence[tuple[np.ndarray, np.ndarray]], source: str = "") -> None:
        if not layers:
            raise InvalidArgumentError("layers", layers, "at least one (weight, bias) pair")
        prev = None
        for w, b in layers:
            if w.ndim != 2 or b.shape != (w.shape[0],) or (prev is not None and w.shape[1] != prev):
                raise InvalidArgumentError("layers", [x.shape for x, _ in layers], "chained (out, in) weights with (out,) biases")
            prev = w.shape[0]
        if prev != 1:
            raise InvalidArgumentError("layers", [x.shape for x, _ in layers], "a chain ending in one output")
        self.layers = [(np.asarray(w, np.float64), np.asarray(b, np.float64)) for w, b in layers]
        self.source = source

    @property
    def in_dim(self) -> int:
        return int(self.layers[0][0].shape[1])

    @property
    def kind(self) -> str:
        return "linear" if len(self.layers) == 1 else "mlp"

    def __call__(self, embeddings: np.ndarray) -> np.ndarray:
        """(N,) LAION ratings (about 1-10 for trained weights) of (N, D) embeddings."""
        x = np.asarray(embeddings, np.float64)
        if x.ndim != 2 or x.shape[1] != self.in_dim:
            raise InvalidArgumentError("embeddings", x.shape, f"(N, {self.in_dim}) CLIP image embeddings")
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
        for w, b in self.layers:
            x = x @ w.T + b
        return x[:, 0]

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray], head: str = "auto", source: str = "") -> "AestheticHead":
        """From LAION's state-dict names: ``weight``/``bias`` (linear) or ``layers.N.weight``/``.bias`` (MLP)."""
        if "weight" in state and "bias" in state:
            layers = [(state["weight"], state["bias"])]
        else:
            idx = sorted({int(m.group(1)) for k in state if (m := re.fullmatch(r"layers\.(\d+)\.weight", k))})
            missing = [f"layers.{i}.bias" for i in idx if f"layers.{i}.bias" not in state]
            if not idx or missing:
                raise ModelLoadError(source or "aesthetic head", detail="not a LAION aesthetic head: expected 'weight'/'bias' "
                                     f"or 'layers.N.weight'/'layers.N.bias', found {sorted(state)[:8]}")
            layers = [(state[f"layers.{i}.weight"], state[f"layers.{i}.bias"]) for i in idx]
        out = cls(layers, source)
        if head != "auto" and out.kind != head:
            raise ModelLoadError(source or "aesthetic head", detail=f"models.yaml says head '{head}' but the file holds a {out.kind} head")
        return out

    @classmethod
    def from_safetensors(cls, path: Path | str, head: str = "auto") -> "AestheticHead":
        from safetensors.numpy import load_file

        try:
            state = load_file(str(path))
        except Exception as exc:  # truncated or foreign file
            raise ModelLoadError(str(path), detail=f"could not read: {type(exc).__name__}: {exc}") from exc
        return cls.from_state(state, head, source=str(path))

    def to_safetensors(self, path: Path | str) -> Path:
        from safetensors.numpy import save_file

        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        if self.kind == "linear":
            state = {"weight": self.layers[0][0].astype(np.float32), "bias": self.layers[0][1].astype(np.float32)}
        else:  # LAION's indices: Linear at 0, 2, 4, 6 (dropouts between), then 7
            idx = [2 * i for i in range(len(self.layers) - 1)] + [2 * (len(self.layers) - 2) + 1]
            state = {}
            for i, (w, b) in zip(idx, self.layers):
                state[f"layers.{i}.weight"] = w.astype(np.float32)
                state[f"layers.{i}.bias"] = b.astype(np.float32)
        tmp = path.with_suffix(".tmp")
        save_file(state, str(tmp))
        tmp.replace(path)
        return path


def random_head(dim: int, kind: str = "mlp", seed: int = 0) -> AestheticHead:
    """A head of LAION's shape with random weights (PyTorch's default Linear init), rating about 5."""
    rng = np.random.default_rng(seed)
    widths = MLP_WIDTHS if kind == "mlp" else (1,)
    layers, prev = [], dim
    for out in widths:
        bound = 1.0 / np.sqrt(prev)
        layers.append((rng.uniform(-bound, bound, (out, prev)), rng.uniform(-bound, bound, (out,))))
        prev = out
    w, b = layers[-1]
    layers[-1] = (w, b + 5.0)
    return AestheticHead(layers, source=f"random-{kind}-{dim}")


def resolve_weights(weights: str) -> Path:
    """A models.yaml ``weights`` path: absolute or ``~`` as given, relative under ``$GENART_CACHE/weights``."""

    p = Path(weights).expanduser()
    return p if p.is_absolute() else cache_dir() / "weights" / p


def how_to_get(spec: "AestheticSpec", preset: str = "") -> str:
    """What a user does when the head named in models.yaml is not on disk."""
    dst = resolve_weights(spec.weights) if spec.weights else "<weights>"
    src = spec.source or "the LAION aesthetic predictor's .pth"
    return (f"download {src} and convert it to safetensors: python -m genart.rank.aesthetic convert "
            f"<downloaded .pth> {dst}" + (f" (or remove 'aesthetic' from preset '{preset}' in models.yaml)" if preset else ""))


def tiny_head_file(dim: int, head: str) -> Path:
    """The random head of LAION's shape for a ``dim``-d CLIP (built once into the cache): ``builder: tiny``."""

    kind = "linear" if head == "linear" else "mlp"
    path = cache_dir() / "tiny" / f"aesthetic-{kind}-{dim}.safetensors"
    if not path.exists():
        random_head(dim, kind).to_safetensors(path)
    return path


def convert(src: Path | str, dst: Path | str) -> Path:
    """LAION ``.pth`` -> ``.safetensors`` (tensors only: ``torch.load(weights_only=True)``)."""
    import torch

    state = torch.load(str(src), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ModelLoadError(str(src), detail="expected a state dict of tensors")
    head = AestheticHead.from_state({k: v.detach().float().numpy() for k, v in state.items()}, source=str(src))
    return head.to_safetensors(dst)
