"""Where a preset's models come from, registered by name: ``hub``, ``local`` and ``tiny``.

A model's ``builder`` in models.yaml names its source, as open_clip names an architecture: the loaders
in ``genart.models`` look the source up here and ask it to find, fetch or make the weights, instead of
branching on the name. A source answers for every role a preset has (``diffusion`` and ``inpaint``
pipelines, a ``controlnet``, the ``clip`` model, the ``aesthetic`` head); what it returns (a ``Found``:
the folder or file, the commit) is then loaded by the same code for every source (diffusers
``from_pretrained``, open_clip), so the tiny preset walks the production loading path.

- ``hub``: the Hugging Face cache, offline (``local_files_only``); ``genart models pull`` downloads.
  A ``builder: hub`` reference that is a path (``./x``, ``/x``, ``~/x``, or one that exists) is ``local``.
- ``local``: a folder or file on this machine; nothing to download (``builder: file`` of an
  aesthetic head is this source: a path, relative ones under ``$GENART_CACHE/weights``).
- ``tiny``: real classes at toy size with random weights, built once into the cache (tests only).

A new source is a class with the ``ModelSource`` methods under ``@register_source("name")``, and the
name in the ``builder`` literals of ``genart/config.py`` (which validates models.yaml).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Literal, Protocol, TypeVar

from genart.errors import ConfigError, ModelLoadError, UnknownModelSourceError
from genart.models import hub, tiny
from genart.models.hub import Found

Role = Literal["diffusion", "inpaint", "controlnet", "clip", "aesthetic"]
#: The order ``genart models check`` lists a preset's models in.
ROLES: tuple[Role, ...] = ("diffusion", "clip", "inpaint", "controlnet", "aesthetic")

__all__ = ["Component", "Found", "ModelSource", "ROLES", "Role", "component", "components", "get_source",
           "register_source", "source_name", "source_names"]


@dataclass(frozen=True)
class Component:
    """One model of a preset, as every source sees it.

    ``ref`` is what names the weights (``model_id``, ``clip.pretrained``, ``aesthetic.weights``); ``spec``
    the models.yaml section it came from (a source may read more of it, e.g. an aesthetic head's
    ``source`` URL); ``dim`` the CLIP embedding size an aesthetic head takes, once CLIP is loaded.
    """

    role: Role
    ref: str
    source: str
    preset: str
    revision: str | None = None
    variant: str | None = None
    model: str | None = None  # the open_clip architecture (clip)
    spec: Any = None
    dim: int | None = None

    @property
    def label(self) -> str:
        """How errors name it."""
        if self.role == "clip":
            return f"{self.ref} ({self.model})"
        if self.role == "aesthetic":
            return f"aesthetic head {self.ref}"
        return self.ref


class ModelSource(Protocol):
    """Finds, fetches or makes a preset's models. Every method takes the ``Component`` it is asked about."""

    name: str
    #: the weights are random: only a preset with ``random_weights: true`` may use this source
    random_weights: bool
    #: ``genart models pull`` downloads from the hub (so offline mode refuses it)
    downloads: bool

    def find(self, part: Component) -> Found | None:
        """Where the weights are, or what is missing: local look-ups only (milliseconds, no network, no
        build). None when nothing can be looked up before loading (a tiny head's size comes from CLIP)."""
        ...

    def how(self, part: Component) -> str:
        """What a user does to get the weights."""
        ...

    def locate(self, part: Component) -> Found:
        """The weights, ready to load (a tiny model is built here).

        Raises:
            ModelLoadError: they are absent (names the model, where it looked, how to get it).
        """
        ...

    def pull(self, part: Component) -> None:
        """Get the weights onto this machine (``genart models pull``).

        Raises:
            ModelLoadError: a download failed, or a local path does not hold the model.
        """
        ...

    def fingerprint(self, part: Component, found: Found) -> str:
        """What identifies the loaded weights (CLIP: the key of cached embeddings)."""
        ...


_SOURCES: dict[str, ModelSource] = {}
_S = TypeVar("_S")


def register_source(name: str) -> Callable[[type[_S]], type[_S]]:
    """Class decorator: ``@register_source("hub") class HubSource: ...`` registers one instance by ``name``."""

    def add(cls: type[_S]) -> type[_S]:
        source: Any = cls()  # a ModelSource (tests/test_registries.py checks each registered one)
        source.name = name
        _SOURCES[name] = source
        return cls

    return add


def source_names() -> tuple[str, ...]:
    """The registered sources, sorted."""
    return tuple(sorted(_SOURCES))


def get_source(name: str, field: str | None = None) -> ModelSource:
    """The source registered as ``name``.

    Raises:
        UnknownModelSourceError: no source has that name (the message lists the registered ones).
    """
    try:
        return _SOURCES[name]
    except KeyError:
        raise UnknownModelSourceError(name, _SOURCES, field=field) from None


def source_name(builder: str, ref: str) -> str:
    """The source a models.yaml ``builder`` means for ``ref``: a hub reference that is a path is
    ``local``, and an aesthetic head's ``file`` is ``local`` too."""
    if builder == "file" or (builder == "hub" and hub.is_local_path(ref)):
        return "local"
    return builder


def components(spec: Any) -> tuple[Component, ...]:
    """The models a preset (``PresetSpec``) names, in ``ROLES`` order. A BRISQUE aesthetic is no model
    of a source (it ships with OpenCV's data), so it is not one of them."""
    out: list[Component] = []
    gen = spec.generator
    if gen is not None:
        out.append(Component("diffusion", gen.model_id, source_name(gen.builder, gen.model_id), spec.name,
                             gen.revision, gen.variant, spec=gen))
    clip = spec.ranker.clip
    if spec.ranker.method == "clip" and clip is not None:
        out.append(Component("clip", clip.pretrained, source_name(clip.builder, clip.pretrained), spec.name,
                             clip.revision, model=clip.model, spec=clip))
    for role in ("inpaint", "controlnet"):
        sub = getattr(gen, role, None) if gen is not None else None
        if sub is not None:
            out.append(Component(role, sub.model_id, source_name(sub.builder, sub.model_id), spec.name,
                                 sub.revision, sub.variant, spec=sub))
    head = spec.ranker.aesthetic
    if head is not None and head.builder != "brisque":
        out.append(Component("aesthetic", head.weights or "", source_name(head.builder, head.weights or ""),
                             spec.name, spec=head))
    return tuple(out)


def component(spec: Any, role: Role, *, dim: int | None = None) -> Component:
    """The preset's model in ``role``.

    Raises:
        ConfigError: the preset names no model in that role.
    """
    for part in components(spec):
        if part.role == role:
            return part if dim is None else Component(**{**part.__dict__, "dim": dim})
    raise ConfigError(f"preset '{spec.name}' names no {role} model", field=role)


def _missing(part: Component, found: Found) -> Found:
    """``found`` if present, else a ``ModelLoadError`` that names what is missing and how to get it."""
    if found.present and found.path is not None:
        return found
    detail = "missing: " + ", ".join(found.missing) if found.missing and part.role != "clip" else ""
    raise ModelLoadError(part.label, looked=[found.where], detail=detail, how=_how(part))


def _how(part: Component) -> str:
    return get_source(part.source).how(part)


class _WeightsOnDisk:
    """What the hub and local sources share: the weights are found (never made) and named by file."""

    def find(self, part: Component) -> Found | None:  # pragma: no cover - each source has its own
        raise NotImplementedError

    def how(self, part: Component) -> str:  # pragma: no cover - each source has its own
        raise NotImplementedError

    def locate(self, part: Component) -> Found:
        found = self.find(part)
        if found is None:  # pragma: no cover - every hub and local role has a look-up
            raise ModelLoadError(part.label, how=self.how(part))
        return _missing(part, found)

    def fingerprint(self, part: Component, found: Found) -> str:
        """``arch@repo@commit`` for a hub snapshot, ``arch@sha256:...`` of the file for anything else."""
        if found.commit:
            return f"{part.model}@{part.ref}@{found.commit}"
        from genart.imaging import sha256_file

        return f"{part.model}@sha256:{sha256_file(Path(str(found.path)))[:16]}"


@register_source("hub")
class HubSource(_WeightsOnDisk):
    """Hugging Face hub models, from the local cache only; downloaded by ``genart models pull``."""

    name = "hub"
    random_weights = False
    downloads = True

    def find(self, part: Component) -> Found | None:
        if part.role == "clip":
            return hub.find_clip(part.ref, part.revision)
        if part.role == "aesthetic":
            return LocalSource().find(part)  # a head is a file (``builder: file``), never a hub repo
        found = hub.find_diffusers(part.ref, part.revision, part.variant)
        return hub.as_controlnet(found) if part.role == "controlnet" else found

    def how(self, part: Component) -> str:
        if part.role == "clip":
            return hub.clip_how(part.ref, part.revision, part.preset)
        return hub.diffusers_how(part.ref, part.revision, part.preset)

    def pull(self, part: Component) -> None:
        if part.role in ("diffusion", "inpaint"):
            hub.download_diffusers(part.ref, part.revision, part.variant, part.preset)
        elif part.role == "controlnet":
            hub.download_controlnet(part.ref, part.revision, part.preset)
        elif part.role == "clip":
            hub.download_clip(part.ref, part.revision)


@register_source("local")
class LocalSource(_WeightsOnDisk):
    """A folder (diffusers layout) or file (open_clip or aesthetic .safetensors) on this machine."""

    name = "local"
    random_weights = False
    downloads = False

    def find(self, part: Component) -> Found | None:
        if part.role == "clip":
            return hub.find_local_clip(part.ref)
        if part.role == "aesthetic":
            from genart.models.aesthetic import resolve_weights

            path = resolve_weights(part.ref)
            return Found(path if path.is_file() else None, str(path))
        found = hub.find_local_diffusers(part.ref)
        return hub.as_controlnet(found) if part.role == "controlnet" else found

    def how(self, part: Component) -> str:
        if part.role == "aesthetic":
            from genart.models.aesthetic import how_to_get

            return how_to_get(part.spec, part.preset)
        return HubSource().how(part)

    def pull(self, part: Component) -> None:
        """Nothing to download: a pipeline or CLIP file that is not there fails now, with what is missing."""
        found = self.find(part)
        if part.role == "diffusion" and found is not None and not found.present:
            raise ModelLoadError(part.ref, looked=[found.where], detail="missing: " + ", ".join(found.missing),
                                 how="a local model_id is not downloaded: point it at a complete diffusers folder")
        if part.role == "clip" and found is not None and not found.present:
            raise ModelLoadError(part.ref, looked=[found.where], detail="file not found",
                                 how="a local clip.pretrained is not downloaded: point it at an open_clip .safetensors file")


@register_source("tiny")
class TinySource:
    """The ``tiny`` preset's models (``genart.models.tiny``): built on first use, random weights."""

    name = "tiny"
    random_weights = True
    downloads = False

    def _folder(self, part: Component) -> Path:
        folders = {"diffusion": tiny.tiny_sd_dir, "inpaint": tiny.tiny_inpaint_dir,
                   "controlnet": tiny.tiny_controlnet_dir, "clip": tiny.tiny_clip_dir}
        return folders[part.role]()

    def find(self, part: Component) -> Found | None:
        if part.role == "aesthetic":
            return None  # its size is the CLIP model's: made with it, on first use
        folder = self._folder(part)
        built = tiny.is_built(folder)
        path = (folder / tiny.CLIP_WEIGHTS_FILE if part.role == "clip" else folder) if built else None
        return Found(path, str(folder), commit=tiny.revision_of(folder))

    def how(self, part: Component) -> str:
        return f"built locally on first use, or now with `genart models pull {part.preset}`"

    def locate(self, part: Component) -> Found:
        if part.role == "aesthetic":
            if part.dim is None:
                raise ConfigError("a tiny aesthetic head is sized by its CLIP model: load it with the CLIP size",
                                  field="ranker.aesthetic")
            from genart.models.aesthetic import tiny_head_file

            path = tiny_head_file(part.dim, getattr(part.spec, "head", "mlp"))
            return Found(path, str(path))
        if part.role == "clip" and part.model != tiny.TINY_CLIP_NAME:
            raise ConfigError(f"the tiny CLIP builder makes '{tiny.TINY_CLIP_NAME}', not '{part.model}'",
                              field="ranker.clip.model")
        self.pull(part)
        if part.role == "clip":
            tiny.register_tiny_clip(self._folder(part))
        found = self.find(part)
        if found is None or not found.present:  # pragma: no cover - pull built it or raised
            raise ModelLoadError(part.label, looked=[str(self._folder(part))], how=self.how(part))
        return found

    def pull(self, part: Component) -> None:
        builders = {"diffusion": tiny.build_tiny_sd, "inpaint": tiny.build_tiny_inpaint,
                    "controlnet": tiny.build_tiny_controlnet, "clip": tiny.build_tiny_clip}
        build = builders.get(part.role)
        if build is not None:
            build()

    def fingerprint(self, part: Component, found: Found) -> str:
        return f"{part.model}@tiny-{found.commit}"
