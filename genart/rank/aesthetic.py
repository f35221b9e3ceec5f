"""Aesthetic score: the LAION aesthetic predictor's design, a head on the CLIP image embedding.

Two published designs, both plain affine layers applied to the L2-normalised CLIP image embedding
(the "MLP" has dropout but no activations between its layers, exactly as LAION trained it):

- linear: ``D -> 1`` (LAION-AI/aesthetic-predictor, ``sa_0_4_vit_b_32_linear.pth`` for ViT-B-32,
  ``sa_0_4_vit_l_14_linear.pth`` for ViT-L-14);
- mlp: ``D -> 1024 -> 128 -> 64 -> 16 -> 1`` (christophschuhmann/improved-aesthetic-predictor,
  ``sac+logos+ava1-l14-linearMSE.pth`` for ViT-L-14).

Weights load from ``.safetensors`` only (numpy, no torch, never unpickled at run time). LAION
publishes ``.pth`` files; convert one once, on a machine you trust, with::

    python -m genart.rank.aesthetic convert sa_0_4_vit_b_32_linear.pth \
        ~/.cache/genart/weights/aesthetic/sa_0_4_vit_b_32_linear.safetensors

(``torch.load(weights_only=True)``: tensors only, no code). The score is LAION's 1-10 rating / 10.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Sequence

import numpy as np

from genart.errors import ConfigError, InvalidArgumentError, ModelLoadError
from genart.types import ScoreSet, TasteProfile, Variant

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
    from genart.config import cache_dir

    p = Path(weights).expanduser()
    return p if p.is_absolute() else cache_dir() / "weights" / p


def how_to_get(spec, preset: str = "") -> str:
    """What a user does when the head named in models.yaml is not on disk."""
    dst = resolve_weights(spec.weights) if spec.weights else "<weights>"
    src = spec.source or "the LAION aesthetic predictor's .pth"
    return (f"download {src} and convert it to safetensors: python -m genart.rank.aesthetic convert "
            f"<downloaded .pth> {dst}" + (f" (or remove 'aesthetic' from preset '{preset}' in models.yaml)" if preset else ""))


_HEADS: dict[tuple, AestheticHead] = {}


def load_aesthetic(preset_spec, dim: int) -> AestheticHead | None:
    """The preset's aesthetic head (cached per process), or None when the preset names none.

    Args:
        preset_spec: a ``PresetSpec``.
        dim: the CLIP embedding size the head must take.

    Raises:
        ModelLoadError: the preset names a weights file that is absent or unreadable (says how to get it).
        ConfigError: a ``tiny`` head in a preset without ``random_weights: true``, or a head whose input
            size does not match the CLIP model.
    """
    spec = preset_spec.ranker.aesthetic
    if spec is None or spec.builder == "brisque":  # no CLIP head (``BrisqueScorer``)
        return None
    if spec.builder == "tiny":
        if not preset_spec.random_weights:
            raise ConfigError("a 'tiny' aesthetic head has random weights: the preset must say random_weights: true",
                              field="ranker.aesthetic.builder")
        from genart.config import cache_dir

        kind = "linear" if spec.head == "linear" else "mlp"
        path = cache_dir() / "tiny" / f"aesthetic-{kind}-{dim}.safetensors"
        if not path.exists():
            random_head(dim, kind).to_safetensors(path)
    else:
        path = resolve_weights(spec.weights)
        if not path.is_file():
            raise ModelLoadError(f"aesthetic head {spec.weights}", looked=[str(path)],
                                 how=how_to_get(spec, preset_spec.name))
    key = (str(path), path.stat().st_mtime_ns, spec.head)
    head = _HEADS.get(key)
    if head is None:
        try:
            head = AestheticHead.from_safetensors(path, spec.head)
        except ModelLoadError as exc:
            raise ModelLoadError(exc.model, looked=[str(path)], detail=str(exc.message),
                                 how=how_to_get(spec, preset_spec.name)) from exc
        _HEADS[key] = head
    if head.in_dim != dim:
        raise ConfigError(f"the aesthetic head takes {head.in_dim}-d embeddings but the CLIP model makes {dim}-d ones",
                          field="ranker.aesthetic.weights", hint="use the head trained for this CLIP architecture")
    return head


class AestheticScorer:
    """``aesthetic``: the head's rating / 10 of each variant's CLIP embedding; satisfies ``Scorer``."""

    names = ("aesthetic",)

    def __init__(self, embedder, head: AestheticHead) -> None:
        self.embedder = embedder
        self.head = head

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        from genart.rank.clip import _open_image

        if len(variants) == 0:
            return []
        emb = self.embedder.embed_images([_open_image(v.image, v.path, "variant", v.id) for v in variants])
        return [ScoreSet.of({"aesthetic": float(r) / 10.0}) for r in self.head(emb)]


BRISQUE_DIR = Path("/usr/share/opencv4/quality")  # Debian's opencv-data
BRISQUE_FILES = ("brisque_model_live.yml", "brisque_range_live.yml")
BRISQUE_LONG_SIDE = 512


def brisque_files(folder: str | Path | None = None) -> tuple[Path, Path]:
    """The BRISQUE model and range files (trained on the LIVE database) that ``cv2.quality`` needs.

    Raises:
        ModelLoadError: they are not there (says how to get them).
    """
    base = Path(folder).expanduser() if folder else BRISQUE_DIR
    paths = tuple(base / name for name in BRISQUE_FILES)
    missing = [str(q) for q in paths if not q.is_file()]
    if missing:
        raise ModelLoadError("BRISQUE (OpenCV quality, LIVE model)", looked=missing,
                             how="apt-get install opencv-data (Debian/Ubuntu), or set ranker.aesthetic.weights to a "
                                 "folder holding " + " and ".join(BRISQUE_FILES))
    return paths[0], paths[1]


class BrisqueScorer:
    """``aesthetic`` without CLIP: 1 - BRISQUE / 100, clipped to [0, 1]; satisfies ``Scorer``.

    BRISQUE (Mittal, Moorthy and Bovik, 2012) is a no-reference quality model: natural-scene statistics
    of the picture's local contrast, against what undistorted photographs show, regressed on human
    opinion scores (the LIVE database). On its scale about 0-10 is a pristine photograph and 40-75 a
    visibly blurred, noisy or upscaled one, so ``1 - score / 100`` reads 0.9-1 for a clean picture and
    0.3-0.6 for a damaged one. It judges the picture's technical look (blur, noise, blocking, the
    softness of an enlargement), not its subject: it is what ``classic`` can say about a picture beside
    the profile's affinity. Measured on a copy at most 512 px on its long side (it is scale-dependent;
    a fixed size makes variants of every catalogue size comparable).

    Args:
        folder: where the model files are (default: Debian's ``/usr/share/opencv4/quality``).

    Raises:
        ModelLoadError: the model files or ``cv2.quality`` (opencv-contrib) are missing.
    """

    names = ("aesthetic",)

    def __init__(self, folder: str | Path | None = None) -> None:
        import cv2

        if not hasattr(cv2, "quality"):
            raise ModelLoadError("BRISQUE (OpenCV quality, LIVE model)",
                                 detail="this OpenCV build has no cv2.quality module",
                                 how="pip install opencv-contrib-python-headless (in place of opencv-python-headless)")
        self.model, self.range = brisque_files(folder)
        self._model = cv2.quality.QualityBRISQUE_create(str(self.model), str(self.range))  # type: ignore[attr-defined]  # contrib

    def brisque(self, rgb: np.ndarray) -> float:
        """BRISQUE's own score of an RGB picture (lower is better)."""
        import cv2

        from genart import imaging

        small = imaging.downscale(imaging.to_array(rgb), BRISQUE_LONG_SIDE)
        return float(self._model.compute(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))[0])

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        from genart.rank.features import _open_rgb

        return [ScoreSet.of({"aesthetic": float(np.clip(1.0 - self.brisque(_open_rgb(v.image, v.path)) / 100.0, 0.0, 1.0))})
                for v in variants]


def convert(src: Path | str, dst: Path | str) -> Path:
    """LAION ``.pth`` -> ``.safetensors`` (tensors only: ``torch.load(weights_only=True)``)."""
    import torch

    state = torch.load(str(src), map_location="cpu", weights_only=True)
    if not isinstance(state, dict):
        raise ModelLoadError(str(src), detail="expected a state dict of tensors")
    head = AestheticHead.from_state({k: v.detach().float().numpy() for k, v in state.items()}, source=str(src))
    return head.to_safetensors(dst)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 3 or args[0] != "convert":
        print("usage: python -m genart.rank.aesthetic convert SRC.pth DST.safetensors", file=sys.stderr)
        return 2
    out = convert(args[1], Path(args[2]).expanduser())
    head = AestheticHead.from_safetensors(out)
    print(f"wrote {out} ({head.kind} head, {head.in_dim}-d input)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
