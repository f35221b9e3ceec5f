"""genart: personalised thumbnail artwork.

``from genart import create_variants`` is cheap: the public functions load their stages (and torch)
only when called.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_API = {
    "create_variants",
    "extract_keyframes",
    "rank_variants",
    "list_profiles",
    "get_profile",
    "list_presets",
    "check_preset",
}

__all__ = sorted(_API | {"__version__", "GenartError", "RunResult", "RankedVariant", "KeyFrame", "Variant"})

from genart.errors import GenartError  # noqa: E402  (light)
from genart.types import KeyFrame, RankedVariant, RunResult, Variant  # noqa: E402  (light)

if TYPE_CHECKING:  # pragma: no cover
    from genart.api import (  # noqa: F401
        check_preset,
        create_variants,
        extract_keyframes,
        get_profile,
        list_presets,
        list_profiles,
        rank_variants,
    )


def __getattr__(name: str) -> Any:
    if name in _API:
        from genart import api

        return getattr(api, name)
    raise AttributeError(f"module 'genart' has no attribute {name!r}")
