"""Helpers for the end-to-end agent runs: the real ``taskorch`` CLI in a subprocess against a real
git repository (DEMO_REPO), agents registered with ``taskorch agents add``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from agents.fake_agentapi import FakeTurn
from agents.support import git, init_repo

REQUIREMENT = "Add unit tests for the billing module"
TESTS_FILE = "tests/test_billing.py"
CLI_TIMEOUT_S = 180

CLI_AGENT = """\
import pathlib, sys
prompt = sys.argv[1]
target = pathlib.Path.cwd() / "tests" / "test_billing_cli.py"
target.parent.mkdir(exist_ok=True)
target.write_text("def test_total_of_nothing():\\n    assert sum([]) == 0\\n")
print("fake CLI agent wrote", target.name, "for:", prompt.splitlines()[0])
"""


def demo_repo(tmp_path: Path) -> Path:
    """DEMO_REPO: a small project with a billing module and no tests yet."""
    repo = init_repo(tmp_path / "DEMO_REPO")
    (repo / "billing.py").write_text("def total(items):\n    return sum(items)\n")
    git(repo, "add", "billing.py")
    git(repo, "commit", "-q", "-m", "billing module")
    return repo


def write_tests_hook(turn: FakeTurn) -> str:
    """The fake agentapi agent's work: a test file in the worktree its instructions name."""
    assert turn.workdir is not None, "the instructions did not say where to work"
    target = turn.workdir / TESTS_FILE
    target.parent.mkdir(exist_ok=True)
    target.write_text(
        "from billing import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
    )
    return f"I added {TESTS_FILE}."


def cli_agent_command(tmp_path: Path) -> str:
    """``--command`` for the fake CLI agent script (it edits files in its working directory)."""
    script = tmp_path / "fake_cli_agent.py"
    script.write_text(CLI_AGENT)
    return f"{sys.executable} {script} {{prompt}}"


def env_for(home: Path, database_url: str | None) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "AGENTAPI_"))
    }
    env["TASKORCH_HOME"] = str(home)
    env["COLUMNS"] = "200"
    if database_url:
        env["DATABASE_URL"] = database_url
    return env


def taskorch(home: Path, *args: str, database_url: str | None = None) -> str:
    """Run the CLI; it must succeed without a traceback; returns stdout."""
    result = subprocess.run(
        [sys.executable, "-m", "taskorch", *args],
        capture_output=True,
        text=True,
        env=env_for(home, database_url),
        cwd=home.parent,
        timeout=CLI_TIMEOUT_S,
        check=False,
    )
    assert "Traceback" not in result.stderr, result.stderr
    assert result.returncode == 0, f"{args}: {result.stderr}\n{result.stdout}"
    return result.stdout


def start_taskorch(
    home: Path, *args: str, database_url: str | None = None
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "taskorch", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env_for(home, database_url),
        cwd=home.parent,
    )


def agents_by_name(home: Path, database_url: str | None = None) -> dict[str, Any]:
    listed = json.loads(taskorch(home, "agents", "list", "--json", database_url=database_url))
    return {agent["name"]: agent for agent in listed}


def routing_of(final: dict[str, Any]) -> dict[str, Any]:
    """The routing decisions recorded in the history (agent_assignment -> processing)."""
    [step] = [h for h in final["history"] if h["to"] == "processing" and "routing" in h["metadata"]]
    routing: dict[str, Any] = step["metadata"]["routing"]
    return routing


def base_branch_files(repo: Path) -> list[str]:
    return git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
