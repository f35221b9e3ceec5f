"""One way for the command line to say an error: one line plus its hint, the option as the user typed
it, a non-zero exit, never a traceback. Shared by ``genart/cli.py`` and the bandit commands it mounts
(``genart/bandit/cli.py``), so neither front end imports the other for it.
"""

from __future__ import annotations

import functools
import inspect
from typing import Any, Callable

import typer
from rich.console import Console
from rich.text import Text

from genart.errors import GenartError, InvalidArgumentError

err = Console(stderr=True)


def say(kind: str, message: str, hint: str | None = None) -> None:
    """One line on stderr, ``error: ...`` or ``warning: ...``, then the hint if there is one.

    Plain text (``Text``), never markup, and soft-wrapped: the terminal folds a long line, Rich does not
    cut it into several, so each message stays one line in a log.
    """
    style = {"error": "bold red", "warning": "yellow", "interrupted": "yellow"}.get(kind, "bold")
    err.print(Text.assemble((f"{kind}:", style), " ", message), soft_wrap=True)
    if hint:
        err.print(Text(f"hint: {hint}", style="dim"), soft_wrap=True)


def _option_names(fn: Callable) -> dict[str, str]:
    """A command's parameter names -> the option a user types (``variants_per_frame`` -> ``--variants``),
    read from its own ``typer.Option(...)`` defaults."""
    names: dict[str, str] = {}
    for param in inspect.signature(fn).parameters.values():
        decls = getattr(param.default, "param_decls", None) or ()
        longs = [d.split("/")[0] for d in decls if d.startswith("--")]
        if longs:
            names[param.name] = longs[0]
    return names


def _as_typed(exc: GenartError, options: dict[str, str]) -> GenartError:
    """An argument error as the user met it: the API names ``variants_per_frame``, the user typed
    ``--variants``. The commands name their parameters after the API's arguments, so one map serves."""
    if isinstance(exc, InvalidArgumentError) and exc.name in options:
        expected = exc.expected.replace(" or None", "")  # nobody types None on a command line
        return InvalidArgumentError(options[exc.name], exc.value, expected, hint=exc.hint)
    return exc


def handles_errors(fn: Callable) -> Callable:
    """Turn genart's typed errors into one red line plus hint and a non-zero exit."""
    options = _option_names(fn)

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except GenartError as exc:
            shown = _as_typed(exc, options)
            say("error", shown.message, shown.hint)
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            say("interrupted", "everything finished so far is in the store")
            raise typer.Exit(130) from None

    return wrapper
