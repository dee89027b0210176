"""Adapter test helpers: a subtask to run, a temporary git repository, a heartbeat counter."""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

from taskorch.agents.base import AgentTask
from taskorch.domain.models import Subtask
from taskorch.domain.plan import Domain, WorkerType


def agent_task(
    instructions: str = "Add unit tests for the billing module",
    *,
    workdir: Path | None = None,
    command: list[str] | None = None,
    worker_type: WorkerType = WorkerType.IMPLEMENTATION,
    files: list[str] | None = None,
    timeout_s: float = 30.0,
) -> AgentTask:
    now = datetime.now(UTC)
    subtask = Subtask(
        id=1,
        workflow_id="wf-test",
        key="billing-001-tests",
        title=instructions,
        assigned_to=Domain.DEVELOPMENT,
        worker_type=worker_type,
        files_affected=files or [],
        command=command,
        created_at=now,
        updated_at=now,
    )
    return AgentTask(subtask, instructions, workdir, timeout_s)


class Beats:
    """A heartbeat callback that counts."""

    def __init__(self) -> None:
        self.count = 0

    def __call__(self) -> None:
        self.count += 1


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=repo, check=True, capture_output=True, text=True
    ).stdout.strip()


def init_repo(path: Path) -> Path:
    """A git repository with one commit (README.md) and a committer identity."""
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    git(path, "config", "user.email", "test@example.com")
    git(path, "config", "user.name", "Test")
    git(path, "config", "commit.gpgsign", "false")
    (path / "README.md").write_text("# demo\n")
    git(path, "add", "README.md")
    git(path, "commit", "-q", "-m", "initial")
    return path
