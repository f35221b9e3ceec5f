"""The offline demo clip: made from scikit-image's bundled photos, real cuts, usable by the frames stage."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from genart.demo import SHOTS, DemoClip, make_demo_clip  # noqa: E402
from genart.errors import InvalidArgumentError  # noqa: E402
from genart.frames import extract_keyframes, probe_source  # noqa: E402
from genart.frames.quality import histogram_distance, shot_histogram  # noqa: E402


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoClip:
    return make_demo_clip(tmp_path_factory.mktemp("demo") / "sub" / "demo.mp4", seconds_per_shot=1.0, size=(320, 180))


def _decode_all(path: Path) -> tuple[list[np.ndarray], str]:
    import av

    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
        return frames, stream.codec_context.name


@pytest.mark.slow
def test_demo_clip_is_decodable_with_declared_frames_and_cuts(demo):
    assert demo.path.is_file()
    assert demo.titles == tuple(s[0] for s in SHOTS)
    assert demo.n_frames == len(SHOTS) * demo.fps
    assert demo.cut_frames == tuple(k * demo.fps for k in range(1, len(SHOTS)))
    frames, codec = _decode_all(demo.path)
    assert len(frames) == demo.n_frames
    assert codec == ("h264" if demo.codec == "libx264" else "mpeg4")
    assert frames[0].shape == (demo.height, demo.width, 3) == (180, 320, 3)
    info = probe_source(demo.path)
    assert (info.kind, info.n_frames, info.fps) == ("video", demo.n_frames, demo.fps)
    # every declared cut is a jump far larger than any change inside a shot (a slow Ken Burns move)
    hists = [shot_histogram(f) for f in frames]
    jumps = [histogram_distance(a, b) for a, b in zip(hists, hists[1:])]
    at_cuts = [jumps[c - 1] for c in demo.cut_frames]
    inside = [d for i, d in enumerate(jumps) if i + 1 not in demo.cut_frames]
    assert min(at_cuts) > 3 * max(inside)
    # and the shots move: first and last frame of a shot differ
    assert np.abs(frames[0].astype(int) - frames[demo.fps - 1].astype(int)).mean() > 2


@pytest.mark.slow
def test_keyframes_of_the_demo_come_from_distinct_shots(demo):
    kfs = extract_keyframes(demo.path, max_frames=4)
    assert len(kfs) == 4
    shots = [demo.shot_of(kf.frame_index) for kf in kfs]
    assert len(set(shots)) == 4
    assert len({kf.shot for kf in kfs}) == 4
    # the astronaut shot has a face, and it is found
    astronaut = [kf for kf in kfs if demo.titles[demo.shot_of(kf.frame_index)] == "astronaut"]
    assert astronaut and astronaut[0].faces


@pytest.mark.slow
def test_demo_default_size(tmp_path):
    clip = make_demo_clip(tmp_path / "d.mp4", fps=12, seconds_per_shot=0.5)
    assert (clip.width, clip.height, clip.fps) == (640, 360, 12)
    assert clip.n_frames == 6 * len(SHOTS)
    assert len(_decode_all(clip.path)[0]) == clip.n_frames


def test_demo_mpeg4_fallback_codec(tmp_path):
    clip = make_demo_clip(tmp_path / "d.mp4", fps=8, seconds_per_shot=0.5, size=(320, 180), codec="mpeg4")
    frames, codec = _decode_all(clip.path)
    assert (clip.codec, codec, len(frames)) == ("mpeg4", "mpeg4", clip.n_frames)


@pytest.mark.parametrize("kwargs", [{"fps": 0}, {"seconds_per_shot": 0.0}, {"size": (321, 180)}, {"size": (16, 16)},
                                    {"codec": "vp9"}])
def test_demo_rejects_bad_arguments(tmp_path, kwargs):
    with pytest.raises(InvalidArgumentError):
        make_demo_clip(tmp_path / "x.mp4", **kwargs)


def test_bundled_photos_ship_inside_the_skimage_wheel():
    # the loaders read skimage/data/<file> from the installed package; nothing to download
    import skimage.data

    bundled = {p.stem for p in Path(skimage.data.__file__).parent.iterdir() if p.suffix in {".png", ".jpg"}}
    for _title, loader, *_ in SHOTS:
        assert loader in bundled, loader
        arr = getattr(skimage.data, loader)()
        assert arr.dtype == np.uint8 and min(arr.shape[:2]) >= 256
