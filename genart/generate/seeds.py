"""One seed per variant, shared by every generator."""

from __future__ import annotations

from genart.types import stable_id


def variant_seed(seed: int, keyframe_id: str, profile_id: str, index: int) -> int:
    """The seed of one variant: stable across processes and machines, independent of batch and order,
    and within a signed 64-bit integer (what torch generators and SQL integers hold)."""
    return int(stable_id(int(seed), keyframe_id, profile_id, int(index)), 16) & ((1 << 63) - 1)
