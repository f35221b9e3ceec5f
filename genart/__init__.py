"""genart: personalised thumbnail artwork.

``from genart import create_variants`` is cheap: the public functions load their stages (and torch)
only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

_API = {
    "create_variants",
    "extract_keyframes",
    "rank_variants",
    "list_profiles",
    "get_profile",
    "list_presets",
    "check_preset",
}

# a literal list, so linters and type checkers see the re-exports (the lazy API names come through __getattr__)
__all__ = [
    "GenartError",
    "KeyFrame",
    "RankedVariant",
    "RunResult",
    "Variant",
    "__version__",
    "check_preset",
    "create_variants",
    "extract_keyframes",
    "get_profile",
    "list_presets",
    "list_profiles",
    "rank_variants",
]

from genart.errors import GenartError  # noqa: E402  (light)
from genart.types import KeyFrame, RankedVariant, RunResult, Variant  # noqa: E402  (light)

if TYPE_CHECKING:  # pragma: no cover
    __version__: str
    from genart.api import (  # noqa: F401
        check_preset,
        create_variants,
        extract_keyframes,
        get_profile,
        list_presets,
        list_profiles,
        rank_variants,
    )


def _version() -> str:
    """pyproject.toml's ``version`` is the one source: the installed package's metadata carries it (read on
    first use, as importlib.metadata costs start-up time)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("genart")
    except PackageNotFoundError:  # pragma: no cover - a bare checkout on PYTHONPATH, never installed
        return "0+unknown"


def __getattr__(name: str) -> Any:
    if name == "__version__":
        globals()["__version__"] = found = _version()
        return found
    if name in _API:
        from genart import api

        return getattr(api, name)
    raise AttributeError(f"module 'genart' has no attribute {name!r}")
