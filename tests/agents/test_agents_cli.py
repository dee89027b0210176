"""``taskorch agents`` as a user types it: add, list, show, check, disable, remove, and the
one-line errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from agents.e2e import env_for, taskorch


def cli(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "taskorch", *args],
        capture_output=True,
        text=True,
        env=env_for(home, None),
        cwd=home.parent,
        timeout=60,
        check=False,
    )


def fails(home: Path, *args: str) -> str:
    result = cli(home, *args)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_register_list_show_check_and_remove(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    taskorch(home, "init")
    assert "no agents registered" in taskorch(home, "agents", "list")
    assert "registered claude-1 (claude-code, cli claude)" in taskorch(
        home, "agents", "add", "claude-1", "--type", "claude-code", "--max-concurrency", "3"
    )
    # The same agent, with a program that surely is not there (the probe must find it down).
    taskorch(
        home, "agents", "add", "claude-1", "--type", "claude-code", "--max-concurrency", "3",
        "--executable", str(tmp_path / "missing" / "claude"),
    )  # fmt: skip
    taskorch(home, "agents", "add", "api-1", "--url", "http://127.0.0.1:9", "--type", "goose")
    taskorch(home, "agents", "add", "sim-1", "--type", "sim", "--domains", "docs,security")

    table = taskorch(home, "agents", "list")
    for fragment in ("claude-1", "0/3", "agentapi http://127.0.0.1:9", "sim-1", "available"):
        assert fragment in table
    shown = taskorch(home, "agents", "show", "sim-1")
    assert "docs, security" in shown
    data = json.loads(taskorch(home, "agents", "show", "api-1", "--json"))
    assert data["track_record"] == {
        "attempts": 0,
        "successes": 0,
        "success_rate": None,
        "mean_s": None,
        "p95_s": None,
        "last_error": None,
        "cost_usd": 0.0,
        "cost_per_success_usd": None,
    }
    assert data["rate_window"] is None

    checked = cli(home, "agents", "check")
    assert checked.returncode == 1  # two agents are down
    assert "down  api-1: cannot reach agentapi at http://127.0.0.1:9" in checked.stdout
    assert "down  claude-1: " in checked.stdout
    assert "missing/claude' is not installed" in checked.stdout
    assert "ok    sim-1: sim: always ready" in checked.stdout
    statuses = {
        a["name"]: a["status"] for a in json.loads(taskorch(home, "agents", "list", "--json"))
    }
    # claude-1's program is missing on this host only: other hosts may have it, so it stays
    # available for them; the server behind api-1 is one for every host.
    assert statuses == {"api-1": "offline", "claude-1": "available", "sim-1": "available"}

    assert "sim-1: disabled" in taskorch(home, "agents", "disable", "sim-1")
    assert "removed api-1" in taskorch(home, "agents", "remove", "api-1")
    assert "api-1" not in taskorch(home, "agents", "list")


def test_user_errors_are_one_line(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    taskorch(home, "init")
    assert "needs --url" in fails(home, "agents", "add", "x", "--adapter", "agentapi")
    assert "no built-in command" in fails(home, "agents", "add", "x", "--type", "gemini")
    assert "lower-case" in fails(home, "agents", "add", "Bad Name")
    assert "invalid capabilities" in fails(home, "agents", "add", "x", "--domains", "cooking")
    assert "no agent 'ghost'" in fails(home, "agents", "show", "ghost")
    assert "no agent 'ghost'" in fails(home, "run", "Add login", "--agent", "ghost")
