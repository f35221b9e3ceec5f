"""One process-wide pool of CPU threads for per-image work that releases the GIL.

Finishing a variant (resize, blur, grade: OpenCV and numpy), PNG encoding and decoding (Pillow's
zlib) spend nearly all their time outside the interpreter lock, so threads run them on several cores
while the main thread keeps the accelerator fed. On a GPU machine these steps, done one image at a
time, were what limited ``genart batch`` (the generating itself took a seventh of the wall time).

``GENART_CPU_WORKERS`` sets the pool's size (default: the cores this process may use, at most 8;
``1`` runs everything inline, in order).
"""

from __future__ import annotations

import contextvars
import os
import threading
from concurrent.futures import ThreadPoolExecutor, wait
from typing import Callable, Iterable, TypeVar

from genart.errors import InvalidArgumentError

T = TypeVar("T")
R = TypeVar("R")

_pool: ThreadPoolExecutor | None = None
_lock = threading.Lock()


def cpu_workers() -> int:
    """How many threads per-image work may use (``$GENART_CPU_WORKERS``, else min(8, usable cores))."""
    raw = os.environ.get("GENART_CPU_WORKERS")
    if raw:
        try:
            n = int(raw)
        except ValueError:
            n = 0
        if n < 1:
            raise InvalidArgumentError("GENART_CPU_WORKERS", raw, "a whole number >= 1")
        return n
    try:
        cores = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(8, cores))


def _shared_pool(n: int) -> ThreadPoolExecutor:
    global _pool
    with _lock:
        if _pool is None or _pool._max_workers != n:  # noqa: SLF001 - resized when the setting changes
            _pool = ThreadPoolExecutor(max_workers=n, thread_name_prefix="genart-cpu")
        return _pool


def pmap(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """``[fn(x) for x in items]`` on the shared pool, results in order; inline for one item or one worker.

    When ``fn`` fails, every item is still let finish, then the first item's exception is raised here.
    """
    items = list(items)
    n = cpu_workers()
    if n == 1 or len(items) < 2 or threading.current_thread().name.startswith("genart-cpu"):
        return [fn(x) for x in items]  # inline, also when called from a pool thread (no deadlock)
    # each item runs in a copy of the caller's context, so what it warns is still the caller's run's
    futures = [_shared_pool(n).submit(contextvars.copy_context().run, fn, x) for x in items]
    wait(futures)
    return [f.result() for f in futures]
