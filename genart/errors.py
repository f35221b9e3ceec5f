"""genart's errors: one family per kind of failure, each message naming the bad value and the choices.

The CLI prints a ``GenartError`` as one line plus its hint and exits non-zero, never a traceback:
these are user mistakes or missing resources, not bugs.
"""

from __future__ import annotations

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


class EmptySourceError(InputError):
    def __init__(self, path: object, detail: str = "no frames or images found") -> None:
        super().__init__(f"{detail}: {path}", hint="check that the video has a video stream, or the folder holds images")
        self.path = path


class InvalidArgumentError(InputError):
    def __init__(self, name: str, value: object, expected: str) -> None:
        super().__init__(f"invalid {name}: {value!r}; expected {expected}")
        self.name = name
        self.value = value


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


# --- store -------------------------------------------------------------------------------------
class StoreError(GenartError):
    """The run store (database or image folder) cannot be used."""
