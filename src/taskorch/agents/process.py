"""Running an agent as a child process: argv only (never a shell), its own process group, output
size-capped, heartbeats while it lives, and the whole group ended on cancel or timeout.

Ending "the whole tree" means the process group and the descendants that left it (a daemonising
helper, ``setsid``), found by walking ``/proc``. On Linux the agent's tree also dies with its
worker: a worker killed with SIGKILL cannot end anything itself, and the kernel's parent-death
signal reaches only a direct child; so the direct child is a small guard (``agents/guard.py``) that
the kernel signals when the worker dies and that then ends the tree below it. Otherwise the orphans
would go on working while their subtask, requeued as a zombie, runs again elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import shutil
import signal
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from taskorch.agents import child_watch, guard
from taskorch.agents.base import Heartbeat
from taskorch.domain.errors import AgentError

OUTPUT_CAP_BYTES = 1_000_000
KILL_GRACE_S = 2.0
WITHHELD_FROM_AGENTS = frozenset(
    {"DATABASE_URL", "DB_PASSWORD", "TASKORCH_API_TOKEN", "AGENTAPI_KEY", "GITHUB_TOKEN"}
)
"""Secrets only taskorch needs: its database, its API token, the agentapi key and the GitHub
token it opens pull requests with. An agent that runs shell commands could read and leak them."""
WITHHELD_PREFIXES = ("TASKORCH_", "DB_")
"""taskorch's own settings (its data folder, config, tokens, target repository) and its database
connection: nothing an agent needs, and a way to reach taskorch's database and config."""

_protected: set[Path] = set()
_output_log: ContextVar[Path | None] = ContextVar("taskorch_output_log", default=None)


@contextlib.contextmanager
def output_log(path: Path | None) -> Iterator[None]:
    """While in this block, every process :func:`run_process` starts appends what it prints
    (stdout and stderr as they come, up to the output cap) to ``path``: the live tail of an
    attempt that the dashboard and the HTTP API read while the agent works. ``git`` commands are
    left out: they are taskorch's bookkeeping around the agent (snapshots, commits), not what the
    agent said (git the agent runs itself is its child, and shown)."""
    token = _output_log.set(path)
    try:
        yield
    finally:
        _output_log.reset(token)


def protect_from_agents(*places: Path) -> None:
    """Folders and files (taskorch's data folder, config file, database) that no variable of an
    agent's environment may point into."""
    for place in places:
        _protected.add(place.expanduser().absolute().resolve())


def agent_environment(*settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of an agent's process: taskorch's own without its secrets, its settings
    and any path into its data folder (entries of path lists are dropped one by one), then the
    agent's settings (which may name any variable, a withheld one included)."""
    protected = {*_protected, *_places_named_by_env()}
    env: dict[str, str] = {}
    for key, value in os.environ.items():
        if key.upper() in WITHHELD_FROM_AGENTS or key.upper().startswith(WITHHELD_PREFIXES):
            continue
        kept = [part for part in value.split(os.pathsep) if not _points_into(part, protected)]
        if kept or not value:
            env[key] = os.pathsep.join(kept)
    for more in settings:
        env.update(more)
    return env


def _places_named_by_env() -> list[Path]:
    named = [os.environ.get("TASKORCH_HOME", ""), os.environ.get("TASKORCH_CONFIG", "")]
    return [Path(p).expanduser().absolute().resolve() for p in named if p]


def _points_into(value: str, protected: set[Path]) -> bool:
    if not protected or not value.startswith(("/", "~", "file:", "sqlite:")):
        return False
    text = value.split(":///", 1)[1] if ":///" in value else value
    try:
        path = Path("/" + text.lstrip("/") if ":///" in value else text).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):
        return False
    return any(path == place or path.is_relative_to(place) for place in protected)


@dataclass(frozen=True, slots=True)
class ProcessResult:
    returncode: int
    stdout: str
    stderr: str
    truncated: bool


async def run_process(
    argv: Sequence[str],
    *,
    heartbeat: Heartbeat,
    cwd: Path | None = None,
    stdin: str | None = None,
    env: Mapping[str, str] | None = None,
    heartbeat_s: float = 1.0,
    output_cap: int = OUTPUT_CAP_BYTES,
) -> ProcessResult:
    program = _program(argv[0], env, cwd)
    guarded = [sys.executable, "-I", GUARD, str(os.getpid()), program, *argv[1:]]
    child_watch.install()
    try:
        process = await asyncio.create_subprocess_exec(
            *(guarded if GUARDED else [program, *argv[1:]]),
            cwd=cwd,
            env=dict(env) if env is not None else agent_environment(),
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
        )
    except PermissionError:
        raise AgentError(
            f"agent executable {argv[0]!r} is not executable",
            error_class="dependency",
            retryable=False,
        ) from None
    except OSError as error:
        if error.errno != errno.E2BIG:
            raise
        size = sum(len(part.encode()) for part in argv)
        raise AgentError(
            f"the command line for {argv[0]!r} is too long ({size:,} bytes; one argument may "
            "hold 128 KiB): send the prompt on stdin (a custom command without {prompt})",
            error_class="validation",
            retryable=False,
        ) from None
    try:
        live = None if Path(argv[0]).name == "git" else _output_log.get()
        return await _communicate(process, stdin, heartbeat, heartbeat_s, output_cap, live)
    except BaseException:
        await asyncio.shield(kill_group(process))
        raise


GUARD = str(Path(guard.__file__).resolve())
GUARDED = sys.platform.startswith("linux") and os.path.isdir("/proc")
"""Where the guard can learn of its worker's death and find the tree below it."""


def _program(name: str, env: Mapping[str, str] | None, cwd: Path | None) -> str:
    """The agent's executable, found now (the guard would only see "exit 127")."""
    search = (env if env is not None else os.environ).get("PATH", os.defpath)
    if os.sep in name:
        path = Path(name) if os.path.isabs(name) or cwd is None else cwd / name
        if path.is_file() and os.access(path, os.X_OK):
            return str(path)
        if path.is_file():
            raise AgentError(
                f"agent executable {name!r} is not executable",
                error_class="dependency",
                retryable=False,
            )
    else:
        found = shutil.which(name, path=search)
        if found is not None:
            return found
    raise AgentError(
        f"agent executable not found: {name!r}; install it or fix the agent's command",
        error_class="dependency",
        retryable=False,
    )


async def _communicate(
    process: asyncio.subprocess.Process,
    stdin: str | None,
    heartbeat: Heartbeat,
    heartbeat_s: float,
    cap: int,
    live: Path | None,
) -> ProcessResult:
    assert process.stdout is not None
    assert process.stderr is not None
    if stdin is not None and process.stdin is not None:
        process.stdin.write(stdin.encode())
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
    with _open_log(live) as log:
        readers = asyncio.gather(
            _read_capped(process.stdout, cap, log), _read_capped(process.stderr, cap, log)
        )
        while True:
            try:
                async with asyncio.timeout(heartbeat_s):
                    await asyncio.shield(process.wait())
                break
            except TimeoutError:
                heartbeat()
        (out, out_cut), (err, err_cut) = await readers
    return ProcessResult(
        process.returncode or 0,
        out.decode(errors="replace"),
        err.decode(errors="replace"),
        out_cut or err_cut,
    )


@contextlib.contextmanager
def _open_log(path: Path | None) -> Iterator[BinaryIO | None]:
    """The live output file (appended to), or None without one or when it cannot be opened: it is
    a view for people, never a reason for an attempt to fail."""
    handle: BinaryIO | None = None
    if path is not None:
        try:
            handle = path.open("ab")
        except OSError:
            handle = None
    try:
        yield handle
    finally:
        if handle is not None:
            with contextlib.suppress(OSError):
                handle.close()


async def _read_capped(
    stream: asyncio.StreamReader, cap: int, log: BinaryIO | None = None
) -> tuple[bytes, bool]:
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
            if log is not None:
                _append(log, chunk[:room])
        truncated = truncated or len(chunk) > room
    return bytes(kept), truncated


def _append(log: BinaryIO, chunk: bytes) -> None:
    # A small local write, flushed so a reader sees it now; a failing disk loses the view only.
    with contextlib.suppress(OSError):
        log.write(chunk)
        log.flush()


async def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's whole tree (its process group and every descendant, those that left
    the group too), then SIGKILL what is left after a grace period."""
    below = set(guard.descendants(process.pid))  # before the leader goes: then they are orphans
    if process.returncode is not None:
        _signal_tree(process.pid, below, signal.SIGKILL)  # children may outlive their leader
        return
    _signal_tree(process.pid, below, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(KILL_GRACE_S):
            await process.wait()
    below |= set(guard.descendants(process.pid))
    _signal_tree(process.pid, below, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await process.wait()


def _signal_tree(leader: int, below: set[int], sig: signal.Signals) -> None:
    _signal_group(leader, sig)
    for pid in below:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, sig)


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
