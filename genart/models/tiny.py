"""Builders for the ``tiny`` preset: real diffusers and open_clip classes at toy size, random weights.

The tiny models are built once per machine into ``cache_dir()/tiny/<kind>-<hash>`` (the hash covers
the builder's configs and code version), saved the way the hub's are (``save_pretrained`` with
safetensors; an open_clip config plus a ``.safetensors`` state dict), and then loaded by exactly the
code that loads hub presets. Builds are guarded by a file lock and written to a temporary folder
that is renamed into place, so parallel test processes never see half a model.

Weights come from ``torch.manual_seed(0)``: the same torch version builds the same numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator, cast

from genart.config import cache_dir
from genart.types import stable_id

BUILDER_VERSION = 1
TINY_CLIP_NAME = "genart-tiny-clip"
CLIP_WEIGHTS_FILE = "open_clip_model.safetensors"
MARKER = "genart_tiny.json"
VOCAB_SIZE = 49408

# --- the architectures, as data (hashed into the folder name) -----------------------------------
UNET_CONFIG: dict[str, Any] = {
    "sample_size": 8,
    "in_channels": 4,
    "out_channels": 4,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "up_block_types": ["CrossAttnUpBlock2D", "UpBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4],
    "use_linear_projection": True,
    "norm_num_groups": 16,
}
VAE_CONFIG: dict[str, Any] = {
    # four blocks, like SD's VAE, so the latent is 1/8 of the image (vae_scale_factor 8)
    "sample_size": 64,
    "in_channels": 3,
    "out_channels": 3,
    "latent_channels": 4,
    "block_out_channels": [16, 16, 32, 32],
    "layers_per_block": 1,
    "down_block_types": ["DownEncoderBlock2D"] * 4,
    "up_block_types": ["UpDecoderBlock2D"] * 4,
    "norm_num_groups": 8,
    "scaling_factor": 0.18215,
}
TEXT_CONFIG: dict[str, Any] = {
    "vocab_size": VOCAB_SIZE,
    "hidden_size": 32,
    "intermediate_size": 64,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "max_position_embeddings": 77,
    "projection_dim": 32,
    "hidden_act": "gelu",
    "bos_token_id": 49406,
    "eos_token_id": 49407,
    "pad_token_id": 49407,
}
# sd-turbo's scheduler settings (trailing spacing: the 1-4 step schedules start from pure noise level)
SCHEDULER_CONFIG: dict[str, Any] = {
    "num_train_timesteps": 1000,
    "beta_start": 0.00085,
    "beta_end": 0.012,
    "beta_schedule": "scaled_linear",
    "prediction_type": "epsilon",
    "timestep_spacing": "trailing",
    "steps_offset": 1,
}
CLIP_CONFIG: dict[str, Any] = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "head_width": 32, "patch_size": 16},
    "text_cfg": {"context_length": 77, "vocab_size": VOCAB_SIZE, "width": 32, "heads": 4, "layers": 2},
}


# the inpainting UNet: the same as the img2img one with 9 input channels (latents, mask, masked-image latents)
INPAINT_UNET_CONFIG: dict[str, Any] = {**UNET_CONFIG, "in_channels": 9}


# a fresh ControlNet's output ("zero") convolutions start at zero, so it would change nothing: the tiny one
# draws them from N(0, std) instead, so tests can see that the control image reaches the UNet
CONTROLNET_ZERO_CONV_STD = 0.05
# a ControlNet matching the tiny UNet; its conditioning embedding downsamples 8x (four stages), like SD's
CONTROLNET_CONFIG: dict[str, Any] = {
    "in_channels": 4,
    "block_out_channels": [32, 64],
    "layers_per_block": 1,
    "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"],
    "cross_attention_dim": 32,
    "attention_head_dim": [2, 4],
    "use_linear_projection": True,
    "norm_num_groups": 16,
    "conditioning_embedding_out_channels": [8, 8, 16, 16],
}


def _hash(kind: str) -> str:
    if kind == "sd":
        cfg: dict[str, Any] = {"unet": UNET_CONFIG, "vae": VAE_CONFIG, "text": TEXT_CONFIG, "scheduler": SCHEDULER_CONFIG}
    elif kind == "controlnet":
        cfg = {"controlnet": CONTROLNET_CONFIG, "zero_convs": CONTROLNET_ZERO_CONV_STD}
    elif kind == "sd-inpaint":
        cfg = {"unet": INPAINT_UNET_CONFIG, "vae": VAE_CONFIG, "text": TEXT_CONFIG, "scheduler": SCHEDULER_CONFIG}
    else:
        cfg = {"clip": CLIP_CONFIG, "name": TINY_CLIP_NAME}
    return stable_id(kind, BUILDER_VERSION, cfg, length=12)


def tiny_root() -> Path:
    return cache_dir() / "tiny"


def tiny_sd_dir() -> Path:
    """Where the tiny diffusers pipeline lives (built or not)."""
    return tiny_root() / f"sd-{_hash('sd')}"


def tiny_inpaint_dir() -> Path:
    """Where the tiny diffusers inpainting pipeline lives (built or not)."""
    return tiny_root() / f"sd-inpaint-{_hash('sd-inpaint')}"


def tiny_controlnet_dir() -> Path:
    """Where the tiny ControlNet lives (built or not)."""
    return tiny_root() / f"controlnet-{_hash('controlnet')}"


def tiny_clip_dir() -> Path:
    """Where the tiny open_clip model lives (built or not)."""
    return tiny_root() / f"clip-{_hash('clip')}"


def revision_of(folder: Path) -> str:
    """The tiny models' "revision": the builder hash in the folder name."""
    return folder.name.rsplit("-", 1)[-1]


def is_built(folder: Path) -> bool:
    return (folder / MARKER).is_file()


@contextmanager
def _quiet_build() -> Iterator[None]:
    """The builders' libraries talk about what is meant here: transformers draws a "Writing model shards"
    bar, open_clip logs (through the root logger, installing a handler for it) that the model "initialized
    randomly". Random weights are the point of tiny; the bar and the line are dropped, nothing else."""
    import logging

    from transformers.utils import logging as hf_logging

    class _RandomInit(logging.Filter):
        def filter(self, record: logging.LogRecord) -> bool:
            return "initialized randomly" not in record.getMessage()

    bar = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    root = logging.getLogger()
    keep, drop = logging.NullHandler(), _RandomInit()
    root.addHandler(keep)  # logging.warning() installs a stderr handler only on a root logger without one
    root.addFilter(drop)
    try:
        yield
    finally:
        root.removeFilter(drop)
        root.removeHandler(keep)
        if bar:
            hf_logging.enable_progress_bar()


def _build_locked(folder: Path, build: Any) -> Path:
    """Run ``build(tmp_folder)`` once across processes, then rename the result to ``folder``."""
    if is_built(folder):
        return folder
    from filelock import FileLock

    folder.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(folder) + ".lock", timeout=600):
        if is_built(folder):  # another process finished it while we waited
            return folder
        if folder.exists():  # a half-made folder from a killed build (without marker): remove
            shutil.rmtree(folder, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=folder.name + ".tmp-", dir=folder.parent))
        try:
            with _quiet_build():
                build(tmp)
            (tmp / MARKER).write_text(
                json.dumps({"builder_version": BUILDER_VERSION, "hash": revision_of(folder), "random_weights": True},
                           indent=1),
                encoding="utf-8",
            )
            os.replace(tmp, folder)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return folder


# --- tokenizer ---------------------------------------------------------------------------------
def clip_tokenizer() -> Any:
    """The full 49,408-token CLIP tokenizer, built from the BPE file that open_clip ships.

    (``CLIPTokenizer.from_pretrained(hub_id)`` offline can "succeed" with a 2-token vocabulary; this
    one is the real vocabulary, checked.)
    """
    import gzip

    from open_clip.tokenizer import bytes_to_unicode, default_bpe
    from transformers import CLIPTokenizer

    with gzip.open(default_bpe(), "rt", encoding="utf-8") as f:
        lines = f.read().split("\n")
    merges = [tuple(m.split()) for m in lines[1 : 49152 - 256 - 2 + 1]]
    symbols = list(bytes_to_unicode().values())
    symbols = symbols + [s + "</w>" for s in symbols]
    symbols += ["".join(m) for m in merges]
    symbols += ["<|startoftext|>", "<|endoftext|>"]
    vocab = {s: i for i, s in enumerate(symbols)}
    # transformers' stubs say merges are strings; its tokenizer takes the (left, right) pairs, as open_clip has them
    tok = CLIPTokenizer(vocab=vocab, merges=cast(Any, merges), model_max_length=77)
    if len(tok) != VOCAB_SIZE:
        raise RuntimeError(f"tiny CLIP tokenizer has {len(tok)} tokens, expected {VOCAB_SIZE}")
    return tok


# --- builders ----------------------------------------------------------------------------------
def _build_sd(out: Path) -> None:
    _build_pipeline(out, "StableDiffusionImg2ImgPipeline", UNET_CONFIG)


def _build_inpaint(out: Path) -> None:
    """A StableDiffusionInpaintPipeline: the tiny VAE and text encoder (same seeds, same weights) and a
    9-channel UNet, as the hub's inpainting checkpoints are laid out."""
    _build_pipeline(out, "StableDiffusionInpaintPipeline", INPAINT_UNET_CONFIG)


def _build_pipeline(out: Path, pipeline_class: str, unet_config: dict) -> None:
    import diffusers
    import torch
    from diffusers import AutoencoderKL, EulerAncestralDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    torch.manual_seed(0)
    unet = UNet2DConditionModel(**unet_config)
    torch.manual_seed(0)
    vae = AutoencoderKL(**VAE_CONFIG)
    torch.manual_seed(0)
    text_encoder = CLIPTextModel(CLIPTextConfig(**TEXT_CONFIG))
    pipe = getattr(diffusers, pipeline_class)(
        vae=vae,
        text_encoder=text_encoder,
        tokenizer=clip_tokenizer(),
        unet=unet,
        scheduler=EulerAncestralDiscreteScheduler(**SCHEDULER_CONFIG),
        safety_checker=None,
        feature_extractor=None,
        requires_safety_checker=False,
    )
    pipe.save_pretrained(out, safe_serialization=True)


def _build_controlnet(out: Path) -> None:
    import torch
    from diffusers import ControlNetModel

    torch.manual_seed(0)
    # diffusers' config decorator hides the class's attributes from the type checker: typed as what it is at run time
    model: Any = ControlNetModel(**CONTROLNET_CONFIG)
    with torch.no_grad():
        zero_convs = [*model.controlnet_down_blocks, model.controlnet_mid_block, model.controlnet_cond_embedding.conv_out]
        for conv in zero_convs:
            conv.weight.normal_(0.0, CONTROLNET_ZERO_CONV_STD)
    model.save_pretrained(out, safe_serialization=True)


def _build_clip(out: Path) -> None:
    import open_clip
    import torch
    from safetensors.torch import save_file

    cfg_path = out / f"{TINY_CLIP_NAME}.json"
    cfg_path.write_text(json.dumps(CLIP_CONFIG, indent=1), encoding="utf-8")
    register_tiny_clip(out)
    torch.manual_seed(0)
    model = open_clip.create_model(TINY_CLIP_NAME, pretrained=None)
    state = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(out / CLIP_WEIGHTS_FILE))


_REGISTERED: set[str] = set()


def register_tiny_clip(folder: Path) -> None:
    """Add the tiny architecture to open_clip's registry (its public ``add_model_config``)."""
    import open_clip

    cfg = folder / f"{TINY_CLIP_NAME}.json"
    if str(cfg) in _REGISTERED and TINY_CLIP_NAME in open_clip.list_models():
        return
    open_clip.add_model_config(cfg)
    _REGISTERED.add(str(cfg))


def build_tiny_sd() -> Path:
    """Build (once) and return the tiny img2img pipeline folder."""
    return _build_locked(tiny_sd_dir(), _build_sd)


def build_tiny_inpaint() -> Path:
    """Build (once) and return the tiny inpainting pipeline folder."""
    return _build_locked(tiny_inpaint_dir(), _build_inpaint)


def build_tiny_controlnet() -> Path:
    """Build (once) and return the tiny ControlNet folder."""
    return _build_locked(tiny_controlnet_dir(), _build_controlnet)


def build_tiny_clip() -> Path:
    """Build (once) and return the tiny open_clip folder (config json + safetensors weights)."""
    return _build_locked(tiny_clip_dir(), _build_clip)
