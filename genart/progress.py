"""Progress reporting without a UI dependency.

Stages accept ``progress: ProgressFn | None`` and call ``progress(stage, done, total)``. The CLI turns
the calls into Rich bars, the Gradio app into ``gr.Progress``; a library user can pass ``print``-like
functions or nothing.
"""

from __future__ import annotations

from typing import Callable, Optional

ProgressFn = Callable[[str, int, int], None]


def report(progress: Optional[ProgressFn], stage: str, done: int, total: int) -> None:
    """Call ``progress`` if given. Stages use this so they never test for None themselves."""
    if progress is not None:
        progress(stage, done, total)
