"""Preset -> loaded models, cached per process; what a preset needs and whether it is here.

A preset's models load with the libraries' own loaders (diffusers ``from_pretrained``, open_clip's
``create_model_and_transforms``) from the Hugging Face cache or a local folder, always with
``local_files_only``: a load never touches the network, so absent weights fail in seconds with a
``ModelLoadError`` that says where genart looked and how to get them. Only ``pull_preset`` downloads.

The ``tiny`` preset's models are built locally (``genart.models.tiny``) and then loaded by the very
same functions as hub models.

This module imports no torch at import time: ``check_preset`` and ``resolved_models`` stay cheap.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from genart.config import ClipSpec, DiffusionSpec, PresetSpec
from genart.errors import ConfigError, InvalidArgumentError, ModelLoadError, OfflineError
from genart.models import hub
from genart.types import ModelRef

if TYPE_CHECKING:  # pragma: no cover
    from genart.rank.clip import ClipEmbedder

__all__ = [
    "CheckItem",
    "PresetCheck",
    "DiffusionModel",
    "check_preset",
    "pull_preset",
    "load_diffusion",
    "load_inpaint",
    "load_clip",
    "resolved_models",
    "clear_model_cache",
]


# --- checks ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class CheckItem:
    """One model a preset needs: whether its weights are here, where, and how to get them."""

    role: str  # "diffusion" | "clip"
    model_id: str
    revision: str | None
    present: bool
    where: str
    how: str


@dataclass(frozen=True)
class PresetCheck:
    preset: str
    ok: bool
    items: tuple[CheckItem, ...]


def _tiny_how(preset: str) -> str:
    return f"built locally on first use, or now with `genart models pull {preset}`"


def _check_diffusion(spec: PresetSpec, gen: DiffusionSpec) -> CheckItem:
    if gen.builder == "tiny":
        from genart.models import tiny

        folder = tiny.tiny_sd_dir()
        return CheckItem("diffusion", gen.model_id, tiny.revision_of(folder), tiny.is_built(folder), str(folder),
                         _tiny_how(spec.name))
    found = hub.find_diffusers(gen.model_id, gen.revision, gen.variant)
    where = found.where if found.present else found.where + (f" (missing: {', '.join(found.missing)})" if found.missing else "")
    return CheckItem("diffusion", gen.model_id, found.commit or gen.revision, found.present, where,
                     hub.diffusers_how(gen.model_id, gen.revision, spec.name))


def _find_component(role: str, model_id: str, revision: str | None, variant: str | None) -> "hub.Found":
    """An inpainting pipeline is a whole diffusers folder; a ControlNet is one model folder (config.json
    and safetensors weights, no model_index.json)."""
    found = hub.find_diffusers(model_id, revision, variant)
    if role == "controlnet" and found.path is not None:
        from dataclasses import replace as _replace

        folder = Path(found.path)
        ok = (folder / "config.json").is_file() and hub._weights_ok(folder)
        return _replace(found, missing=() if ok else ("config.json and *.safetensors",))
    return found


def _check_extra(spec: PresetSpec, role: str, sub: Any) -> CheckItem:
    """An inpainting model or a ControlNet named by the generator section."""
    if sub.builder == "tiny":
        from genart.models import tiny

        folder = tiny.tiny_inpaint_dir() if role == "inpaint" else tiny.tiny_controlnet_dir()
        return CheckItem(role, sub.model_id, tiny.revision_of(folder), tiny.is_built(folder), str(folder),
                         _tiny_how(spec.name))
    found = _find_component(role, sub.model_id, sub.revision, sub.variant)
    where = found.where if found.present else found.where + (f" (missing: {', '.join(found.missing)})" if found.missing else "")
    return CheckItem(role, sub.model_id, found.commit or sub.revision, found.present, where,
                     hub.diffusers_how(sub.model_id, sub.revision, spec.name))


def _check_clip(spec: PresetSpec, clip: ClipSpec) -> CheckItem:
    if clip.builder == "tiny":
        from genart.models import tiny

        folder = tiny.tiny_clip_dir()
        return CheckItem("clip", clip.pretrained, tiny.revision_of(folder), tiny.is_built(folder), str(folder),
                         _tiny_how(spec.name))
    found = hub.find_clip(clip.pretrained, clip.revision)
    return CheckItem("clip", clip.pretrained, found.commit or clip.revision, found.present, found.where,
                     hub.clip_how(clip.pretrained, clip.revision, spec.name))


def _cached(key: object, load):
    """The loaded model for ``key``: loaded once per process (under the lock, so two threads never
    load the same weights twice)."""
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            hit = load()
            _CACHE[key] = hit
        return hit


def check_preset(spec: PresetSpec) -> PresetCheck:
    """Whether a preset's weights are here. Local look-ups only: fast, never online.

    ``classic`` needs no weights (ok, no items). A tiny preset is ok whether built or not (it builds
    on first use); ``present`` says whether it is built already.
    """
    items: list[CheckItem] = []
    if spec.generator is not None:
        items.append(_check_diffusion(spec, spec.generator))
    if spec.ranker.method == "clip" and spec.ranker.clip is not None:
        items.append(_check_clip(spec, spec.ranker.clip))
    if spec.generator is not None:
        for role in ("inpaint", "controlnet"):
            sub = getattr(spec.generator, role)
            if sub is not None:
                items.append(_check_extra(spec, role, sub))
    aesthetic = getattr(spec.ranker, "aesthetic", None)
    if aesthetic is not None and aesthetic.builder == "file" and aesthetic.weights:
        from genart.rank.aesthetic import how_to_get, resolve_weights

        path = resolve_weights(aesthetic.weights)
        items.append(CheckItem("aesthetic", aesthetic.weights, None, path.is_file(), str(path),
                               how_to_get(aesthetic, spec.name)))
    ok = all(item.present or _is_tiny(spec, item.role) for item in items)
    return PresetCheck(spec.name, ok, tuple(items))


def _is_tiny(spec: PresetSpec, role: str) -> bool:
    if role in ("inpaint", "controlnet"):
        sub = getattr(spec.generator, role, None) if spec.generator is not None else None
        return sub is not None and sub.builder == "tiny"
    if role == "diffusion":
        return spec.generator is not None and spec.generator.builder == "tiny"
    return spec.ranker.clip is not None and spec.ranker.clip.builder == "tiny"


def _hub_items_missing(spec: PresetSpec) -> list[CheckItem]:
    """The preset's models that a pull would fetch from the hub: absent, not tiny, not a local path
    (the aesthetic head is fetched by hand: its check says how)."""
    return [i for i in check_preset(spec).items
            if not i.present and i.role != "aesthetic" and not _is_tiny(spec, i.role) and not hub.is_local_path(i.model_id)]


def pull_preset(spec: PresetSpec) -> None:
    """Get a preset's weights: download hub models at their pinned revision, or build tiny ones.

    With Hugging Face's offline mode on, nothing is downloaded: a preset whose hub weights are all
    here is ready as it is, any other fails at once with ``OfflineError``, before the hub is asked.

    Raises:
        OfflineError: hub weights are missing and ``HF_HUB_OFFLINE`` is set.
        ModelLoadError: a download failed, or a local path named in the preset does not exist.
    """
    from huggingface_hub import constants

    if constants.is_offline_mode():
        missing = _hub_items_missing(spec)
        if missing:
            import os

            var = next((v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v)), "HF_HUB_OFFLINE")
            raise OfflineError(", ".join(i.model_id for i in missing), variable=var, value=os.environ.get(var, "1"),
                               command=f"genart models pull {spec.name}")
        if all(i.present for i in check_preset(spec).items if i.role != "aesthetic"):
            return  # everything is here already: nothing to ask the hub for
    gen = spec.generator
    if gen is not None:
        if gen.builder == "tiny":
            from genart.models import tiny

            tiny.build_tiny_sd()
        elif hub.is_local_path(gen.model_id):
            found = hub.find_diffusers(gen.model_id, gen.revision, gen.variant)
            if not found.present:
                raise ModelLoadError(gen.model_id, looked=[found.where], detail="missing: " + ", ".join(found.missing),
                                     how="a local model_id is not downloaded: point it at a complete diffusers folder")
        else:
            hub.download_diffusers(gen.model_id, gen.revision, gen.variant, spec.name)
    for role in ("inpaint", "controlnet"):
        sub = getattr(gen, role, None) if gen is not None else None
        if sub is None:
            continue
        if sub.builder == "tiny":
            from genart.models import tiny

            tiny.build_tiny_inpaint() if role == "inpaint" else tiny.build_tiny_controlnet()
        elif hub.is_local_path(sub.model_id):
            continue
        elif role == "inpaint":
            hub.download_diffusers(sub.model_id, sub.revision, sub.variant, spec.name)
        else:
            from huggingface_hub import snapshot_download

            try:
                snapshot_download(sub.model_id, revision=sub.revision, cache_dir=hub.hf_cache_dir(),
                                  allow_patterns=["config.json", "*.safetensors"])
            except Exception as exc:  # offline, unknown repo, no access
                raise ModelLoadError(sub.model_id, detail=f"download failed: {type(exc).__name__}: {exc}",
                                     how=hub.diffusers_how(sub.model_id, sub.revision, spec.name)) from exc
    clip = spec.ranker.clip if spec.ranker.method == "clip" else None
    if clip is not None:
        if clip.builder == "tiny":
            from genart.models import tiny

            tiny.build_tiny_clip()
        elif hub.is_local_path(clip.pretrained):
            found = hub.find_clip(clip.pretrained, clip.revision)
            if not found.present:
                raise ModelLoadError(clip.pretrained, looked=[found.where], detail="file not found",
                                     how="a local clip.pretrained is not downloaded: point it at an open_clip .safetensors file")
        else:
            hub.download_clip(clip.pretrained, clip.revision)


def resolved_models(spec: PresetSpec) -> tuple[ModelRef, ...]:
    """The models a run of ``spec`` uses, for its manifest: ids, the commit actually found, paths.

    A revision such as ``main`` resolves to the commit sha of the local snapshot when there is one.
    """
    refs: list[ModelRef] = []
    for item in check_preset(spec).items:
        local = item.where if item.present else None
        refs.append(ModelRef(item.role, item.model_id, item.revision, local_path=local,
                             random_weights=_is_tiny(spec, item.role)))
    return tuple(refs)


# --- loaded models -----------------------------------------------------------------------------
@dataclass(eq=False)
class DiffusionModel:
    """A loaded img2img pipeline plus what a run needs to record about it.

    ``vae_encode_count`` and ``text_encode_count`` count the encoder calls the generator made (tests
    assert "once per frame" with them); ``text_cache`` holds encoded prompts across runs.
    """

    pipe: Any
    model_id: str
    revision: str | None
    local_path: str | None
    random_weights: bool
    scheduler: str
    device: Any
    dtype: Any
    vae_encode_count: int = 0
    text_encode_count: int = 0
    text_cache: "OrderedDict[tuple, Any]" = field(default_factory=OrderedDict, repr=False)
    lock: Any = field(default_factory=threading.RLock, repr=False)


_CACHE: dict[str, Any] = {}
_CACHE_LOCK = threading.RLock()


def clear_model_cache() -> None:
    """Forget every loaded model (frees memory once no one else holds them)."""
    with _CACHE_LOCK:
        _CACHE.clear()


def _cache_key(role: str, sub: Any, device: Any) -> str:
    """What identifies a loaded model: the fields that change the weights or the pipeline, and the
    device. (Batch size, steps, strengths and such do not: presets that differ only there share.)"""
    fields = ("builder", "model_id", "revision", "variant", "scheduler", "dtype", "model", "pretrained", "controlnet")
    data = {k: v for k, v in sub.model_dump(mode="json").items() if k in fields}
    return f"{role}|{device}|" + json.dumps(data, sort_keys=True)


def _require_diffusion(spec: PresetSpec) -> DiffusionSpec:
    if spec.kind != "diffusion" or spec.generator is None:
        raise InvalidArgumentError("preset", spec.name, "a diffusion preset (this one is '" + spec.kind + "')")
    return spec.generator


def load_diffusion(spec: PresetSpec, device: str | None = None) -> DiffusionModel:
    """Load (once per process) the preset's img2img pipeline on the best device.

    Args:
        spec: a diffusion preset.
        device: force a device (``"cpu"``, ``"cuda:1"``); default ``$GENART_DEVICE`` or the best one.

    Raises:
        ModelLoadError: the weights are not here (names the model, where genart looked, how to get them).
        ConfigError: the preset names a scheduler diffusers does not have.
    """
    from genart.models.device import pick_device

    gen = _require_diffusion(spec)
    if gen.builder != "tiny":
        _locate_diffusion(spec, gen)  # absent weights fail here, before torch is even imported
    dev = pick_device(device)
    return _cached(_cache_key("diffusion", gen, dev), lambda: _load_diffusion(spec, gen, dev))


def _locate_diffusion(spec: PresetSpec, gen: DiffusionSpec) -> tuple[Path, str | None, bool, str]:
    """(folder, revision, random_weights, how-to-get-it) of a preset's pipeline; builds tiny ones.

    Raises:
        ModelLoadError: a hub or local model is not complete here.
    """
    if gen.builder == "tiny":
        from genart.models import tiny

        folder = tiny.build_tiny_sd()
        return folder, tiny.revision_of(folder), True, _tiny_how(spec.name)
    found = hub.find_diffusers(gen.model_id, gen.revision, gen.variant)
    how = hub.diffusers_how(gen.model_id, gen.revision, spec.name)
    if not found.present or found.path is None:
        detail = ("missing: " + ", ".join(found.missing)) if found.missing else ""
        raise ModelLoadError(gen.model_id, looked=[found.where], detail=detail, how=how)
    return found.path, found.commit or gen.revision, False, how


def _load_diffusion(spec: PresetSpec, gen: DiffusionSpec, dev: Any) -> DiffusionModel:
    from genart.models.device import optimise_pipeline, pick_dtype

    folder, revision, random_weights, how = _locate_diffusion(spec, gen)
    dtype = pick_dtype(gen.dtype, dev)
    pipe = load_pipeline(folder, model_id=gen.model_id, variant=gen.variant, dtype=dtype, how=how)
    if gen.controlnet is not None:
        pipe = with_controlnet(spec, pipe, dtype)
    scheduler = set_scheduler(pipe, gen.scheduler)
    pipe.to(dev)
    optimise_pipeline(pipe, dev)
    return DiffusionModel(pipe=pipe, model_id=gen.model_id, revision=revision, local_path=str(folder),
                          random_weights=random_weights, scheduler=scheduler, device=dev, dtype=dtype)


def with_controlnet(spec: PresetSpec, pipe: Any, dtype: Any) -> Any:
    """The img2img pipeline rebuilt around the preset's ControlNet (same components, ``from_pipe``).

    Raises:
        ModelLoadError: the ControlNet's weights are not here.
    """
    from diffusers import AutoPipelineForImage2Image, ControlNetModel

    cn = spec.generator.controlnet
    if cn.builder == "tiny":
        from genart.models import tiny

        folder, how = tiny.build_tiny_controlnet(), _tiny_how(spec.name)
    else:
        found = _find_component("controlnet", cn.model_id, cn.revision, cn.variant)
        how = hub.diffusers_how(cn.model_id, cn.revision, spec.name)
        if not found.present or found.path is None:
            raise ModelLoadError(cn.model_id, looked=[found.where], how=how,
                                 detail=("missing: " + ", ".join(found.missing)) if found.missing else "")
        folder = found.path
    kwargs: dict[str, Any] = {_dtype_kwarg(): dtype, "local_files_only": True, "use_safetensors": True}
    if cn.variant:
        kwargs["variant"] = cn.variant
    try:
        model = ControlNetModel.from_pretrained(str(folder), **kwargs)
    except Exception as exc:  # OSError/ValueError from a partial or foreign folder
        raise ModelLoadError(cn.model_id, looked=[str(folder)], detail=f"could not load: {type(exc).__name__}: {exc}",
                             how=how) from exc
    out = AutoPipelineForImage2Image.from_pipe(pipe, controlnet=model)
    out.set_progress_bar_config(disable=True)
    return out


def controlnet_ref(spec: PresetSpec) -> str | None:
    """``model_id@revision`` of the preset's ControlNet (tiny: its builder hash), or None."""
    gen = spec.generator
    cn = gen.controlnet if gen is not None else None
    if cn is None:
        return None
    if cn.builder == "tiny":
        from genart.models import tiny

        return f"{cn.model_id}@{tiny.revision_of(tiny.tiny_controlnet_dir())}"
    found = _find_component("controlnet", cn.model_id, cn.revision, cn.variant)
    rev = found.commit or cn.revision
    return f"{cn.model_id}@{rev}" if rev else cn.model_id


def load_inpaint(spec: PresetSpec, device: str | None = None) -> DiffusionModel:
    """Load (once per process) the preset's inpainting pipeline (``generator.inpaint``) for outpainting.

    Raises:
        InvalidArgumentError: the preset names no inpainting model.
        ModelLoadError: its weights are not here (names the model, where genart looked, how to get them).
    """
    from genart.models.device import optimise_pipeline, pick_device, pick_dtype

    gen = _require_diffusion(spec)
    inp = gen.inpaint
    if inp is None:
        raise InvalidArgumentError("preset", spec.name, "a preset whose generator names an 'inpaint' model")
    if inp.builder == "tiny":
        from genart.models import tiny

        folder, revision, random_weights, how = tiny.build_tiny_inpaint(), None, True, _tiny_how(spec.name)
        revision = tiny.revision_of(folder)
    else:
        found = hub.find_diffusers(inp.model_id, inp.revision, inp.variant)
        how = hub.diffusers_how(inp.model_id, inp.revision, spec.name)
        if not found.present or found.path is None:
            detail = ("missing: " + ", ".join(found.missing)) if found.missing else ""
            raise ModelLoadError(inp.model_id, looked=[found.where], detail=detail, how=how)
        folder, revision, random_weights = found.path, found.commit or inp.revision, False
    dev = pick_device(device)
    key = _cache_key("inpaint", inp, dev) + f"|{gen.scheduler}|{gen.dtype}"
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            dtype = pick_dtype(gen.dtype, dev)
            pipe = load_pipeline(folder, model_id=inp.model_id, variant=inp.variant, dtype=dtype, how=how,
                                 task="inpaint")
            scheduler = set_scheduler(pipe, gen.scheduler)
            pipe.to(dev)
            optimise_pipeline(pipe, dev)
            hit = DiffusionModel(pipe=pipe, model_id=inp.model_id, revision=revision, local_path=str(folder),
                                 random_weights=random_weights, scheduler=scheduler, device=dev, dtype=dtype)
            _CACHE[key] = hit
        return hit


def load_pipeline(folder: Path, *, model_id: str, variant: str | None, dtype: Any, how: str = "",
                  task: str = "img2img") -> Any:
    """``AutoPipelineForImage2Image.from_pretrained`` on a local folder, safetensors only, offline.

    The one loader for hub snapshots, local folders and the tiny preset alike.
    """
    from diffusers import AutoPipelineForImage2Image, AutoPipelineForInpainting

    auto = AutoPipelineForInpainting if task == "inpaint" else AutoPipelineForImage2Image
    kwargs: dict[str, Any] = {_dtype_kwarg(): dtype, "local_files_only": True, "use_safetensors": True}
    if variant:
        kwargs["variant"] = variant
    try:
        index = json.loads((Path(folder) / "model_index.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        index = {}
    if "safety_checker" in index:
        # thumbnails are screened by the rank stage's own safety scorer; skip the 1.2 GB checker
        kwargs.update(safety_checker=None, requires_safety_checker=False)
    try:
        with _quiet_progress():
            pipe = auto.from_pretrained(str(folder), **kwargs)
    except Exception as exc:  # OSError/EnvironmentError/ValueError from a partial or foreign folder
        raise ModelLoadError(model_id, looked=[str(folder)], detail=f"could not load: {type(exc).__name__}: {exc}",
                             how=how) from exc
    pipe.set_progress_bar_config(disable=True)
    return pipe


def _dtype_kwarg() -> str:
    """diffusers renamed ``torch_dtype`` to ``dtype`` (0.36+ warns on the old name); use what it has."""
    from diffusers.utils import deprecation_utils

    return "dtype" if hasattr(deprecation_utils, "_resolve_dtype") else "torch_dtype"


@contextmanager
def _quiet_progress() -> Iterator[None]:
    """No "Loading pipeline components" bars: genart reports its own progress."""
    from diffusers.utils import logging as dlog
    from transformers.utils import logging as tlog

    was_d, was_t = dlog.is_progress_bar_enabled(), tlog.is_progress_bar_enabled()
    dlog.disable_progress_bar()
    tlog.disable_progress_bar()
    try:
        yield
    finally:
        if was_d:
            dlog.enable_progress_bar()
        if was_t:
            tlog.enable_progress_bar()


def set_scheduler(pipe: Any, name: str | None) -> str:
    """Swap in the scheduler class ``name`` (configured from the pipeline's own); return the class name."""
    if name:
        import diffusers

        cls = getattr(diffusers, name, None)
        if cls is None or not hasattr(cls, "from_config") or not name.endswith("Scheduler"):
            raise ConfigError(f"unknown scheduler '{name}'", field="generator.scheduler",
                              hint="use a diffusers scheduler class name, e.g. EulerAncestralDiscreteScheduler")
        if type(pipe.scheduler).__name__ != name:
            pipe.scheduler = cls.from_config(pipe.scheduler.config)
    return type(pipe.scheduler).__name__


def load_clip(spec: PresetSpec, device: str | None = None) -> "ClipEmbedder":
    """Load (once per process) the preset's open_clip model as a ``ClipEmbedder``.

    Raises:
        ModelLoadError: the weights are not here.
        InvalidArgumentError: the preset does not rank with CLIP.
    """
    from genart.models.device import pick_device

    clip = spec.ranker.clip
    if spec.ranker.method != "clip" or clip is None:
        raise InvalidArgumentError("preset", spec.name, "a preset whose ranker method is 'clip'")
    if clip.builder != "tiny":
        _locate_clip(spec, clip)  # absent weights fail here, before torch is even imported
    dev = pick_device(device)
    return _cached(_cache_key("clip", clip, dev), lambda: _load_clip(spec, clip, dev))


def _locate_clip(spec: PresetSpec, clip: ClipSpec) -> tuple[Path, str, str]:
    """(weights file, fingerprint, how-to-get-it) of a preset's CLIP; builds the tiny one.

    Raises:
        ModelLoadError: the weights are not here.
    """
    if clip.builder == "tiny":
        from genart.models import tiny

        if clip.model != tiny.TINY_CLIP_NAME:
            raise ConfigError(f"the tiny CLIP builder makes '{tiny.TINY_CLIP_NAME}', not '{clip.model}'",
                              field="ranker.clip.model")
        folder = tiny.build_tiny_clip()
        tiny.register_tiny_clip(folder)
        return folder / tiny.CLIP_WEIGHTS_FILE, f"{clip.model}@tiny-{tiny.revision_of(folder)}", _tiny_how(spec.name)
    found = hub.find_clip(clip.pretrained, clip.revision)
    how = hub.clip_how(clip.pretrained, clip.revision, spec.name)
    if not found.present or found.path is None:
        raise ModelLoadError(f"{clip.pretrained} ({clip.model})", looked=[found.where], how=how)
    if found.commit:
        return found.path, f"{clip.model}@{clip.pretrained}@{found.commit}", how
    from genart.imaging import sha256_file

    return found.path, f"{clip.model}@sha256:{sha256_file(found.path)[:16]}", how


def _load_clip(spec: PresetSpec, clip: ClipSpec, dev: Any) -> "ClipEmbedder":
    from genart.rank.clip import ClipEmbedder

    weights, fingerprint, how = _locate_clip(spec, clip)
    return ClipEmbedder.from_open_clip(clip.model, weights, device=dev, fingerprint=fingerprint,
                                       model_id=clip.pretrained, how=how)
