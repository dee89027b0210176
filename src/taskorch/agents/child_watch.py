"""Child processes waited for through pidfds, as Python 3.12 does by default on Linux.

On 3.11 asyncio's default child watcher starts a thread per child process, and the event loop
waits for that thread to start: every git step (a few milliseconds) paid up to a millisecond
more, on the loop, and the thread's own CPU. A pidfd is one more file descriptor the loop
already polls. :func:`install` puts 3.12's watcher in place on 3.11 (where the kernel has
pidfds); on 3.12+ it does nothing.
"""

from __future__ import annotations

import asyncio
import os
import sys
import warnings
from collections.abc import Callable
from types import TracebackType
from typing import Any, TypeVarTuple, Unpack

_Ts = TypeVarTuple("_Ts")

_installed = False


class PidfdWatcher(asyncio.AbstractChildWatcher):
    """3.12's ``PidfdChildWatcher``: each child is watched by the loop that started it, so
    loops in other threads (a test client's, an embedding application's) are served too."""

    def add_child_handler(
        self, pid: int, callback: Callable[[int, int, Unpack[_Ts]], object], *args: *_Ts
    ) -> None:
        loop = asyncio.get_running_loop()
        pidfd = os.pidfd_open(pid)
        loop.add_reader(pidfd, self._reap, loop, pid, pidfd, callback, args)

    @staticmethod
    def _reap(
        loop: asyncio.AbstractEventLoop,
        pid: int,
        pidfd: int,
        callback: Callable[..., object],
        args: tuple[Any, ...],
    ) -> None:
        loop.remove_reader(pidfd)
        try:
            _, status = os.waitpid(pid, 0)
            code = os.waitstatus_to_exitcode(status)
        except ChildProcessError:  # reaped elsewhere: its status is gone (asyncio says 255)
            code = 255
        finally:
            os.close(pidfd)
        callback(pid, code, *args)

    def remove_child_handler(self, pid: int) -> bool:
        return True  # (the reader goes with its loop; asyncio never calls this for a live child)

    def attach_loop(self, loop: asyncio.AbstractEventLoop | None) -> None:
        pass

    def is_active(self) -> bool:
        return True

    def close(self) -> None:
        pass

    def __enter__(self) -> PidfdWatcher:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        pass


def install() -> None:
    """Wait for this process's children through pidfds from now on (Python 3.11 on Linux with
    pidfd support; elsewhere asyncio's own choice stays). Idempotent and cheap: call it before
    starting a child process."""
    global _installed
    if _installed:
        return
    _installed = True
    if sys.version_info >= (3, 12) or not _pidfds_work():
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        asyncio.set_child_watcher(PidfdWatcher())


def _pidfds_work() -> bool:
    if not hasattr(os, "pidfd_open"):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:  # a kernel before 5.3, or a sandbox that forbids it
        return False
    return True
