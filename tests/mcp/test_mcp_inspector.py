"""``taskorch mcp`` driven by a client we did not write: the official MCP Inspector's CLI
(``npm install @modelcontextprotocol/inspector``; CI installs it). Skipped, with the reason, where
it is not installed: point ``MCP_INSPECTOR_BIN`` at its ``mcp-inspector`` or put it on PATH.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from taskorch.mcp import TOOL_NAMES


def inspector() -> str:
    found = os.environ.get("MCP_INSPECTOR_BIN") or shutil.which("mcp-inspector")
    if not found:
        pytest.skip(
            "the MCP Inspector CLI is not installed (npm install @modelcontextprotocol/inspector)"
        )
    return found


def inspect(home: Path, method: str, *args: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL", "NLP_"))}
    env["TASKORCH_HOME"] = str(home)
    argv = [
        inspector(),
        "--cli",
        sys.executable,
        "-m",
        "taskorch",
        "mcp",
        "--method",
        method,
        *args,
    ]
    done = subprocess.run(
        argv, cwd=home.parent, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stderr
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def call(home: Path, tool: str, **arguments: str) -> dict[str, Any]:
    args = [f"{key}={value}" for key, value in arguments.items()]
    flags = [part for arg in args for part in ("--tool-arg", arg)]
    return inspect(home, "tools/call", "--tool-name", tool, *flags)


def test_inspector_lists_exactly_the_tools_with_their_schemas(tmp_path: Path) -> None:
    listed = inspect(tmp_path / ".taskorch", "tools/list")["tools"]
    assert [tool["name"] for tool in listed] == list(TOOL_NAMES)
    for tool in listed:
        assert tool["inputSchema"]["type"] == "object"
        assert tool["outputSchema"]["type"] == "object"


def test_inspector_carries_a_requirement_to_merged(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    assert call(home, "init_orchestration")["isError"] is False
    done = call(home, "process_task_orchestration", requirement="Add unit tests for billing")
    assert done["isError"] is False
    workflow = done["structuredContent"]["workflow"]
    assert workflow["state"] == "merged"
    status = call(home, "get_workflow_status", workflow_id=workflow["workflow_id"])
    assert status["structuredContent"]["state"] == "merged"


def test_inspector_sees_a_tool_error_not_a_crash(tmp_path: Path) -> None:
    missing = call(tmp_path / ".taskorch", "get_workflow_status", workflow_id="wf-nope")
    assert missing["isError"] is True
    [content] = missing["content"]
    assert "no workflow with id 'wf-nope'" in content["text"]
