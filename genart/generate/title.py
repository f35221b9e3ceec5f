"""Title treatment: the title's text laid into a safe zone that avoids faces, legible at 160 px wide.

- **Font**: one that ships with the system or a dependency, chosen for the script of the profile's locale
  (Latin/Greek/Cyrillic, Japanese/Chinese/Korean, Devanagari) and checked to have a glyph for every
  character of the text. The search covers ``$GENART_FONTS`` (a folder), the system font folders and
  matplotlib's bundled fonts. On Debian the CJK and Devanagari fonts come from ``fonts-noto-core``
  (Noto Sans Devanagari) and ``fonts-ipafont-gothic`` or ``fonts-noto-cjk``. When no font covers the
  text, the overlay is skipped with a ``TitleWarning`` (never tofu boxes).
- **Shaping**: Devanagari needs complex-script shaping (conjuncts, matras); Pillow does it only with
  libraqm (``PIL.features.check('raqm')``). Without raqm the overlay of a script that needs shaping is
  skipped with a ``TitleWarning`` rather than drawn wrong.
- **Size**: the font is sized from the image *width* so the letters stay at least ``MIN_TEXT_PX_AT_160``
  pixels tall when the artwork is shown 160 px wide (a row tile on a phone); long titles wrap.
- **Place**: candidate positions (bottom, top, then every band) are tried in order; one whose box
  (with a margin) touches a face is never used. When no position avoids the faces the overlay is
  skipped with a ``TitleWarning``.
- **Contrast**: white text with a thin dark outline on a dark translucent plate whose opacity is raised
  until the plate's brightest pixels give a WCAG contrast ratio >= 4.5 against the text.

Pure Pillow + numpy; no torch.
"""

from __future__ import annotations

import os
import unicodedata
import warnings
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np

from genart.types import Box

MIN_TEXT_PX_AT_160 = 8.0  # letter height (ascender-ish) in pixels at 160 px image width
TARGET_CONTRAST = 4.5  # WCAG AA for normal text
TEXT_RGB = (255, 255, 255)


class TitleWarning(UserWarning):
    """The title could not be laid (no font for its script, no shaping, no face-free zone)."""


# --- scripts and fonts -----------------------------------------------------------------------
_SCRIPT_OF_LANGUAGE = {
    "ja": "cjk", "zh": "cjk", "ko": "cjk",
    "hi": "devanagari", "mr": "devanagari", "ne": "devanagari", "sa": "devanagari",
}
_NEEDS_SHAPING = {"devanagari"}
# preferred fonts per script: (file name, is bold); first found that covers the text wins
_FONT_CANDIDATES: dict[str, tuple[str, ...]] = {
    "latin": ("DejaVuSans-Bold.ttf", "LiberationSans-Bold.ttf", "NotoSans-Bold.ttf", "DejaVuSans.ttf",
              "LiberationSans-Regular.ttf", "NotoSans-Regular.ttf"),
    "cjk": ("NotoSansCJK-Bold.ttc", "NotoSansCJKjp-Bold.otf", "NotoSansCJK-Black.ttc", "NotoSansCJK-Regular.ttc",
            "NotoSansCJKjp-Regular.otf", "ipagp.ttf", "ipag.ttf", "TakaoPGothic.ttf", "TakaoGothic.ttf",
            "VL-PGothic-Regular.ttf", "VL-Gothic-Regular.ttf", "DroidSansFallbackFull.ttf"),
    "devanagari": ("NotoSansDevanagari-Bold.ttf", "NotoSansDevanagari-SemiBold.ttf", "NotoSansDevanagari-Regular.ttf",
                   "NotoSerifDevanagari-Bold.ttf", "Lohit-Devanagari.ttf", "Samyak-Devanagari.ttf",
                   "gargi.ttf", "Nakula.ttf"),
}
_INSTALL_HINT = {
    "latin": "apt-get install fonts-dejavu-core",
    "cjk": "apt-get install fonts-ipafont-gothic (or fonts-noto-cjk)",
    "devanagari": "apt-get install fonts-noto-core (Noto Sans Devanagari)",
}


def script_of_locale(locale: str) -> str:
    """``"ja-JP"`` -> ``"cjk"``, ``"hi-IN"`` -> ``"devanagari"``, anything else -> ``"latin"``."""
    return _SCRIPT_OF_LANGUAGE.get(locale.split("-")[0].lower(), "latin")


def script_of_text(text: str) -> str | None:
    """The non-Latin script the text is written in, if any (so a Japanese title on an en-US profile still works)."""
    for ch in text:
        cp = ord(ch)
        if 0x0900 <= cp <= 0x097F or 0xA8E0 <= cp <= 0xA8FF:
            return "devanagari"
        if (0x3040 <= cp <= 0x30FF) or (0x3400 <= cp <= 0x9FFF) or (0xAC00 <= cp <= 0xD7AF) or (0xFF00 <= cp <= 0xFFEF):
            return "cjk"
    return None


def _font_dirs() -> list[Path]:
    dirs = []
    env = os.environ.get("GENART_FONTS")
    if env:
        dirs += [Path(p) for p in env.split(os.pathsep) if p]
    dirs += [Path("/usr/share/fonts"), Path("/usr/local/share/fonts"), Path.home() / ".local/share/fonts",
             Path.home() / ".fonts", Path("/Library/Fonts"), Path("/System/Library/Fonts"), Path("C:/Windows/Fonts")]
    try:
        import matplotlib

        dirs.append(Path(matplotlib.get_data_path()) / "fonts" / "ttf")
    except Exception:  # noqa: BLE001 - matplotlib is optional
        pass
    return [d for d in dirs if d.is_dir()]


@lru_cache(maxsize=1)
def _font_index() -> dict[str, Path]:
    """File name -> first path found, over every font folder (walked once per process)."""
    index: dict[str, Path] = {}
    for d in _font_dirs():
        for root, _, files in os.walk(d):
            for f in files:
                if f.lower().endswith((".ttf", ".otf", ".ttc")):
                    index.setdefault(f, Path(root) / f)
    return index


@lru_cache(maxsize=64)
def _cmap(path: str) -> frozenset[int]:
    from fontTools.ttLib import TTCollection, TTFont

    if path.lower().endswith(".ttc"):
        fonts = TTCollection(path, lazy=True).fonts[:1]
    else:
        fonts = [TTFont(path, lazy=True, fontNumber=0)]
    cps: set[int] = set()
    for f in fonts:
        cmap = f.getBestCmap() or {}
        cps.update(cmap)
    return frozenset(cps)


def _covers(path: Path, text: str) -> bool:
    try:
        cps = _cmap(str(path))
    except Exception:  # noqa: BLE001 - an unreadable font file is skipped
        return False
    return all(ord(ch) in cps for ch in text if not ch.isspace() and unicodedata.category(ch) not in ("Cc", "Cf"))


@dataclass(frozen=True)
class FontChoice:
    path: Path
    script: str


def find_font(text: str, locale: str) -> FontChoice | None:
    """The first candidate font for the text's script (from its characters, else the locale) covering all of it."""
    script = script_of_text(text) or script_of_locale(locale)
    index = _font_index()
    for name in _FONT_CANDIDATES[script] + (_FONT_CANDIDATES["latin"] if script != "latin" else ()):
        path = index.get(name)
        if path is not None and _covers(path, text):
            return FontChoice(path, script)
    return None


def has_shaping() -> bool:
    from PIL import features

    return bool(features.check("raqm"))


# --- contrast --------------------------------------------------------------------------------
def relative_luminance(rgb: np.ndarray) -> np.ndarray:
    """WCAG relative luminance of sRGB uint8 pixels (..., 3) -> (...)."""
    c = rgb.astype(np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2]


def contrast_ratio(l1: float, l2: float) -> float:
    hi, lo = max(l1, l2), min(l1, l2)
    return (hi + 0.05) / (lo + 0.05)


# --- layout ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TitleLayout:
    """Where the title went: ``box`` is the plate (x, y, w, h) in output pixels; ``text_box`` the ink."""

    text: str
    lines: tuple[str, ...]
    font: str
    font_px: int
    box: tuple[int, int, int, int]
    text_box: tuple[int, int, int, int]
    plate_alpha: float
    script: str


def _load_font(path: Path, size: int):
    from PIL import ImageFont

    layout = ImageFont.Layout.RAQM if has_shaping() else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(path), size=size, layout_engine=layout)


def _lang(locale: str) -> str | None:
    return (locale.split("-")[0].lower() or None) if has_shaping() else None


def _wrap(text: str, font, max_w: float, script: str, lang: str | None) -> list[str]:
    """Greedy wrap by words (by characters for CJK, which has no spaces)."""
    units = list(text) if script == "cjk" and " " not in text.strip() else text.split()
    joiner = "" if script == "cjk" and " " not in text.strip() else " "
    lines: list[str] = []
    cur = ""
    for u in units:
        trial = (cur + joiner + u) if cur else u
        if font.getlength(trial, language=lang) <= max_w or not cur:
            cur = trial
        else:
            lines.append(cur)
            cur = u
    if cur:
        lines.append(cur)
    return lines


def _intersects(a: tuple[float, float, float, float], b: Box, margin: float) -> bool:
    ax, ay, aw, ah = a
    return not (ax + aw <= b.x - margin or b.x + b.w + margin <= ax or ay + ah <= b.y - margin
                or b.y + b.h + margin <= ay)


def plan_title(width: int, height: int, text: str, locale: str, faces: Sequence[Box] = ()) -> TitleLayout | None:
    """Choose font, size, wrapping and a face-free position for ``text`` on a ``width`` x ``height`` image.

    Returns ``None`` (with a ``TitleWarning``) when the title cannot be laid legibly without covering a face.
    """
    text = " ".join(text.split())
    if not text:
        return None
    choice = find_font(text, locale)
    if choice is None:
        script = script_of_text(text) or script_of_locale(locale)
        warnings.warn(f"no font covering the title {text!r} ({script} script) was found; title not drawn. "
                      f"Install one: {_INSTALL_HINT[script]}, or point $GENART_FONTS at a folder of fonts",
                      TitleWarning, stacklevel=2)
        return None
    if choice.script in _NEEDS_SHAPING and not has_shaping():
        warnings.warn(f"{choice.script} needs complex-script shaping, but this Pillow has no libraqm "
                      "(PIL.features.check('raqm') is False); title not drawn rather than drawn wrong",
                      TitleWarning, stacklevel=2)
        return None
    lang = _lang(locale) if choice.script != "latin" else None
    margin_face = 0.03 * max(width, height)
    pad = 0.02 * width
    min_px = int(np.ceil(MIN_TEXT_PX_AT_160 * width / 160.0 / 0.72))  # cap height ~0.72 em
    # start big, shrink to the legibility floor; at each size try every position
    for em in (0.09, 0.08, 0.07, 0.06):
        size = max(min_px, int(round(em * width)))
        font = _load_font(choice.path, size)
        lines = _wrap(text, font, 0.88 * width, choice.script, lang)
        if len(lines) > 3:
            continue
        ascent, descent = font.getmetrics()
        line_h = int(round((ascent + descent) * 1.08))
        text_w = max(int(np.ceil(font.getlength(line, language=lang))) for line in lines)
        text_h = line_h * len(lines)
        if text_w > 0.94 * width:
            continue
        bw, bh = int(text_w + 2 * pad), int(text_h + 2 * pad)
        if bw > width or bh > 0.6 * height:
            continue
        edge = int(0.04 * height)
        xs = [(width - bw) // 2, int(0.04 * width), width - bw - int(0.04 * width)]
        ys = [height - bh - edge, edge] + list(range(height - bh - edge, edge, -max(1, bh // 4)))
        for y in ys:
            for x in xs:
                x = int(min(max(0, x), width - bw))
                rect = (float(x), float(y), float(bw), float(bh))
                if any(_intersects(rect, f, margin_face) for f in faces):
                    continue
                return TitleLayout(text=text, lines=tuple(lines), font=str(choice.path), font_px=size,
                                   box=(x, y, bw, bh), text_box=(int(x + pad), int(y + pad), text_w, text_h),
                                   plate_alpha=0.0, script=choice.script)
        if size == min_px:
            break
    warnings.warn(f"no place for the title {text!r} on a {width}x{height} image that keeps clear of "
                  f"{len(faces)} face(s) at a legible size; title not drawn", TitleWarning, stacklevel=2)
    return None


def _plate_blur(width: int) -> float:
    return max(0.5, 0.004 * width)


def _stroke(font_px: int) -> int:
    return max(1, font_px // 24)


def title_region(layout: TitleLayout, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of a ``width`` x ``height`` image that drawing ``layout`` may change
    (its box, and a margin past the reach of the plate's blur: Pillow's three box blurs stop within 3 radii)."""
    x, y, bw, bh = layout.box
    m = int(4 * _plate_blur(width)) + 8 + _stroke(layout.font_px)
    return max(0, x - m), max(0, y - m), min(width, x + bw + m), min(height, y + bh + m)


def plate_alpha(l_max: float) -> float:
    """The plate's opacity for a box whose brightest (99th percentile) pixel has relative luminance
    ``l_max``: enough that it is dark enough behind the text for 4.5:1. Shared by ``draw_title`` and the
    tensor finishing (``genart.generate.tensor_finish``), which measures ``l_max`` on the device."""
    l_needed = (1.05 / (TARGET_CONTRAST * 1.15)) - 0.05  # 15% headroom for resampling
    alpha = 0.35
    while alpha < 0.95 and l_max * (1 - alpha) ** 2.2 > l_needed:  # sRGB scaling ~ luminance^(1/2.2)
        alpha += 0.05
    return alpha


def draw_title(rgb: np.ndarray, layout: TitleLayout, locale: str,
               alpha: float | None = None) -> tuple[np.ndarray, TitleLayout]:
    """Lay the plate and the text; returns the new pixels and the layout with the plate's opacity.

    ``alpha``: the plate's opacity, when the caller chose it already (default: ``plate_alpha`` of the
    box's pixels); the tensor finishing draws a plate once per opacity this way, on flat backgrounds.
    """
    from dataclasses import replace

    from PIL import Image, ImageDraw, ImageFilter

    x, y, bw, bh = layout.box
    if alpha is None:
        region = rgb[y:y + bh, x:x + bw]
        l_max = float(np.percentile(relative_luminance(region), 99)) if region.size else 1.0
        alpha = plate_alpha(l_max)
    # drawn on the box and a margin wider than the plate's blur and the text's outline only: the same pixels
    # as on the whole image (the plate is clear beyond), a third of the time on 1024x576
    height, width = rgb.shape[:2]
    blur, stroke = _plate_blur(width), _stroke(layout.font_px)
    x0, y0, x1, y1 = title_region(layout, width, height)
    img = Image.fromarray(rgb[y0:y1, x0:x1]).convert("RGBA")
    plate = Image.new("RGBA", img.size, (0, 0, 0, 0))
    d = ImageDraw.Draw(plate)
    radius = int(0.25 * min(bw, bh) * 0.5)
    d.rounded_rectangle((x - x0, y - y0, x - x0 + bw - 1, y - y0 + bh - 1), radius=radius,
                        fill=(8, 8, 12, int(round(alpha * 255))))
    plate = plate.filter(ImageFilter.GaussianBlur(radius=blur))
    img = Image.alpha_composite(img, plate)
    draw = ImageDraw.Draw(img)
    font = _load_font(Path(layout.font), layout.font_px)
    lang = _lang(locale) if layout.script != "latin" else None
    ascent, descent = font.getmetrics()
    line_h = int(round((ascent + descent) * 1.08))
    tx, ty, tw, _ = layout.text_box
    for i, line in enumerate(layout.lines):
        lw = font.getlength(line, language=lang)
        lx = tx + (tw - lw) / 2
        draw.text((lx - x0, ty - y0 + i * line_h), line, font=font, fill=TEXT_RGB + (255,), stroke_width=stroke,
                  stroke_fill=(0, 0, 0, 255), language=lang)
    out = rgb.copy()
    out[y0:y1, x0:x1] = np.asarray(img.convert("RGB"))
    return out, replace(layout, plate_alpha=round(alpha, 2))


def lay_title(rgb: np.ndarray, text: str, locale: str, faces: Sequence[Box] = ()) -> tuple[np.ndarray, TitleLayout | None]:
    """Plan and draw; returns ``(pixels, layout)``, or the input and ``None`` when the title was not drawn."""
    layout = plan_title(rgb.shape[1], rgb.shape[0], text, locale, faces)
    if layout is None:
        return rgb, None
    return draw_title(rgb, layout, locale)


# --- measuring legibility (what the tests and a reviewer can check) ---------------------------------
@dataclass(frozen=True)
class Legibility:
    width: int  # the width the image was measured at
    text_px: float  # height of the tallest run of text rows, per line, in pixels at that width
    contrast: float  # WCAG ratio between the text's ink and the plate behind it


def measure_legibility(rgb: np.ndarray, layout: TitleLayout, width: int = 160) -> Legibility:
    """Downscale to ``width`` px wide and measure the title's ink: height per line and contrast (OCR-free)."""
    from PIL import Image

    h, w = rgb.shape[:2]
    s = width / w
    small = np.asarray(Image.fromarray(rgb).resize((width, max(1, int(round(h * s)))), Image.Resampling.LANCZOS))
    x, y, bw, bh = layout.box
    x0, y0 = int(np.floor(x * s)), int(np.floor(y * s))
    x1, y1 = int(np.ceil((x + bw) * s)), int(np.ceil((y + bh) * s))
    lum = relative_luminance(small[y0:y1, x0:x1])
    # ink: the bright text; background: the plate (its darker half)
    ink = lum >= np.percentile(lum, 90)
    l_ink = float(np.median(lum[ink]))
    l_bg = float(np.median(lum[lum <= np.percentile(lum, 50)]))
    rows = np.where((lum > (l_ink + l_bg) / 2).any(axis=1))[0]
    text_px = float(rows.max() - rows.min() + 1) / max(1, len(layout.lines)) if rows.size else 0.0
    return Legibility(width=width, text_px=text_px, contrast=contrast_ratio(l_ink, l_bg))
