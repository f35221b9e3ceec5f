"""The tensor finishing (``genart.generate.tensor_finish``) against the CPU finishing it replaces on the
accelerator: OpenCV's resize, ``apply_grade`` and ``lay_title``, on real frames from ../shared/media,
for every profile's grade and every catalogue aspect. All on the CPU; the same code runs on CUDA."""

from __future__ import annotations

import glob
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

torch = pytest.importorskip("torch")

from genart.generate import delivery  # noqa: E402
from genart.generate import tensor_finish as tf  # noqa: E402
from genart.generate.classic import GRADE_LADDER  # noqa: E402
from genart.generate.diffusion import target_size  # noqa: E402
from genart.generate.grade import apply_grade  # noqa: E402
from genart.profiles import get_profiles  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PROFILES = sorted(Path(p).stem for p in glob.glob(str(REPO / "prompts" / "*.yaml")))
ASPECTS = ("16:9", "2:3", "1:1", "9:16")
TITLES = {"ja-JP": "夜明けの約束", "hi-IN": "रात का सफ़र"}


@pytest.fixture(scope="module")
def frames(media_dir) -> list[tuple[str, np.ndarray, list]]:
    """Every photo of ../shared/media at the size the diffusion presets make (512 px long side), with
    its faces in those pixels, as the finishing of a diffusion output sees it."""
    from genart.frames.faces import detect_faces

    out = []
    for path in sorted((media_dir / "images").iterdir()):
        im = Image.open(path).convert("RGB")
        w, h = target_size(im.width, im.height, 512)
        faces = [f.scaled(w / im.width, h / im.height) for f in detect_faces(im)]
        out.append((path.name, np.asarray(im.resize((w, h), Image.Resampling.LANCZOS)), faces))
    return out


@pytest.mark.slow
def test_profiles_and_photos_are_all_there(frames):
    assert len(PROFILES) >= 10 and len(frames) >= 6
    assert any(f for _, _, f in frames) and any(not f for _, _, f in frames)  # with faces and without


@pytest.mark.slow
@pytest.mark.parametrize("how", ["matmul", "taps"])
def test_resize_is_opencvs_on_real_frames(frames, how):
    """Area downscales (integer and fractional ratios), Lanczos upscales and the area-linear corner,
    with both ways of applying the taps (``matmul`` on the CPU, ``taps`` on CUDA)."""
    import cv2

    sizes = [(1024, 576), (800, 1200), (300, 169), (256, 144), (160, 90), (640, 360), (511, 1400)]
    checked = 0
    for name, rgb, _ in frames[:4]:
        h, w = rgb.shape[:2]
        x = tf.to_levels(rgb)
        for ow, oh in sizes:
            interp = cv2.INTER_AREA if w > ow else cv2.INTER_LANCZOS4  # as render_framing chooses
            ref = cv2.resize(rgb, (ow, oh), interpolation=interp)
            got = tf.resize_levels(x, (ow, oh), how=how)[0].to(torch.uint8).permute(1, 2, 0).numpy()
            d = np.abs(ref.astype(np.int16) - got)
            assert d.max() <= 1, (name, ow, oh, int(d.max()))
            if tf.resize_kinds((w, h), (ow, oh))[0] != "area-linear":  # OpenCV rounds that one in SIMD steps
                assert (d == 0).mean() > 0.999, (name, ow, oh)  # off by one only where float sums tie
            checked += 1
    assert checked == 4 * len(sizes)


@pytest.mark.slow
def test_saliency_thumbnail_is_the_one_saliency_center_reads(frames):
    import cv2

    from genart.imaging import saliency_center

    for _, rgb, _ in frames:
        thumb = tf.saliency_thumbs(tf.to_levels(rgb))[0]
        ref = cv2.resize(rgb, (64, 64), interpolation=cv2.INTER_AREA)
        assert np.abs(ref.astype(np.int16) - thumb).max() <= 1
        assert np.allclose(saliency_center(thumb), saliency_center(rgb), atol=2e-3)


@pytest.mark.slow
def test_grade_is_apply_grade_for_every_profile_in_one_mixed_batch(frames):
    """Every profile's grade at every amount of the classic ladder, rows of different grades in one call."""
    rows = [(rgb, get_profiles([pid])[0].grade, amount)
            for i, pid in enumerate(PROFILES) for amount in GRADE_LADDER
            for rgb in [frames[i % len(frames)][1]]]
    by_size: dict[tuple, list] = {}
    for r in rows:
        by_size.setdefault(r[0].shape, []).append(r)
    worst, exact, total = 0, 0, 0
    for group in by_size.values():
        x = tf.to_levels([r[0] for r in group])
        got = tf.grade_levels(x, [r[1] for r in group], [r[2] for r in group]).to(torch.uint8)
        for (rgb, grade, amount), g in zip(group, got):
            d = np.abs(apply_grade(rgb, grade, amount).astype(np.int16) - g.permute(1, 2, 0).numpy())
            worst, exact, total = max(worst, int(d.max())), exact + int((d == 0).sum()), total + d.size
    assert worst <= 2 and exact / total > 0.9999, (worst, exact / total)


def _layouts(width: int, height: int):
    """A title layout per script and treatment (plate, scrim, shadow, outline) on a picture of that size."""
    from genart.generate.title import find_font, has_shaping, plan_title
    from genart.types import TitleStyle

    out = []
    for treatment in ("plate", "scrim", "shadow", "outline"):
        for locale, text in (("en-US", "The Long Night"), ("ja-JP", TITLES["ja-JP"]), ("hi-IN", TITLES["hi-IN"])):
            if find_font(text, locale) is None or (locale == "hi-IN" and not has_shaping()):
                continue  # no font for the script here: lay_title skips it too (tested in test_title.py)
            layout = plan_title(width, height, text, locale, [], style=TitleStyle(treatment=treatment))
            if not isinstance(layout, str):
                out.append((locale, layout))
    return out


@pytest.mark.slow
def test_title_composite_is_draw_titles_pixels_for_every_treatment(frames):
    """A treatment drawn once on flat backgrounds and composited as a tensor gives draw_title's pixels
    on real images, for plates, scrims, shadows and outlines, with the opacity measured on the device
    (the CPU's), and draw_title's own opacity reported."""
    from genart.generate.title import alpha_basis, draw_title, needed_alpha, relative_luminance

    checked, treatments = 0, set()
    for name, rgb, _ in frames[:2]:
        for size in ((1280, 720), (1000, 1500)):
            img = np.asarray(Image.fromarray(rgb).resize(size, Image.Resampling.LANCZOS))
            x = tf.to_levels(img)[0]
            for locale, layout in _layouts(*size):
                ref, drawn = draw_title(img, layout, locale)
                (bx, by, bw, bh), start = alpha_basis(layout)
                l_cpu = float(np.percentile(relative_luminance(img[by:by + bh, bx:bx + bw]), 99))
                alpha = needed_alpha(float(tf.luminance_p99(x, (bx, by, bw, bh))), layout.color, start)
                assert alpha == needed_alpha(l_cpu, layout.color, start)
                plate = tf.title_plate(layout, locale, *size, alpha, "cpu")
                assert plate.plate_alpha == drawn.plate_alpha
                got = tf.to_host(tf.composite_plate(x, plate).to(torch.uint8))
                d = np.abs(ref.astype(np.int16) - got)
                assert d.max() <= 2, (name, size, locale, layout.treatment, int(d.max()))
                x0, y0, x1, y1 = tf.title_region(layout, *size)
                assert not d[:y0].any() and not d[y1:].any() and not d[:, :x0].any() and not d[:, x1:].any()
                checked += 1
                treatments.add(layout.treatment)
    assert checked >= 16 and treatments == {"plate", "scrim", "shadow", "outline"}


def test_plates_are_drawn_once_per_layout_and_opacity_wherever_the_box_sits():
    from dataclasses import replace

    def up(layout, dy):
        return replace(layout, box=(layout.box[0], layout.box[1] - dy, *layout.box[2:]),
                       text_box=(layout.text_box[0], layout.text_box[1] - dy, *layout.text_box[2:]))

    locale, layout = next((loc, lay) for loc, lay in _layouts(1280, 720) if lay.treatment == "plate")
    tf._PLATES.clear()
    a = tf.plate_layers(up(layout, 100), locale, 1280, 720, 0.5)
    b = tf.plate_layers(up(layout, 150), locale, 1280, 720, 0.5)  # the same plate, higher up: not drawn again
    assert len(tf._PLATES) == 1 and a is b
    tf.plate_layers(up(layout, 100), locale, 1280, 720, 0.55)  # another opacity
    y0 = tf.title_region(layout, 1280, 720)[1]
    tf.plate_layers(up(layout, layout.box[1]), locale, 1280, 720, 0.5)  # at the top edge its region is clipped
    assert len(tf._PLATES) == 3 and y0 > 0


@pytest.mark.slow
def test_finishing_matches_finish_for_every_profile_and_aspect(frames):
    """The whole finishing (plan, crop + resize, grade, title placed on the graded picture's saliency)
    through the tensor path against ``finish``, each profile's grade, locale, title style and title at
    every catalogue aspect and its delivery size, on photos with and without faces: the same crops,
    sizes and title decisions, pixels within 2 levels."""
    cases = []
    for pid in PROFILES:
        p = get_profiles([pid])[0]
        cases += [(p, a, TITLES.get(p.locale, "The Long Night")) for a in ASPECTS]
    with_faces = next(f for f in frames if f[2])
    without = next(f for f in frames if not f[2])
    stats = {"finish_max_abs_diff": 0, "rows": 0, "on_device": 0, "plan_mismatches": 0}
    for i, (_, rgb, faces) in enumerate((with_faces, without)):  # each case on one of the two photos
        part = delivery.finish_max_abs_diff([(rgb, faces)], cases[i::2])
        stats = {k: max(v, part[k]) if k == "finish_max_abs_diff" else v + part[k] for k, v in stats.items()}
    assert stats["rows"] == len(cases) and stats["plan_mismatches"] == 0
    assert stats["on_device"] >= stats["rows"] * 0.6  # the framings that stay in the frame
    assert stats["finish_max_abs_diff"] <= 2, stats


@pytest.mark.slow
def test_the_watermark_is_embedded_on_the_tensor_path_and_reads_back(frames):
    """The watermark (CPU numpy, on a host copy) after the tensor finishing: it reads back, and the
    device's pixels are the watermarked ones."""
    from genart.config import FinishSpec
    from genart.generate.delivery import finish_variant
    from genart.provenance import read_watermark

    _, rgb, faces = next(f for f in frames if f[2])
    profile = get_profiles(["drama"])[0]
    done = finish_variant(rgb, faces, (), "16:9", profile, 1.0, FinishSpec(), title="Night", watermark="genart",
                          device="cpu")
    assert done.watermark == "genart" and read_watermark(done.pixels) == "genart"
    plain = finish_variant(rgb, faces, (), "16:9", profile, 1.0, FinishSpec(), title="Night", device="cpu")
    assert read_watermark(plain.pixels) != "genart" and np.abs(plain.pixels.astype(int) - done.pixels).mean() < 2


def _plan(rgb, faces, aspect, profile, amount, **kw):
    from genart.config import FinishSpec

    settings = FinishSpec()
    h, w = rgb.shape[:2]
    return tf.plan_row(w, h, faces, aspect, profile.grade, amount, size=settings.size(aspect),
                       locale=profile.locale, style=profile.title_style, safe=settings.safe_zone(aspect), **kw)


@pytest.mark.slow
def test_one_batch_of_mixed_crops_sizes_grades_and_titles_is_each_row_alone(frames):
    _, rgb, faces = next(f for f in frames if f[2])
    plans = []
    for i, (pid, aspect) in enumerate([("romance", "16:9"), ("thriller", "1:1"), ("horror", "16:9"),
                                       ("comedy", "2:3"), ("romance-ja", "1:1")]):
        p = get_profiles([pid])[0]
        plan = _plan(rgb, faces, aspect, p, GRADE_LADDER[i], title=TITLES.get(p.locale, "Night"),
                     zoom=1.0 + 0.05 * i, shift=(0.3 * i - 0.6, 0.1))
        if plan.on_device:
            plans.append(plan)
    assert len({p.size for p in plans}) > 1 and len({p.framing.crop[2:] for p in plans}) > 1
    x = tf.to_levels(rgb).expand(len(plans), -1, -1, -1)
    together = tf.finish_batch(x, plans)
    for plan, row in zip(plans, together):
        (alone,) = tf.finish_batch(tf.to_levels(rgb), [plan])
        assert torch.equal(row.pixels, alone.pixels) and row.title == alone.title
        assert tuple(row.pixels.shape[1:]) == (plan.size[1], plan.size[0])


@pytest.mark.slow
def test_framings_that_leave_the_frame_are_left_to_the_cpu(frames):
    """A window past the frame (here: a preset letting a fill make up to half the picture, and a face too
    large for a 9:16 crop inside it) is the CPU's mirrored fill until part B: refused by the batch,
    finished by ``finish``."""
    from genart.generate.finish import finish
    from genart.types import Box

    _, rgb, _ = next(f for f in frames if rgb_is_wide(f[1]))
    h, w = rgb.shape[:2]
    face = [Box(w * 0.25, h * 0.3, w * 0.5, h * 0.4)]
    profile = get_profiles(["drama"])[0]
    plan = _plan(rgb, face, "9:16", profile, 1.0, max_synthetic=0.5)
    assert not plan.on_device and plan.framing.synthetic_share > 0
    with pytest.raises(ValueError, match="finished on the CPU"):
        tf.finish_batch(tf.to_levels(rgb), [plan])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        done = tf.finish_image(rgb, face, "9:16", profile.grade, 1.0, size=plan.size, max_synthetic=0.5)
    assert done.reframe == "mirror-fill"
    ref = finish(rgb, face, "9:16", profile.grade, 1.0, size=plan.size, max_synthetic=0.5)
    assert np.array_equal(done.pixels, ref.pixels)


def rgb_is_wide(rgb: np.ndarray) -> bool:
    return rgb.shape[1] > rgb.shape[0] * 1.2


@pytest.mark.slow
def test_classic_with_tensor_finishing_makes_the_same_variants(media_dir):
    """``delivery.finishing: tensor`` on the classic preset (opt-in: on the CPU the CPU path is faster):
    the same variants, pixels within 2 levels, including the zoomed and shifted later rounds."""
    from genart.frames.faces import detect_faces
    from genart.generate.classic import ClassicGenerator
    from genart.types import KeyFrame

    im = Image.open(media_dir / "images" / "two_people.jpg").convert("RGB")
    kf = KeyFrame(id="two", source="two_people.jpg", t_s=1.0, frame_index=1, shot=0, width=im.width, height=im.height,
                  faces=tuple(detect_faces(im)), image=im)
    profile = get_profiles(["thriller"])[0]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        cpu = ClassicGenerator(finishing="cpu").generate([kf], profile, 4, seed=3, title="The Long Night")
        tensor = ClassicGenerator(finishing="tensor").generate([kf], profile, 4, seed=3, title="The Long Night")
    assert [v.id for v in cpu] == [v.id for v in tensor]
    for a, b in zip(cpu, tensor):
        assert np.abs(np.asarray(a.image, np.int16) - np.asarray(b.image, np.int16)).max() <= 2
