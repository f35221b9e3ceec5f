"""Title treatment on real photos: never over a face, legible at 160 px wide, in the profile's script."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from PIL import Image

from genart.frames.faces import detect_faces
from genart.generate.title import (
    TitleLayout,
    TitleWarning,
    find_font,
    has_shaping,
    lay_title,
    measure_legibility,
    plan_title,
    script_of_locale,
    title_region,
)
from genart.types import Box

TITLES = {"en-US": "The Long Night Train Home", "ja-JP": "夜行列車の恋", "hi-IN": "रात की ट्रेन"}
PHOTOS = ("astronaut.png", "obama.jpg", "two_people.jpg", "biden.jpg")


def _overlaps(a: tuple[int, int, int, int], f: Box) -> bool:
    x, y, w, h = a
    return not (x + w <= f.x or f.x + f.w <= x or y + h <= f.y or f.y + f.h <= y)


def _need_font(text: str, locale: str) -> None:
    if find_font(text, locale) is None:
        pytest.skip(f"no system font for {locale} here (CI installs fonts-noto-core fonts-ipafont-gothic)")


def test_scripts_and_fonts() -> None:
    assert script_of_locale("ja-JP") == "cjk" and script_of_locale("hi-IN") == "devanagari"
    assert script_of_locale("en-US") == "latin" and script_of_locale("pt-BR") == "latin"
    latin = find_font("Night Train", "en-US")
    assert latin is not None and latin.script == "latin"  # DejaVu ships with matplotlib at least
    for locale, text in TITLES.items():
        choice = find_font(text, locale)
        if choice is not None:
            assert choice.script == script_of_locale(locale)


@pytest.mark.slow
@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("locale", sorted(TITLES))
def test_title_avoids_faces_and_survives_160px(media_dir, photo: str, locale: str) -> None:
    text = TITLES[locale]
    _need_font(text, locale)
    if locale == "hi-IN" and not has_shaping():
        pytest.skip("Pillow without libraqm: Devanagari is not drawn (documented limitation)")
    im = Image.open(media_dir / "images" / photo).convert("RGB")
    faces = detect_faces(im)
    assert faces, photo
    rgb = np.asarray(im)
    out, layout = lay_title(rgb, text, locale, faces)
    assert isinstance(layout, TitleLayout), (photo, locale, layout)
    for f in faces:
        assert not _overlaps(layout.box, f), (photo, locale, layout.box, f)
    # the faces' pixels are untouched
    for f in faces:
        x0, y0, x1, y1 = int(f.x), int(f.y), int(f.x + f.w), int(f.y + f.h)
        assert np.array_equal(out[y0:y1, x0:x1], rgb[y0:y1, x0:x1])
    leg = measure_legibility(out, layout, width=160)
    assert leg.text_px >= 6, leg  # letters at least 6 px tall on a 160 px wide tile
    assert leg.contrast >= 4.5, leg  # WCAG AA between ink and plate, measured after downscaling
    # and something really was drawn there: the title region changed
    x, y, w, h = layout.box
    assert np.abs(out[y:y + h, x:x + w].astype(int) - rgb[y:y + h, x:x + w]).mean() > 10


def test_no_face_free_place_means_no_title_and_says_why() -> None:
    rgb = np.full((360, 640, 3), 128, np.uint8)
    everywhere = [Box(0, 0, 640, 360)]
    out, layout = lay_title(rgb, "Night Train", "en-US", everywhere)
    assert isinstance(layout, str) and out is rgb
    assert "clear of 1 face(s)" in layout and "160 px" in layout


def test_moves_away_from_a_face_at_the_bottom() -> None:
    rgb = np.full((360, 640, 3), 200, np.uint8)  # bright: the plate must darken enough
    face = Box(250, 220, 140, 140)
    layout = plan_title(640, 360, "Night Train", "en-US", [face])
    assert isinstance(layout, TitleLayout) and not _overlaps(layout.box, face)
    out, layout = lay_title(rgb, "Night Train", "en-US", [face])
    assert measure_legibility(out, layout).contrast >= 4.5


def test_unrenderable_text_warns_and_draws_nothing() -> None:
    rgb = np.zeros((90, 160, 3), np.uint8)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        out, layout = lay_title(rgb, "\u0378\u0379", "en-US")  # unassigned code points: no font has them
    assert isinstance(layout, str) and "no font" in layout and out is rgb
    assert any(issubclass(w.category, TitleWarning) and "no font" in str(w.message) for w in caught)


@pytest.mark.parametrize("size", [(1024, 576), (576, 1024), (320, 180)])
@pytest.mark.parametrize("locale", ["en-US", "ja-JP"])
def test_the_title_is_drawn_inside_its_region(media_dir, size: tuple[int, int], locale: str) -> None:
    """Only the box and a margin are drawn (a third of the time of compositing the whole image): every
    changed pixel lies inside ``title_region``, clear of its edges where they are not the image's, so
    the plate's blur and the outline were not cut off; the caller's pixels are left alone."""
    text = TITLES[locale]
    _need_font(text, locale)
    rgb = np.asarray(Image.open(media_dir / "images" / "coffee.png").convert("RGB").resize(size))
    before = rgb.copy()
    out, layout = lay_title(rgb, text, locale)
    assert isinstance(layout, TitleLayout) and np.array_equal(rgb, before)
    x0, y0, x1, y1 = title_region(layout, *size)
    changed = np.argwhere(np.any(out != rgb, axis=2))
    assert len(changed) > 0.5 * layout.box[2] * layout.box[3]
    ys, xs = changed[:, 0], changed[:, 1]
    assert xs.min() >= x0 and ys.min() >= y0 and xs.max() < x1 and ys.max() < y1
    ring = 3  # the blur fades out before the region's own edges (except where the image ends)
    assert x0 == 0 or xs.min() >= x0 + ring, (xs.min(), x0)
    assert y0 == 0 or ys.min() >= y0 + ring, (ys.min(), y0)
    assert x1 == size[0] or xs.max() < x1 - ring, (xs.max(), x1)
    assert y1 == size[1] or ys.max() < y1 - ring, (ys.max(), y1)
