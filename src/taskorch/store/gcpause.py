"""No cyclic garbage collection while a large batch of rows becomes objects.

Turning thousands of rows into events and subtasks allocates tens of thousands of small objects;
the collector counts allocations, so midway it starts collections, and an old-generation one
walks the whole heap (tens of milliseconds in a process holding a large workflow) while the batch
waits. These objects form no cycles (reference counting frees them), so the queue pauses the
collector for the batch; it runs again, as usual, on the allocations that follow.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_was_enabled = False


@contextmanager
def gc_paused() -> Iterator[None]:
    """Pause automatic collection for the block; nested and concurrent (asyncio) uses share one
    pause, ended by the last one out, which restores what was there before."""
    global _depth, _was_enabled
    if _depth == 0:
        _was_enabled = gc.isenabled()
        gc.disable()
    _depth += 1
    try:
        yield
    finally:
        _depth -= 1
        if _depth == 0 and _was_enabled:
            gc.enable()
