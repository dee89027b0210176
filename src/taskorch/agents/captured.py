"""Short child processes (git's steps) run to completion with their output captured, at a third
of asyncio's subprocess cost.

A merged subtask runs about twenty git processes. Through ``asyncio.create_subprocess_exec``
each cost the event loop ~0.85 ms of its own CPU (``subprocess.Popen``'s set-up, a transport, two
protocols and stream readers, a child watcher); ``os.posix_spawn`` (vfork + exec), two pipes and a
pidfd that the loop polls like any other descriptor cost ~0.3 ms. Where the platform has no
pidfds (not Linux, a kernel before 5.3, a sandbox that forbids them) :func:`supported` is False
and callers keep asyncio's way.

``posix_spawn`` cannot change directory on Python 3.11, so :func:`run` passes the working
directory in the argv (``git -C dir``). It returns once the child has exec'd (vfork), about 0.15
ms for git here, in the loop's thread: a hop to a thread and back to make that call there cost
more CPU than the call itself (the GIL handed over and back, two thread switches).
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from taskorch.agents import child_watch

_supported: bool | None = None


@dataclass(frozen=True)
class Captured:
    returncode: int
    stdout: bytes
    stderr: bytes


_made: dict[
    tuple[frozenset[str], tuple[tuple[str, str], ...]], tuple[dict[bytes, bytes], dict[str, str]]
] = {}


def environment(without: frozenset[str], given: Mapping[str, str]) -> Mapping[str, str]:
    """This process's environment without the variables ``without``, with ``given`` set: made
    again only when the environment changed (decoding it took a tenth of a millisecond, for
    every git run). The same mapping is returned until then: do not change it."""
    key = (without, tuple(given.items()))
    raw: dict[bytes, bytes] | None = getattr(os.environ, "_data", None)  # (POSIX: the bytes)
    made = _made.get(key)
    if raw is not None and made is not None and made[0] == raw:
        return made[1]
    env = {name: value for name, value in os.environ.items() if name not in without}
    env.update(given)
    if raw is not None:
        _made[key] = dict(raw), env
    return env


def supported() -> bool:
    """Whether :func:`start` works here (decided once per process)."""
    global _supported
    if _supported is None:
        _supported = hasattr(os, "pidfd_open") and hasattr(os, "posix_spawnp") and _pidfd_works()
    return _supported


def _pidfd_works() -> bool:
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


@dataclass
class Child:
    """A started child process. ``result`` completes once it has exited and closed its output."""

    pid: int
    result: asyncio.Future[Captured]
    _pidfd: int
    _reaped: bool = False
    _open: int = 3  # stdout, stderr, the exit
    _out: bytearray = field(default_factory=bytearray)
    _err: bytearray = field(default_factory=bytearray)
    _code: int = 0
    stdin: int = -1
    """The write end of the child's input, non-blocking, for a child started with ``stdin=PIPE``
    (the caller closes it); else -1."""

    def kill(self) -> None:
        """SIGKILL, unless it has been reaped already (the pidfd cannot hit a reused pid)."""
        if not self._reaped:
            signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def _one_closed(self) -> None:
        self._open -= 1
        if self._open == 0 and not self.result.done():
            self.result.set_result(Captured(self._code, bytes(self._out), bytes(self._err)))


async def run(
    argv: Sequence[str],
    *,
    cwd: Path,
    env: Mapping[str, str],
    stdin: bytes | None = None,
    timeout_s: float,
) -> Captured:
    """Run git (``argv[0]`` takes ``-C dir`` first, as git does) in ``cwd`` to its end: killed
    and TimeoutError after ``timeout_s``; cancelled, it is still let finish (within
    ``timeout_s``), since a git killed mid-write leaves index.lock and friends behind.
    FileNotFoundError when the program is not on PATH."""
    if supported():
        child = start([argv[0], "-C", str(cwd), *argv[1:]], env=env, stdin=stdin)
        done: asyncio.Future[Captured] = child.result
        kill = child.kill
    else:
        child_watch.install()
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env),
            stdin=asyncio.subprocess.DEVNULL if stdin is None else asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        done, kill = asyncio.ensure_future(_communicate(process, stdin)), process.kill
    try:
        # (not wait_for: on Python 3.11 a cancel that comes as the child ends is dropped)
        async with asyncio.timeout(timeout_s):
            return await asyncio.shield(done)
    except TimeoutError:
        kill()
        await done
        raise
    except asyncio.CancelledError:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(done, timeout_s)
        raise


async def _communicate(process: asyncio.subprocess.Process, stdin: bytes | None) -> Captured:
    out, err = await process.communicate(stdin)
    return Captured(process.returncode or 0, out, err)


PIPE = -1
"""``stdin=PIPE``: the child's input stays open for the caller to write (:attr:`Child.stdin`)."""


def start(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    stdin: bytes | int | None = None,
    on_stdout: Callable[[bytes], None] | None = None,
) -> Child:
    """Start ``argv`` (looked up on PATH; FileNotFoundError when it is not there) with ``stdin``
    as its input (else /dev/null; :data:`PIPE`: a pipe left open), its stdout and stderr read by
    the running loop. With ``on_stdout`` stdout goes to it as it comes, not into the result."""
    loop = asyncio.get_running_loop()
    pipes = _Pipes.open(stdin is not None)
    return _watched(loop, pipes.spawn(argv, dict(env)), pipes, stdin, on_stdout)


@dataclass(frozen=True)
class _Pipes:
    """A child's standard input, output and error: its ends and ours."""

    in_r: int
    in_w: int
    out_r: int
    out_w: int
    err_r: int
    err_w: int

    @classmethod
    def open(cls, with_input: bool) -> _Pipes:
        out_r, out_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        err_r, err_w = os.pipe2(os.O_CLOEXEC | os.O_NONBLOCK)
        if with_input:
            in_r, in_w = os.pipe2(os.O_CLOEXEC)
        else:
            in_r, in_w = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1
        return cls(in_r, in_w, out_r, out_w, err_r, err_w)

    def spawn(self, argv: Sequence[str], env: dict[str, str]) -> int:
        """Start the child on these pipes; the child's ends are closed here either way, ours
        too when it could not start."""
        try:
            # The child's ends are not inheritable; dup2 onto 0-2 makes copies that are.
            os.set_blocking(self.out_w, True)
            os.set_blocking(self.err_w, True)
            actions = [
                (os.POSIX_SPAWN_DUP2, self.in_r, 0),
                (os.POSIX_SPAWN_DUP2, self.out_w, 1),
                (os.POSIX_SPAWN_DUP2, self.err_w, 2),
            ]
            return _spawn(argv, env, actions)
        except BaseException:
            for fd in (self.out_r, self.err_r, self.in_w):
                if fd >= 0:
                    os.close(fd)
            raise
        finally:
            for fd in (self.in_r, self.out_w, self.err_w):
                os.close(fd)


def _watched(
    loop: asyncio.AbstractEventLoop,
    pid: int,
    pipes: _Pipes,
    stdin: bytes | int | None,
    on_stdout: Callable[[bytes], None] | None = None,
) -> Child:
    """The started child ``pid``: its output read, its exit awaited, ``stdin`` fed, by ``loop``."""
    pidfd = os.pidfd_open(pid)
    child = Child(pid, loop.create_future(), pidfd)
    _read_until_closed(loop, pipes.out_r, on_stdout or child._out.extend, child._one_closed)
    _read_until_closed(loop, pipes.err_r, child._err.extend, child._one_closed)
    loop.add_reader(pidfd, _reap, loop, child)
    if isinstance(stdin, bytes):
        _write_and_close(loop, pipes.in_w, stdin)
    elif stdin is not None:
        os.set_blocking(pipes.in_w, False)
        child.stdin = pipes.in_w
    return child


def _spawn(argv: Sequence[str], env: dict[str, str], actions: Sequence[tuple[int, ...]]) -> int:
    """``posix_spawn`` of ``argv``, its program found on the environment's PATH once and then
    remembered: ``posix_spawnp`` tries every PATH folder before the one that holds it (nine
    here before /usr/bin), in the child while the parent waits, at every start."""
    key = (argv[0], env.get("PATH", os.defpath))
    program = _programs.get(key)
    if program is None:
        program = shutil.which(argv[0], path=key[1]) if os.sep not in argv[0] else argv[0]
        if program is None:
            raise FileNotFoundError(errno.ENOENT, "no such program on PATH", argv[0])
        _programs[key] = program
    try:
        return os.posix_spawn(program, list(argv), env, file_actions=actions)
    except FileNotFoundError:  # (moved or removed since: looked up again next time)
        _programs.pop(key, None)
        raise


_programs: dict[tuple[str, str], str] = {}


def _read_until_closed(
    loop: asyncio.AbstractEventLoop,
    fd: int,
    into: Callable[[bytes], None],
    closed: Callable[[], None],
) -> None:
    def readable() -> None:
        try:
            data = os.read(fd, 1 << 16)
        except BlockingIOError:
            return
        if data:
            into(data)
            return
        loop.remove_reader(fd)
        os.close(fd)
        closed()

    loop.add_reader(fd, readable)


def _write_and_close(loop: asyncio.AbstractEventLoop, fd: int, data: bytes) -> None:
    """Feed ``data`` to the child as it reads; a child that exits without reading it all (a
    broken pipe) just gets the rest dropped."""
    view = memoryview(data)
    os.set_blocking(fd, False)

    def writable() -> None:
        nonlocal view
        try:
            view = view[os.write(fd, view) :]
        except BlockingIOError:
            return
        except OSError:  # EPIPE: the child is gone or closed its input
            view = view[:0]
        if not view:
            loop.remove_writer(fd)
            os.close(fd)

    loop.add_writer(fd, writable)


def _reap(loop: asyncio.AbstractEventLoop, child: Child) -> None:
    loop.remove_reader(child._pidfd)
    try:
        _, status = os.waitpid(child.pid, 0)
        child._code = os.waitstatus_to_exitcode(status)
    except ChildProcessError:  # reaped elsewhere: its status is gone (asyncio says 255)
        child._code = 255
    child._reaped = True
    os.close(child._pidfd)
    child._one_closed()
