"""An agent's whole process tree ends with its subtask: on cancel, when the agent exits first, and
when the worker that started it is killed with SIGKILL (issue 14). The tree here has a child in
the agent's process group and a daemon that left it (``setsid``), as real agents' tools do."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from taskorch.agents.process import GUARDED, run_process

pytestmark = pytest.mark.skipif(not GUARDED, reason="process trees are ended through /proc (Linux)")

AGENT = """\
import os, subprocess, sys, time
marker = sys.argv[1]
sleep = "import os, sys, time; {}time.sleep(600)  # " + marker
subprocess.Popen([sys.executable, "-c", sleep.format("")])  # stays in the agent's group
subprocess.Popen([sys.executable, "-c", sleep.format("os.setsid(); ")])  # leaves it
print("started", flush=True)
if sys.argv[2] == "wait":
    time.sleep(600)
"""

DRIVER = """\
import asyncio, sys
from taskorch.agents.process import run_process
asyncio.run(run_process(sys.argv[1:], heartbeat=lambda: None))
"""


def alive(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read()
            with open(f"/proc/{entry}/stat", "rb") as handle:
                state = handle.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if marker.encode() in cmdline and b"time.sleep" in cmdline and state != b"Z":
            found.append(int(entry))
    return found


async def wait_until(check: object, what: str, timeout_s: float = 15) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():  # type: ignore[operator]
            return
        await asyncio.sleep(0.05)
    pytest.fail(f"timed out waiting for {what}")


def agent_argv(tmp_path: Path, marker: str, mode: str) -> list[str]:
    script = tmp_path / "agent.py"
    script.write_text(AGENT)
    return [sys.executable, str(script), marker, mode]


async def test_cancel_ends_the_group_and_the_daemon_that_left_it(tmp_path: Path) -> None:
    marker = f"tree-cancel-{os.getpid()}"
    run = asyncio.create_task(
        run_process(agent_argv(tmp_path, marker, "wait"), heartbeat=lambda: None)
    )
    await wait_until(lambda: len(alive(marker)) == 2, "the agent's two children")
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await wait_until(lambda: not alive(marker), "the tree to end")


async def test_what_an_agent_leaves_running_does_not_outlive_it(tmp_path: Path) -> None:
    marker = f"tree-exit-{os.getpid()}"
    result = await run_process(agent_argv(tmp_path, marker, "exit"), heartbeat=lambda: None)
    assert result.returncode == 0
    assert "started" in result.stdout
    await wait_until(lambda: not alive(marker), "the agent's leftovers to end")


async def test_a_worker_killed_with_sigkill_takes_the_whole_tree_with_it(tmp_path: Path) -> None:
    marker = f"tree-kill9-{os.getpid()}"
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    worker = subprocess.Popen(  # noqa: ASYNC220 - started once, not awaited on
        [sys.executable, str(driver), *agent_argv(tmp_path, marker, "wait")],
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        await wait_until(lambda: len(alive(marker)) == 2, "the agent's two children")
        os.killpg(worker.pid, signal.SIGKILL)  # the worker's own group only
        worker.wait(timeout=10)
        await wait_until(lambda: not alive(marker), "the orphaned tree to end")
    finally:
        for pid in alive(marker):
            os.kill(pid, signal.SIGKILL)


async def test_a_missing_program_is_named_before_anything_starts(tmp_path: Path) -> None:
    from taskorch.domain.errors import AgentError

    with pytest.raises(AgentError, match="agent executable not found: 'no-such-agent-xyz'"):
        await run_process(["no-such-agent-xyz"], heartbeat=lambda: None)
    script = tmp_path / "plain.sh"
    script.write_text("#!/bin/sh\n")
    with pytest.raises(AgentError, match="is not executable"):
        await run_process([str(script)], heartbeat=lambda: None)


MISBEHAVING = """\
import os, signal, sys, time
marker, mode = sys.argv[1], sys.argv[2]
if mode == "ignores-sigterm":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    import subprocess
    subprocess.Popen([sys.executable, "-c",
        "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)  # "
        + marker])
    print("ignoring", flush=True)
    time.sleep(600)
elif mode == "reads-stdin":
    data = sys.stdin.read()  # must see end-of-file at once, not wait for ever
    print(f"stdin gave {len(data)} bytes", flush=True)
elif mode == "opens-tty":
    try:
        open("/dev/tty", "r+")
    except OSError as exc:
        print(f"no terminal: {exc.errno}", flush=True)
        sys.exit(3)
    time.sleep(600)  # a terminal to wait on would hang the worker
"""


def misbehaving(tmp_path: Path, marker: str, mode: str) -> list[str]:
    script = tmp_path / "misbehaving.py"
    script.write_text(MISBEHAVING)
    return [sys.executable, str(script), marker, mode]


async def test_an_agent_that_ignores_sigterm_still_ends_with_its_subtask(tmp_path: Path) -> None:
    marker = f"tree-sigterm-{os.getpid()}"
    run = asyncio.create_task(
        run_process(misbehaving(tmp_path, marker, "ignores-sigterm"), heartbeat=lambda: None)
    )
    await wait_until(lambda: len(alive(marker)) == 1, "the agent's stubborn child")
    run.cancel()  # what a timeout or a cancel does
    with pytest.raises(asyncio.CancelledError):
        await run
    await wait_until(lambda: not alive(marker), "the stubborn tree to end")


async def test_an_agent_reading_stdin_sees_its_end_at_once(tmp_path: Path) -> None:
    result = await asyncio.wait_for(
        run_process(misbehaving(tmp_path, "-", "reads-stdin"), heartbeat=lambda: None), timeout=30
    )
    assert result.returncode == 0
    assert "stdin gave 0 bytes" in result.stdout


async def test_an_agent_asking_for_a_terminal_has_none(tmp_path: Path) -> None:
    """Agents run in a session of their own with no controlling terminal: one that wants to
    prompt on /dev/tty fails at once (ENXIO) instead of hanging the worker."""
    result = await asyncio.wait_for(
        run_process(misbehaving(tmp_path, "-", "opens-tty"), heartbeat=lambda: None), timeout=30
    )
    assert result.returncode == 3
    assert "no terminal" in result.stdout
