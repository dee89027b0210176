"""An exclusive lock on a file, for coroutines of one event loop and for processes of one host.

Coroutines queue on an asyncio lock per path; processes on an advisory ``flock`` of the file, which
the kernel releases when its holder dies (a kill -9 leaves no stale lock behind).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import weakref
from collections.abc import AsyncIterator
from pathlib import Path

from taskorch.domain.errors import WorkspaceError

LOCK_TIMEOUT_S = 300.0

_local_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


@contextlib.asynccontextmanager
async def file_lock(path: Path, *, timeout_s: float = LOCK_TIMEOUT_S) -> AsyncIterator[None]:
    """An exclusive lock on ``path``: coroutines of this event loop queue on an asyncio lock,
    processes on an advisory ``flock`` of the file."""
    loop = asyncio.get_running_loop()
    local = _local_locks.setdefault(loop, {}).setdefault(path, asyncio.Lock())
    async with local, _flock(path, loop.time() + timeout_s, timeout_s):
        yield


@contextlib.asynccontextmanager
async def _flock(path: Path, deadline: float, timeout_s: float) -> AsyncIterator[None]:
    # Opened in the loop's thread (a local file, microseconds); its folder is made only when
    # missing: a thread hop per lock cost more than the rest of it, dozens of times a subtask.
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except FileNotFoundError:
        await asyncio.to_thread(path.parent.mkdir, parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        loop = asyncio.get_running_loop()
        pause = 0.001
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if loop.time() >= deadline:
                    raise WorkspaceError(
                        f"timed out after {timeout_s:g} s waiting for the lock {path}"
                    ) from None
                await asyncio.sleep(pause)
                pause = min(pause * 2, 0.02)
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
