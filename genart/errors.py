"""genart's errors: one family per kind of failure, each message naming the bad value and the choices.

The CLI prints a ``GenartError`` as one line plus its hint and exits non-zero, never a traceback:
these are user mistakes or missing resources, not bugs.
"""

from __future__ import annotations

import warnings
from contextvars import ContextVar, Token
from typing import Iterable


class GenartError(Exception):
    """Base class. ``hint`` says what to do about it; ``exit_code`` is what the CLI returns."""

    exit_code = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\n  hint: {self.hint}"


def _choices(values: Iterable[str]) -> str:
    values = sorted(values)
    return ", ".join(values) if values else "(none)"


# --- inputs ------------------------------------------------------------------------------------
class InputError(GenartError):
    """A source or argument the user gave cannot be used."""


class SourceNotFoundError(InputError):
    def __init__(self, path: object) -> None:
        super().__init__(f"source not found: {path}", hint="pass a video file, an image, or a folder of stills")
        self.path = path


class UnsupportedMediaError(InputError):
    def __init__(self, path: object, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(
            f"not a readable video or image: {path}{extra}",
            hint="genart reads what FFmpeg (via PyAV) reads: mp4, mov, mkv, webm, ..., and PNG/JPEG/WebP stills",
        )
        self.path = path


class ImageReadError(UnsupportedMediaError):
    """The pixels of an image genart reads (a still, an upload, a key frame's or a variant's stored
    picture) cannot be had: the one family ``genart.imaging``'s loader (``open_image``, ``load_rgb``,
    ``pixels_of``) raises, so a caller catches one class for a missing, an unreadable and a too-large
    image. Raised as itself for a file that is not a readable image."""


class ImageNotFoundError(ImageReadError):
    """No file where the image should be (a stored picture deleted or moved, a wrong path), or a
    value that carries neither pixels nor a path."""

    def __init__(self, path: object, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        InputError.__init__(self, f"image not found: {path}{extra}",
                            hint="check the path; a run's pictures live in its store's folder (--out)")
        self.path = path


class ImageTooLargeError(ImageReadError):
    """An image whose header declares more pixels than genart decodes (a decompression bomb, or simply
    too big): refused before its pixels are read, so memory stays bounded."""

    def __init__(self, path: object, pixels: int, limit: int, size: tuple[int, int] | None = None) -> None:
        what = f"{size[0]}x{size[1]} ({pixels / 1e6:.1f} MP)" if size else f"{pixels / 1e6:.1f} MP (a decompression bomb?)"
        InputError.__init__(
            self, f"image too large: {path} declares {what}; the limit is {limit / 1e6:g} MP",
            hint="scale it down (a 4K frame is 8.3 MP), or raise the limit with GENART_MAX_IMAGE_PIXELS")
        self.path = path
        self.pixels = pixels
        self.size = size
        self.limit = limit


class EmptySourceError(InputError):
    def __init__(self, path: object, detail: str = "no frames or images found") -> None:
        super().__init__(f"{detail}: {path}", hint="check that the video has a video stream, or the folder holds images")
        self.path = path


class InvalidArgumentError(InputError):
    """``name`` is the argument as the caller spelled it: the CLI re-words it as the option typed."""

    def __init__(self, name: str, value: object, expected: str, *, hint: str | None = None) -> None:
        super().__init__(f"invalid {name}: {value!r}; expected {expected}", hint=hint)
        self.name = name
        self.value = value
        self.expected = expected


# --- configuration -----------------------------------------------------------------------------
class ConfigError(GenartError):
    """``models.yaml`` or a settings value is malformed. The message names the file and field."""

    def __init__(self, message: str, *, path: object = None, field: str | None = None, line: int | None = None,
                 hint: str | None = None) -> None:
        where = ""
        if path is not None:
            where = f"{path}"
            if line is not None:
                where += f":{line}"
            where += ": "
        if field:
            where += f"field '{field}': "
        super().__init__(where + message, hint=hint)
        self.path = path
        self.field = field
        self.line = line


class UnknownPresetError(ConfigError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown preset '{name}'; known presets: {_choices(known)}",
                         hint="presets live in models.yaml; `genart models list` shows them")
        self.name = name



class UnknownModelSourceError(ConfigError):
    """A preset names a model source (``builder``) that no module registered."""

    def __init__(self, name: str, known: Iterable[str], *, field: str | None = None) -> None:
        super().__init__(f"unknown model source '{name}'; known sources: {_choices(known)}", field=field,
                         hint="a model's `builder` in models.yaml names where its weights come from")
        self.name = name


class UnknownScorerError(ConfigError):
    """A preset's ``ranker.scorers`` names a scorer that no module registered."""

    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown scorer '{name}'; known scorers: {_choices(known)}", field="ranker.scorers",
                         hint="scorers register themselves in genart/rank/registry.py (CONTRIBUTING.md, 'Add a scorer')")
        self.name = name

# --- profiles ----------------------------------------------------------------------------------
class ProfileError(GenartError):
    """A taste profile is unknown or its file is malformed."""


class UnknownProfileError(ProfileError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown profile '{name}'; known profiles: {_choices(known)}",
                         hint="profiles are prompts/<id>.yaml; `genart profiles list` shows them")
        self.name = name


class ProfileValidationError(ProfileError):
    def __init__(self, message: str, *, path: object, field: str | None = None, line: int | None = None) -> None:
        where = f"{path}" + (f":{line}" if line is not None else "") + ": "
        if field:
            where += f"field '{field}': "
        super().__init__(where + message, hint="`genart profiles validate PATH` checks a file; see prompts/romance.yaml")
        self.path = path
        self.field = field
        self.line = line


# --- models ------------------------------------------------------------------------------------
class ModelLoadError(GenartError):
    """A preset's weights are absent or unreadable. Says which model, where it looked, how to get it."""

    def __init__(self, model: str, *, looked: Iterable[str] = (), how: str = "", detail: str = "") -> None:
        looked = list(looked)
        msg = f"model weights not available: {model}"
        if detail:
            msg += f" ({detail})"
        if looked:
            msg += "; looked in: " + ", ".join(looked)
        super().__init__(msg, hint=how or None)
        self.model = model
        self.looked = looked


class OfflineError(ModelLoadError):
    """A download was asked for while Hugging Face's offline mode is on: nothing was tried."""

    def __init__(self, model: str, variable: str = "HF_HUB_OFFLINE", value: str = "1", command: str = "") -> None:
        again = f"{variable}=0 {command}" if command else f"unset {variable}"
        GenartError.__init__(self, f"cannot download {model}: offline mode is on ({variable}={value})",
                             hint=f"run it with offline mode off: `{again}` (or `unset {variable}` first)")
        self.model = model
        self.looked = []
        self.variable = variable


# --- store -------------------------------------------------------------------------------------
class StoreError(GenartError):
    """The run store (database or image folder) cannot be used."""


class ManifestError(StoreError):
    """A run's manifest (its ``manifest.json``, or the copy in the store's ``runs`` row) is not one genart
    wrote: not JSON, not an object, or without a field every genart version has written. ``where`` names
    the file (or the run's row), so the one broken run can be found among many."""

    def __init__(self, where: object, detail: str) -> None:
        super().__init__(f"the run manifest {where} cannot be read: {detail}",
                         hint="it is written by `genart run`; restore it from a backup, or make the run again")
        self.where = str(where)
        self.detail = detail


class StoreConflictError(StoreError):
    """A concurrent writer stored the same key first (a unique row another process made at the same
    time); the write changed nothing, and trying it again reads what the other one stored."""


# --- bandit ------------------------------------------------------------------------------------
class BanditError(GenartError):
    """A bandit test, segment, exposure, policy or backend cannot be used."""


class UnknownTestError(BanditError):
    def __init__(self, test_id: str, known: Iterable[str] = ()) -> None:
        super().__init__(f"unknown bandit test '{test_id}'; known tests: {_choices(known)}",
                         hint="`genart bandit list --out DIR` lists a store's tests; "
                              "`genart bandit create RUN_ID --reviewer NAME --out DIR` makes one")
        self.test_id = test_id


class TestNotRunningError(BanditError):
    """A test is a draft waiting for a person's approval (or stopped, for changes only a running test takes)."""

    __test__ = False  # not a pytest test class

    def __init__(self, test_id: str, status: str, hint: str | None = None) -> None:
        super().__init__(f"bandit test '{test_id}' is {status}, not running",
                         hint=hint or (f"`genart bandit approve {test_id} --reviewer NAME --out DIR` starts it"
                                       if status == "draft" else None))
        self.test_id = test_id
        self.status = status


class UnknownSegmentError(BanditError):
    def __init__(self, test_id: str, segment: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown segment '{segment}' in bandit test '{test_id}'; known segments: {_choices(known)}")
        self.test_id = test_id
        self.segment = segment


class UnknownExposureError(BanditError):
    def __init__(self, exposure_ids: Iterable[str]) -> None:
        ids = list(exposure_ids)
        shown = ", ".join(repr(i) for i in ids[:5]) + (f" (and {len(ids) - 5} more)" if len(ids) > 5 else "")
        super().__init__(f"unknown exposure id {shown}",
                         hint="a reward must name the exposure_id that assign returned")
        self.exposure_ids = ids


class UnknownPolicyError(BanditError):
    def __init__(self, name: str, known: Iterable[str]) -> None:
        super().__init__(f"unknown bandit policy '{name}'; known policies: {_choices(known)}")
        self.name = name


class TestConflictError(BanditError):
    """A test id already exists with different arms or settings."""

    __test__ = False  # not a pytest test class

    def __init__(self, test_id: str, detail: str) -> None:
        super().__init__(f"bandit test '{test_id}' already exists with {detail}",
                         hint="use a new test id, or pass the same arms and config to reopen it")
        self.test_id = test_id


class BackendUnavailableError(BanditError):
    """An optional backend (Vowpal Wabbit, FastAPI, matplotlib, ...) is not installed or will not load."""

    def __init__(self, backend: str, package: str, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(f"{backend} is not available: cannot import '{package}'{extra}",
                         hint=f"pip install {package}")
        self.backend = backend
        self.package = package


# --- review (the app) --------------------------------------------------------------------------
class ReviewError(GenartError):
    """A review action (decision, regeneration, hand-off) cannot be done as asked."""


class UnknownRunError(InputError):
    def __init__(self, run_id: str, known: Iterable[str] = ()) -> None:
        known = list(known)
        shown = _choices(known[:10]) + (f" (and {len(known) - 10} more)" if len(known) > 10 else "")
        super().__init__(f"unknown run '{run_id}'; runs in this store: {shown}",
                         hint="`genart run` or the app's Generate step makes a run")
        self.run_id = run_id


class UnknownVariantError(InputError):
    def __init__(self, run_id: str, variant_id: str) -> None:
        super().__init__(f"unknown variant '{variant_id}' in run '{run_id}'",
                         hint="pick a variant from the run's gallery")
        self.run_id = run_id
        self.variant_id = variant_id


class DecisionConflictError(ReviewError):
    """Someone else decided on the variant since this reviewer last looked: nothing was overwritten."""

    def __init__(self, variant_id: str, expected: int, current: int, by: str = "", action: str = "",
                 at: str = "") -> None:
        who = f" ({by} chose '{action}' at {at})" if by else ""
        super().__init__(f"variant '{variant_id}' changed while you were looking: you saw version {expected}, "
                         f"it is now version {current}{who}; your decision was not saved",
                         hint="look at the variant's history, then decide again")
        self.variant_id = variant_id
        self.expected = expected
        self.current = current


class UploadError(InputError):
    """An uploaded file is too large, missing, or not something genart can read."""


class InsecureBindError(ConfigError):
    """A server asked to listen beyond this machine with no credentials configured."""

    def __init__(self, host: str, what: str = "the review app", hint: str | None = None) -> None:
        super().__init__(f"refusing to serve {what} on '{host}' without authentication",
                         hint=hint or "pass --auth-file FILE (or set GENART_APP_AUTH), or bind to 127.0.0.1")
        self.host = host


class PortInUseError(ConfigError):
    def __init__(self, host: str, port: int, detail: str = "") -> None:
        extra = f" ({detail})" if detail else ""
        super().__init__(f"port {port} on {host} is in use{extra}",
                         hint=f"pass another --port (e.g. --port {port + 1}), or stop what is serving on {port}")
        self.host = host
        self.port = port


class FrontendUnavailableError(GenartError):
    """A front end (``genart app``'s review app) no installed package registers, or whose code will not load.

    Front ends register in the ``genart.frontends`` entry-point group, so genart/ never imports them.
    """

    def __init__(self, name: str, *, known: Iterable[str] = (), detail: str = "") -> None:
        why = f": {detail}" if detail else f" (registered front ends: {_choices(known)})"
        super().__init__(f"front end '{name}' is not available{why}",
                         hint="reinstall genart with its front ends: pip install -e . (or make venv)")
        self.name = name


# --- batch (genart batch) --------------------------------------------------------------------------
class CatalogError(ConfigError):
    """A batch catalogue is malformed. The message names the file and line, the entry (title) and the field."""

    def __init__(self, message: str, *, path: object = None, entry: str | None = None, field: str | None = None,
                 line: int | None = None, hint: str | None = None) -> None:
        where = f"{path}" + (f":{line}" if line is not None else "") + ": " if path is not None else ""
        if entry:
            where += f"entry {entry}: "
        if field:
            where += f"field '{field}': "
        GenartError.__init__(self, where + message, hint=hint or "see examples/catalog.yaml for the catalogue's fields")
        self.path = path
        self.field = field
        self.line = line
        self.entry = entry


class BatchError(GenartError):
    """A batch job cannot go on: an engine is missing, a worker failed, or the ledger disagrees with the store."""


class NothingApprovedError(ReviewError):
    """A run has no approved variant to export or hand off. One line, no hint: the message says what to do."""

    def __init__(self, run_id: str, what: str = "export") -> None:
        super().__init__(f"run '{run_id}' has no approved variants to {what}: approve some in the review first "
                         "(genart app)")
        self.run_id = run_id


# --- warnings ----------------------------------------------------------------------------------
class GenartWarning(UserWarning):
    """Something went wrong and was worked around: the work goes on (a damaged video read up to the
    damage, a title that could not be laid, a face detector missing).

    The CLI prints one as a single ``warning:`` line, the way it prints errors; a run records its
    messages in ``RunResult.warnings``. Raise them with :func:`warn`.
    """


class MediaWarning(GenartWarning, RuntimeWarning):
    """A source was read only in part, or without a signal genart would have used (frames stage)."""


_SINKS: ContextVar[tuple[list[str], ...]] = ContextVar("genart_warning_sinks", default=())


def warn(message: str, category: type[GenartWarning] = GenartWarning, *, stacklevel: int = 1) -> None:
    """Warn the genart way: the message goes to every open :class:`WarningLog` of this context (the run
    in progress, even when Python shows a repeated warning only once) and to ``warnings.warn``.

    Args:
        message: one line that names the thing and what was done instead.
        category: a ``GenartWarning`` subclass.
        stacklevel: as for ``warnings.warn``, counted from the caller of this function.
    """
    for sink in _SINKS.get():
        if message not in sink:
            sink.append(message)
    warnings.warn(message, category, stacklevel=stacklevel + 1)


class WarningLog:
    """The messages :func:`warn` is given while the log is open, in order and without repeats.

    Context-local (a ``ContextVar``), so runs in different threads of one process (the review app)
    each get their own; ``genart.workers.pmap`` carries the context into its threads. Use it as a
    ``with`` block, or ``open()`` ... ``close()`` in a ``finally``.
    """

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._token: Token[tuple[list[str], ...]] | None = None

    def open(self) -> "WarningLog":
        self._token = _SINKS.set(_SINKS.get() + (self.messages,))
        return self

    def close(self) -> None:
        if self._token is not None:
            _SINKS.reset(self._token)
            self._token = None

    def __enter__(self) -> "WarningLog":
        return self.open()

    def __exit__(self, *exc: object) -> None:
        self.close()
