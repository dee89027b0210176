"""Spares between workflows: a workflow's spare worktrees wait in the host's pool for its
repository, the next workflow's first subtask starts from one (a ``checkout`` of what changed, no
``worktree add``), the pool is bounded and emptied at the end; and a workflow's first subtask
starts from the base as it is then, not as it was when the workflow was planned."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from fakes.origins import bare_origin
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.runtime import git as g
from taskorch.runtime import remote, spare_pools, worktree_folders
from taskorch.runtime.remote import Origin
from taskorch.runtime.workspace import MergeStatus, Workspace

from .conftest import noop, sim_task
from .test_local_origin import merged


async def _workspace(home: Path, origin: Path, workflow_id: str) -> Workspace:
    found = Origin(str(origin))
    mirror = await remote.mirror(home, found)
    workspace = Workspace(mirror, workflow_id, "main", home=home, origin=found)
    await workspace.start()
    return workspace


async def _landed_and_cleaned(workspace: Workspace, key: str) -> None:
    await merged(workspace, key, [f"{key}.txt"])
    await workspace.merge_to_base()
    await workspace.cleanup(cancelled=False)


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, ...]]:
    run: list[tuple[str, ...]] = []
    real = g._run_git

    async def recorded(cwd: Path, *args: str, **kwargs: Any) -> g.GitResult:
        run.append(args)
        return await real(cwd, *args, **kwargs)

    monkeypatch.setattr(g, "_run_git", recorded)
    return run


async def _linked(repo: Path) -> list[g.WorktreeEntry]:
    return [e for e in await g.worktrees(repo) if not e.bare]


def _pooled(workspace: Workspace) -> list[str]:
    pool = workspace.folders.pool
    assert pool is not None
    return sorted(p.name for p in pool.iterdir()) if pool.is_dir() else []


async def test_the_next_workflows_first_subtask_starts_from_a_pooled_spare(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = bare_origin(tmp_path / "remote")
    home = tmp_path / "home"
    first = await _workspace(home, origin, "wf-1")
    await _landed_and_cleaned(first, "one")
    assert len(_pooled(first)) == 1
    assert [first.folders.pooled(e.path) for e in await _linked(first.repo)] == [True]

    second = await _workspace(home, origin, "wf-2")
    run = _recorded(monkeypatch)
    path = await second.prepare_subtask("two")

    said = [g._subcommand(args) for args in run]
    assert "checkout" in said, said
    assert "worktree" not in said, said
    assert _pooled(second) == []
    # As fresh as a new worktree: the base's files as they are now (one.txt landed), on the
    # subtask's branch, nothing else.
    head = await g.out(path, "rev-parse", "HEAD")
    assert head == await g.out(origin, "rev-parse", "refs/heads/main")
    assert await g.out(path, "symbolic-ref", "--short", "HEAD") == second.subtask_branch("two")
    assert await g.out(path, "status", "--porcelain", "--ignored") == ""
    assert sorted(p.name for p in path.iterdir() if p.name != ".git") == ["README.md", "one.txt"]

    await _landed_and_cleaned(second, "two")  # (prepared already: that worktree is used)
    assert sorted((await g.out(origin, "ls-tree", "--name-only", "main")).split()) == [
        "README.md",
        "one.txt",
        "two.txt",
    ]
    await spare_pools.empty_all()
    assert await _linked(second.repo) == []
    assert _pooled(second) == []


async def test_the_pool_keeps_at_most_its_size_the_rest_go_with_the_workflow(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worktree_folders, "POOL_SIZE", 1)
    origin = bare_origin(tmp_path / "remote")
    workspace = await _workspace(tmp_path / "home", origin, "wf-1")
    for key in ("a", "b"):  # (two at once: two spares once both are merged)
        path = await workspace.prepare_subtask(key)
        task = sim_task(key, [f"{key}.txt"], workdir=path, workflow_id=workspace.workflow_id)
        await SimWorktreeAgent().run(task, noop)
    for key in ("a", "b"):
        assert (await workspace.merge_subtask(key)).status is MergeStatus.MERGED
    assert len(list(workspace.folders.spares.iterdir())) == 2

    await workspace.merge_to_base()
    await workspace.cleanup(cancelled=False)

    assert len(_pooled(workspace)) == 1
    assert not workspace.root.exists()
    assert [workspace.folders.pooled(e.path) for e in await _linked(workspace.repo)] == [True]


async def test_a_pooled_spare_is_no_workflows_own_at_a_later_clean_up(tmp_path: Path) -> None:
    """Its HEAD still names the ended workflow's subtask branch: a clean-up of that workflow
    again (a leftover's, after a kill) neither commits in it nor removes it."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await _workspace(tmp_path / "home", origin, "wf-1")
    await _landed_and_cleaned(workspace, "one")
    pooled = _pooled(workspace)

    report = await workspace.cleanup(cancelled=False)

    assert report.removed_worktrees == []
    assert _pooled(workspace) == pooled


async def test_a_broken_pooled_spare_is_removed_and_a_worktree_added(tmp_path: Path) -> None:
    """A spare whose worktree record is gone (a prune of another tool, a kill half-way through
    a move) cannot be moved: it is removed from the pool and the subtask gets a new worktree."""
    origin = bare_origin(tmp_path / "remote")
    home = tmp_path / "home"
    first = await _workspace(home, origin, "wf-1")
    await _landed_and_cleaned(first, "one")
    common = await g.common_dir(first.repo)
    shutil.rmtree(common / "worktrees")

    second = await _workspace(home, origin, "wf-2")
    path = await second.prepare_subtask("two")

    assert _pooled(second) == []
    assert await g.out(path, "rev-parse", "HEAD") == await g.out(
        origin, "rev-parse", "refs/heads/main"
    )
    assert [e.path for e in await _linked(second.repo)] == [path]


async def test_a_workflows_first_subtask_starts_from_the_base_as_it_is_then(
    tmp_path: Path,
) -> None:
    """A workflow planned before others landed: its branch holds nothing of its own yet, so its
    first subtask starts from the base as it is now (on the origin too), and the landing merges
    nothing older than that."""
    origin = bare_origin(tmp_path / "remote")
    home = tmp_path / "home"
    early = await _workspace(home, origin, "wf-early")
    made_at = await g.out(origin, "rev-parse", f"refs/heads/{early.workflow_branch}")
    await _landed_and_cleaned(await _workspace(home, origin, "wf-other"), "other")
    base_now = await g.out(origin, "rev-parse", "refs/heads/main")
    assert base_now != made_at

    path = await early.prepare_subtask("mine")

    assert await g.out(path, "rev-parse", "HEAD") == base_now
    assert (path / "other.txt").is_file()
    branch_there = await g.out(origin, "rev-parse", f"refs/heads/{early.workflow_branch}")
    assert branch_there == base_now
    await merged(early, "mine", ["mine.txt"])
    assert (await early.merge_to_base()).fast_forward


async def test_a_workflow_branch_with_work_of_its_own_is_not_moved(tmp_path: Path) -> None:
    """Once a subtask is merged into it, the workflow branch starts its next subtask where it
    is, however far the base has moved; so does a branch another host moved first."""
    origin = bare_origin(tmp_path / "remote")
    home = tmp_path / "home"
    workspace = await _workspace(home, origin, "wf-1")
    elsewhere = await _workspace(tmp_path / "other-host", origin, "wf-1")
    await merged(elsewhere, "theirs", ["theirs.txt"])  # (the other host's object: moved it)
    tip = await g.out(origin, "rev-parse", f"refs/heads/{workspace.workflow_branch}")
    await _landed_and_cleaned(await _workspace(home, origin, "wf-other"), "other")

    path = await workspace.prepare_subtask("mine")

    assert await g.out(path, "rev-parse", "HEAD") == tip
    assert not (path / "other.txt").exists()
    assert await g.out(origin, "rev-parse", f"refs/heads/{workspace.workflow_branch}") == tip
