"""Finding and fetching hub weights: the Hugging Face cache, offline first, and local folders.

Every look-up here is local (``local_files_only``): it answers in milliseconds and never touches the
network, so ``check_preset`` and a load with absent weights fail fast. Only the ``download_*``
functions go online, and only ``genart models pull`` calls them.

The cache folder is read from the environment at call time (``HF_HUB_CACHE``, ``HF_HOME``), not from
``huggingface_hub.constants`` (fixed at its import), so a process can point it elsewhere late.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

from genart.errors import ModelLoadError

CLIP_WEIGHTS_FILE = "open_clip_model.safetensors"
_WEIGHT_SUFFIXES = (".safetensors",)


def hf_cache_dir() -> Path:
    """The Hugging Face hub cache in force now: ``$HF_HUB_CACHE``, ``$HF_HOME/hub`` or the default."""
    env = os.environ.get("HF_HUB_CACHE") or os.environ.get("HUGGINGFACE_HUB_CACHE")
    if env:
        return Path(env).expanduser()
    home = os.environ.get("HF_HOME")
    if home:
        return Path(home).expanduser() / "hub"
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg) if xdg else Path.home() / ".cache"
    return base / "huggingface" / "hub"


def is_local_path(ref: str) -> bool:
    """Whether ``ref`` names a local file or folder rather than a hub id.

    A path that exists is local; so is one that looks like a path (absolute, ``./``, ``~``) even when
    absent, so that its error says "not found at PATH" instead of searching the hub cache for it.
    """
    if not ref:
        return False
    p = Path(ref).expanduser()
    if p.exists():
        return True
    return ref.startswith(("/", "./", "../", "~", ".\\")) or (len(ref) > 1 and ref[1] == ":")


def _repo_folder(repo_id: str, cache: Path, repo_type: str = "model") -> Path:
    return cache / f"{repo_type}s--{repo_id.replace('/', '--')}"


def commit_of(snapshot: Path | str | None) -> str | None:
    """The commit sha of a hub snapshot folder (``.../snapshots/<sha>[/file]``), else None."""
    if snapshot is None:
        return None
    parts = Path(snapshot).parts
    if "snapshots" in parts:
        i = len(parts) - 1 - parts[::-1].index("snapshots")
        if i + 1 < len(parts):
            return parts[i + 1]
    return None


def diffusers_how(model_id: str, revision: str | None, preset: str | None) -> str:
    steps = []
    if preset:
        steps.append(f"run `genart models pull {preset}`")
    rev = f" --revision {revision}" if revision else ""
    steps.append(f"or `huggingface-cli download {model_id}{rev}`")
    steps.append("or set the preset's model_id to a local diffusers folder (one with model_index.json)")
    return ", ".join(steps)


def clip_how(pretrained: str, revision: str | None, preset: str | None) -> str:
    steps = []
    if preset:
        steps.append(f"run `genart models pull {preset}`")
    rev = f" --revision {revision}" if revision else ""
    steps.append(f"or `huggingface-cli download {pretrained} {CLIP_WEIGHTS_FILE}{rev}`")
    steps.append("or set the preset's clip.pretrained to a local open_clip .safetensors file")
    return ", ".join(steps)


# --- diffusers pipelines ------------------------------------------------------------------------
@dataclass(frozen=True)
class Found:
    """Where a model's weights are, or what is missing."""

    path: Path | None  # the local folder/file when complete
    where: str  # where we looked (or found it)
    commit: str | None = None
    missing: tuple[str, ...] = ()

    @property
    def present(self) -> bool:
        return self.path is not None and not self.missing


def _weights_ok(folder: Path) -> bool:
    """A model component folder holds safetensors weights (any variant: diffusers falls back to the
    plain file when the asked-for variant is absent, and reports a clear error when neither fits)."""
    if not folder.is_dir():
        return False
    return any(p.name.endswith(_WEIGHT_SUFFIXES) or p.name.endswith(".safetensors.index.json")
               for p in folder.iterdir())


def check_diffusers_folder(folder: Path) -> tuple[str, ...]:
    """What a diffusers pipeline folder lacks: model_index.json, or a component, or its weights."""
    index = folder / "model_index.json"
    if not index.is_file():
        return ("model_index.json",)
    try:
        components = json.loads(index.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return ("model_index.json (unreadable)",)
    missing = []
    for name, value in components.items():
        if name.startswith("_") or not isinstance(value, list) or len(value) != 2 or None in value:
            continue
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/")
            continue
        has_config = (sub / "config.json").is_file()
        if has_config and not _weights_ok(sub):
            missing.append(f"{name}/ weights (*.safetensors)")
    return tuple(missing)


def find_diffusers(model_id: str, revision: str | None, variant: str | None = None) -> Found:
    """Find a diffusers pipeline locally: a folder, or a complete snapshot in the hub cache. Offline.

    ``variant`` is accepted for symmetry with the loaders; any safetensors weights count as present
    (diffusers picks the variant file, or the plain one, at load time).
    """
    if is_local_path(model_id):
        return find_local_diffusers(model_id)
    cache = hf_cache_dir()
    where = str(_repo_folder(model_id, cache))
    from huggingface_hub import snapshot_download

    try:
        snap = Path(snapshot_download(model_id, revision=revision, cache_dir=cache, local_files_only=True))
    except Exception:  # LocalEntryNotFoundError, an unknown revision, a malformed cache: all "absent"
        return Found(None, where, missing=("snapshot",))
    return Found(snap, str(snap), commit=commit_of(snap), missing=check_diffusers_folder(snap))


def find_local_diffusers(folder: str | Path) -> Found:
    """A diffusers pipeline in a local folder (``model_index.json`` and its components), or what it lacks."""
    path = Path(folder).expanduser().resolve()
    if not path.is_dir():
        return Found(None, str(path), missing=("folder",))
    return Found(path, str(path), missing=check_diffusers_folder(path))


def download_diffusers(model_id: str, revision: str | None, variant: str | None, preset: str | None) -> Path:
    """Fetch a diffusers pipeline into the hub cache (only the files the pipeline needs).

    Raises:
        ModelLoadError: the download failed (offline, unknown repo, no access).
    """
    from diffusers import DiffusionPipeline

    kwargs: dict[str, object] = {"revision": revision, "cache_dir": hf_cache_dir(), "use_safetensors": True}
    if variant:
        kwargs["variant"] = variant
    try:
        return Path(DiffusionPipeline.download(model_id, **kwargs))
    except Exception as exc:
        raise ModelLoadError(model_id, looked=[str(hf_cache_dir())], detail=f"download failed: {exc}",
                             how=diffusers_how(model_id, revision, preset)) from exc


# --- open_clip weights ------------------------------------------------------------------------
def find_clip(pretrained: str, revision: str | None) -> Found:
    """Find open_clip weights: a local .safetensors file, or the hub repo's file in the cache. Offline."""
    if is_local_path(pretrained):
        return find_local_clip(pretrained)
    cache = hf_cache_dir()
    where = str(_repo_folder(pretrained, cache))
    from huggingface_hub import try_to_load_from_cache

    try:
        hit = try_to_load_from_cache(pretrained, CLIP_WEIGHTS_FILE, cache_dir=cache, revision=revision)
    except Exception:
        hit = None
    if isinstance(hit, str) and Path(hit).is_file():
        return Found(Path(hit), hit, commit=commit_of(hit))
    return Found(None, where, missing=(CLIP_WEIGHTS_FILE,))


def find_local_clip(pretrained: str | Path) -> Found:
    """open_clip weights in a local .safetensors file, or in a folder holding one under a usual name."""
    p = Path(pretrained).expanduser().resolve()
    if p.is_dir():
        for name in (CLIP_WEIGHTS_FILE, "open_clip_pytorch_model.safetensors", "model.safetensors"):
            if (p / name).is_file():
                return Found(p / name, str(p / name))
        return Found(None, str(p), missing=(CLIP_WEIGHTS_FILE,))
    return Found(p if p.is_file() else None, str(p), missing=() if p.is_file() else ("file",))


def download_clip(pretrained: str, revision: str | None) -> Path:
    """Fetch an open_clip weights file into the hub cache.

    Raises:
        ModelLoadError: the download failed.
    """
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(pretrained, CLIP_WEIGHTS_FILE, revision=revision, cache_dir=hf_cache_dir()))
    except Exception as exc:
        raise ModelLoadError(pretrained, looked=[str(hf_cache_dir())], detail=f"download failed: {exc}",
                             how=clip_how(pretrained, revision, None)) from exc


def download_controlnet(model_id: str, revision: str | None, preset: str | None) -> Path:
    """Fetch a ControlNet (one model folder: config.json and safetensors weights) into the hub cache.

    Raises:
        ModelLoadError: the download failed (offline, unknown repo, no access).
    """
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model_id, revision=revision, cache_dir=hf_cache_dir(),
                                      allow_patterns=["config.json", "*.safetensors"]))
    except Exception as exc:  # offline, unknown repo, no access
        raise ModelLoadError(model_id, detail=f"download failed: {type(exc).__name__}: {exc}",
                             how=diffusers_how(model_id, revision, preset)) from exc


def as_controlnet(found: Found) -> Found:
    """``found`` judged as a ControlNet: one model folder (config.json and safetensors weights, no
    model_index.json), where ``find_diffusers`` judged it as a whole pipeline."""
    if found.path is None:
        return found
    from dataclasses import replace

    folder = Path(found.path)
    ok = (folder / "config.json").is_file() and _weights_ok(folder)
    return replace(found, missing=() if ok else ("config.json and *.safetensors",))
