"""Preset -> loaded models, cached per process; what a preset needs and whether it is here.

A preset's models load with the libraries' own loaders (diffusers ``from_pretrained``, open_clip's
``create_model_and_transforms``) from the Hugging Face cache or a local folder, always with
``local_files_only``: a load never touches the network, so absent weights fail in seconds with a
``ModelLoadError`` that says where genart looked and how to get them. Only ``pull_preset`` downloads.

Where each model comes from is its source (``genart.models.sources``: ``hub``, ``local``, ``tiny``,
registered by name): the functions here ask the source of each model to find, fetch or build it, then
load what it found with the same code for every source, so the ``tiny`` preset's models (built
locally, ``genart.models.tiny``) walk the production path.

This module imports no torch at import time: ``check_preset`` and ``resolved_models`` stay cheap.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, TypeVar, cast

from genart.config import ClipSpec, DiffusionSpec, PresetSpec
from genart.errors import ConfigError, InvalidArgumentError, ModelLoadError, OfflineError
from genart.models import sources
from genart.types import ModelRef

if TYPE_CHECKING:  # pragma: no cover
    from genart.models.aesthetic import AestheticHead
    from genart.models.clip import ClipEmbedder

_T = TypeVar("_T")

__all__ = [
    "CheckItem",
    "PresetCheck",
    "DiffusionModel",
    "check_preset",
    "ensure_weights",
    "pull_preset",
    "load_diffusion",
    "load_inpaint",
    "load_clip",
    "load_aesthetic",
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


def _item(part: sources.Component) -> CheckItem | None:
    """What ``genart models check`` says about one model (None: its source has nothing to look up yet)."""
    source = sources.get_source(part.source)
    found = source.find(part)
    if found is None:
        return None
    where = found.where
    if not found.present and found.missing and part.role != "clip":
        where += f" (missing: {', '.join(found.missing)})"
    return CheckItem(part.role, part.ref, found.commit or part.revision, found.present, where, source.how(part))


def _checked(spec: PresetSpec) -> list[tuple[sources.Component, CheckItem]]:
    out = []
    for part in sources.components(spec):
        item = _item(part)
        if item is not None:
            out.append((part, item))
    return out


def _cached(key: str, load: Callable[[], _T]) -> _T:
    """The loaded model for ``key``: loaded once per process (under the lock, so two threads never
    load the same weights twice)."""
    with _CACHE_LOCK:
        hit = _CACHE.get(key)
        if hit is None:
            hit = load()
            _CACHE[key] = hit
        return cast(_T, hit)


def check_preset(spec: PresetSpec) -> PresetCheck:
    """Whether a preset's weights are here. Local look-ups only: fast, never online.

    ``classic`` needs no weights (ok, no items). A tiny preset is ok whether built or not (it builds
    on first use); ``present`` says whether it is built already.
    """
    checked = _checked(spec)
    ok = all(item.present or sources.get_source(part.source).random_weights for part, item in checked)
    return PresetCheck(spec.name, ok, tuple(item for _, item in checked))


def ensure_weights(spec: PresetSpec) -> None:
    """Fail in seconds, before any work, when a preset's weights are not on this machine.

    Raises:
        ModelLoadError: names the first absent model, where genart looked and how to get it, and every
            model the preset misses.
    """
    check = check_preset(spec)
    if not check.ok:
        missing = [i for i in check.items if not i.present]
        first = missing[0]
        raise ModelLoadError(first.model_id, looked=[first.where], how=first.how,
                             detail=f"preset '{spec.name}' needs {', '.join(i.model_id for i in missing)}")


def pull_preset(spec: PresetSpec) -> None:
    """Get a preset's weights: download hub models at their pinned revision, or build tiny ones.

    With Hugging Face's offline mode on, nothing is downloaded: a preset whose hub weights are all
    here is ready as it is, any other fails at once with ``OfflineError``, before the hub is asked.

    Raises:
        OfflineError: hub weights are missing and ``HF_HUB_OFFLINE`` is set.
        ModelLoadError: a download failed, or a local path named in the preset does not exist.
    """
    from huggingface_hub import constants

    # the aesthetic head is fetched by hand (its check says how): a pull leaves it alone
    parts = [p for p in sources.components(spec) if p.role != "aesthetic"]
    if constants.is_offline_mode():
        checked = [(p, i) for p, i in _checked(spec) if p.role != "aesthetic"]
        missing = [i for p, i in checked if not i.present and sources.get_source(p.source).downloads]
        if missing:
            import os

            var = next((v for v in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE") if os.environ.get(v)), "HF_HUB_OFFLINE")
            raise OfflineError(", ".join(i.model_id for i in missing), variable=var, value=os.environ.get(var, "1"),
                               command=f"genart models pull {spec.name}")
        if all(i.present for _, i in checked):
            return  # everything is here already: nothing to ask the hub for
    for part in sorted(parts, key=lambda p: _PULL_ORDER.index(p.role)):
        sources.get_source(part.source).pull(part)


_PULL_ORDER = ("diffusion", "inpaint", "controlnet", "clip")


def resolved_models(spec: PresetSpec) -> tuple[ModelRef, ...]:
    """The models a run of ``spec`` uses, for its manifest: ids, the commit actually found, paths.

    A revision such as ``main`` resolves to the commit sha of the local snapshot when there is one.
    """
    return tuple(ModelRef(item.role, item.model_id, item.revision, local_path=item.where if item.present else None,
                          random_weights=sources.get_source(part.source).random_weights)
                 for part, item in _checked(spec))


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


@dataclass(frozen=True)
class _Located:
    """A preset's model in one role, found (or built) by its source and ready to load."""

    part: sources.Component
    source: sources.ModelSource
    found: sources.Found
    path: Path

    @property
    def revision(self) -> str | None:
        return self.found.commit or self.part.revision

    @property
    def how(self) -> str:
        return self.source.how(self.part)


def _locate(spec: PresetSpec, role: sources.Role) -> _Located:
    """The weights of the preset's model in ``role``, from its source (a tiny one is built here).

    Raises:
        ModelLoadError: they are absent (names the model, where genart looked, how to get it).
    """
    part = sources.component(spec, role)
    source = sources.get_source(part.source, field=role)
    found = source.locate(part)
    if found.path is None:  # a source's locate raises first; this keeps the type checker honest
        raise ModelLoadError(part.label, looked=[found.where], how=source.how(part))
    return _Located(part, source, found, found.path)


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
    at = _locate(spec, "diffusion")  # absent weights fail here, before torch is even imported
    dev = pick_device(device)
    return _cached(_cache_key("diffusion", gen, dev), lambda: _load_diffusion(spec, gen, at, dev))


def _load_diffusion(spec: PresetSpec, gen: DiffusionSpec, at: _Located, dev: Any) -> DiffusionModel:
    from genart.models.device import optimise_pipeline, pick_dtype

    dtype = pick_dtype(gen.dtype, dev)
    pipe = load_pipeline(at.path, model_id=gen.model_id, variant=gen.variant, dtype=dtype, how=at.how)
    if gen.controlnet is not None:
        pipe = with_controlnet(spec, pipe, dtype)
    scheduler = set_scheduler(pipe, gen.scheduler)
    pipe.to(dev)
    optimise_pipeline(pipe, dev)
    return DiffusionModel(pipe=pipe, model_id=gen.model_id, revision=at.revision, local_path=str(at.path),
                          random_weights=at.source.random_weights, scheduler=scheduler, device=dev, dtype=dtype)


def with_controlnet(spec: PresetSpec, pipe: Any, dtype: Any) -> Any:
    """The img2img pipeline rebuilt around the preset's ControlNet (same components, ``from_pipe``).

    Raises:
        ModelLoadError: the ControlNet's weights are not here.
        ConfigError: the preset names no ControlNet.
    """
    from diffusers import AutoPipelineForImage2Image, ControlNetModel

    at = _locate(spec, "controlnet")
    kwargs: dict[str, Any] = {_dtype_kwarg(): dtype, "local_files_only": True, "use_safetensors": True}
    if at.part.variant:
        kwargs["variant"] = at.part.variant
    try:
        model = ControlNetModel.from_pretrained(str(at.path), **kwargs)
    except Exception as exc:  # OSError/ValueError from a partial or foreign folder
        raise ModelLoadError(at.part.ref, looked=[str(at.path)], detail=f"could not load: {type(exc).__name__}: {exc}",
                             how=at.how) from exc
    out = AutoPipelineForImage2Image.from_pipe(pipe, controlnet=model)
    out.set_progress_bar_config(disable=True)
    return out


def controlnet_ref(spec: PresetSpec) -> str | None:
    """``model_id@revision`` of the preset's ControlNet (tiny: its builder hash), or None."""
    part = next((p for p in sources.components(spec) if p.role == "controlnet"), None)
    if part is None:
        return None
    found = sources.get_source(part.source).find(part)
    rev = (found.commit if found is not None else None) or part.revision
    return f"{part.ref}@{rev}" if rev else part.ref


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
    at = _locate(spec, "inpaint")
    dev = pick_device(device)
    key = _cache_key("inpaint", inp, dev) + f"|{gen.scheduler}|{gen.dtype}"

    def load() -> DiffusionModel:
        dtype = pick_dtype(gen.dtype, dev)
        pipe = load_pipeline(at.path, model_id=inp.model_id, variant=inp.variant, dtype=dtype, how=at.how,
                             task="inpaint")
        scheduler = set_scheduler(pipe, gen.scheduler)
        pipe.to(dev)
        optimise_pipeline(pipe, dev)
        return DiffusionModel(pipe=pipe, model_id=inp.model_id, revision=at.revision, local_path=str(at.path),
                              random_weights=at.source.random_weights, scheduler=scheduler, device=dev, dtype=dtype)

    return _cached(key, load)


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
    at = _locate(spec, "clip")  # absent weights fail here, before torch is even imported
    dev = pick_device(device)
    return _cached(_cache_key("clip", clip, dev), lambda: _load_clip(clip, at, dev))


def _load_clip(clip: ClipSpec, at: _Located, dev: Any) -> "ClipEmbedder":
    from genart.models.clip import ClipEmbedder

    return ClipEmbedder.from_open_clip(clip.model, at.path, device=dev, fingerprint=at.source.fingerprint(at.part, at.found),
                                       model_id=clip.pretrained, how=at.how)


_HEADS: "dict[tuple[str, int, str], AestheticHead]" = {}


def load_aesthetic(preset_spec: PresetSpec, dim: int) -> "AestheticHead | None":
    """The preset's aesthetic head (cached per process), or None when the preset names none.

    Args:
        preset_spec: a ``PresetSpec``.
        dim: the CLIP embedding size the head must take.

    Raises:
        ModelLoadError: the preset names a weights file that is absent or unreadable (says how to get it).
        ConfigError: a ``tiny`` head in a preset without ``random_weights: true``, or a head whose input
            size does not match the CLIP model.
    """
    from genart.models.aesthetic import AestheticHead

    spec = preset_spec.ranker.aesthetic
    if spec is None or spec.builder == "brisque":  # no CLIP head (``BrisqueScorer``)
        return None
    part = sources.component(preset_spec, "aesthetic", dim=dim)
    source = sources.get_source(part.source)
    if source.random_weights and not preset_spec.random_weights:
        raise ConfigError(f"a '{spec.builder}' aesthetic head has random weights: the preset must say random_weights: true",
                          field="ranker.aesthetic.builder")
    found = source.locate(part)
    path = found.path
    if path is None:  # locate raises first; this keeps the type checker honest
        raise ModelLoadError(part.ref, looked=[found.where], how=source.how(part))
    key = (str(path), path.stat().st_mtime_ns, spec.head)
    head = _HEADS.get(key)
    if head is None:
        try:
            head = AestheticHead.from_safetensors(path, spec.head)
        except ModelLoadError as exc:
            raise ModelLoadError(exc.model, looked=[str(path)], detail=str(exc.message), how=source.how(part)) from exc
        _HEADS[key] = head
    if head.in_dim != dim:
        raise ConfigError(f"the aesthetic head takes {head.in_dim}-d embeddings but the CLIP model makes {dim}-d ones",
                          field="ranker.aesthetic.weights", hint="use the head trained for this CLIP architecture")
    return head
