"""Title treatment: the title set in the genre's typography, in a safe zone clear of faces, the salient
subject and burned-in text, legible at 160 px wide, or recorded as skipped with the reason.

- **Font**: the profile's ``title_style`` names a family (``sans`` DejaVu Sans, ``serif`` Noto Serif,
  ``condensed`` Bebas Neue, ``geometric`` League Spartan) and a weight; Japanese/Chinese/Korean and
  Devanagari titles take their script's font (IPA Gothic or Noto CJK; Noto Sans/Serif Devanagari). Every
  font is checked to have a glyph for each character (never tofu). A family that is not installed falls
  back to DejaVu Sans with a one-line ``TitleWarning`` naming the Debian package to install
  (fonts-bebas-neue, fonts-league-spartan, fonts-noto-core, fonts-dejavu-core, fonts-ipafont-gothic).
  The search covers ``$GENART_FONTS``, the system font folders and matplotlib's bundled fonts.
- **Shaping**: Devanagari needs complex-script shaping (conjuncts, matras), which Pillow does only with
  libraqm (``PIL.features.check('raqm')``); without it such a title is skipped rather than drawn wrong.
- **Size**: capitals at least ``MIN_CAP_PX_AT_160`` pixels tall (one more for black weights and outlines)
  when the picture is shown 160 px wide, whatever its aspect (a row fixes the tile's width); from twice that down to it, the largest size whose
  lines (1 to 3, broken where the longest line is shortest) fit the safe zone and keep the title's box
  within ``title_style.max_share`` of the picture (``max_share_wide`` for a wide one).
- **Place**: inside the aspect's safe zone (``FinishSpec.safe_zone``: 160/1080 of a 16:9 cover's top is
  the player's); bottom centre first, then the other corners and bands. A box (with a margin) touching a
  face or a text/logo region is never used, nor one over the salient subject (the mean of
  ``genart.imaging.saliency_map`` inside the box above ``MAX_SALIENCY``); among the rest, the least
  salient. When no position is left, the title is skipped and the reason says what was in the way.
- **Contrast**: the treatment (``plate``, ``scrim``, ``shadow``, ``outline``) darkens what is behind the
  letters, strengthened until the brightest (99th percentile) background pixel gives a WCAG contrast of at
  least 4.5:1 against the letters' colour.

Pure Pillow + numpy; no torch.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass, replace
from functools import cache, lru_cache, partial
from itertools import combinations
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

import numpy as np

from genart.errors import GenartWarning, warn
from genart.types import Box, TitleStyle

if TYPE_CHECKING:  # pragma: no cover
    from PIL.ImageFont import FreeTypeFont

MIN_CAP_PX_AT_160 = 8.0  # capital height, in pixels, at 160 px image width (PP-OCRv4 reads Bebas Neue from 8)
MAX_SALIENCY = 0.35  # mean saliency (0..1) a title's box may cover: above it, the box is on the subject
TARGET_CONTRAST = 4.5  # WCAG AA for normal text
TEXT_RGB = (255, 255, 255)
DEFAULT_SAFE = (0.05, 0.05, 0.05, 0.05)


class TitleWarning(GenartWarning):
    """A title font is missing (the title falls back to another font, or is skipped)."""


# --- scripts and fonts -----------------------------------------------------------------------
_SCRIPT_OF_LANGUAGE = {
    "ja": "cjk", "zh": "cjk", "ko": "cjk",
    "hi": "devanagari", "mr": "devanagari", "ne": "devanagari", "sa": "devanagari",
}
_NEEDS_SHAPING = {"devanagari"}
# fonts per script, first found that covers the text wins
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
# the genre families of ``TitleStyle.font``, per weight (Latin, Greek, Cyrillic as far as each font covers)
_FAMILIES: dict[str, dict[str, tuple[str, ...]]] = {
    "sans": {"regular": ("DejaVuSans.ttf", "NotoSans-Regular.ttf"),
             "bold": ("DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf"),
             "black": ("DejaVuSans-Bold.ttf", "NotoSans-Bold.ttf")},
    "serif": {"regular": ("NotoSerif-Regular.ttf", "DejaVuSerif.ttf"),
              "bold": ("NotoSerif-Bold.ttf", "DejaVuSerif-Bold.ttf"),
              "black": ("NotoSerif-Bold.ttf", "DejaVuSerif-Bold.ttf")},
    "condensed": {"regular": ("BebasNeue-Regular.otf",), "bold": ("BebasNeue-Bold.otf",),
                  "black": ("BebasNeue-Bold.otf",)},
    "geometric": {"regular": ("LeagueSpartan-Regular.otf",), "bold": ("LeagueSpartan-Bold.otf",),
                  "black": ("LeagueSpartan-Black.otf", "LeagueSpartan-ExtraBold.otf")},
}
_FAMILY_PACKAGE = {"sans": "fonts-dejavu-core", "serif": "fonts-noto-core", "condensed": "fonts-bebas-neue",
                   "geometric": "fonts-league-spartan"}
_SERIF_SCRIPT = {"devanagari": ("NotoSerifDevanagari-Bold.ttf",)}
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


@cache
def _warn_missing_family(family: str, weight: str) -> None:
    """Said once per process: the first title that wanted the family is enough to know."""
    warn(f"title font family '{family}' ({weight}) is not installed (apt-get install "
         f"{_FAMILY_PACKAGE[family]}); titles fall back to DejaVu Sans", TitleWarning, stacklevel=4)


def find_font(text: str, locale: str, style: TitleStyle | None = None) -> FontChoice | None:
    """The font for ``text``: the style's family and weight for Latin titles, the script's font for others
    (from its characters, else the locale), the first candidate covering every character; None if none does."""
    style = style or TitleStyle()
    script = script_of_text(text) or script_of_locale(locale)
    index = _font_index()
    names: tuple[str, ...] = ()
    if script == "latin":
        family = _FAMILIES.get(style.font, _FAMILIES["sans"])
        names = family.get(style.weight, family["bold"])
        if style.font in _FAMILIES and not any(n in index for n in names):
            _warn_missing_family(style.font, style.weight)
    elif style.font == "serif":
        names = _SERIF_SCRIPT.get(script, ())
    for name in names + _FONT_CANDIDATES[script] + (_FONT_CANDIDATES["latin"] if script != "latin" else ()):
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
    c = np.asarray(rgb).astype(np.float32) / 255.0
    lin = np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)
    return 0.2126 * lin[..., 0] + 0.7152 * lin[..., 1] + 0.0722 * lin[..., 2]


def contrast_ratio(l1: float, l2: float) -> float:
    hi, lo = max(l1, l2), min(l1, l2)
    return (hi + 0.05) / (lo + 0.05)


# --- layout ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class TitleLayout:
    """Where the title went: ``box`` is its box (x, y, w, h) in output pixels (the plate, or the letters and
    their shadow), ``text_box`` the ink; ``plate_alpha`` how dark the treatment had to be for 4.5:1."""

    text: str
    lines: tuple[str, ...]
    font: str
    font_px: int
    box: tuple[int, int, int, int]
    text_box: tuple[int, int, int, int]
    plate_alpha: float
    script: str
    treatment: str = "plate"
    color: tuple[int, int, int] = TEXT_RGB
    cap_px: float = 0.0  # capital height in output pixels


@lru_cache(maxsize=256)
def _load_font(path: Path, size: int) -> FreeTypeFont:
    from PIL import ImageFont

    layout = ImageFont.Layout.RAQM if has_shaping() else ImageFont.Layout.BASIC
    return ImageFont.truetype(str(path), size=size, layout_engine=layout)


def _lang(locale: str) -> str | None:
    return (locale.split("-")[0].lower() or None) if has_shaping() else None


_CAP_PROBE = {"latin": "H", "cjk": "\u56fd", "devanagari": "\u0915"}


@lru_cache(maxsize=64)
def _cap_ratio(path: Path, script: str) -> float:
    """Ink height of a capital (a full-height ideograph, a consonant with its headline) per pixel of font size."""
    font = _load_font(path, 200)
    box = font.getbbox(_CAP_PROBE.get(script, "H"))
    return max(0.3, (box[3] - box[1]) / 200.0)


def _units(text: str, script: str) -> tuple[list[str], str]:
    if script == "cjk" and " " not in text:
        return list(text), ""
    return text.split(), " "


def _line_breaks(units: list[str], joiner: str, n: int, width_of: Callable[[str], float]) -> list[str] | None:
    """The split of ``units`` into ``n`` lines whose longest line is shortest (titles are short: exhaustive)."""
    if n > len(units):
        return None
    if n == 1:
        return [joiner.join(units)]
    best, best_w = None, float("inf")
    for cuts in combinations(range(1, len(units)), n - 1):
        bounds = (0,) + cuts + (len(units),)
        lines = [joiner.join(units[a:b]) for a, b in zip(bounds, bounds[1:])]
        w = max(width_of(line) for line in lines)
        if w < best_w - 0.5:
            best, best_w = lines, w
    return best


def _intersects(a: tuple[float, float, float, float], b: Box, margin: float) -> bool:
    ax, ay, aw, ah = a
    return not (ax + aw <= b.x - margin or b.x + b.w + margin <= ax or ay + ah <= b.y - margin
                or b.y + b.h + margin <= ay)


def _pads(treatment: str, cap: float) -> tuple[float, float]:
    return (0.55 * cap, 0.4 * cap) if treatment == "plate" else (0.3 * cap, 0.25 * cap)


def plan_title(width: int, height: int, text: str, locale: str, faces: Sequence[Box] = (), *,
               style: TitleStyle | None = None, regions: Sequence[Box] = (), saliency: np.ndarray | None = None,
               safe: tuple[float, float, float, float] = DEFAULT_SAFE) -> "TitleLayout | str":
    """Choose font, size, line breaks and a position for ``text`` on a ``width`` x ``height`` picture.

    Args:
        faces, regions: boxes (output pixels) the title keeps clear of.
        saliency: ``genart.imaging.saliency_map`` of the picture (any size): the title keeps off the subject.
        safe: (top, right, bottom, left) fractions of the picture the title stays out of.

    Returns:
        The layout, or the reason (a sentence) the title cannot be laid.
    """
    style = style or TitleStyle()
    text = " ".join(text.split())
    if not text:
        return "no title text"
    choice = find_font(text, locale, style)
    script = choice.script if choice else (script_of_text(text) or script_of_locale(locale))
    if choice is None:
        warn(f"no font covering the title {text!r} ({script} script) was found; title not drawn. "
             f"Install one: {_INSTALL_HINT[script]}, or point $GENART_FONTS at a folder of fonts",
             TitleWarning, stacklevel=2)
        return f"no font covering the {script} title is installed ({_INSTALL_HINT[script]})"
    if choice.script in _NEEDS_SHAPING and not has_shaping():
        return (f"{choice.script} needs complex-script shaping, but this Pillow has no libraqm "
                "(PIL.features.check('raqm') is False): not drawn rather than drawn wrong")
    title = text  # what the layout records; the lines are what is drawn (capitals for an upper-case style)
    if style.case == "upper" and script == "latin":
        text = text.upper()
    lang = _lang(locale) if script != "latin" else None
    ratio = _cap_ratio(choice.path, script)
    # black weights and outlines close the counters of small letters (PP-OCRv4 read League Spartan Black,
    # outlined, at 8 px as "Thc"): they start one pixel taller
    floor = MIN_CAP_PX_AT_160 + (1.0 if style.weight == "black" or style.treatment == "outline" else 0.0)
    min_cap = floor * width / 160.0
    sx0, sy0 = safe[3] * width, safe[0] * height
    sx1, sy1 = width - safe[1] * width, height - safe[2] * height
    margin_face = 0.03 * max(width, height)
    margin_region = 0.01 * max(width, height)
    sal = None
    if saliency is not None and saliency.size:
        sal = np.asarray(saliency, np.float32)
        ssx, ssy = sal.shape[1] / width, sal.shape[0] / height
        integral = np.pad(sal, ((1, 0), (1, 0))).cumsum(0).cumsum(1)
    share = style.max_share_wide if width > height else style.max_share
    units, joiner = _units(text, script)
    blocked = {"faces": 0, "regions": 0, "subject": 0}
    too_big = True
    caps = [min_cap * (2.0 * 0.9 ** k) for k in range(8) if 2.0 * 0.9 ** k >= 1.0] + [min_cap]
    for cap in caps:
        size = max(8, int(np.ceil(cap / ratio)))
        font = _load_font(choice.path, size)
        ascent, descent = font.getmetrics()
        line_h = int(round((ascent + descent) * (1.0 if script == "latin" else 1.08)))
        pad_x, pad_y = _pads(style.treatment, cap)
        for n in (1, 2, 3):
            lines = _line_breaks(units, joiner, n, partial(font.getlength, language=lang))
            if lines is None:
                break
            text_w = max(int(np.ceil(font.getlength(line, language=lang))) for line in lines)
            text_h = line_h * len(lines)
            bw, bh = int(text_w + 2 * pad_x), int(text_h + 2 * pad_y)
            if bw > sx1 - sx0 or bh > sy1 - sy0 or bw * bh > share * width * height:
                continue
            too_big = False
            xs = [(sx0 + sx1 - bw) / 2, sx0, sx1 - bw]
            rows = [sy1 - bh, sy0] + list(np.arange(sy1 - bh, sy0, -max(1.0, bh / 3)))[1:]
            if style.position == "top":  # the team asked for the top edge first
                rows = [sy0, sy1 - bh] + list(np.arange(sy0, sy1 - bh, max(1.0, bh / 3)))[1:]
            # a chosen edge wins whenever it is free; elsewhere only when it is blocked
            off_edge = 0.0 if style.position == "auto" else 1.0
            best = None
            for pref, (y, x) in enumerate((y, x) for y in rows for x in xs):
                x, y = int(round(x)), int(round(y))
                rect = (float(x), float(y), float(bw), float(bh))
                if any(_intersects(rect, f, margin_face) for f in faces):
                    blocked["faces"] += 1
                    continue
                if any(_intersects(rect, r, margin_region) for r in regions):
                    blocked["regions"] += 1
                    continue
                mean_sal = 0.0
                if sal is not None:
                    a0, b0 = int(y * ssy), int(x * ssx)
                    a1, b1 = max(a0 + 1, int(np.ceil((y + bh) * ssy))), max(b0 + 1, int(np.ceil((x + bw) * ssx)))
                    a1, b1 = min(a1, sal.shape[0]), min(b1, sal.shape[1])
                    area = max(1, (a1 - a0) * (b1 - b0))
                    mean_sal = float(integral[a1, b1] - integral[a0, b1] - integral[a1, b0] + integral[a0, b0]) / area
                    if mean_sal > MAX_SALIENCY:
                        blocked["subject"] += 1
                        continue
                cost = mean_sal + 0.01 * pref + (off_edge if pref >= len(xs) else 0.0)
                if best is None or cost < best[0]:
                    best = (cost, x, y)
            if best is not None:
                _, x, y = best
                return TitleLayout(text=title, lines=tuple(lines), font=str(choice.path), font_px=size,
                                   box=(x, y, bw, bh), text_box=(int(x + pad_x), int(y + pad_y), text_w, text_h),
                                   plate_alpha=0.0, script=script, treatment=style.treatment, color=style.color,
                                   cap_px=round(cap, 2))
    if too_big:
        return (f"the title does not fit the safe zone in 3 lines at a legible size (capitals of "
                f"{floor:g} px at 160 px wide) within {share:.0%} of the picture")
    what = [f"{len(faces)} face(s)" if blocked["faces"] else "", f"{len(regions)} text region(s)" if blocked["regions"] else "",
            "the salient subject" if blocked["subject"] else ""]
    return (f"no place in the safe zone clear of {', '.join(w for w in what if w) or 'the picture'} at a legible "
            f"size (capitals of {floor:g} px at 160 px wide) within {share:.0%} of the picture")


def _plate_blur(width: int) -> float:
    return max(0.5, 0.004 * width)


def _stroke(layout: TitleLayout) -> int:
    if layout.treatment == "outline":
        return max(1, int(round(0.09 * layout.cap_px)))
    return max(1, layout.font_px // 24) if layout.treatment == "plate" else 0


def _reach(layout: TitleLayout, width: int) -> int:
    """How far past the box drawing ``layout`` may change pixels (scrim spread, blur, shadow offset)."""
    cap = max(1.0, layout.cap_px or layout.font_px * 0.7)
    if layout.treatment == "scrim":
        return int(np.ceil(1.2 * cap + 3 * 0.6 * cap)) + 2
    if layout.treatment in ("shadow", "outline"):
        return int(np.ceil(0.25 * cap + 3 * 0.18 * cap)) + _stroke(layout) + 2
    return int(4 * _plate_blur(width)) + 8 + _stroke(layout)


def title_region(layout: TitleLayout, width: int, height: int) -> tuple[int, int, int, int]:
    """``(x0, y0, x1, y1)``: the part of a ``width`` x ``height`` image that drawing ``layout`` may change
    (its box, and a margin past the reach of the treatment's blur: Pillow's three box blurs stop within 3 radii)."""
    x, y, bw, bh = layout.box
    m = _reach(layout, width)
    return max(0, x - m), max(0, y - m), min(width, x + bw + m), min(height, y + bh + m)


def needed_alpha(l_max: float, color: tuple[int, int, int], start: float) -> float:
    """The dark layer's opacity that gives the letters 4.5:1 (with 15% headroom for resampling) against a
    background whose brightest (99th percentile) pixel has relative luminance ``l_max``. Shared by
    ``draw_title`` and the tensor finishing (``genart.generate.tensor_finish``), which measures ``l_max``
    on the device."""
    l_ink = float(relative_luminance(np.array(color, np.uint8)))
    l_needed = (l_ink + 0.05) / (TARGET_CONTRAST * 1.15) - 0.05
    alpha = start
    while alpha < 0.95 and l_max * (1 - alpha) ** 2.2 > l_needed:  # sRGB scaling ~ luminance^(1/2.2)
        alpha += 0.05
    return alpha


def alpha_basis(layout: TitleLayout) -> tuple[tuple[int, int, int, int], float]:
    """(the box (x, y, w, h) whose brightest pixels decide the treatment's opacity, the opacity it starts
    from): the plate's box for a plate, the letters' box for the other treatments."""
    if layout.treatment == "plate":
        return layout.box, 0.35
    return layout.text_box, 0.3 if layout.treatment == "scrim" else 0.0


def _needed_alpha(background: np.ndarray, color: tuple[int, int, int], start: float) -> float:
    l_max = float(np.percentile(relative_luminance(background), 99)) if background.size else 1.0
    return needed_alpha(l_max, color, start)


def draw_title(rgb: np.ndarray, layout: TitleLayout, locale: str,
               alpha: float | None = None) -> tuple[np.ndarray, TitleLayout]:
    """Lay the treatment and the letters; returns the new pixels and the layout with the treatment's opacity.

    Drawn on the box and a margin past the reach of the treatment only: the same pixels as on the whole
    image (the layer is clear beyond), a fraction of the time.

    ``alpha``: the dark layer's opacity when the caller chose it already (``needed_alpha`` of the pixels
    ``alpha_basis`` names); the tensor finishing draws a treatment once per opacity this way, on flat
    backgrounds. Default: chosen here from ``rgb``.
    """
    from PIL import Image, ImageDraw, ImageFilter

    height, width = rgb.shape[:2]
    x, y, bw, bh = layout.box
    tx, ty, tw, th = layout.text_box
    cap = max(1.0, layout.cap_px or layout.font_px * 0.7)
    x0, y0, x1, y1 = title_region(layout, width, height)
    font = _load_font(Path(layout.font), layout.font_px)
    lang = _lang(locale) if layout.script != "latin" else None
    line_h = th // max(1, len(layout.lines))
    stroke = _stroke(layout)
    positions = [(tx + (tw - font.getlength(line, language=lang)) / 2 - x0, ty - y0 + i * line_h)
                 for i, line in enumerate(layout.lines)]
    img = Image.fromarray(rgb[y0:y1, x0:x1]).convert("RGBA")
    mask = Image.new("L", img.size, 0)
    d = ImageDraw.Draw(mask)
    treatment = layout.treatment
    if alpha is None:
        (bx, by, bbw, bbh), start = alpha_basis(layout)
        alpha = _needed_alpha(rgb[by:by + bbh, bx:bx + bbw], layout.color, start)
    if treatment == "plate":
        d.rounded_rectangle((x - x0, y - y0, x - x0 + bw - 1, y - y0 + bh - 1), radius=int(0.125 * min(bw, bh)),
                            fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(radius=_plate_blur(width)))
    elif treatment == "scrim":
        e = 1.2 * cap
        d.rectangle((x - x0 - e, y - y0 - e, x - x0 + bw + e, y - y0 + bh + e), fill=255)
        mask = mask.filter(ImageFilter.GaussianBlur(radius=0.6 * cap))
    else:  # shadow / outline: a soft shadow of the letters themselves, a faint scrim only where needed
        if alpha > 0:
            d.rectangle((x - x0, y - y0, x - x0 + bw, y - y0 + bh), fill=int(round(255 * alpha)))
            mask = mask.filter(ImageFilter.GaussianBlur(radius=0.6 * cap))
        glyphs = Image.new("L", img.size, 0)
        gd = ImageDraw.Draw(glyphs)
        off = 0.08 * cap
        for (lx, ly), line in zip(positions, layout.lines):
            gd.text((lx + off, ly + off), line, font=font, fill=255, stroke_width=stroke + max(1, int(0.06 * cap)),
                    stroke_fill=255, language=lang)
        glyphs = glyphs.filter(ImageFilter.GaussianBlur(radius=0.18 * cap))
        mask = Image.fromarray(np.maximum(np.asarray(mask), (np.asarray(glyphs, np.float32) * 0.85).astype(np.uint8)))
        alpha = max(alpha, 0.85)
    if treatment in ("plate", "scrim"):
        mask = mask.point(lambda v: int(round(v * alpha)))
    dark = Image.new("RGBA", img.size, (8, 8, 12, 255))
    dark.putalpha(mask)
    img = Image.alpha_composite(img, dark)
    draw = ImageDraw.Draw(img)
    for (lx, ly), line in zip(positions, layout.lines):
        draw.text((lx, ly), line, font=font, fill=tuple(layout.color) + (255,), stroke_width=stroke,
                  stroke_fill=(10, 10, 14, 255), language=lang)
    out = rgb.copy()
    out[y0:y1, x0:x1] = np.asarray(img.convert("RGB"))
    return out, replace(layout, plate_alpha=round(alpha, 2))


def lay_title(rgb: np.ndarray, text: str, locale: str, faces: Sequence[Box] = (), *, style: TitleStyle | None = None,
              regions: Sequence[Box] = (), saliency: np.ndarray | None = None,
              safe: tuple[float, float, float, float] = DEFAULT_SAFE) -> tuple[np.ndarray, "TitleLayout | str"]:
    """Plan and draw; returns ``(pixels, layout)``, or the input unchanged and the reason it was not drawn."""
    plan = plan_title(rgb.shape[1], rgb.shape[0], text, locale, faces, style=style, regions=regions,
                      saliency=saliency, safe=safe)
    if isinstance(plan, str):
        return rgb, plan
    return draw_title(rgb, plan, locale)


# --- measuring legibility (what the tests and a reviewer can check) ---------------------------------
@dataclass(frozen=True)
class Legibility:
    width: int  # the width the image was measured at
    text_px: float  # height of the tallest run of text rows, per line, in pixels at that width
    contrast: float  # WCAG ratio between the text's ink and what is behind it


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
    # ink: the bright text; background: what is behind it (the darker half)
    ink = lum >= np.percentile(lum, 90)
    l_ink = float(np.median(lum[ink]))
    l_bg = float(np.median(lum[lum <= np.percentile(lum, 50)]))
    rows = np.where((lum > (l_ink + l_bg) / 2).any(axis=1))[0]
    text_px = float(rows.max() - rows.min() + 1) / max(1, len(layout.lines)) if rows.size else 0.0
    return Legibility(width=width, text_px=text_px, contrast=contrast_ratio(l_ink, l_bg))
