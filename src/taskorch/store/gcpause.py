"""No cyclic garbage collection while a large batch of rows becomes objects.

Turning thousands of rows into events and subtasks allocates tens of thousands of small objects;
the collector counts allocations, so midway it starts collections, and an old-generation one
walks the whole heap (tens of milliseconds in a process holding a large workflow) while the batch
waits. These objects form no cycles (reference counting frees them), so the queue pauses the
collector for the batch; it runs again, as usual, on the allocations that follow.

A worker process also leaves out of every collection what it holds when it starts working
(:func:`freeze_long_lived`): the old-generation collections that its batches set off then walk
only what the batches made, not the tens of thousands of module objects each time, and while it
works its young generation is sized for its batches (:func:`young_generation`).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager

_depth = 0
_was_enabled = False
_frozen = False
_young_depth = 0
_young_saved: tuple[int, int, int] | None = None


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


def freeze_long_lived() -> None:
    """Once per process: move every object there is to the collector's permanent generation.
    Meant for the start of a long-running loop (a worker), when what exists (modules,
    configuration, connections) lives as long as the process; objects made later are collected as
    usual. On the bench's W1 (2 worker processes, 5,000 no-op jobs) each worker spent ~26 ms of
    its ~40 ms of collections in one old-generation walk over the imported modules; frozen, none.
    No collection first: it would cost ~50 ms where a worker starts, to free the few cycles left
    by start-up."""
    global _frozen
    if not _frozen:
        _frozen = True
        gc.freeze()


@contextmanager
def young_generation(objects: int) -> Iterator[None]:
    """Collect the youngest generation only once ``objects`` more objects are alive (at least
    as many as before) for the block; nested and concurrent uses share it, and the last one out
    restores the thresholds that were there before.

    A worker's batch keeps a few tracked objects alive per attempt (its task, coroutine, subtask,
    outcome) until it is settled. At the default threshold (700) the collector ran about every
    seven no-op attempts and walked the batch's survivors each time: on the bench's W1 (2 worker
    processes, 5,000 no-op jobs, batches of 500) about 120 collections and 35-60 ms per process,
    a tenth of its CPU. Sized for the batch, one or two. Cycles are still collected, a batch
    later."""
    global _young_depth, _young_saved
    if _young_depth == 0:
        _young_saved = gc.get_threshold()
    _young_depth += 1
    first, second, third = gc.get_threshold()
    gc.set_threshold(max(first, objects), second, third)
    try:
        yield
    finally:
        _young_depth -= 1
        if _young_depth == 0 and _young_saved is not None:
            gc.set_threshold(*_young_saved)
            _young_saved = None
