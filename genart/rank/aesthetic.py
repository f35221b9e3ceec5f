"""Aesthetic scores: the LAION aesthetic predictor's head on the CLIP image embedding, or BRISQUE.

The head itself (``AestheticHead`` and its weights, ``genart.models.aesthetic``; ``genart.models.load_aesthetic``)
is a loaded model and lives in ``genart.models``; it is re-exported here. LAION publishes ``.pth`` files; convert one once, on
a machine you trust, with::

    python -m genart.rank.aesthetic convert sa_0_4_vit_b_32_linear.pth \
        ~/.cache/genart/weights/aesthetic/sa_0_4_vit_b_32_linear.safetensors

(``torch.load(weights_only=True)``: tensors only, no code). The score is LAION's 1-10 rating / 10.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Sequence

import numpy as np

from genart.errors import ModelLoadError
from genart.models import load_aesthetic
from genart.models.aesthetic import MLP_WIDTHS, AestheticHead, convert, how_to_get, random_head, resolve_weights
from genart.rank.registry import ScorerContext, register_scorer
from genart.types import ScoreSet, TasteProfile, Variant
from genart.rank.clip import _open_image
from genart import imaging
from genart.rank.features import _open_rgb

if TYPE_CHECKING:  # pragma: no cover
    from genart.rank.base import ImageEmbedder

__all__ = ["MLP_WIDTHS", "AestheticHead", "AestheticScorer", "BrisqueScorer", "brisque_files", "convert", "how_to_get",
           "load_aesthetic", "main", "random_head", "resolve_weights"]


class AestheticScorer:
    """``aesthetic``: the head's rating / 10 of each variant's CLIP embedding; satisfies ``Scorer``."""

    names = ("aesthetic",)

    def __init__(self, embedder: ImageEmbedder, head: AestheticHead) -> None:
        self.embedder = embedder
        self.head = head

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
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

        small = imaging.downscale(imaging.to_array(rgb), BRISQUE_LONG_SIDE)
        return float(self._model.compute(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))[0])

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        return [ScoreSet.of({"aesthetic": float(np.clip(1.0 - self.brisque(_open_rgb(v.image, v.path)) / 100.0, 0.0, 1.0))})
                for v in variants]


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


@register_scorer("aesthetic")
def _aesthetic_scorer(ctx: ScorerContext) -> AestheticScorer | BrisqueScorer | None:
    """The preset's ``ranker.aesthetic``: BRISQUE (no CLIP), or its LAION head on the shared CLIP
    embedder; None when the preset names none.

    Raises:
        ModelLoadError: the head's weights or BRISQUE's model files are absent.
    """
    spec = ctx.spec.ranker.aesthetic
    if spec is None:
        return None
    if spec.builder == "brisque":
        return BrisqueScorer(spec.weights)
    head = load_aesthetic(ctx.spec, int(ctx.clip().dim))
    return AestheticScorer(ctx.embedder(), head) if head is not None else None
