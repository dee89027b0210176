"""``taskorch run`` as a user types it: a requirement to merged code, offline."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from test_cli_tasks import ok, taskorch


def test_run_takes_a_requirement_to_merged(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    text = "Add authentication system with security audit and documentation"
    final = json.loads(ok(taskorch("run", text, "--json", home=home, database_url=database_url)))
    assert final["state"] == "merged"
    assert [h["to"] for h in final["history"]] == [
        "pending",
        "nlp_parsing",
        "task_decomposition",
        "dependency_resolution",
        "agent_assignment",
        "processing",
        "pr_created",
        "validation_running",
        "validation_passed",
        "merged",
    ]
    assert final["pull_request"]["commits_count"] >= 6
    status = json.loads(
        ok(taskorch("status", final["workflow_id"], "--json", home=home, database_url=database_url))
    )
    assert status["state"] == "merged"
    scratch = home / "repos" / "scratch"
    log = subprocess.run(
        ["git", "-C", str(scratch), "log", "--oneline", "main"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "auth-006-docs" in log


def test_run_into_a_given_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    for argv in (["init", "-q", "-b", "main"], ["commit", "-q", "--allow-empty", "-m", "init"]):
        subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *argv], cwd=repo, check=True
        )
    home = tmp_path / ".taskorch"
    final = json.loads(
        ok(
            taskorch(
                "run",
                "Fix bug in dashboard/server/index.js line 42",
                "--repo",
                str(repo),
                "--json",
                home=home,
            )
        )
    )
    assert final["state"] == "merged"
    assert (repo / "dashboard" / "server" / "index.js").is_file() or subprocess.run(
        ["git", "-C", str(repo), "show", "main:dashboard/server/index.js"],
        capture_output=True,
        check=False,
    ).returncode == 0


def test_run_rejects_what_is_not_a_git_repository(tmp_path: Path) -> None:
    result = taskorch("run", "Add login", "--repo", str(tmp_path), home=tmp_path / "h")
    assert result.returncode == 1
    assert "not a git repository" in result.stderr
    assert "Traceback" not in result.stderr


def test_run_needs_a_requirement(tmp_path: Path) -> None:
    result = taskorch("run", "   ", home=tmp_path / "h")
    assert result.returncode == 1
    assert "requirement is empty" in result.stderr
