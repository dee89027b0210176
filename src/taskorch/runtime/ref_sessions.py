"""Ref transactions through one long-lived ``git update-ref --stdin`` per repository and event
loop, instead of a git process each.

A one-subtask workflow moves refs about eight times; a process each cost ~3 ms of git's CPU and
1-2 ms of ours to start. A session takes ``start``, the moves, ``prepare`` and ``commit`` and
answers ``start: ok``, ``prepare: ok``, ``commit: ok`` (git 2.27 or newer). The transaction is
all-or-nothing as before: git 2.39 dies at a ``prepare`` that fails (a ref not at its expected
value, a missing object, a lock file, exit 128), so a failed transaction ends its session and
the next one starts another. Its message loses the ``prepare:`` git puts in front, to read as a
process's own did.

Transactions on a session run one at a time; a cancelled caller's transaction is let finish
(as :mod:`taskorch.agents.captured` lets a git command finish); one that runs past its timeout
kills the session (TimeoutError). A session ends after :data:`IDLE_S` without a transaction,
when its loop ends (its keeper task is cancelled then), at :func:`close_all`, when its
repository's folder is replaced, and when taskorch dies: git reads the end of its input and
exits. Needs pidfds (:func:`captured.supported`); the caller runs a process per call elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskorch.agents import captured

MARK = ("-c", "taskorch.refsession=true")
"""In a session's argv, after ``git``: :mod:`gitlocks` knows it by this. Between transactions it
holds no lock, and a transaction's locks live for milliseconds, so it does not keep a repository's
lock files from being judged stale as other live gits do (their age still does)."""
IDLE_S = 1.0
"""A session unused this long ends (starting one costs ~4 ms; a busy host uses it every few ms)."""
_CLOSE_S = 5.0
_ANSWER = b"start: ok\nprepare: ok\ncommit: ok\n"

_started = 0
_sessions: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Path, RefSession]] = (
    weakref.WeakKeyDictionary()
)


@dataclass(frozen=True, slots=True)
class Outcome:
    returncode: int
    """0: committed; else git's exit code (the transaction did nothing)."""
    stderr: str


def started() -> int:
    """Sessions (git processes) started by this process so far."""
    return _started


def running() -> dict[Path, int]:
    """This loop's sessions: repository -> the pid of its git."""
    mine = _sessions.get(asyncio.get_running_loop(), {})
    return {cwd: session.pid for cwd, session in mine.items()}


async def transact(
    cwd: Path, argv: Sequence[str], env: Mapping[str, str], moves: str, timeout_s: float
) -> Outcome:
    """Run the ``update-ref --stdin`` lines ``moves`` as one transaction in the repository
    ``cwd`` on its session (``argv``, started with ``env`` when there is none). FileNotFoundError
    when ``cwd`` or git is missing; TimeoutError after ``timeout_s``."""
    mine = _sessions.setdefault(asyncio.get_running_loop(), {})
    while True:
        identity = _identity(cwd)
        session = mine.get(cwd)
        if session is not None and session.identity != identity:
            await session.close()  # (the folder was replaced: its process is in the old one)
            session = None
        if session is None or session.ended:
            session = mine[cwd] = RefSession(cwd, identity, argv, env)
        outcome = await session.transact(moves, timeout_s)
        if outcome is not None:
            return outcome


async def close_all() -> None:
    """End this loop's sessions (each lets its transaction in flight finish first)."""
    for session in list(_sessions.get(asyncio.get_running_loop(), {}).values()):
        await session.close()


def _identity(cwd: Path) -> tuple[int, int]:
    found = os.stat(cwd)
    return found.st_dev, found.st_ino


class RefSession:
    """One ``git update-ref --stdin`` process and the keeper task that ends it."""

    def __init__(
        self, cwd: Path, identity: tuple[int, int], argv: Sequence[str], env: Mapping[str, str]
    ) -> None:
        global _started
        self.cwd, self.identity = cwd, identity
        self._loop = asyncio.get_running_loop()
        self._child = captured.start(argv, env=env, stdin=captured.PIPE, on_stdout=self._heard)
        _started += 1
        self._heard_so_far = bytearray()
        self._answer: asyncio.Future[None] | None = None
        self._lock = asyncio.Lock()
        self._used = self._loop.time()
        self._unwritten = memoryview(b"")
        self.ended = False
        """No more transactions: it failed, idled out or is closing."""
        self._child.result.add_done_callback(self._exited)
        self._keeper = self._loop.create_task(self._keep(), name=f"ref session {cwd}")

    @property
    def pid(self) -> int:
        return self._child.pid

    async def transact(self, moves: str, timeout_s: float) -> Outcome | None:
        """The transaction's outcome; None when the session ended before it began."""
        async with self._lock:
            if self.ended:
                return None
            answer = self._answer = self._loop.create_future()
            self._write(f"start\n{moves}prepare\ncommit\n".encode())
            try:
                await _let_finish(answer, timeout_s)
            finally:
                self._used, self._answer = self._loop.time(), None
                if not answer.done() or answer.cancelled():  # (timed out)
                    self._end(kill=True)
            if self._heard_so_far == _ANSWER:
                self._heard_so_far.clear()
                return Outcome(0, "")
            self.ended = True
            found = await self._child.result  # (done: the answer came from its exit)
            said = found.stderr.decode(errors="replace").replace("fatal: prepare: ", "fatal: ")
            return Outcome(found.returncode or 128, said)

    async def close(self) -> None:
        """End the session; its transaction in flight, if any, finishes first."""
        self._keeper.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._keeper

    async def _keep(self) -> None:
        try:
            while not self.ended:
                idle_s = self._used + IDLE_S - self._loop.time()
                if idle_s <= 0 and not self._lock.locked():
                    break
                await asyncio.wait([self._child.result], timeout=max(idle_s, 0.05))
        finally:  # idle, ended, or cancelled (close_all, the loop's end)
            self.ended = True
            if self._answer is not None:
                await asyncio.wait([self._answer], timeout=_CLOSE_S)
            self._end(kill=False)
            done = await asyncio.wait([self._child.result], timeout=_CLOSE_S)
            if not done[0]:
                self._end(kill=True)
                await asyncio.wait([self._child.result])
            mine = _sessions.get(self._loop, {})
            if mine.get(self.cwd) is self:
                del mine[self.cwd]

    def _write(self, data: bytes) -> None:
        self._unwritten = memoryview(data)
        self._writable()
        if self._unwritten:
            self._loop.add_writer(self._child.stdin, self._writable)

    def _writable(self) -> None:
        try:
            self._unwritten = self._unwritten[os.write(self._child.stdin, self._unwritten) :]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: git is gone; its exit answers
            self._unwritten = memoryview(b"")
        if not self._unwritten:
            self._loop.remove_writer(self._child.stdin)

    def _heard(self, data: bytes) -> None:
        self._heard_so_far.extend(data)
        answer = self._answer
        if self._heard_so_far.endswith(b"commit: ok\n") and answer and not answer.done():
            answer.set_result(None)

    def _exited(self, _: object) -> None:
        self.ended = True
        if self._answer is not None and not self._answer.done():
            self._answer.set_result(None)

    def _end(self, *, kill: bool) -> None:
        """Close git's input (it exits once it has read what came before); ``kill``: SIGKILL."""
        self.ended = True
        if self._child.stdin >= 0:
            self._loop.remove_writer(self._child.stdin)
            os.close(self._child.stdin)
            self._child.stdin = -1
        if kill:
            self._child.kill()


async def _let_finish(answer: asyncio.Future[None], timeout_s: float) -> None:
    """``answer`` awaited; a caller cancelled meanwhile waits for it all the same (up to
    ``timeout_s``) before the cancellation goes on."""
    try:
        # (not wait_for: on Python 3.11 a cancel that comes as the answer does is dropped)
        async with asyncio.timeout(timeout_s):
            await asyncio.shield(answer)
    except asyncio.CancelledError:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(answer, timeout_s)
        raise
