"""The simulated worktree agent: labelled changes within the declared files, committed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from taskorch.agents.base import AgentAdapter
from taskorch.agents.sim import SimBehaviour
from taskorch.agents.sim_worktree import SimWorktreeAgent, _committed
from taskorch.domain.errors import AgentError

from .conftest import commit_file, git, noop, sim_task


async def test_it_appends_a_labelled_line_to_each_declared_file_and_commits(repo: Path) -> None:
    agent: AgentAdapter = SimWorktreeAgent()
    before = git(repo, "rev-parse", "HEAD")
    task = sim_task("auth-002", ["src/app.py", "src/auth/login.py"], workdir=repo)
    result = await agent.run(task, noop)

    assert result.success
    assert result.simulated
    assert result.to_json()["simulated"] is True
    assert result.output.startswith("simulated: auth-002 done by simulated agent sim")
    assert result.data["files"] == ["src/app.py", "src/auth/login.py"]
    app = (repo / "src" / "app.py").read_text()
    assert app.startswith("def main() -> None:\n    pass\n")  # appended, not replaced
    assert app.splitlines()[-1].startswith("# simulated change by taskorch's simulated agent")
    assert "subtask auth-002" in (repo / "src" / "auth" / "login.py").read_text()
    compile(app, "app.py", "exec")

    assert git(repo, "rev-parse", "HEAD^") == before
    assert result.data["commit"] == git(repo, "rev-parse", "HEAD")
    assert git(repo, "status", "--porcelain") == ""
    log = git(repo, "log", "-1", "--format=%an|%s|%b")
    assert log.startswith("taskorch simulated agent|simulated: auth-002: Work on auth-002|")
    assert "Taskorch-Simulated: true" in log


async def test_without_declared_files_it_writes_a_transcript(repo: Path) -> None:
    result = await SimWorktreeAgent().run(sim_task("design", [], workdir=repo), noop)
    transcript = repo / ".taskorch-sim" / "design.md"
    assert result.data["files"] == [".taskorch-sim/design.md"]
    text = transcript.read_text()
    assert text.startswith("# Simulated transcript: design")
    assert "no real agent ran" in text
    assert "> Do the work of design." in text
    assert git(repo, "status", "--porcelain") == ""


async def test_the_same_plan_run_again_still_changes_something(repo: Path) -> None:
    """``make demo`` twice: the second workflow's transcript would be identical to the first's,
    which left git nothing to commit and failed the workflow."""
    first = await SimWorktreeAgent().run(sim_task("design", ["a.json"], workdir=repo), noop)
    again = sim_task("design", ["a.json"], workdir=repo, workflow_id="wf-2")
    second = await SimWorktreeAgent().run(again, noop)
    assert first.data["files"] == ["a.json"]
    assert second.data["files"] == [".taskorch-sim/design.md"]
    third = await SimWorktreeAgent().run(
        sim_task("design", ["a.json"], workdir=repo, workflow_id="wf-3"), noop
    )
    assert third.data["files"] == [".taskorch-sim/wf-3/design.md"]
    assert second.data["commit"] != third.data["commit"]
    assert git(repo, "status", "--porcelain") == ""


async def test_globs_directories_and_escapes_are_not_written(repo: Path) -> None:
    files = ["tests/*.py", "src/", "../outside.txt", "/etc/passwd", "docs/guide.md"]
    result = await SimWorktreeAgent().run(sim_task("k", files, workdir=repo), noop)
    assert result.data["files"] == ["docs/guide.md"]
    assert (repo / "docs" / "guide.md").read_text().startswith("<!-- simulated change")
    assert not (repo.parent / "outside.txt").exists()


async def test_json_files_stay_json(repo: Path) -> None:
    commit_file(repo, "package.json", '{"name": "x"}\n')
    files = ["config/new.json", "package.json"]
    result = await SimWorktreeAgent().run(sim_task("k", files, workdir=repo), noop)
    assert result.data["files"] == ["config/new.json"]
    assert json.loads((repo / "config" / "new.json").read_text())["simulated"] is True
    assert json.loads((repo / "package.json").read_text()) == {"name": "x"}


async def test_it_needs_a_worktree(repo: Path) -> None:
    with pytest.raises(AgentError, match="has no worktree") as caught:
        await SimWorktreeAgent().run(sim_task("k", [], workdir=None), noop)
    assert not caught.value.retryable


async def test_outside_a_git_repository_the_commit_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match="simulated agent: git add failed"):
        await SimWorktreeAgent().run(sim_task("k", ["a.txt"], workdir=tmp_path), noop)


async def test_it_keeps_the_sim_behaviour(repo: Path) -> None:
    agent = SimWorktreeAgent(SimBehaviour(failure_rate=1.0, seed=1))
    with pytest.raises(AgentError, match="simulated agent failure of k"):
        await agent.run(sim_task("k", ["a.txt"], workdir=repo), noop)
    assert git(repo, "status", "--porcelain") == ""  # a failed attempt writes nothing


async def test_a_missing_worktree_directory_is_an_agent_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError, match=r"worktree .* does not exist"):
        await SimWorktreeAgent().run(sim_task("k", [], workdir=tmp_path / "gone"), noop)
    assert not (tmp_path / "gone").exists()


def test_the_commit_is_read_from_what_git_commit_says() -> None:
    """``git commit``'s first line names the commit (no ``rev-parse`` after it); a line that
    does not (another git's wording) sends it to ``rev-parse``."""
    sha = "c37dc1a027d945c44a240fc33250c4b463114a17"
    assert _committed(f"[taskorch/wf-1/s1 {sha}] simulated: s1\n 1 file changed") == sha
    assert _committed(f"[main (root-commit) {sha}] first") == sha
    assert _committed(f"[detached HEAD {sha}] detached") == sha
    assert _committed(f"[main {sha[:12]}] abbreviated") is None
    assert _committed("") is None
