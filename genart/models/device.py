"""Which device and dtype a preset runs on, and the CUDA speed settings.

torch is imported inside the functions: ``genart.models`` stays cheap to import.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

from genart.errors import InvalidArgumentError

if TYPE_CHECKING:  # pragma: no cover
    import torch

_DEVICES = ("cuda", "mps", "cpu")


def pick_device(prefer: str | None = None) -> "torch.device":
    """The best available device: CUDA, then Apple MPS, then the CPU.

    ``prefer`` (or ``$GENART_DEVICE``) forces one, e.g. ``"cpu"`` to keep a GPU free, or ``"cuda:1"``.

    Raises:
        InvalidArgumentError: the forced device is unknown or not available here.
    """
    import torch

    wanted = prefer or os.environ.get("GENART_DEVICE") or None
    if wanted:
        kind = wanted.split(":", 1)[0]
        if kind not in _DEVICES:
            raise InvalidArgumentError("device", wanted, "one of " + ", ".join(_DEVICES))
        if kind == "cuda" and not torch.cuda.is_available():
            raise InvalidArgumentError("device", wanted, "an available device (no CUDA here)")
        if kind == "mps" and not _mps_available():
            raise InvalidArgumentError("device", wanted, "an available device (no MPS here)")
        return torch.device(wanted)
    if torch.cuda.is_available():
        return torch.device("cuda")
    if _mps_available():
        return torch.device("mps")
    return torch.device("cpu")


def _mps_available() -> bool:
    import torch

    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def pick_dtype(name: str, device: "torch.device") -> "torch.dtype":
    """The dtype for ``name`` (a preset's ``dtype``) on ``device``.

    ``auto``: bfloat16 on a CUDA device that supports it (no fp16 overflow in the VAE), else float16 on
    CUDA, float32 on CPU and MPS (half precision is slow or unsupported there for these models).
    """
    import torch

    if name == "auto":
        if device.type == "cuda":
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.float32
    table = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
    try:
        return table[name]
    except KeyError:
        raise InvalidArgumentError("dtype", name, "auto, " + ", ".join(table)) from None


def optimise_pipeline(pipe: Any, device: "torch.device") -> None:
    """CUDA speed settings: PyTorch SDPA attention, cuDNN autotuning, TF32 for float32 work. No-ops elsewhere.

    Not channels-last: measured on an H100 (torch 2.11, bf16, ``benchmarks/generate.py``'s sd-turbo
    architecture) it made the UNet 15% and the VAE decoder 13% slower at batch 32.
    """
    if device.type != "cuda":
        return
    import torch

    torch.backends.cuda.matmul.allow_tf32 = True
    torch.backends.cudnn.allow_tf32 = True
    torch.backends.cudnn.benchmark = True  # a batch job repeats the same few shapes
    for name in ("unet", "vae"):
        _use_sdpa(getattr(pipe, name, None))


def _use_sdpa(module: Any) -> None:
    """Set SDPA attention where the model uses the plain attention processors (not custom ones)."""
    if module is None or not hasattr(module, "attn_processors"):
        return
    from diffusers.models.attention_processor import AttnProcessor, AttnProcessor2_0

    procs = module.attn_processors.values()
    if procs and all(isinstance(p, (AttnProcessor, AttnProcessor2_0)) for p in procs):
        module.set_attn_processor(AttnProcessor2_0())
