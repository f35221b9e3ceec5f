"""The classic preset's stages on real photos: reframing keeps faces, grades move the look, ranking."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from genart import imaging
from genart.frames.faces import detect_faces
from genart.generate.classic import ClassicGenerator
from genart.generate.grade import apply_grade
from genart.config import DEFAULT_DELIVERY_SIZES
from genart.generate.reframe import plan_framing, render_framing
from genart.profiles import get_profiles, load_profiles
from genart.rank.combine import rank_for_profile
from genart.rank.features import FeatureScorer, TechnicalScorer
from genart.testing.contracts import ScorerContract
from genart.testing.fakes import FixedScorer
from genart.types import Box, Grade, KeyFrame, ScoreSet, stable_id

PHOTOS = ("astronaut.png", "obama.jpg", "two_people.jpg", "biden.jpg")


def keyframe_from(path, detect=True) -> KeyFrame:
    im = Image.open(path).convert("RGB")
    faces = tuple(detect_faces(im)) if detect else ()
    return KeyFrame(id=stable_id(str(path)), source=str(path), t_s=0.0, frame_index=0, shot=0, width=im.width,
                    height=im.height, faces=faces, image=im)


@pytest.mark.parametrize("photo", PHOTOS)
@pytest.mark.parametrize("aspect", sorted(DEFAULT_DELIVERY_SIZES))
@pytest.mark.slow
def test_reframing_keeps_the_faces_whole(media_dir, photo, aspect):
    """Every main face is inside the crop, or (where they cannot all be) the lead face is and no face is cut
    in two; what lies outside the frame stays within the seamless fill's 8%."""
    kf = keyframe_from(media_dir / "images" / photo)
    assert kf.faces, f"no face found on {photo}"
    framing = plan_framing(kf.width, kf.height, aspect, kf.faces, out_width=DEFAULT_DELIVERY_SIZES[aspect][0])
    x, y, w, h = framing.crop
    crop = Box(x, y, w, h)
    lead = max(kf.faces, key=lambda f: f.area)
    kept = kf.faces if framing.keeps == "subject" else (lead,)
    for face in kept:
        assert crop.contains(face, tol=1.0), (photo, aspect, framing, face)
    for face in kf.faces:  # no face sliced: inside, or outside, or (a small one) nearly so
        inside = max(0.0, min(x + w, face.x + face.w) - max(x, face.x)) * max(0.0, min(y + h, face.y + face.h) - max(y, face.y))
        assert inside <= 0.25 * face.area or inside >= 0.75 * face.area, (photo, aspect, framing, face)
    aw, ah = (float(v) for v in aspect.split(":"))
    assert framing.synthetic_share <= 0.08, framing
    assert abs(w / h - aw / ah) < 0.02
    out = render_framing(imaging.to_array(kf.image), framing, (320, int(round(320 * ah / aw))))
    assert out.shape[1] == 320 and out.dtype == np.uint8


@pytest.mark.slow
def test_a_group_too_wide_for_the_aspect_keeps_the_lead_not_a_filled_band(media_dir):
    """Two people side by side cannot be a 9:16 without ~47% fill (what came out before): the crop keeps the
    lead face instead, inside the frame, and the face is still found in the picture."""
    kf = keyframe_from(media_dir / "images" / "two_people.jpg")
    assert len(kf.faces) == 2
    framing = plan_framing(kf.width, kf.height, "9:16", kf.faces, out_width=720)
    assert not framing.padded and framing.synthetic_share == 0.0 and framing.keeps in ("lead", "face")
    out = render_framing(imaging.to_array(kf.image), framing, (360, 640))
    assert len(detect_faces(out)) >= 1


@pytest.mark.slow
@pytest.mark.parametrize("photo", ["astronaut.png", "obama.jpg"])
def test_classic_variants_still_show_the_face(media_dir, photo):
    kf = keyframe_from(media_dir / "images" / photo)
    profile = get_profiles(["romance"])[0]
    variants = ClassicGenerator().generate([kf], profile, 3, seed=1)
    assert [v.params.aspect for v in variants] == list(profile.aspects)
    for v in variants:
        assert v.image.size == (v.params.width, v.params.height)
        assert detect_faces(v.image), f"face lost in the {v.params.aspect} variant of {photo}"


def test_grades_move_the_look_the_way_they_say(stills_dir):
    rgb = imaging.to_array(Image.open(stills_dir / "coffee.png"))
    base = imaging.features(rgb)
    warm = imaging.features(apply_grade(rgb, Grade(name="w", warmth=0.8)))
    dark = imaging.features(apply_grade(rgb, Grade(name="d", exposure=-1.0)))
    grey = imaging.features(apply_grade(rgb, Grade(name="g", saturation=-0.8)))
    punchy = imaging.features(apply_grade(rgb, Grade(name="c", contrast=0.6)))
    assert warm["warmth"] > base["warmth"] + 0.03
    assert dark["brightness"] < base["brightness"] - 0.1
    assert grey["saturation"] < base["saturation"] * 0.5
    assert punchy["contrast"] > base["contrast"]
    half = imaging.features(apply_grade(rgb, Grade(name="w", warmth=0.8), amount=0.5))
    assert base["warmth"] < half["warmth"] < warm["warmth"]


def _grade_by_the_formulas(rgb: np.ndarray, g: Grade, k: float) -> np.ndarray:
    """The grade written out step by step, one new array per step (how apply_grade was first written)."""
    a = rgb.astype(np.float64) / 255.0
    a = a * 2.0 ** (g.exposure * k)
    w, t = g.warmth * k, g.tint * k
    a = np.clip(a * np.array([1 + 0.12 * w + 0.03 * t, 1 - 0.08 * t, 1 - 0.12 * w + 0.03 * t]), 0, 1)
    lum = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2])[..., None]
    a = lum + (a - lum) * (1.0 + g.saturation * k)
    c = g.contrast * k
    if c > 0:
        a = 0.5 + np.tanh((a - 0.5) * (1 + 2 * c)) / (2 * np.tanh(0.5 * (1 + 2 * c)))
    else:
        a = 0.5 + (a - 0.5) * (1 + c)
    a = np.clip(a, 0, 1)
    lum = (0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2])[..., None]
    a = a + (1 - lum) ** 2 * np.array(g.shadows_tint) * k * 2 + lum**2 * np.array(g.highlights_tint) * k * 2
    f = 0.12 * g.fade * k
    a = f + a * (1 - f)
    h, wd = a.shape[:2]
    ys, xs = np.ogrid[0:h, 0:wd]
    r2 = ((xs - wd / 2) / (wd / 2)) ** 2 + ((ys - h / 2) / (h / 2)) ** 2
    a = a * (1 - 0.45 * g.vignette * k * np.clip(r2 / 2, 0, 1) ** 1.2)[..., None]
    return (np.clip(a, 0, 1) * 255.0 + 0.5).astype(np.uint8)


def test_the_in_place_grade_matches_the_formulas(stills_dir):
    """apply_grade works in place on planar float32: every shipped profile's look, at two strengths, lands
    within one level of the formulas computed in float64 (rounding at a .5 boundary only)."""
    rgb = np.asarray(Image.open(stills_dir / "coffee.png").convert("RGB").resize((320, 180)))
    grades = {p.grade.name: p.grade for p in load_profiles().values()}
    assert len(grades) >= 5
    for g in grades.values():
        for k in (1.0, 0.5):
            got = apply_grade(rgb, g, k)
            assert got.shape == rgb.shape and got.dtype == np.uint8 and got.flags.c_contiguous
            diff = np.abs(got.astype(int) - _grade_by_the_formulas(rgb, g, k).astype(int))
            assert diff.max() <= 1 and (diff > 0).mean() < 1e-3, (g.name, k, diff.max(), (diff > 0).mean())
    assert not np.array_equal(apply_grade(rgb, Grade(name="v", vignette=0.5)), rgb)  # the cached mask applies
    assert np.array_equal(apply_grade(rgb, Grade(name="none")), rgb)


@pytest.mark.slow
def test_classic_generation_is_deterministic_and_varied(stills_dir):
    kf = keyframe_from(stills_dir / "chelsea.png", detect=False)
    profile = get_profiles(["thriller"])[0]
    a = ClassicGenerator().generate([kf], profile, 6, seed=7)
    b = ClassicGenerator().generate([kf], profile, 6, seed=7)
    assert [v.id for v in a] == [v.id for v in b]
    for x, y in zip(a, b):
        assert np.array_equal(np.asarray(x.image), np.asarray(y.image))
    assert len({v.id for v in a}) == 6
    c = ClassicGenerator().generate([kf], profile, 6, seed=8)
    assert [v.id for v in a] != [v.id for v in c]
    assert all(v.digital_source_type == "algorithmicallyEnhanced" for v in a)


class _ClassicFixture:
    def make_variants(self):
        from skimage import data

        out = []
        for name in ("astronaut", "coffee", "rocket"):
            im = Image.fromarray(getattr(data, name)())
            kf = KeyFrame(id=name, source=name, t_s=0, frame_index=0, shot=0, width=im.width, height=im.height, image=im)
            out += ClassicGenerator().generate([kf], self.make_profile(), 2, seed=3)
        return out

    def make_profile(self):
        return get_profiles(["action"])[0]


@pytest.mark.slow
class TestFeatureScorerContract(_ClassicFixture, ScorerContract):
    def make_scorer(self):
        return FeatureScorer()


@pytest.mark.slow
class TestTechnicalScorerContract(_ClassicFixture, ScorerContract):
    def make_scorer(self):
        return TechnicalScorer()


@pytest.mark.slow
def test_fidelity_separates_the_true_source_from_another_frame(stills_dir):
    profile = get_profiles(["drama"])[0]
    astro = keyframe_from(stills_dir / "astronaut.png", detect=False)
    coffee = keyframe_from(stills_dir / "coffee.png", detect=False)
    variants = ClassicGenerator().generate([astro], profile, 3, seed=0)
    honest = FeatureScorer().score(variants, profile)
    # the same pixels claimed to come from another frame: clickbait the ranking must catch
    liars = [replace(v, keyframe=coffee) for v in variants]
    lying = FeatureScorer().score(liars, profile)
    for h, lie in zip(honest, lying):
        assert h["fidelity"] > 0.6 > 0.35 > lie["fidelity"]
    ranked = rank_for_profile(variants + liars, profile, [FeatureScorer(), TechnicalScorer()], fidelity_threshold=0.35)
    assert [r.rank for r in ranked[:3]] == [1, 2, 3]
    assert all(r.rejected and "fidelity" in r.rejected and r.rank is None for r in ranked[3:])
    assert {r.variant.keyframe.id for r in ranked[3:]} == {coffee.id}


def test_ranking_orders_by_the_profile_weighted_total():
    from genart.types import GenerationParams, Variant

    profile = replace(get_profiles(["romance"])[0], weights=ScoreSet.of({"affinity": 2.0, "fidelity": 1.0}))
    kf = KeyFrame(id="k", source="s", t_s=0, frame_index=0, shot=0, width=4, height=4)
    table = {"a": {"affinity": 0.9, "fidelity": 0.5}, "b": {"affinity": 0.5, "fidelity": 1.0},
             "c": {"affinity": 0.8, "fidelity": 0.1}, "d": {"affinity": 1.0, "fidelity": 0.95}}
    variants = [Variant(id=i, profile_id="romance", keyframe=kf, digital_source_type="x",
                        params=GenerationParams("p", "classic", "romance", "v", "k", 0, 4, 4, "1:1", "n"))
                for i in table]
    ranked = rank_for_profile(variants, profile, [FixedScorer(table)], fidelity_threshold=0.2)
    totals = {r.variant.id: r.total for r in ranked}
    assert totals["a"] == pytest.approx((2 * 0.9 + 0.5) / 3)
    assert [r.variant.id for r in ranked] == ["d", "a", "b", "c"]
    assert [r.rank for r in ranked] == [1, 2, 3, None] and ranked[-1].rejected
    top = rank_for_profile(variants, profile, [FixedScorer(table)], fidelity_threshold=0.2, top_k=2)
    assert [r.variant.id for r in top if r.rank] == ["d", "a"]
