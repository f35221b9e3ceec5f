"""Measured image features shared by the stages (frames quality, classic ranking, reframing).

Not a stage: plain functions over RGB ``uint8`` arrays (H, W, 3), numpy and OpenCV only. Each feature
is mapped to [0, 1] with a documented scale so profiles can state visual targets in the same units.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import warnings
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

import numpy as np
from genart.errors import ConfigError, ImageNotFoundError, ImageReadError, ImageTooLargeError

if TYPE_CHECKING:  # pragma: no cover
    from PIL import Image

ANALYSIS_LONG_SIDE = 256

#: The keyword of an XMP packet in a PNG's iTXt chunk (Adobe's XMP spec, part 3; what exiftool reads):
#: ``png_bytes`` and ``with_jpeg_text`` write it, ``image_text`` reads it back (``genart.provenance``
#: builds the packet and uses this key; it imports this module, never the other way round).
XMP_TEXT_KEY = "XML:com.adobe.xmp"

#: The most pixels genart decodes from one image file, unless ``$GENART_MAX_IMAGE_PIXELS`` says
#: otherwise: 40 MP holds a 4K frame (8.3 MP), an 8K one (33 MP) and any camera still, at about 120 MB
#: of RGB. A PNG of a few hundred KB can declare 20000x20000 (a decompression bomb: 1.2 GB of RGB,
#: several GB through analysis), so the limit is checked from the header, before any pixel is read.
DEFAULT_MAX_PIXELS = 40_000_000
MAX_PIXELS_ENV = "GENART_MAX_IMAGE_PIXELS"


def max_image_pixels() -> int:
    """The pixel limit in force: ``$GENART_MAX_IMAGE_PIXELS`` or :data:`DEFAULT_MAX_PIXELS`.

    Raises:
        ConfigError: the variable is not a whole number >= 1.
    """
    raw = os.environ.get(MAX_PIXELS_ENV, "").strip().replace("_", "")
    if not raw:
        return DEFAULT_MAX_PIXELS
    try:
        value = int(float(raw)) if "e" in raw.lower() else int(raw)
    except ValueError:
        value = 0
    if value < 1:
        raise ConfigError(f"${MAX_PIXELS_ENV} must be a whole number of pixels >= 1, got {raw!r}",
                          hint=f"e.g. {MAX_PIXELS_ENV}=60000000 for 60 MP")
    return value


@contextmanager
def open_image(path: "str | Path", *, max_pixels: int | None = None) -> "Iterator[Image.Image]":
    """An image file opened lazily (only its header read), refused when it declares too many pixels.

    The one way genart opens an image it did not write itself (stills, uploads, a thumbnail to rank):
    Pillow reads the header first, so the size is known before a pixel is decoded; Pillow's own
    decompression-bomb checks (``Image.MAX_IMAGE_PIXELS``: a ``DecompressionBombWarning`` above it, a
    ``DecompressionBombError`` above twice it) become the same typed error.

    Args:
        path: the image file.
        max_pixels: the limit (default :func:`max_image_pixels`).

    Raises:
        ImageNotFoundError: no file at ``path``.
        ImageTooLargeError: width x height above the limit.
        ImageReadError: not an image Pillow can read (the base of both: one ``except`` for all three;
            an UnsupportedMediaError).
    """
    from PIL import Image, UnidentifiedImageError

    limit = max_pixels if max_pixels is not None else max_image_pixels()
    try:
        with warnings.catch_warnings():  # Pillow's warning above its own limit: a refusal, not a line on stderr
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            im = Image.open(path)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        found = re.search(r"\((\d+) pixels\)", str(exc))  # Pillow: "Image size (N pixels) exceeds limit ..."
        raise ImageTooLargeError(path, int(found.group(1)) if found else limit + 1, limit) from None
    except FileNotFoundError:
        raise ImageNotFoundError(path) from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise ImageReadError(path, f"not a readable image: {exc}") from None
    with im:
        w, h = im.size
        if w * h > limit:
            raise ImageTooLargeError(path, w * h, limit, (w, h))
        yield im


def load_rgb(path: "str | Path", *, upright: bool = False, max_pixels: int | None = None) -> "Image.Image":
    """An image file as RGB pixels, through :func:`open_image`'s limit (memory stays within about
    twice the RGB size: 240 MB at the default 40 MP).

    Args:
        upright: apply the EXIF orientation (photos from cameras and phones).

    Raises:
        ImageNotFoundError, ImageTooLargeError, ImageReadError: as :func:`open_image`; ImageReadError
            also for pixels that fail to decode (a truncated or corrupt stream).
    """
    from PIL import ImageOps

    with open_image(path, max_pixels=max_pixels) as im:
        try:
            rgb = im.convert("RGB")  # keeps the EXIF block, so the orientation is still known
            if upright:
                ImageOps.exif_transpose(rgb, in_place=True)
            return rgb
        except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt pixel stream
            raise ImageReadError(path, f"not a readable image: {exc}") from None


def pixels_of(image: "Image.Image | None", path: "str | Path | None", what: str = "image",
              ident: object = "") -> "Image.Image":
    """The pixels of a key frame or a variant: those it holds in memory (as they are), else its stored
    file through :func:`load_rgb` (RGB, within the pixel limit). The one way a stage gets at them, so
    a missing, unreadable or too-large picture is the same error everywhere.

    Args:
        image: the pixels in memory, if any.
        path: the stored file, if any.
        what, ident: what the value is (``"variant"``) and its id, for the error.

    Raises:
        ImageNotFoundError: neither pixels nor a path, or no file at ``path``.
        ImageTooLargeError, ImageReadError: as :func:`load_rgb`.
    """
    if image is not None:
        return image
    if path is None:
        raise ImageNotFoundError(f"{what} {ident}".strip(), "it has neither pixels nor a stored path")
    return load_rgb(path)


def to_array(image: "Image.Image | np.ndarray") -> np.ndarray:
    """RGB uint8 array from a PIL image or an array (grey is expanded, alpha dropped)."""
    arr = np.asarray(image.convert("RGB")) if hasattr(image, "convert") else np.asarray(image)
    if arr.ndim == 2:
        arr = np.repeat(arr[:, :, None], 3, axis=2)
    if arr.shape[2] == 4:
        arr = arr[:, :, :3]
    if arr.dtype != np.uint8:
        arr = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(arr)


def downscale(arr: np.ndarray, long_side: int = ANALYSIS_LONG_SIDE) -> np.ndarray:
    import cv2

    h, w = arr.shape[:2]
    scale = long_side / max(h, w)
    if scale >= 1:
        return arr
    return cv2.resize(arr, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=cv2.INTER_AREA)


def luma(arr: np.ndarray) -> np.ndarray:
    """Rec. 601 luma in [0, 1], float32."""
    a = arr.astype(np.float32) / 255.0
    return 0.299 * a[..., 0] + 0.587 * a[..., 1] + 0.114 * a[..., 2]


def brightness(arr: np.ndarray) -> float:
    """Mean luma, [0, 1]."""
    return float(luma(arr).mean())


def contrast(arr: np.ndarray) -> float:
    """RMS contrast (std of luma) scaled so 0.25 (a very contrasty image) maps to 1."""
    return float(min(1.0, luma(arr).std() / 0.25))


def saturation(arr: np.ndarray) -> float:
    """Mean HSV saturation, [0, 1]."""
    a = arr.astype(np.float32)
    mx = a.max(axis=2)
    mn = a.min(axis=2)
    sat = np.where(mx > 0, (mx - mn) / np.maximum(mx, 1e-6), 0.0)
    return float(sat.mean())


def colourfulness(arr: np.ndarray) -> float:
    """Hasler and Suesstrunk's colourfulness, scaled so 100 (very colourful) maps to 1."""
    a = arr.astype(np.float32)
    rg = a[..., 0] - a[..., 1]
    yb = 0.5 * (a[..., 0] + a[..., 1]) - a[..., 2]
    value = np.sqrt(rg.std() ** 2 + yb.std() ** 2) + 0.3 * np.sqrt(rg.mean() ** 2 + yb.mean() ** 2)
    return float(min(1.0, value / 100.0))


def warmth(arr: np.ndarray) -> float:
    """Red-versus-blue balance: 0.5 is neutral, 1 all red, 0 all blue."""
    a = arr.astype(np.float32)
    r, b = a[..., 0].mean(), a[..., 2].mean()
    return float(0.5 + (r - b) / 510.0)


def sharpness(arr: np.ndarray) -> float:
    """Variance of the Laplacian on a 256-px grey copy, log-scaled: ~0 for a blur, ~1 for fine detail."""
    import cv2

    grey = (luma(downscale(arr)) * 255).astype(np.uint8)
    var = float(cv2.Laplacian(grey, cv2.CV_64F).var())
    return float(min(1.0, np.log1p(var) / np.log1p(2000.0)))


def noise(arr: np.ndarray) -> float:
    """Estimated noise sigma (Immerkaer's fast method) in [0, 1] units of 0-255/25."""
    import cv2

    grey = luma(downscale(arr, 512)).astype(np.float64) * 255
    h, w = grey.shape
    if h < 3 or w < 3:
        return 0.0
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)
    conv = cv2.filter2D(grey, -1, kernel)[1:-1, 1:-1]
    sigma = np.sqrt(np.pi / 2) * np.abs(conv).sum() / (6.0 * (w - 2) * (h - 2))
    return float(min(1.0, sigma / 25.0))


def exposure_quality(arr: np.ndarray, target: float = 0.45) -> float:
    """1 for a well-exposed frame; falls with clipped shadows and highlights and a mean far from ``target``
    (mid-grey by default; a look that asks for a night scene asks for a darker mean)."""
    y = luma(arr)
    clipped = float(((y < 0.02) | (y > 0.98)).mean())
    mean_penalty = abs(float(y.mean()) - target) * 1.2
    return float(max(0.0, 1.0 - clipped * 1.5 - mean_penalty))


def features(arr: np.ndarray) -> dict[str, float]:
    """Every measured feature of an image on a 256-px copy, by name."""
    small = downscale(arr)
    return {
        "brightness": brightness(small),
        "contrast": contrast(small),
        "saturation": saturation(small),
        "colourfulness": colourfulness(small),
        "warmth": warmth(small),
        "sharpness": sharpness(arr),
        "exposure": exposure_quality(small),
        "noise": noise(arr),
    }


def saliency_center(arr: np.ndarray) -> tuple[float, float]:
    """Centre of visual interest (x, y) as fractions of width and height.

    Spectral-residual saliency (Hou and Zhang, 2007) on a 64-px grey copy; it needs only numpy and
    finds the object that stands out from the background, for frames without faces.
    """
    import cv2

    grey = luma(cv2.resize(arr, (64, 64), interpolation=cv2.INTER_AREA)).astype(np.float64)
    spectrum = np.fft.fft2(grey)
    log_amp = np.log(np.abs(spectrum) + 1e-8)
    phase = np.angle(spectrum)
    residual = log_amp - cv2.blur(log_amp, (3, 3))
    sal = np.abs(np.fft.ifft2(np.exp(residual + 1j * phase))) ** 2
    sal = cv2.GaussianBlur(sal, (9, 9), 2.5)
    sal = sal / (sal.max() + 1e-12)
    weights = np.where(sal > 0.3, sal, 0.0)
    if weights.sum() <= 0:
        return 0.5, 0.5
    ys, xs = np.mgrid[0:64, 0:64]
    return float((xs * weights).sum() / weights.sum() + 0.5) / 64, float((ys * weights).sum() / weights.sum() + 0.5) / 64


def saliency_map(arr: np.ndarray, width: int = 160) -> np.ndarray:
    """Where the eye goes, ``width`` px wide (aspect kept), float32 in [0, 1]: 0 for the background's typical
    level, 1 for the most salient pixels.

    OpenCV's fine-grained static saliency (Montabone and Soto, 2010; centre-surround on intensity), which
    on film frames follows the subject, a person or not (a bird on a branch, a cup, a rocket), closer than
    the spectral residual of ``saliency_center``; smoothed, then stretched between its median and its
    99th percentile so flat background counts as nothing.
    """
    import cv2

    h, w = arr.shape[:2]
    height = max(1, int(round(h * width / max(1, w))))
    small = cv2.resize(np.ascontiguousarray(arr[..., :3]), (width, height), interpolation=cv2.INTER_AREA)
    saliency = cv2.saliency.StaticSaliencyFineGrained_create()  # type: ignore[attr-defined]  # contrib, not in the stubs
    ok, sal = saliency.computeSaliency(cv2.cvtColor(small, cv2.COLOR_RGB2BGR))
    if not ok:  # pragma: no cover - OpenCV reports failure only for empty input
        return np.zeros((height, width), np.float32)
    sal = cv2.GaussianBlur(sal.astype(np.float32), (0, 0), max(1.0, width / 32))
    lo, hi = np.percentile(sal, 50), np.percentile(sal, 99)
    return np.clip((sal - lo) / max(1e-6, hi - lo), 0.0, 1.0).astype(np.float32)


def png_bytes(image: "Image.Image", text: dict[str, str] | None = None) -> bytes:
    """PNG-encode ``image`` with ``text`` chunks (iTXt), deterministically."""
    from PIL import PngImagePlugin

    info = PngImagePlugin.PngInfo()
    for key, value in (text or {}).items():
        info.add_itxt(key, value)
    buf = io.BytesIO()
    # zlib's run-length strategy after PNG's row filters: on 1024x576 artwork 5x faster to write than Pillow's
    # default (34 vs 176 ms) and files 1% smaller; level 3 of the default strategy took 55 ms for files 10% larger
    image.save(buf, format="PNG", pnginfo=info, compress_level=3, compress_type=zlib.Z_RLE)
    return buf.getvalue()


# --- JPEG: encoded where the pixels are, with the same text as a PNG --------------------------------
JPEG_XMP_ID = b"http://ns.adobe.com/xap/1.0/\x00"  # APP1 payload prefix of an XMP packet (XMP spec, part 3)
_SEGMENT_MAX = 65533  # payload bytes a JPEG marker segment holds (its 16-bit length counts itself)


def image_format(data: bytes) -> str:
    """``png`` or ``jpeg`` from an encoded image's first bytes.

    Raises:
        ValueError: neither.
    """
    if data[:8] == b"\x89PNG\r\n\x1a\n":
        return "png"
    if data[:2] == b"\xff\xd8":
        return "jpeg"
    raise ValueError("not a PNG or JPEG stream")


def jpeg_bytes(pixels: "list[object]", quality: int = 92) -> list[bytes]:
    """JPEG streams of (3, H, W) uint8 tensors, encoded on their device: nvJPEG in one batched call for
    CUDA tensors, libjpeg-turbo for CPU ones (``torchvision.io.encode_jpeg``, which torchvision 0.29
    marks deprecated in favour of TorchCodec; it is still the one batched CUDA encoder installed)."""
    if not pixels:
        return []
    import warnings

    from torchvision.io import encode_jpeg

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        out = encode_jpeg(list(pixels), quality=int(quality))
    return [t.cpu().numpy().tobytes() for t in out]


def image_jpeg(image: "Image.Image", quality: int = 92) -> bytes:
    """One PIL image as JPEG, by the same encoder as ``jpeg_bytes`` (on the CPU)."""
    import torch

    return jpeg_bytes([torch.from_numpy(np.array(image.convert("RGB"))).permute(2, 0, 1)], quality)[0]


def with_jpeg_text(data: bytes, text: dict[str, str] | None = None) -> bytes:
    """A JPEG stream with ``text`` in it, as ``png_bytes`` puts text in a PNG: the XMP packet
    (``XMP_TEXT_KEY``) in an APP1 segment, where Pillow, exiftool and Adobe's SDK read it, the other
    entries as one JSON object in a COM segment. Inserted after the JFIF APP0 segment (which must come
    first), like Pillow's ``save(..., xmp=)``.

    Raises:
        ValueError: ``data`` is not a JPEG, or the text does not fit a segment (64 KB).
    """
    if image_format(data) != "jpeg":
        raise ValueError("not a JPEG stream")
    text = dict(text or {})
    segments = b""
    xmp = text.pop(XMP_TEXT_KEY, None)
    for marker, payload in ((b"\xff\xe1", JPEG_XMP_ID + xmp.encode("utf-8") if xmp else None),
                            (b"\xff\xfe", json.dumps(text, sort_keys=True, ensure_ascii=False).encode("utf-8")
                             if text else None)):
        if payload is None:
            continue
        if len(payload) > _SEGMENT_MAX:
            raise ValueError(f"{len(payload)} bytes of metadata do not fit one JPEG segment ({_SEGMENT_MAX})")
        segments += marker + (len(payload) + 2).to_bytes(2, "big") + payload
    at = 2
    if data[2:4] == b"\xff\xe0":  # JFIF APP0 first
        at = 4 + int.from_bytes(data[4:6], "big")
    return data[:at] + segments + data[at:]


def image_text(path: "str | object") -> dict[str, str]:
    """The text an image file carries, as ``png_bytes`` / ``with_jpeg_text`` wrote it: a PNG's text
    chunks; a JPEG's COM JSON and its APP1 XMP packet (under ``XMP_TEXT_KEY``).

    Raises:
        ImageNotFoundError, ImageTooLargeError, ImageReadError: as :func:`open_image`.
    """

    with open_image(path) as im:  # type: ignore[arg-type]
        try:
            im.load()
        except (OSError, SyntaxError, ValueError) as exc:  # a truncated or corrupt stream
            raise ImageReadError(path, f"not a readable image: {exc}") from None
        if im.format == "PNG":
            return {str(k): str(v) for k, v in (getattr(im, "text", {}) or {}).items()}
        info = dict(im.info)
    out: dict[str, str] = {}
    comment = info.get("comment")
    if comment:
        try:
            parsed = json.loads(comment.decode("utf-8") if isinstance(comment, bytes) else comment)
        except ValueError:
            parsed = None
        if isinstance(parsed, dict):
            out.update({str(k): str(v) for k, v in parsed.items()})
    xmp = info.get("xmp")
    if xmp:
        out[XMP_TEXT_KEY] = xmp.decode("utf-8") if isinstance(xmp, bytes) else str(xmp)
    return out


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: "str | object", chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:  # type: ignore[arg-type]
        while True:
            block = f.read(chunk)
            if not block:
                break
            h.update(block)
    return h.hexdigest()
