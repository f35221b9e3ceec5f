"""Kept so existing imports keep working: the delivery package lives in ``genart.usecases.export``;
``genart.api`` re-exports ``export_package``."""

from genart.usecases.export import (
    ARTWORK_TYPES,
    MANIFEST,
    MAX_CLEAN_UPSCALE,
    STREAMERS,
    TITLED_TYPES,
    StreamerRule,
    delivery_sizes,
    export_package,
)

__all__ = ["ARTWORK_TYPES", "MANIFEST", "MAX_CLEAN_UPSCALE", "STREAMERS", "TITLED_TYPES", "StreamerRule",
           "delivery_sizes", "export_package"]
