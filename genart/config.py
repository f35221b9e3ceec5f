"""``models.yaml`` and settings, validated at the edge with pydantic.

Everything past this module sees typed ``PresetSpec`` values, never raw YAML. Errors name the file,
the dotted field and its line.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from genart._yaml import explain_validation_error, parse_mapping
from genart.errors import ConfigError, InvalidArgumentError, UnknownPresetError

_PACKAGE_DIR = Path(__file__).resolve().parent


# --- where things are ------------------------------------------------------------------------
def _first_existing(*candidates: Path) -> Path:
    for c in candidates:
        if c.exists():
            return c
    return candidates[0]


def models_yaml_path() -> Path:
    """``$GENART_MODELS``, else the checkout's ``models.yaml``, else the copy bundled in the wheel."""
    env = os.environ.get("GENART_MODELS")
    if env:
        return Path(env)
    return _first_existing(_PACKAGE_DIR.parent / "models.yaml", _PACKAGE_DIR / "_bundled" / "models.yaml")


def prompts_dir() -> Path:
    """``$GENART_PROMPTS``, else the checkout's ``prompts/``, else the copy bundled in the wheel."""
    env = os.environ.get("GENART_PROMPTS")
    if env:
        return Path(env)
    return _first_existing(_PACKAGE_DIR.parent / "prompts", _PACKAGE_DIR / "_bundled" / "prompts")


def cache_dir() -> Path:
    """Where genart keeps what it builds (the tiny preset's models): ``$GENART_CACHE`` or ~/.cache/genart."""
    env = os.environ.get("GENART_CACHE")
    base = Path(env) if env else Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "genart"
    return base


# --- schema ----------------------------------------------------------------------------------
class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class InpaintSpec(_Strict):
    """An inpainting pipeline (9-channel UNet) that outpaints where a reframed crop leaves the frame."""

    model_id: str = Field(min_length=1, description="Hugging Face id or a local diffusers folder")
    revision: str | None = None
    builder: Literal["hub", "local", "tiny"] = "hub"
    variant: str | None = None
    steps: int | None = Field(None, ge=1, le=150, description="default: the generator's steps")
    strength: float = Field(1.0, gt=0.0, le=1.0)


class ControlNetSpec(_Strict):
    """A ControlNet that keeps the key frame's structure (canny edges) through img2img."""

    model_id: str = Field(min_length=1, description="Hugging Face id or a local diffusers ControlNet folder")
    revision: str | None = None
    builder: Literal["hub", "local", "tiny"] = "hub"
    variant: str | None = None
    kind: Literal["canny"] = "canny"
    conditioning_scale: float = Field(0.5, ge=0.0, le=2.0)
    low_threshold: int = Field(100, ge=0, le=255)
    high_threshold: int = Field(200, ge=0, le=255)


class DiffusionSpec(_Strict):
    """The generator of a diffusion preset."""

    model_id: str = Field(min_length=1, description="Hugging Face id or a local diffusers folder")
    revision: str | None = None
    builder: Literal["hub", "local", "tiny"] = "hub"
    pipeline: Literal["img2img"] = "img2img"
    variant: str | None = None
    scheduler: str | None = None
    steps: int = Field(2, ge=1, le=150)
    guidance: float = Field(0.0, ge=0.0, le=30.0)
    resolution: int = Field(512, ge=32, le=2048)
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    strengths: tuple[float, ...] = (0.35, 0.5, 0.65)
    batch_size: int = Field(8, ge=1, le=256)
    inpaint: InpaintSpec | None = Field(None, description="outpainting model for reframes that leave the frame")
    controlnet: ControlNetSpec | None = Field(None, description="structure preservation (canny) during img2img")

    @model_validator(mode="after")
    def _check(self) -> "DiffusionSpec":
        if self.resolution % 8:
            raise ValueError(f"resolution must be a multiple of 8, got {self.resolution}")
        for s in self.strengths:
            if not 0.0 < s <= 1.0:
                raise ValueError(f"strengths must be in (0, 1], got {s}")
        return self


class ClipSpec(_Strict):
    """An open_clip model: architecture name plus where its weights come from."""

    model: str = Field(min_length=1, description="open_clip architecture, e.g. ViT-B-32")
    pretrained: str = Field(min_length=1, description="hub repo with open_clip weights, or a local file")
    revision: str | None = None
    builder: Literal["hub", "local", "tiny"] = "hub"


class AestheticSpec(_Strict):
    """A LAION aesthetic-predictor head (linear, or MLP D->1024->128->64->16->1) on the CLIP image
    embedding, loaded from .safetensors only (``python -m genart.rank.aesthetic convert`` turns
    LAION's .pth into one). ``builder: tiny`` builds a random head of the right shape (tests only).
    ``builder: brisque`` needs no CLIP: OpenCV's BRISQUE (``cv2.quality``, opencv-contrib) with the
    LIVE model files of Debian's ``opencv-data`` (``weights``: another folder holding them)."""

    builder: Literal["file", "tiny", "brisque"] = "file"
    weights: str | None = Field(None, description="a .safetensors file: absolute, ~, or relative to $GENART_CACHE/weights")
    head: Literal["auto", "linear", "mlp"] = "auto"
    source: str | None = Field(None, description="where the original weights are published (for the how-to)")

    @model_validator(mode="after")
    def _check(self) -> "AestheticSpec":
        if self.builder == "brisque":
            return self
        if self.builder == "file":
            if not self.weights:
                raise ValueError("builder 'file' needs 'weights' (a .safetensors file)")
            if not self.weights.endswith(".safetensors"):
                raise ValueError(f"weights must be a .safetensors file (never a pickle), got '{self.weights}'")
        return self


class SafetySpec(_Strict):
    """What makes a variant unsafe, and what a person must look at first.

    Open-NSFW's authors read its probability below 0.2 as likely safe and above 0.8 as likely NSFW, the
    band between as uncertain: a variant above ``nsfw_threshold`` is rejected, one above ``nsfw_review``
    is kept but marked ``needs_review`` (never handed to a test without a person's approval). The CLIP
    zero-shot gore and weapons probabilities (against neutral prompts) work the same way; they need CLIP,
    so ``zero_shot`` defaults to on for ``method: clip`` and is refused for ``method: features``. A review
    line above its threshold acts at the threshold.
    """

    nsfw: bool = True
    nsfw_threshold: float = Field(0.8, ge=0.0, le=1.0)
    nsfw_review: float = Field(0.2, ge=0.0, le=1.0)
    zero_shot: bool | None = Field(None, description="CLIP zero-shot gore/weapons checks; default: when CLIP ranks")
    gore_threshold: float = Field(0.6, ge=0.0, le=1.0)
    gore_review: float = Field(0.3, ge=0.0, le=1.0)
    weapons_threshold: float = Field(0.6, ge=0.0, le=1.0)
    weapons_review: float = Field(0.3, ge=0.0, le=1.0)


class DiversitySpec(_Strict):
    """The list is placed for diversity (``genart.rank.diversity``).

    ``top_k``: how many places are picked one at a time (None: all of them); ``mmr_lambda`` in (0, 1]:
    1 = by total alone; at 0.6 a distinct variant loses at most 2/3 of the list's standard deviation
    of totals to diversity, so it breaks near-ties and never buries a clearly better variant.
    """

    top_k: int | None = Field(None, ge=1, le=10_000)
    mmr_lambda: float = Field(0.6, gt=0.0, le=1.0)
    similarity: tuple[float, float] | None = Field(
        None, description="(unrelated, near-copy) cosines of the preset's embedder; default: the embedder's own")

    @model_validator(mode="after")
    def _check(self) -> "DiversitySpec":
        if self.similarity is not None and not -1.0 <= self.similarity[0] < self.similarity[1] <= 1.0:
            raise ValueError(f"similarity must be [unrelated, near_copy] with -1 <= unrelated < near_copy <= 1, "
                             f"got {list(self.similarity)}")
        return self


class RankSpec(_Strict):
    """How a preset ranks. ``scorers`` names the registered scorers it runs, in order
    (``genart.rank.registry``; default: its method's list there); a name nobody registered fails when
    the ranking is built, with the registered names."""

    method: Literal["clip", "features"]
    scorers: tuple[str, ...] | None = Field(None, min_length=1, description="registered scorer names, in order")
    clip: ClipSpec | None = None
    fidelity_threshold: float = Field(0.7, ge=-1.0, le=1.0)
    aesthetic: AestheticSpec | None = None
    safety: SafetySpec = SafetySpec()
    diversity: DiversitySpec = DiversitySpec()
    # weights for scores a profile's own ``weights`` do not name (a profile's weight always wins)
    extra_weights: dict[str, float] = Field(default_factory=lambda: {"aesthetic": 0.3, "legibility": 0.2})
    batch_size: int = Field(32, ge=1, le=1024)

    @model_validator(mode="before")
    @classmethod
    def _zero_shot(cls, data: object) -> object:
        """Zero-shot checks need CLIP: on by default where CLIP ranks, off (and refused) where not."""
        if not isinstance(data, dict):
            return data
        safety = data.get("safety", {})
        if isinstance(safety, dict) and safety.get("zero_shot") is None:
            data = {**data, "safety": {**safety, "zero_shot": data.get("method") == "clip"}}
        return data

    @model_validator(mode="after")
    def _check(self) -> "RankSpec":
        if self.safety.zero_shot and self.method != "clip":
            raise ValueError("safety.zero_shot (gore/weapons) needs CLIP embeddings: method must be 'clip'")
        if self.method == "clip" and self.clip is None:
            raise ValueError("method 'clip' needs a 'clip' section (model, pretrained)")
        if self.aesthetic is not None and self.aesthetic.builder != "brisque" and self.method != "clip":
            raise ValueError("an 'aesthetic' head needs CLIP embeddings: method must be 'clip' (or builder: brisque)")
        if self.scorers is not None and len(set(self.scorers)) != len(self.scorers):
            raise ValueError(f"scorers lists a scorer twice: {list(self.scorers)}")
        for name, w in self.extra_weights.items():
            if not (w >= 0.0 and w < float("inf")):
                raise ValueError(f"extra_weights['{name}'] must be a finite number >= 0, got {w}")
        return self


class DeliverySpec(_Strict):
    """How a preset's variants are finished and stored.

    ``format``: the file each variant is stored as: ``png`` (lossless masters, compressed on the CPU
    threads) or ``jpeg`` (encoded where the pixels are: on the accelerator with the tensor finishing,
    else on the CPU threads). Both carry the same provenance (XMP with the IPTC DigitalSourceType,
    genart's parameters; C2PA when configured). ``finishing``: where reframing, grading and titling
    run: ``tensor`` (batched torch ops on the model's device, ``genart.generate.tensor_finish``),
    ``cpu`` (OpenCV, numpy and Pillow), or ``auto``: tensor on a CUDA device, cpu elsewhere (on a CPU
    the tensor path is the slower one: ``benchmarks/batch.py`` measures both).
    """

    format: Literal["png", "jpeg"] = "png"
    quality: int = Field(92, ge=1, le=100, description="JPEG quality")
    finishing: Literal["auto", "tensor", "cpu"] = "auto"


# --- finishing: delivery sizes, safe zones, how far a crop may be stretched or filled ----------------
# One size per aspect, as a streamer's delivery takes it (../shared/ARTWORK.md): 16:9 cover 1280x720, 2:3 poster
# 1000x1500 (the smaller of each spec's two sizes: most key frames are 720p or less), 1:1 1080x1080, 9:16
# 720x1280, and the other aspects a profile may name at the same scale.
DEFAULT_DELIVERY_SIZES: dict[str, tuple[int, int]] = {
    "16:9": (1280, 720),
    "2:3": (1000, 1500),
    "1:1": (1080, 1080),
    "9:16": (720, 1280),
    "4:3": (1024, 768),
    "3:4": (768, 1024),
    "4:5": (864, 1080),
    "21:9": (1680, 720),
}
# Where a title may go, as (top, right, bottom, left) fractions of the picture kept clear of it: Prime Video's
# cover art keeps 160 px of 1080 at the top for the player's own UI; a mobile (9:16) tile has the status bar
# above and controls below; elsewhere a 5% margin (no title touching the picture's edge).
DEFAULT_SAFE_ZONES: dict[str, tuple[float, float, float, float]] = {
    "16:9": (160 / 1080, 0.05, 0.05, 0.05),
    "21:9": (160 / 1080, 0.05, 0.05, 0.05),
    "9:16": (0.10, 0.05, 0.15, 0.05),
}
DEFAULT_SAFE_ZONE = (0.05, 0.05, 0.05, 0.05)
WATERMARK_MIN_PIXELS = 256 * 256  # invisible-watermark's dwtDct refuses smaller images


def _aspect_parts(aspect: str) -> tuple[int, int]:
    parts = aspect.split(":")
    if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
        raise ValueError(f"aspect '{aspect}' must be W:H with positive whole numbers, e.g. 16:9")
    return int(parts[0]), int(parts[1])


class FinishSpec(_Strict):
    """How a preset finishes its variants: one delivery size per aspect, the title's safe zones, how much
    a crop may be enlarged or filled before another crop is chosen, and the imperceptible watermark.

    ``sizes`` and ``safe_zones`` name only what differs from the defaults (``DEFAULT_DELIVERY_SIZES``,
    ``DEFAULT_SAFE_ZONES``); the rest keep theirs.
    """

    sizes: dict[str, tuple[int, int]] = Field(default_factory=lambda: dict(DEFAULT_DELIVERY_SIZES))
    safe_zones: dict[str, tuple[float, float, float, float]] = Field(default_factory=dict)
    max_upscale: float = Field(1.5, ge=1.0, le=8.0, description="past this a crop is widened, else its upscale is recorded")
    max_synthetic: float = Field(0.08, ge=0.0, le=0.5, description="share of the picture a seamless fill may make")
    max_outpaint: float = Field(0.35, ge=0.0, le=0.9, description="share an inpainting model may paint")
    watermark: bool | None = Field(None, description="imperceptible watermark; default: on for diffusion, off for classic")
    watermark_payload: str = Field("genart", min_length=1, max_length=16, pattern=r"^[\x20-\x7e]+$")

    @model_validator(mode="before")
    @classmethod
    def _merge_defaults(cls, data: object) -> object:
        if isinstance(data, dict) and isinstance(data.get("sizes"), dict):
            data = {**data, "sizes": {**DEFAULT_DELIVERY_SIZES, **data["sizes"]}}
        return data

    @model_validator(mode="after")
    def _check(self) -> "FinishSpec":
        for aspect, (w, h) in self.sizes.items():
            aw, ah = _aspect_parts(aspect)
            if w < 64 or h < 64 or w > 8192 or h > 8192:
                raise ValueError(f"size of '{aspect}' must be 64..8192 px a side, got {w}x{h}")
            if w * ah != h * aw:
                raise ValueError(f"size of '{aspect}' must have exactly that aspect, got {w}x{h}")
        for aspect, zone in self.safe_zones.items():
            _aspect_parts(aspect)
            if any(not 0.0 <= z < 0.5 for z in zone):
                raise ValueError(f"safe zone of '{aspect}' takes four fractions in [0, 0.5), got {list(zone)}")
        if self.watermark:
            small = [a for a, (w, h) in self.sizes.items() if w * h < WATERMARK_MIN_PIXELS]
            if small:
                raise ValueError(f"the watermark needs at least 256x256 pixels; too small: {', '.join(small)}")
        return self

    def size(self, aspect: str) -> tuple[int, int]:
        """The delivery size of ``aspect``.

        Raises:
            InvalidArgumentError: no size is configured for it.
        """
        try:
            return self.sizes[aspect]
        except KeyError:
            raise InvalidArgumentError("aspect", aspect, "one with a delivery size: " + ", ".join(self.sizes)) from None

    def safe_zone(self, aspect: str) -> tuple[float, float, float, float]:
        """(top, right, bottom, left) fractions of an ``aspect`` picture that a title keeps clear of."""
        return self.safe_zones.get(aspect) or DEFAULT_SAFE_ZONES.get(aspect) or DEFAULT_SAFE_ZONE


class PresetSpec(_Strict):
    name: str = ""
    description: str = ""
    kind: Literal["diffusion", "classic"]
    random_weights: bool = False
    generator: DiffusionSpec | None = None
    ranker: RankSpec
    finish: FinishSpec = FinishSpec()
    delivery: DeliverySpec = DeliverySpec()

    @model_validator(mode="after")
    def _check(self) -> "PresetSpec":
        if self.kind == "diffusion" and self.generator is None:
            raise ValueError("kind 'diffusion' needs a 'generator' section")
        if self.kind == "classic" and self.generator is not None:
            raise ValueError("kind 'classic' takes no 'generator' section")
        inpaint = self.generator.inpaint if self.generator is not None else None
        controlnet = self.generator.controlnet if self.generator is not None else None
        builders = [s.builder for s in (self.generator, self.ranker.clip, inpaint, controlnet) if s is not None]
        if "tiny" in builders and not self.random_weights:
            raise ValueError("a 'tiny' builder makes random weights: the preset must say random_weights: true")
        if self.random_weights and "tiny" not in builders:
            raise ValueError("random_weights: true is only for presets whose models are built locally (builder: tiny)")
        if self.finish.watermark is None and self.kind == "diffusion":
            small = [a for a, (w, h) in self.finish.sizes.items() if w * h < WATERMARK_MIN_PIXELS]
            if small:
                raise ValueError(f"diffusion variants carry a watermark, which needs at least 256x256 pixels; "
                                 f"finish.sizes too small: {', '.join(small)}")
        return self

    @property
    def watermarks(self) -> bool:
        """Whether this preset's variants get the imperceptible watermark (``finish.watermark``, else: diffusion)."""
        return self.finish.watermark if self.finish.watermark is not None else self.kind == "diffusion"

    def canonical_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True, separators=(",", ":"))


class ModelsFile(_Strict):
    version: Literal[1] = 1
    default_preset: str
    presets: dict[str, PresetSpec]

    @model_validator(mode="after")
    def _check(self) -> "ModelsFile":
        if self.default_preset not in self.presets:
            raise ValueError(f"default_preset '{self.default_preset}' is not one of: {', '.join(sorted(self.presets))}")
        return self


class ModelsConfig:
    """The validated ``models.yaml``."""

    def __init__(self, parsed: ModelsFile, path: Path) -> None:
        self.path = path
        self.default_preset = parsed.default_preset
        self.presets: dict[str, PresetSpec] = {
            name: spec.model_copy(update={"name": name}) for name, spec in parsed.presets.items()
        }

    def preset(self, name: str | None) -> PresetSpec:
        name = name or self.default_preset
        try:
            return self.presets[name]
        except KeyError:
            raise UnknownPresetError(name, self.presets) from None


def parse_models_yaml(text: str, path: Path | str = "models.yaml") -> ModelsConfig:
    """Validate the text of a models file. Raises ``ConfigError`` naming file, field and line."""
    doc = parse_mapping(text, path, ConfigError, "a mapping with 'default_preset' and 'presets'")
    try:
        parsed = ModelsFile.model_validate(doc.data)
    except ValidationError as exc:
        msg, field, line = explain_validation_error(exc, doc)
        raise ConfigError(msg, path=path, field=field, line=line) from None
    return ModelsConfig(parsed, Path(path))


@lru_cache(maxsize=8)
def _load_cached(path: str, mtime_ns: int) -> ModelsConfig:
    return parse_models_yaml(Path(path).read_text(encoding="utf-8"), path)


def load_models_config(path: Path | str | None = None) -> ModelsConfig:
    """Load and validate ``models.yaml`` (cached per file version)."""
    p = Path(path) if path is not None else models_yaml_path()
    try:
        mtime = p.stat().st_mtime_ns
    except FileNotFoundError:
        raise ConfigError("models file not found", path=p, hint="set GENART_MODELS or run from the project root") from None
    return _load_cached(str(p.resolve()), mtime)
