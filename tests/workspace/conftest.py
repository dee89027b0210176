"""Git test fixtures: an isolated git configuration and a repository with one commit.

Helpers (importable from ``workspace.conftest``): :func:`git` runs git as the test user,
:func:`commit_file` writes and commits a file, :func:`sim_task` builds the AgentTask a worktree
agent gets.
"""

from __future__ import annotations

import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskorch.agents.base import AgentTask
from taskorch.domain.models import Subtask
from taskorch.domain.plan import Domain, WorkerType

USER = ("-c", "user.name=Test User", "-c", "user.email=test@example.com")


@pytest.fixture(autouse=True)
def _isolated_git(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No user or system git configuration leaks into the tests."""
    config = tmp_path / "gitconfig"
    config.write_text("")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(config))
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_AUTHOR_NAME", "GIT_COMMITTER_NAME"):
        monkeypatch.delenv(name, raising=False)


def git(cwd: Path, *args: str) -> str:
    """Run git as the test user; its stdout, stripped. Raises on failure."""
    return subprocess.run(
        ["git", *USER, *args], cwd=cwd, check=True, capture_output=True, text=True
    ).stdout.strip()


def git_ok(cwd: Path, *args: str) -> bool:
    """Whether git succeeds (output discarded)."""
    run = subprocess.run(["git", *USER, *args], cwd=cwd, capture_output=True, check=False)
    return run.returncode == 0


def commit_file(repo: Path, name: str, text: str, message: str | None = None) -> str:
    path = repo / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    git(repo, "add", "--", name)
    git(repo, "commit", "-q", "-m", message or f"edit {name}")
    return git(repo, "rev-parse", "HEAD")


def branch_list(repo: Path, pattern: str = "*") -> list[str]:
    out = git(repo, "branch", "--list", "--format=%(refname:short)", pattern)
    return sorted(line for line in out.splitlines() if line)


def init_repo(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    git(path, "init", "-q", "-b", "main")
    commit_file(path, "README.md", "# project\n", "initial commit")
    commit_file(path, "src/app.py", "def main() -> None:\n    pass\n", "app")
    return path


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    """A git repository (branch main) with README.md and src/app.py committed."""
    return init_repo(tmp_path / "repo")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / "home"


def sim_task(
    key: str,
    files: list[str] | None = None,
    *,
    workdir: Path | None,
    workflow_id: str = "wf-1",
    title: str | None = None,
) -> AgentTask:
    now = datetime.now(UTC)
    subtask = Subtask(
        id=1,
        workflow_id=workflow_id,
        key=key,
        title=title or f"Work on {key}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        files_affected=files or [],
        success_criteria="the change is committed",
        created_at=now,
        updated_at=now,
    )
    return AgentTask(subtask, f"Do the work of {key}.", workdir, 30.0)


def noop() -> None:
    return None
