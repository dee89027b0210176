"""``taskorch mcp`` stops as Claude Code stops it, and describes itself as clients show it.

Claude Code (2.1.332) ends a stdio server with SIGINT, SIGTERM 100 ms later and SIGKILL 400 ms
after that, leaving the server's stdin open. The server used to ignore SIGINT (the SDK's reader
thread waited for a line) and die of SIGTERM without closing its runs and its engine.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import IO, Any

import anyio
import pytest

from taskorch import __version__
from taskorch.mcp import build_server
from taskorch.mcp.stdio import PipeLines
from taskorch.settings import load_settings

STOP_WITHIN_S = 5.0


def send(stdin: IO[str], message: dict[str, Any]) -> None:
    stdin.write(json.dumps({"jsonrpc": "2.0", **message}) + "\n")
    stdin.flush()


def answer(stdout: IO[str]) -> dict[str, Any]:
    line = stdout.readline()
    assert line, "the server closed stdout"
    message: dict[str, Any] = json.loads(line)
    return message


def start_server(cwd: Path, home: Path) -> subprocess.Popen[str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_", "NLP_"))
    }
    env |= {"TASKORCH_HOME": str(home), "NLP_PROVIDER": "heuristic"}
    return subprocess.Popen(
        [sys.executable, "-m", "taskorch", "mcp"],
        cwd=cwd,
        env=env,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def initialise(server: subprocess.Popen[str]) -> dict[str, Any]:
    """The MCP handshake; the server's info."""
    assert server.stdin is not None
    assert server.stdout is not None
    initialize = {"protocolVersion": "2025-06-18", "capabilities": {}}
    initialize["clientInfo"] = {"name": "test", "version": "1"}
    send(server.stdin, {"id": 1, "method": "initialize", "params": initialize})
    info: dict[str, Any] = answer(server.stdout)["result"]["serverInfo"]
    send(server.stdin, {"method": "notifications/initialized"})
    return info


@pytest.mark.parametrize("stop", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_server_cleanly_with_stdin_open(
    tmp_path: Path, stop: signal.Signals
) -> None:
    home = tmp_path / ".taskorch"
    server = start_server(tmp_path, home)
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        assert initialise(server) == {"name": "taskorch", "version": __version__}
        # a workflow carried to its end, so the engine is open when the signal comes
        arguments = {"requirement": "Add login", "wait": True}
        call = {"name": "process_task_orchestration", "arguments": arguments}
        send(server.stdin, {"id": 2, "method": "tools/call", "params": call})
        done = answer(server.stdout)["result"]
        assert done["isError"] is False, done
        assert done["structuredContent"]["workflow"]["state"] == "merged"

        sent = time.monotonic()
        server.send_signal(stop)
        code = server.wait(STOP_WITHIN_S)  # before the fix it waited for stdin to close
        took = time.monotonic() - sent
    finally:
        if server.poll() is None:
            server.kill()
        rest, errors = server.communicate()
    assert code == 0, errors  # ended normally: the runs and the engine were closed, not killed
    assert took < STOP_WITHIN_S
    assert "Traceback" not in errors
    assert rest == ""  # nothing but answers on stdout, and none after the stop


def test_a_stopped_server_releases_its_running_attempts_before_the_client_kills_it(
    tmp_path: Path,
) -> None:
    home = tmp_path / ".taskorch"
    server = start_server(tmp_path, home)
    assert server.stdin is not None
    assert server.stdout is not None
    try:
        initialise(server)
        arguments = {"requirement": "Add login", "wait": False, "sim_duration_s": 60}
        call = {"name": "process_task_orchestration", "arguments": arguments}
        send(server.stdin, {"id": 2, "method": "tools/call", "params": call})
        started = answer(server.stdout)["result"]
        assert started["structuredContent"]["finished"] is False, started
        events = home / "events.jsonl"
        for _ in range(500):  # until the subtask runs
            if events.is_file() and '"task:started"' in events.read_text():
                break
            time.sleep(0.02)
        sent = time.monotonic()
        server.send_signal(signal.SIGINT)
        code = server.wait(STOP_WITHIN_S)
        took = time.monotonic() - sent
    finally:
        if server.poll() is None:
            server.kill()
        _, errors = server.communicate()
    assert code == 0, errors
    assert took < STOP_WITHIN_S  # not the worker's usual 10 s grace, which Claude cuts short
    kinds = [json.loads(line)["event"] for line in events.read_text().splitlines()]
    assert "task:released" in kinds  # queued again at once, not left to a lapsing lease


async def test_pipe_lines_reads_whole_lines_and_a_wait_ends_when_cancelled() -> None:
    read_end, write_end = os.pipe()
    try:
        lines = PipeLines(read_end)
        with anyio.move_on_after(0.2) as waited:  # stdin open and silent, as Claude leaves it
            async for _ in lines:
                raise AssertionError("nothing was written")
        assert waited.cancelled_caught
        # a character cut between two writes, and a last line without its newline
        os.write(write_end, b'{"a": 1}\n{"b": "\xc3')
        os.write(write_end, b'\xa9"}\nlast')
        os.close(write_end)
        write_end = -1
        assert [line async for line in lines] == ['{"a": 1}\n', '{"b": "é"}\n', "last"]
    finally:
        os.close(read_end)
        if write_end >= 0:
            os.close(write_end)


async def test_tool_descriptions_reach_clients_without_the_source_indentation(
    tmp_path: Path,
) -> None:
    server = build_server(load_settings(taskorch_home=tmp_path / ".taskorch"))
    for tool in await server.list_tools():
        assert tool.description
        assert "\n " not in tool.description, tool.name
        assert tool.description == tool.description.strip()
