"""The frames stage on synthetic clips with known cuts, on real media, and on bad inputs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from genart.errors import (  # noqa: E402
    EmptySourceError,
    InvalidArgumentError,
    SourceNotFoundError,
    UnsupportedMediaError,
)
from genart.frames import analyse, detect_faces, extract_keyframes, find_faces, probe_source  # noqa: E402
from genart.frames.quality import BLACK_LUMA, NEAR_DUP_BITS, frame_hash, hash_distance  # noqa: E402
from genart.imaging import brightness, sha256_file, to_array  # noqa: E402
from genart.types import Box, FramesResult, KeyFrame, Shot, stable_id  # noqa: E402
from tests.media import make_clip, make_stills, read_stamp  # noqa: E402

FPS = 24


# --- synthetic clips -----------------------------------------------------------------------------
@pytest.fixture(scope="module")
def four_shots(tmp_path_factory):
    """Four 1-second shots with hard cuts at frames 24, 48, 72, and their key frames."""
    clip = make_clip(tmp_path_factory.mktemp("clips") / "four.mp4", [("texture", FPS)] * 4, fps=FPS)
    calls: list[tuple[str, int, int]] = []
    kfs = extract_keyframes(clip.path, max_frames=4, progress=lambda *a: calls.append(a))
    return clip, kfs, calls


def _check_keyframe(kf: KeyFrame, clip) -> None:
    assert isinstance(kf, KeyFrame)
    assert kf.source == str(clip.path)
    assert kf.path is None
    assert (kf.width, kf.height) == (clip.width, clip.height)
    assert kf.image is not None and kf.image.mode == "RGB" and kf.image.size == (kf.width, kf.height)
    # timecode and frame number agree, and the pixels are those of that very frame (seek accuracy)
    assert abs(kf.t_s - kf.frame_index / clip.fps) < 0.5 / clip.fps
    assert read_stamp(kf.image) == kf.frame_index
    for name in ("sharpness", "exposure", "contrast", "colourfulness", "naturalness", "faces", "face_area",
                 "face_frontal", "face_x", "face_y", "thirds", "motion_blur", "fade", "title_card", "quality"):
        assert name in kf.scores
        assert 0.0 <= kf.scores[name] <= 1.0 or name == "faces"
    assert 0.0 <= kf.scores["quality"] <= 1.0


@pytest.mark.slow
def test_keyframes_come_from_different_shots(four_shots):
    clip, kfs, _ = four_shots
    assert len(kfs) == 4
    for kf in kfs:
        _check_keyframe(kf, clip)
    assert sorted(clip.segment_of(kf.frame_index) for kf in kfs) == [0, 1, 2, 3]
    assert len({kf.shot for kf in kfs}) == 4
    assert [kf.t_s for kf in kfs] == sorted(kf.t_s for kf in kfs)
    for kf in kfs:
        assert brightness(to_array(kf.image)) > BLACK_LUMA


@pytest.mark.slow
def test_keyframe_ids_are_stable_content_ids(four_shots):
    clip, kfs, _ = four_shots
    digest = sha256_file(clip.path)
    assert [kf.id for kf in kfs] == [stable_id(digest, kf.frame_index) for kf in kfs]
    assert len({kf.id for kf in kfs}) == len(kfs)


@pytest.mark.slow
def test_keyframes_are_pairwise_distinct(four_shots):
    _, kfs, _ = four_shots
    hashes = [frame_hash(kf.image) for kf in kfs]
    for i in range(len(hashes)):
        for j in range(i + 1, len(hashes)):
            assert hash_distance(hashes[i], hashes[j]) > NEAR_DUP_BITS


@pytest.mark.slow
def test_progress_is_reported(four_shots):
    _, _, calls = four_shots
    assert calls and all(stage == "frames" for stage, _, _ in calls)
    done = [d for _, d, _ in calls]
    assert done == sorted(done)
    assert calls[-1][1] == calls[-1][2] > 0
    assert all(0 < d <= t for _, d, t in calls)


@pytest.mark.slow
def test_max_frames_is_respected(four_shots):
    clip, _, _ = four_shots
    two = extract_keyframes(clip.path, max_frames=2)
    assert len(two) == 2
    assert len({clip.segment_of(kf.frame_index) for kf in two}) == 2
    assert len(extract_keyframes(clip.path, max_frames=1, sample_fps=1.0)) == 1


@pytest.mark.slow
def test_static_clip_is_one_shot(tmp_path):
    clip = make_clip(tmp_path / "static.mp4", [("static", 48)], fps=FPS)
    kfs = extract_keyframes(clip.path, max_frames=4)
    assert {kf.shot for kf in kfs} == {0}
    assert len(kfs) == 1  # every sample is a near-duplicate of the best one


@pytest.mark.slow
def test_black_section_never_yields_a_black_keyframe(tmp_path):
    clip = make_clip(tmp_path / "black.mp4", [("texture", FPS), ("black", 2 * FPS), ("texture", FPS)], fps=FPS)
    kfs = extract_keyframes(clip.path, max_frames=6)
    assert kfs
    for kf in kfs:
        assert clip.kinds[clip.segment_of(kf.frame_index)] != "black"
        assert brightness(to_array(kf.image)) > BLACK_LUMA
    assert {clip.segment_of(kf.frame_index) for kf in kfs} == {0, 2}


@pytest.mark.slow
def test_blurred_shot_is_dropped(tmp_path):
    clip = make_clip(tmp_path / "blur.mp4", [("texture", FPS), ("blurred", FPS), ("texture", FPS)], fps=FPS)
    kfs = extract_keyframes(clip.path, max_frames=6)
    assert kfs
    assert all(clip.kinds[clip.segment_of(kf.frame_index)] != "blurred" for kf in kfs)


@pytest.mark.slow
def test_rotated_video_is_returned_upright(tmp_path):
    # a phone-style display matrix: the frames must come back rotated as a player shows them
    clip = make_clip(tmp_path / "rot.mp4", [("texture", FPS), ("texture", FPS)], fps=FPS, rotation=-90)
    info = probe_source(clip.path)
    assert (info.width, info.height, info.rotation) == (clip.height, clip.width, -90)
    kfs = extract_keyframes(clip.path, max_frames=2)
    assert kfs
    for kf in kfs:
        assert (kf.width, kf.height) == (clip.height, clip.width) == kf.image.size
        assert read_stamp(np.rot90(np.asarray(kf.image), 1)) == kf.frame_index


@pytest.mark.slow
def test_truncated_video_keeps_what_decoded(tmp_path):
    # faststart puts the index first, so a cut-off file still opens (as a half-downloaded one does)
    full = make_clip(tmp_path / "full.mp4", [("texture", FPS)] * 4, fps=FPS,
                     container_options={"movflags": "faststart"})
    data = full.path.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: int(len(data) * 0.55)])
    with pytest.warns(RuntimeWarning, match="truncated"):
        kfs = extract_keyframes(cut, max_frames=4)
    assert kfs
    assert all(kf.frame_index < full.n_frames * 0.75 for kf in kfs)
    assert all(read_stamp(kf.image) == kf.frame_index for kf in kfs)


@pytest.mark.slow
def test_mpeg4_in_avi_also_works(tmp_path):
    clip = make_clip(tmp_path / "clip.avi", [("texture", FPS), ("texture", FPS)], fps=FPS, codec="mpeg4")
    kfs = extract_keyframes(clip.path, max_frames=2)
    assert sorted(clip.segment_of(kf.frame_index) for kf in kfs) == [0, 1]


# --- stills --------------------------------------------------------------------------------------
@pytest.mark.slow
def test_folder_of_stills(tmp_path):
    paths = make_stills(tmp_path / "stills", seeds=[3, 4, 5])
    (tmp_path / "stills" / "notes.txt").write_text("not an image")
    info = probe_source(tmp_path / "stills")
    assert info.kind == "stills" and info.paths == tuple(paths)
    kfs = extract_keyframes(tmp_path / "stills", max_frames=5)
    assert [kf.frame_index for kf in kfs] == [0, 1, 2]
    for i, kf in enumerate(kfs):
        assert kf.t_s == float(i) and kf.shot == i
        assert kf.source == str(paths[i])
        assert kf.id == stable_id(sha256_file(paths[i]), i)
        assert kf.image.size == (kf.width, kf.height) == (320, 240)


@pytest.mark.slow
def test_single_image(tmp_path):
    (path,) = make_stills(tmp_path, seeds=[7])
    info = probe_source(path)
    assert (info.kind, info.n_frames, info.width, info.height) == ("stills", 1, 320, 240)
    (kf,) = extract_keyframes(path, max_frames=3)
    assert (kf.t_s, kf.frame_index, kf.shot) == (0.0, 0, 0)


@pytest.mark.slow
def test_probe_video(four_shots):
    clip, _, _ = four_shots
    info = probe_source(clip.path)
    assert info.kind == "video"
    assert (info.width, info.height, info.n_frames) == (clip.width, clip.height, clip.n_frames)
    assert info.fps == pytest.approx(FPS)
    assert info.duration_s == pytest.approx(clip.n_frames / FPS, abs=0.1)


# --- bad inputs ----------------------------------------------------------------------------------
def test_missing_source(tmp_path):
    missing = tmp_path / "nope.mp4"
    with pytest.raises(SourceNotFoundError, match="nope.mp4") as err:
        extract_keyframes(missing)
    assert str(missing) in str(err.value)


def test_text_file_named_like_a_video(tmp_path):
    fake = tmp_path / "clip.mp4"
    fake.write_text("this is not a video\n" * 50)
    with pytest.raises(UnsupportedMediaError) as err:
        extract_keyframes(fake)
    assert str(fake) in str(err.value)


def test_random_binary(tmp_path):
    blob = tmp_path / "blob.bin"
    blob.write_bytes(np.random.default_rng(0).integers(0, 256, 50_000, dtype=np.uint8).tobytes())
    with pytest.raises(UnsupportedMediaError) as err:
        extract_keyframes(blob)
    assert str(blob) in str(err.value)


def test_broken_image(tmp_path):
    bad = tmp_path / "still.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 100)
    with pytest.raises(UnsupportedMediaError) as err:
        extract_keyframes(bad)
    assert str(bad) in str(err.value)


def test_empty_folder(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(EmptySourceError) as err:
        extract_keyframes(empty)
    assert str(empty) in str(err.value)


def test_folder_without_images(tmp_path):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "a.txt").write_text("hello")
    (folder / "b.csv").write_text("1,2")
    with pytest.raises(EmptySourceError) as err:
        extract_keyframes(folder)
    assert str(folder) in str(err.value)


def test_audio_only_file_has_no_video_stream(tmp_path):
    import av

    path = tmp_path / "tone.wav"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("pcm_s16le", rate=8000, layout="mono")
        t = np.arange(8000) / 8000
        samples = (np.sin(2 * np.pi * 440 * t) * 10000).astype(np.int16)[None, :]
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout="mono")
        frame.sample_rate = 8000
        for packet in stream.encode(frame):
            container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    with pytest.raises(EmptySourceError, match="no video stream") as err:
        extract_keyframes(path)
    assert str(path) in str(err.value)


@pytest.mark.slow
@pytest.mark.parametrize("kwargs, name", [
    ({"max_frames": 0}, "max_frames"),
    ({"max_frames": -2}, "max_frames"),
    ({"max_frames": 2.5}, "max_frames"),
    ({"sample_fps": 0}, "sample_fps"),
    ({"sample_fps": -1.0}, "sample_fps"),
    ({"sample_fps": float("nan")}, "sample_fps"),
])
def test_invalid_arguments(four_shots, kwargs, name):
    # argument errors name the argument and its bad value (checked before the source is opened)
    clip, _, _ = four_shots
    with pytest.raises(InvalidArgumentError, match=name) as err:
        extract_keyframes(clip.path, **kwargs)
    assert repr(next(iter(kwargs.values()))) in str(err.value)


@pytest.mark.slow
def test_importing_frames_is_cheap():
    code = textwrap.dedent("""
        import sys
        import genart.frames, genart.demo
        print([m for m in ("cv2", "av", "imagehash", "skimage") if m in sys.modules])
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO).stdout
    assert out.strip() == "[]"


# --- faces on real photos and clips ----------------------------------------------------------------
@pytest.mark.slow
@pytest.mark.parametrize("name, n_faces", [("astronaut.png", 1), ("obama.jpg", 1), ("two_people.jpg", 2)])
def test_detect_faces_on_real_photos(media_dir, name, n_faces):
    from PIL import Image

    image = Image.open(media_dir / "images" / name)
    faces = detect_faces(image)
    assert len(faces) == n_faces
    for box in faces:
        assert isinstance(box, Box)
        assert 0 <= box.x and 0 <= box.y and box.x + box.w <= image.width + 1 and box.y + box.h <= image.height + 1
        assert box.w > 0.05 * min(image.size)
    # the same on an array, grey or colour
    assert len(detect_faces(np.asarray(image.convert("RGB")))) == n_faces
    assert len(detect_faces(np.asarray(image.convert("L")))) == n_faces


def test_no_faces_on_a_rocket(media_dir):
    from PIL import Image

    assert detect_faces(Image.open(media_dir / "images" / "rocket.jpg")) == []


def _frame_times(path: Path) -> list[float]:
    """Every frame's presentation time in seconds from the stream's start, decoded independently."""
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        start = stream.start_time or 0
        return [float((f.pts - start) * stream.time_base) for f in container.decode(stream)]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["whitehouse_poetry_jam_2009_short.mp4", "chaplin.mp4", "elephants_dream_excerpt.mp4"])
def test_real_clips_have_a_keyframe_with_a_face(media_dir, name):
    path = media_dir / "videos" / name
    kfs = extract_keyframes(path, max_frames=4)
    assert 1 <= len(kfs) <= 4
    assert any(kf.faces for kf in kfs), [kf.scores.as_dict() for kf in kfs]
    info = probe_source(path)
    times = _frame_times(path)  # Elephants Dream's excerpt is variable-rate: 37.5, 41.7 and 83.3 ms frames
    for kf in kfs:
        # full resolution, bars cropped: chaplin.mp4 is pillarboxed, the others fill the frame
        x, y, w, h = kf.active_area
        assert (kf.width, kf.height) == (w, h) and x + w <= info.width and y + h <= info.height
        assert (w, h) == (info.width, info.height) or name == "chaplin.mp4"
        assert kf.t_s == pytest.approx(times[kf.frame_index], abs=1e-6)
        assert kf.scores["faces"] == len(kf.faces)
        for box in kf.faces:  # full-resolution coordinates
            assert box.x + box.w <= kf.width + 1 and box.y + box.h <= kf.height + 1


@pytest.mark.slow
def test_unreadable_still_in_a_folder_is_skipped(tmp_path):
    paths = make_stills(tmp_path / "stills", seeds=[3, 4])
    bad = tmp_path / "stills" / "still_00b.jpg"
    bad.write_bytes(b"\xff\xd8\xff" + b"\x00" * 64)
    with pytest.warns(RuntimeWarning, match="still_00b.jpg"):
        kfs = extract_keyframes(tmp_path / "stills")
    assert [kf.source for kf in kfs] == [str(p) for p in paths]
    assert [kf.frame_index for kf in kfs] == [0, 2]  # the position in the sorted folder listing


def test_folder_of_only_broken_images(tmp_path):
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "a.png").write_bytes(b"not a png")
    with pytest.raises(EmptySourceError) as err:
        extract_keyframes(folder)
    assert str(folder) in str(err.value)


# --- shots (PySceneDetect) and the full result ----------------------------------------------------
@pytest.mark.slow
def test_cuts_are_found_within_one_frame(four_shots):
    clip, _, _ = four_shots
    res = analyse(clip.path, max_frames=4)
    assert isinstance(res, FramesResult) and res.kind == "video" and res.detector == "content"
    assert len(res.cut_frames) == len(clip.cut_frames)
    for found, true in zip(res.cut_frames, clip.cut_frames):
        assert abs(found - true) <= 1
    assert res.cuts_s == pytest.approx([c / FPS for c in res.cut_frames])
    assert [type(s) for s in res.shots] == [Shot] * 4
    assert res.shots[0].start_frame == 0 and res.shots[-1].end_frame == res.n_frames == clip.n_frames
    assert res.shots[-1].end_s == pytest.approx(clip.n_frames / FPS)
    for a, b in zip(res.shots, res.shots[1:]):
        assert a.end_frame == b.start_frame and a.end_s == b.start_s
    for kf in res.keyframes:  # every key frame's shot is the shot its frame lies in
        shot = res.shots[kf.shot]
        assert shot.start_frame <= kf.frame_index < shot.end_frame


@pytest.mark.slow
def test_adaptive_detector_finds_the_same_cuts(four_shots):
    clip, _, _ = four_shots
    res = analyse(clip.path, max_frames=1, detector="adaptive")
    assert res.detector == "adaptive"
    assert all(abs(a - b) <= 1 for a, b in zip(res.cut_frames, clip.cut_frames))
    assert len(res.cut_frames) == len(clip.cut_frames)
    with pytest.raises(InvalidArgumentError, match="detector"):
        analyse(clip.path, detector="histogram")


@pytest.mark.slow
def test_static_clip_has_no_cut(tmp_path):
    clip = make_clip(tmp_path / "static.mp4", [("static", 48)], fps=FPS)
    res = analyse(clip.path)
    assert res.cut_frames == () and res.cuts_s == ()
    assert [(s.start_frame, s.end_frame) for s in res.shots] == [(0, 48)]


@pytest.mark.slow
def test_variable_frame_rate(tmp_path):
    # frames 30 ms and 55 ms apart in turns: frame numbers and times must both be exact
    times, t = [], 0
    for n in range(3 * FPS):
        times.append(t)
        t += 30 if (n // 6) % 2 == 0 else 55
    clip = make_clip(tmp_path / "vfr.mp4", [("texture", FPS)] * 3, fps=FPS, times_ms=times)
    res = analyse(clip.path, max_frames=3)
    assert len(res.cut_frames) == 2 and all(abs(a - b) <= 1 for a, b in zip(res.cut_frames, clip.cut_frames))
    assert res.cuts_s == pytest.approx([times[c] / 1000 for c in res.cut_frames])
    assert len(res.keyframes) == 3
    for kf in res.keyframes:
        assert read_stamp(kf.image) == kf.frame_index
        assert kf.t_s == pytest.approx(times[kf.frame_index] / 1000)


@pytest.mark.slow
def test_anamorphic_video_gets_square_pixels(tmp_path):
    from fractions import Fraction

    clip = make_clip(tmp_path / "ana.mp4", [("texture", FPS)] * 2, fps=FPS, size=(160, 180), sar=Fraction(2, 1))
    info = probe_source(clip.path)
    assert (info.width, info.height, info.sar, info.coded_width) == (320, 180, 2, 160)
    kfs = extract_keyframes(clip.path, max_frames=2)
    assert len(kfs) == 2
    for kf in kfs:
        assert kf.image.size == (kf.width, kf.height) == (320, 180)
        assert read_stamp(kf.image) == kf.frame_index


@pytest.mark.slow
def test_yuv444_video(tmp_path):
    clip = make_clip(tmp_path / "444.mp4", [("texture", FPS)] * 3, fps=FPS, pix_fmt="yuv444p")
    assert probe_source(clip.path).pix_fmt == "yuv444p"
    res = analyse(clip.path, max_frames=3)
    assert all(abs(a - b) <= 1 for a, b in zip(res.cut_frames, clip.cut_frames)) and len(res.cut_frames) == 2
    assert sorted(clip.segment_of(kf.frame_index) for kf in res.keyframes) == [0, 1, 2]
    for kf in res.keyframes:
        _check_keyframe(kf, clip)


@pytest.mark.slow
def test_truncated_video_keeps_the_shots_before_the_damage(tmp_path):
    full = make_clip(tmp_path / "full.mp4", [("texture", FPS)] * 4, fps=FPS,
                     container_options={"movflags": "faststart"})
    data = full.path.read_bytes()
    cut = tmp_path / "truncated.mp4"
    cut.write_bytes(data[: int(len(data) * 0.6)])
    with pytest.warns(RuntimeWarning, match="truncated"):
        res = analyse(cut, max_frames=4)
    assert res.warnings and "truncated" in res.warnings[0]
    assert 0 < res.n_frames < full.n_frames
    assert res.cut_frames and all(any(abs(c - t) <= 1 for t in full.cut_frames) for c in res.cut_frames)
    assert res.shots[-1].end_frame == res.n_frames


def test_video_without_a_decodable_frame(tmp_path):
    # the container and its index are there, the frames are not (cut right after the header)
    full = make_clip(tmp_path / "full.mp4", [("texture", FPS)], fps=FPS, container_options={"movflags": "faststart"})
    data = full.path.read_bytes()
    empty = tmp_path / "no_frames.mp4"
    empty.write_bytes(data[: data.index(b"mdat") + 20])
    with pytest.raises(EmptySourceError, match="no decodable video frames") as err:
        analyse(empty)
    assert str(empty) in str(err.value)


@pytest.mark.slow
def test_title_cards_and_fades_are_not_picked(tmp_path):
    """A black card with white text, a fade-in and a shot: only the shot gives key frames."""
    import cv2

    from tests.media import stamp, texture, write_video

    w, h = 320, 180

    def frames():
        for i in range(FPS):  # a title card
            card = np.zeros((h, w, 3), np.uint8)
            card[:] = (12, 10, 30)
            cv2.putText(card, "CHAPTER ONE", (40, 100), cv2.FONT_HERSHEY_SIMPLEX, 1.1, (240, 240, 230), 2)
            yield stamp(card, i)
        for i in range(2 * FPS):  # a fade-in, then the shot
            arr = texture(5, (w, h), i).astype(np.float32) * min(1.0, i / FPS)
            yield stamp(arr.astype(np.uint8), FPS + i)

    path = tmp_path / "card.mp4"
    write_video(path, frames(), FPS)
    res = analyse(path, max_frames=4)
    assert res.keyframes
    for kf in res.keyframes:
        assert kf.frame_index >= int(1.5 * FPS), kf.scores.as_dict()  # not the card, not the dark part of the fade
        assert kf.scores["title_card"] < 0.5


@pytest.mark.slow
def test_faces_have_pose_and_the_haar_fallback_still_works(media_dir):
    from PIL import Image

    image = Image.open(media_dir / "images" / "obama.jpg")
    (face,) = find_faces(image)
    assert face.frontal is not None and face.frontal > 0.7
    assert len(face.landmarks) == 5
    for x, y in face.landmarks:
        assert face.box.x <= x <= face.box.x + face.box.w and face.box.y <= y <= face.box.y + face.box.h
    haar = detect_faces(image, backend="haar")
    assert len(haar) == 1 and haar[0].w > 0.05 * min(image.size)
    with pytest.raises(InvalidArgumentError, match="backend"):
        detect_faces(image, backend="dlib")


@pytest.mark.slow
def test_frames_command_writes_pngs_sheet_and_json(four_shots, tmp_path):
    import json

    from typer.testing import CliRunner

    from genart.cli import app

    clip, _, _ = four_shots
    out = tmp_path / "out"
    r = CliRunner().invoke(app, ["frames", str(clip.path), "--max", "12", "--out", str(out), "--json"])
    assert r.exit_code == 0, r.output
    data = json.loads(r.stdout)
    assert [set(s) for s in data["shots"]] == [{"start_s", "end_s", "start_frame", "end_frame"}] * 4
    assert len(data["cuts_s"]) == 3
    assert data["cuts_s"] == [s["start_s"] for s in data["shots"][1:]]
    assert 1 <= len(data["keyframes"]) <= 12
    for k in data["keyframes"]:
        assert {"t_s", "frame", "shot", "path", "scores"} <= set(k)
        assert Path(k["path"]).is_file() and k["path"].endswith(".png")
        assert {"sharpness", "exposure", "contrast", "colourfulness", "naturalness", "quality"} <= set(k["scores"])
    from PIL import Image

    sheet = Image.open(data["contact_sheet"])
    assert sheet.width > 600 and sheet.height > 200


@pytest.mark.slow
def test_burned_in_title_black_and_soft_frames_are_not_picked(media_dir):
    """Big Buck Bunny's first 30 s: a fade from black, "The Peach Open Movie Project presents" and the
    white "Big Buck Bunny" title over the picture; none of that may come back as a key frame."""
    from genart.frames.quality import overlay_score

    res = analyse(media_dir / "videos" / "big_buck_bunny_0_30.webm", max_frames=12)
    assert len(res.shots) == 4 and len(res.keyframes) >= 4
    assert len({kf.shot for kf in res.keyframes}) == 4  # every shot is represented
    for kf in res.keyframes:
        assert overlay_score(np.asarray(kf.image)) < 0.5, kf.timecode
        assert not 24.5 <= kf.t_s <= 30.0, kf.timecode  # the title fades in at ~25 s and stays
        assert brightness(to_array(kf.image)) > 3 * BLACK_LUMA
        assert kf.scores["motion_blur"] < 0.3 and kf.scores["fade"] == 0.0


@pytest.mark.slow
def test_without_any_face_detector_frames_go_on_with_a_warning(media_dir, monkeypatch):
    """An OpenCV 5 build (no Haar cascades in its core) and no yuface: a warning and no faces, not a crash;
    asking for Haar by name there is a typed error that names the package to install."""
    from PIL import Image

    from genart.errors import BackendUnavailableError
    from genart.frames import faces

    image = Image.open(media_dir / "images" / "obama.jpg")
    assert faces.find_faces(image)  # the real detectors find the face here
    monkeypatch.setattr(faces, "_yunet", lambda: None)
    monkeypatch.setattr(faces, "_haar_available", lambda: False)
    monkeypatch.setattr(faces, "_warned_none", False)
    with pytest.warns(RuntimeWarning, match="no face detector"):
        assert faces.find_faces(image) == []
    with pytest.raises(BackendUnavailableError, match="opencv-python-headless<5"):
        faces.find_faces(image, backend="haar")
