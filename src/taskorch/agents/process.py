"""Running an agent as a child process: argv only (never a shell), its own process group, output
size-capped, heartbeats while it lives, and the whole group ended on cancel or timeout.

On Linux the agent also dies with its worker: a worker killed with SIGKILL cannot end its agents'
groups itself, so the kernel is asked (``PR_SET_PDEATHSIG``) to SIGKILL the agent when the worker
goes. Otherwise the orphan would go on working while its subtask, requeued as a zombie, runs again
elsewhere. (Only the agent process itself gets the signal; processes it started in its group are
ended by cancel, timeout and zombie recovery of a live worker, as before.)
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from taskorch.agents.base import Heartbeat
from taskorch.domain.errors import AgentError

OUTPUT_CAP_BYTES = 1_000_000
KILL_GRACE_S = 2.0
_PR_SET_PDEATHSIG = 1
WITHHELD_FROM_AGENTS = frozenset(
    {"DATABASE_URL", "DB_PASSWORD", "TASKORCH_API_TOKEN", "AGENTAPI_KEY", "GITHUB_TOKEN"}
)
"""Secrets only taskorch needs: its database, its API token, the agentapi key and the GitHub
token it opens pull requests with. An agent that runs shell commands could read and leak them."""


def agent_environment(*settings: Mapping[str, str]) -> dict[str, str]:
    """The environment of an agent's process: taskorch's own without the secrets it withholds,
    then the agent's settings (which may name any variable, a withheld one included)."""
    env = {k: v for k, v in os.environ.items() if k.upper() not in WITHHELD_FROM_AGENTS}
    for more in settings:
        env.update(more)
    return env


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
    try:
        process = await asyncio.create_subprocess_exec(
            *argv,
            cwd=cwd,
            env=dict(env) if env is not None else None,
            stdin=asyncio.subprocess.PIPE if stdin is not None else asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    except FileNotFoundError:
        raise AgentError(
            f"agent executable not found: {argv[0]!r}; install it or fix the agent's command",
            error_class="dependency",
            retryable=False,
        ) from None
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
        return await _communicate(process, stdin, heartbeat, heartbeat_s, output_cap)
    except BaseException:
        await asyncio.shield(kill_group(process))
        raise


def _load_prctl() -> Callable[..., int] | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl: Callable[..., int] = ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):
        return None
    return prctl


_prctl = _load_prctl()


def _die_with_parent() -> Callable[[], None] | None:
    """A hook run in the child between fork and exec: SIGKILL me when my parent dies."""
    prctl = _prctl
    if prctl is None:
        return None
    parent = os.getpid()

    def hook() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL))
        if os.getppid() != parent:  # the worker died before the signal was armed
            os._exit(1)

    return hook


async def _communicate(
    process: asyncio.subprocess.Process,
    stdin: str | None,
    heartbeat: Heartbeat,
    heartbeat_s: float,
    cap: int,
) -> ProcessResult:
    assert process.stdout is not None
    assert process.stderr is not None
    if stdin is not None and process.stdin is not None:
        process.stdin.write(stdin.encode())
        with contextlib.suppress(ConnectionError):
            await process.stdin.drain()
        process.stdin.close()
    readers = asyncio.gather(_read_capped(process.stdout, cap), _read_capped(process.stderr, cap))
    while True:
        try:
            await asyncio.wait_for(asyncio.shield(process.wait()), heartbeat_s)
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


async def _read_capped(stream: asyncio.StreamReader, cap: int) -> tuple[bytes, bool]:
    kept = bytearray()
    truncated = False
    while chunk := await stream.read(65536):
        room = cap - len(kept)
        if room > 0:
            kept += chunk[:room]
        truncated = truncated or len(chunk) > room
    return bytes(kept), truncated


async def kill_group(process: asyncio.subprocess.Process) -> None:
    """SIGTERM the child's whole process group, then SIGKILL what is left after a grace period."""
    if process.returncode is not None:
        _signal_group(process.pid, signal.SIGKILL)  # children may outlive their leader
        return
    _signal_group(process.pid, signal.SIGTERM)
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(process.wait(), KILL_GRACE_S)
    _signal_group(process.pid, signal.SIGKILL)
    with contextlib.suppress(ProcessLookupError):
        await process.wait()


def _signal_group(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
