"""Legibility at thumbnail size, measured by reading: does the title still read at 160 px wide?

A variant with a title (``GenerationParams.title``) is scaled to 160 px wide (area filter, as a browser
would), the title's box (``params.title_box``) is cut out of that thumbnail with a little margin and
enlarged 4x (cubic: adding no detail the thumbnail lacks, only pixels the recogniser needs), and a real
OCR reads it. ``legibility = 1 - d / max(len(title), len(read))``, ``d`` the edit distance between the
title and what was read, both NFKC-normalised, case-folded, and stripped of everything but letters,
marks and digits (a plate's edge read as ``|`` is not the title misread; a condensed face set in
capitals is not a different title).

Which recogniser reads which script (measured on titles drawn at 8-14 px capitals at 160 px wide):

- PP-OCRv4 (``rapidocr-onnxruntime``'s bundled Chinese + English model) reads Latin titles and Chinese
  characters (Japanese kanji too), but its dictionary has 1 of 86 hiragana and 4 of 90 katakana and no
  Devanagari: a kana title reads as nothing or noise, a Devanagari one as nothing.
- So Japanese and Devanagari titles are read with Tesseract 5 (Debian's ``tesseract-ocr`` with
  ``tesseract-ocr-jpn`` / ``tesseract-ocr-hin``), which reads kana and Devanagari at that size; a
  Japanese title Tesseract misreads is read by PP-OCRv4 too (better at kanji) and the better reading counts.
  Without the ``tesseract`` binary or its language, such a title's legibility falls back to the
  measured height and contrast of its letters (``genart.generate``'s plate is not consulted), with a
  one-line warning: ``min(1, cap px / 8) * min(1, contrast / 4.5)``.

A variant whose title was asked for but skipped scores 0 (nothing to read). A variant without a title
(none asked for) is scored as a picture: ``0.4 contrast + 0.4 subject + 0.2 (1 - clutter)`` of its
thumbnail (RMS luma contrast, edge strength of the salient region, strong edges elsewhere), as before.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import unicodedata
from functools import cache, lru_cache
from typing import Any, Sequence

import numpy as np

from genart import imaging
from genart.errors import GenartWarning, warn
from genart.rank.registry import ScorerContext, register_scorer
from genart.types import GenerationParams, ScoreSet, TasteProfile, Variant
from genart.rank.features import _open_rgb

THUMB_WIDTH = 160
OCR_ZOOM = 4
_TESSERACT_LANG = {"ja": "jpn", "hi": "hin", "mr": "hin", "ne": "hin"}
_rapid_lock = threading.Lock()


class LegibilityWarning(GenartWarning):
    """A recogniser for the title's script is not installed; a proxy measure is used."""


def thumbnail(rgb: np.ndarray, width: int = THUMB_WIDTH) -> np.ndarray:
    import cv2

    h, w = rgb.shape[:2]
    height = max(1, int(round(h * width / w)))
    interp = cv2.INTER_AREA if w > width else cv2.INTER_LINEAR
    return cv2.resize(rgb, (width, height), interpolation=interp)


# --- a picture's own legibility (no title) ----------------------------------------------------------
def legibility_parts(rgb: np.ndarray, width: int = THUMB_WIDTH) -> dict[str, float]:
    """(contrast, subject, clutter) of ``rgb`` seen ``width`` px wide, each in [0, 1]."""
    import cv2

    small = thumbnail(np.ascontiguousarray(rgb[..., :3]), width)
    g = imaging.luma(small).astype(np.float32)
    if g.max() > 1.5:
        g = g / 255.0
    h, w = g.shape
    contrast = float(min(1.0, g.std() / 0.3))
    gx = cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3)
    gy = cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3)
    mag = np.sqrt(gx * gx + gy * gy) / 4.0  # 1 = a black-to-white step
    cx, cy = imaging.saliency_center(small)
    bw, bh = max(4, int(w * 0.5)), max(4, int(h * 0.5))
    x0 = int(np.clip(cx * w - bw / 2, 0, w - bw))
    y0 = int(np.clip(cy * h - bh / 2, 0, h - bh))
    inside = np.zeros_like(mag, dtype=bool)
    inside[y0 : y0 + bh, x0 : x0 + bw] = True
    # mean of the strongest 10% of edges in the subject region: outlines, not the area's average
    sub = np.sort(mag[inside].ravel())[::-1]
    top = sub[: max(1, len(sub) // 10)].mean()
    subject = float(min(1.0, top / 0.6))
    strong = mag > 0.12
    outside = ~inside
    clutter = float(min(1.0, (strong & outside).sum() / max(1, outside.sum()) / 0.5))
    return {"contrast": contrast, "subject": subject, "clutter": clutter}


def legibility(rgb: np.ndarray, width: int = THUMB_WIDTH) -> float:
    """A picture's legibility at ``width`` px wide (no title): see the module doc."""
    p = legibility_parts(rgb, width)
    return 0.4 * p["contrast"] + 0.4 * p["subject"] + 0.2 * (1.0 - p["clutter"])


# --- reading the title back ----------------------------------------------------------------------
def normalise(text: str) -> str:
    """What is compared: NFKC, case-folded, letters, marks and digits only."""
    return "".join(ch for ch in unicodedata.normalize("NFKC", text).casefold()
                   if unicodedata.category(ch)[0] in "LMN")


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions of one character each)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def read_score(title: str, read: str) -> float:
    """``1 - edit distance / the longer length``, on normalised text: 1 = read exactly, 0 = nothing of it."""
    a, b = normalise(title), normalise(read)
    if not a:
        return 0.0
    return 1.0 - edit_distance(a, b) / max(len(a), len(b))


@lru_cache(maxsize=1)
def _rapidocr() -> Any:  # rapidocr ships no types
    from rapidocr_onnxruntime import RapidOCR

    # the crop is small: detect at its own size (the default upscales the short side to 736 px)
    return RapidOCR(det_limit_side_len=960, det_limit_type="max", intra_op_num_threads=1, inter_op_num_threads=1)


def _language(params: GenerationParams, profile: TasteProfile | None, title: str) -> str:
    from_text = None
    for ch in title:
        cp = ord(ch)
        if 0x0900 <= cp <= 0x097F:
            return "hi"
        if 0x3040 <= cp <= 0x30FF:
            from_text = "ja"
    if from_text:
        return from_text
    return (profile.locale.split("-")[0].lower() if profile else "en")


@lru_cache(maxsize=8)
def tesseract_has(lang: str) -> bool:
    """Whether the ``tesseract`` binary and its ``lang`` model are installed."""
    exe = shutil.which("tesseract")
    if exe is None:
        return False
    try:
        out = subprocess.run([exe, "--list-langs"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return lang in out.stdout.split()


def recogniser_for(lang: str) -> str:
    """``"rapidocr"`` (PP-OCRv4), ``"tesseract:<lang>"``, or ``"proxy"`` when the script's recogniser is absent."""
    tess = _TESSERACT_LANG.get(lang)
    if tess is None:
        return "rapidocr"
    return f"tesseract:{tess}" if tesseract_has(tess) else "proxy"


def read_text(rgb: np.ndarray, recogniser: str) -> str:
    """The text a recogniser reads in ``rgb`` (lines top to bottom, joined by spaces)."""
    if recogniser == "rapidocr":
        with _rapid_lock:  # one ONNX session per process, shared by the scoring threads
            result, _ = _rapidocr()(np.ascontiguousarray(rgb[..., ::-1]), use_cls=False)
        # reading order: pieces whose centres are within half a line's height share a line, left to right
        pieces = sorted((sum(p[1] for p in r[0]) / 4, max(p[1] for p in r[0]) - min(p[1] for p in r[0]),
                          min(p[0] for p in r[0]), r[1]) for r in (result or []))
        lines: list[list[tuple[float, float, float, str]]] = []
        for piece in pieces:
            if lines and abs(piece[0] - lines[-1][0][0]) < 0.5 * max(piece[1], lines[-1][0][1]):
                lines[-1].append(piece)
            else:
                lines.append([piece])
        return " ".join(t for line in lines for *_, t in sorted(line, key=lambda q: q[2]))
    lang = recogniser.split(":", 1)[1]
    import io

    import cv2
    from PIL import Image

    # Tesseract is trained on dark print on paper: light letters (on a plate, a scrim) are inverted first
    grey = cv2.cvtColor(np.ascontiguousarray(rgb[..., :3]), cv2.COLOR_RGB2GRAY)
    if np.percentile(grey, 90) - np.median(grey) > np.median(grey) - np.percentile(grey, 10):
        grey = 255 - grey
    buf = io.BytesIO()
    Image.fromarray(grey).save(buf, format="PNG")
    out = subprocess.run(["tesseract", "stdin", "stdout", "-l", lang, "--psm", "6"], input=buf.getvalue(),
                         capture_output=True, timeout=60)
    return out.stdout.decode("utf-8", errors="replace").strip()


@cache
def _warn_proxy(lang: str) -> None:
    warn(f"no recogniser for '{lang}' titles (apt-get install tesseract-ocr tesseract-ocr-"
         f"{_TESSERACT_LANG[lang]}): their legibility is the letters' measured size and contrast",
         LegibilityWarning, stacklevel=3)


def title_crop(rgb: np.ndarray, box: tuple[int, int, int, int], width: int = THUMB_WIDTH) -> np.ndarray:
    """The title's box (output pixels) cut from the variant seen ``width`` px wide, with a margin, enlarged
    ``OCR_ZOOM`` times for the recogniser."""
    import cv2

    small = thumbnail(np.ascontiguousarray(rgb[..., :3]), width)
    s = small.shape[1] / rgb.shape[1]
    x, y, w, h = box
    m = 2
    x0, y0 = max(0, int(np.floor(x * s)) - m), max(0, int(np.floor(y * s)) - m)
    x1, y1 = min(small.shape[1], int(np.ceil((x + w) * s)) + m), min(small.shape[0], int(np.ceil((y + h) * s)) + m)
    crop = small[y0:y1, x0:x1]
    return cv2.resize(crop, None, fx=OCR_ZOOM, fy=OCR_ZOOM, interpolation=cv2.INTER_CUBIC)


def title_legibility(rgb: np.ndarray, params: GenerationParams, profile: TasteProfile | None = None,
                     width: int = THUMB_WIDTH) -> tuple[float, str, str]:
    """(score, what was read, the recogniser) for a titled variant; see the module doc."""
    title = params.title or ""
    if params.title_status == "skipped" or not title or params.title_box is None:
        return 0.0, "", "none"
    lang = _language(params, profile, title)
    recogniser = recogniser_for(lang)
    crop = title_crop(rgb, params.title_box, width)
    if recogniser == "proxy":
        _warn_proxy(lang)
        return _proxy(crop), "", recogniser
    read = read_text(crop, recogniser)
    score = read_score(title, read)
    if lang == "ja" and score < 1.0:  # PP-OCRv4 reads kanji better than Tesseract does: either reading counts
        other = read_text(crop, "rapidocr")
        if read_score(title, other) > score:
            return read_score(title, other), other, "rapidocr"
    return score, read, recogniser


def _proxy(crop: np.ndarray) -> float:
    """``min(1, letter height / 8 px) * min(1, contrast / 4.5)`` of a title crop (``title_crop``): the
    letters are its brightest tenth, the background its darker half; a line's height is the longest run
    of rows holding letters, at thumbnail scale."""
    c = crop.astype(np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    lum = 0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2]
    ink = float(np.median(lum[lum >= np.percentile(lum, 90)]))
    bg = float(np.median(lum[lum <= np.percentile(lum, 50)]))
    contrast = (max(ink, bg) + 0.05) / (min(ink, bg) + 0.05)
    rows = np.asarray((lum > (ink + bg) / 2).any(axis=1))
    run = best = 0
    for r in rows:
        run = run + 1 if r else 0
        best = max(best, run)
    return float(min(1.0, best / OCR_ZOOM / 8.0) * min(1.0, contrast / 4.5))


class LegibilityScorer:
    """``legibility`` of each variant at 160 px wide (see the module doc); satisfies ``Scorer``."""

    names = ("legibility",)

    def __init__(self, width: int = THUMB_WIDTH) -> None:
        self.width = width

    def score(self, variants: Sequence[Variant], profile: TasteProfile) -> list[ScoreSet]:
        out = []
        for v in variants:
            rgb = _open_rgb(v.image, v.path)
            if v.params.title_status is None and not v.params.title:
                value = legibility(rgb, self.width)
            else:
                value = title_legibility(rgb, v.params, profile, self.width)[0]
            out.append(ScoreSet.of({"legibility": float(value)}))
        return out


@register_scorer("legibility")
def _legibility_scorer(ctx: ScorerContext) -> LegibilityScorer:
    """``legibility`` of the title at thumbnail size: every preset can run it."""
    return LegibilityScorer()
