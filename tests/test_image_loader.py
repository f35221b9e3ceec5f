"""One image loader, one error family: every path that reads the pixels (or the text) of a still, a
key frame or a variant raises an ``ImageReadError`` for a missing file, a corrupt file and an image
over the pixel limit, with the subclass that names which (``ImageNotFoundError``,
``ImageTooLargeError``), and every one of them is still an ``UnsupportedMediaError`` (what callers
caught before). Real files on disk, real loaders: nothing is mocked."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pytest
from PIL import Image

from genart.errors import ImageNotFoundError, ImageReadError, ImageTooLargeError, UnsupportedMediaError
from genart.types import GenerationParams, KeyFrame, Variant


def _keyframe(path: Path | None) -> KeyFrame:
    return KeyFrame(id="kf1", source="clip.mp4", t_s=1.0, frame_index=24, shot=0, width=120, height=80, path=path)


def _variant(path: Path | None) -> Variant:
    params = GenerationParams(preset="classic", method="classic", profile_id="romance", profile_version="1",
                              keyframe_id="kf1", seed=0, width=120, height=80, aspect="16:9", grade="warm")
    return Variant(id="v1", profile_id="romance", keyframe=_keyframe(None), params=params,
                   digital_source_type="algorithmicallyEnhanced", path=path)


def _open_image(path: Path) -> Any:
    from genart.imaging import open_image

    with open_image(path) as im:
        return im.size


def _load_rgb(path: Path) -> Any:
    from genart.imaging import load_rgb

    return load_rgb(path)


def _pixels_of(path: Path) -> Any:
    from genart.imaging import pixels_of

    return pixels_of(None, path, "variant", "v1")


def _image_text(path: Path) -> Any:
    from genart.imaging import image_text

    return image_text(path)


def _read_provenance(path: Path) -> Any:
    from genart.provenance import read_provenance

    return read_provenance(path)


def _classic_keyframe(path: Path) -> Any:
    from genart.generate.classic import keyframe_rgb

    return keyframe_rgb(_keyframe(path))


def _diffusion_frame(path: Path) -> Any:
    from genart.generate.diffusion import DiffusionGenerator

    # frame_image reads only the key frame (no model): called on the class, no weights are loaded
    return DiffusionGenerator.frame_image(None, _keyframe(path))  # type: ignore[arg-type]


def _clip_open(path: Path) -> Any:
    from genart.rank.clip import _open_image as clip_open

    return clip_open(None, path, "variant", "v1")


def _features_open(path: Path) -> Any:
    from genart.rank.features import _open_rgb

    return _open_rgb(None, path)


def _ranking_pixels(path: Path) -> Any:
    from genart.rank.combine import _with_pixels

    return _with_pixels([_variant(path)])


def _learning_rgb(path: Path) -> Any:
    from genart.usecases.facts import _rgb

    return _rgb(path)


def _batch_pixels(path: Path) -> Any:
    from genart.batch.ray_engine import _with_pixels

    return _with_pixels(_keyframe(path))


LOADERS: dict[str, Callable[[Path], Any]] = {
    "imaging.open_image": _open_image, "imaging.load_rgb": _load_rgb, "imaging.pixels_of": _pixels_of,
    "imaging.image_text": _image_text, "provenance.read_provenance": _read_provenance,
    "classic.keyframe_rgb": _classic_keyframe, "diffusion.frame_image": _diffusion_frame,
    "rank.clip._open_image": _clip_open, "rank.features._open_rgb": _features_open,
    "rank.combine._with_pixels": _ranking_pixels, "usecases.facts._rgb": _learning_rgb,
    "batch.ray_engine._with_pixels": _batch_pixels,
}


@pytest.fixture()
def files(tmp_path: Path) -> dict[str, Path]:
    """A good 120x80 PNG, one that is not an image, one cut off after its header, and no file at all."""
    good = tmp_path / "good.png"
    Image.fromarray(np.full((80, 120, 3), 90, np.uint8)).save(good)
    garbage = tmp_path / "garbage.png"
    garbage.write_bytes(b"this is not a picture, only text with a .png name\n" * 20)
    truncated = tmp_path / "truncated.png"
    truncated.write_bytes(good.read_bytes()[:60])  # the IHDR chunk survives, the pixel data does not
    return {"good": good, "garbage": garbage, "truncated": truncated, "missing": tmp_path / "gone.png"}


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_every_loader_reads_a_good_file(name: str, files: dict[str, Path]) -> None:
    """The baseline the failures below are measured against: the same loader reads a real PNG."""
    assert LOADERS[name](files["good"]) is not None


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_missing_file_is_image_not_found(name: str, files: dict[str, Path]) -> None:
    with pytest.raises(ImageNotFoundError, match="image not found") as err:
        LOADERS[name](files["missing"])
    assert isinstance(err.value, ImageReadError) and isinstance(err.value, UnsupportedMediaError)
    assert "gone.png" in str(err.value)


@pytest.mark.parametrize("kind", ["garbage", "truncated"])
@pytest.mark.parametrize("name", sorted(LOADERS))
def test_a_corrupt_file_is_an_image_read_error(name: str, kind: str, files: dict[str, Path]) -> None:
    if kind == "truncated" and name == "imaging.open_image":
        pytest.skip("open_image reads only the header, which the truncated file still has")
    with pytest.raises(ImageReadError, match="not a readable image") as err:
        LOADERS[name](files[kind])
    assert not isinstance(err.value, (ImageNotFoundError, ImageTooLargeError))
    assert f"{kind}.png" in str(err.value)


@pytest.mark.parametrize("name", sorted(LOADERS))
def test_an_image_over_the_limit_is_too_large(name: str, files: dict[str, Path],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENART_MAX_IMAGE_PIXELS", "5000")  # the good file is 120x80 = 9600 pixels
    with pytest.raises(ImageTooLargeError, match="image too large") as err:
        LOADERS[name](files["good"])
    assert isinstance(err.value, ImageReadError) and err.value.size == (120, 80)


def test_neither_pixels_nor_a_path_is_the_same_family() -> None:
    from genart.generate.classic import keyframe_rgb
    from genart.imaging import pixels_of

    with pytest.raises(ImageNotFoundError, match="key frame kf1"):
        keyframe_rgb(_keyframe(None))
    image = Image.new("RGB", (4, 4))
    assert pixels_of(image, None) is image  # pixels in memory are used as they are
