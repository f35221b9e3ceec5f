"""The run folder's layout (``runs/<run id>/``): what a person browsing it sees and what a process
holds while it works there. A run, a regeneration and the batch job all lay their runs out through here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Sequence

from genart.errors import StoreError
from genart.files import link_or_copy
from genart.store.db import Store
from genart.types import KeyFrame, RankedVariant, Variant


def ranked_name(rank: int, variant: Variant) -> str:
    """The name of a ranked variant's copy in its run's profile folder: rank, id, the file's own
    extension (``.jpg`` for a preset that delivers JPEGs)."""
    suffix = variant.path.suffix if variant.path is not None and variant.path.suffix else ".png"
    return f"{rank:02d}_{variant.id[:8]}{suffix}"


def stored_path(item: KeyFrame | Variant) -> Path:
    """The stored file of a key frame or variant the store handed back.

    Raises:
        StoreError: it has none (it was never stored).
    """
    if item.path is None:
        raise StoreError(f"{type(item).__name__.lower()} {item.id} has no stored picture")
    return item.path


def link_ranked(run_dir: Path, profile_id: str, rows: Sequence[RankedVariant]) -> None:
    """Each accepted variant of a ranking, linked (or copied) into the run's profile folder under its
    ``ranked_name``: the folder a person opens to see the best first (a run and the batch job alike)."""
    for r in rows:
        if r.rejected is None and r.rank is not None:
            link_or_copy(stored_path(r.variant), run_dir / profile_id / ranked_name(r.rank, r.variant))


def link_keyframes(run_dir: Path, keyframes: Sequence[KeyFrame], *, replace: bool = True) -> None:
    """The run's key frames under ``keyframes/``, numbered in order with their timecode
    (``01_00-00-04.20.png``); ``replace=False`` leaves a name that exists already (a resumed batch title,
    whose shards may link at once)."""
    for i, kf in enumerate(keyframes):
        link = run_dir / "keyframes" / f"{i + 1:02d}_{kf.timecode.replace(':', '-')}.png"
        if replace or not link.exists():
            link_or_copy(stored_path(kf), link)


def run_lock_path(store: Store, run_id: str) -> Path:
    """The lock a process holds while it works on a run (``genart.files.FileLock``): free means nobody is."""
    return store.root / "runs" / run_id / "run.lock"
