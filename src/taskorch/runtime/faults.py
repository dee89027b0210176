"""Fault injection for the kill -9 tests: a process stops for good at a named point.

Inert unless ``TASKORCH_FAULT_PAUSE`` names the point (a comma list names several; read once, at
import). A named point appends ``<name> <pid>`` to the file ``TASKORCH_FAULT_FILE`` (fsynced) and
then sleeps for ever, so that a test can see where the process stands and SIGKILL it there.
"""

from __future__ import annotations

import asyncio
import os
import threading

_PAUSE = frozenset(p.strip() for p in os.environ.get("TASKORCH_FAULT_PAUSE", "").split(",")) - {""}


async def pause_point(name: str) -> None:
    """Stop here for ever if the tests asked to (see the module docstring)."""
    if name in _PAUSE:
        _announce(name)
        await asyncio.Event().wait()  # never set: only the kill ends this


def pause_point_sync(name: str) -> None:
    """:func:`pause_point` for code that is not async."""
    if name in _PAUSE:
        _announce(name)
        threading.Event().wait()


def _announce(name: str) -> None:
    path = os.environ.get("TASKORCH_FAULT_FILE")
    if not path:
        return
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{name} {os.getpid()}\n".encode())
        os.fsync(fd)
    finally:
        os.close(fd)
