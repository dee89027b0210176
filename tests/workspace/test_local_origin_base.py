"""A local origin's base branch moved by other workflows' landings: the steps that read only the
workflow branch copy none of it into the mirror, the pull request, the conflict check and the
landing read it in the origin, where one ``merge-tree`` serves both the check and the landing and
the summary's ``log`` gives the merge base; ref moves do not queue behind a worktree being added."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from fakes.origins import bare_origin
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.runtime import git as g
from taskorch.runtime import remote, repository
from taskorch.runtime.workspace import MergeStatus
from taskorch.runtime.workspace_records import parse_numstat

from .conftest import noop, sim_task
from .test_local_origin import merged, workspace_on


async def _move_base(origin: Path) -> str:
    """A commit of someone else's on the origin's ``main`` (an earlier landing, say)."""
    tip = await g.out(origin, "rev-parse", "refs/heads/main")
    moved = await g.out(origin, "commit-tree", f"{tip}^{{tree}}", "-p", tip, "-m", "elsewhere")
    await g.git(origin, "update-ref", "refs/heads/main", moved, tip)
    return moved


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Path, str]]:
    run: list[tuple[Path, str]] = []
    real = g._run_git

    async def recorded(cwd: Path, *args: str, **kwargs: Any) -> g.GitResult:
        run.append((cwd, g._subcommand(args)))
        return await real(cwd, *args, **kwargs)

    monkeypatch.setattr(g, "_run_git", recorded)
    return run


async def test_steps_on_the_workflow_branch_copy_no_move_of_the_base_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt"])
    tracking = f"refs/remotes/{remote.REMOTE}/main"
    before = (await g.refs(workspace.repo, tracking))[tracking]
    moved = await _move_base(origin)
    copied: list[Path] = []
    real_copy = g.copy_objects

    async def copy(source: Path, target: Path, *args: Any) -> None:
        copied.append(target)
        await real_copy(source, target, *args)

    monkeypatch.setattr(g, "copy_objects", copy)

    await workspace.workflow_tip()
    assert await workspace.is_merged("one")
    await merged(workspace, "two", ["two.txt"])
    assert sorted(await workspace.landed_merges()) == ["one", "two"]
    assert workspace.repo not in copied  # (the merges went the other way: into the origin)
    assert (await g.refs(workspace.repo, tracking))[tracking] == before

    summary = await workspace.pr_summary()  # read in the origin, its base as it is now
    assert summary.base_commit == before
    assert await workspace.base_conflicts() == []
    landed = await workspace.merge_to_base()
    assert await g.succeeds(origin, "merge-base", "--is-ancestor", moved, landed.commit)
    assert await workspace.base_contains_workflow() == landed.commit

    await workspace.sync()  # a step that reads the base: the mirror follows it
    assert (await g.refs(workspace.repo, tracking))[tracking] == landed.commit


async def test_the_conflict_check_and_the_landing_share_one_merge_and_no_merge_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt"])
    await _move_base(origin)  # (after the workflow's first subtask: the landing merges)
    run = _recorded(monkeypatch)

    await workspace.pr_summary()
    assert await workspace.base_conflicts() == []
    landed = await workspace.merge_to_base()

    assert not landed.fast_forward
    said = [name for cwd, name in run]
    # (the summary's one log --boundary gave the merge base the landing needs; the sides
    # changed different files: taskorch wrote the merged tree, git's own)
    assert (said.count("merge-tree"), said.count("merge-base"), said.count("log")) == (0, 0, 1)
    assert all(cwd == origin for cwd, name in run if name == "log")
    parents = (await g.out(origin, "rev-parse", f"{landed.commit}^@")).split()
    merge = await g.out(origin, "merge-tree", "--write-tree", *parents)
    assert merge == await g.out(origin, "rev-parse", f"{landed.commit}^{{tree}}")
    files = (await g.out(origin, "ls-tree", "-r", "--name-only", landed.commit)).split()
    assert "one.txt" in files


async def test_a_remembered_merge_tree_that_is_gone_is_computed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A tree pruned between the check and the landing (a ``gc --prune=now``): that landing
    fails, the next computes the merge afresh."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt"])
    await _move_base(origin)
    base, head = await repository.tips(
        origin, "refs/heads/main", f"refs/heads/{workspace.workflow_branch}"
    )
    monkeypatch.setitem(repository._merged_trees, (str(origin), base, head), "1" * 40)

    with pytest.raises(g.GitError):
        await workspace.merge_to_base()
    landed = await workspace.merge_to_base()
    assert await g.succeeds(origin, "merge-base", "--is-ancestor", head, landed.commit)


async def test_ref_moves_do_not_wait_for_a_worktree_being_added(tmp_path: Path) -> None:
    """``update-ref`` reads no worktree's files: a move of the origin's branch and the mirror's
    own refs goes through while the mirror's admin lock is held (a worktree add under way)."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    tip = await g.out(origin, "rev-parse", "refs/heads/main")
    holding, release = asyncio.Event(), asyncio.Event()

    async def hold() -> None:
        async with g.admin_lock(workspace.repo):
            holding.set()
            await release.wait()

    holder = asyncio.create_task(hold())
    await holding.wait()
    here: dict[str, tuple[str | None, str | None]] = {"refs/heads/kept": (tip, None)}
    moving = remote.move_in_place(workspace.repo, origin, {"kept": tip}, {"kept": None}, here=here)
    try:
        assert await asyncio.wait_for(moving, timeout=60)
    finally:
        release.set()
        await holder
    assert (await g.refs(workspace.repo, "refs/heads/kept"))["refs/heads/kept"] == tip
    assert (await g.refs(origin, "refs/heads/kept"))["refs/heads/kept"] == tip


async def test_a_subtask_made_on_the_workflow_branch_as_it_is_merges_without_merge_tree(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agent's commits lie on the workflow branch's tip (their loose objects say so): the
    merge commit takes the subtask's own tree, as merge-tree would have given it; a subtask
    made on an older tip that changed other files is merged by taskorch too, into git's own
    tree."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    run = _recorded(monkeypatch)
    await merged(workspace, "one", ["one.txt"])
    assert "merge-tree" not in [name for _, name in run]
    branch = f"refs/heads/{workspace.workflow_branch}"
    tip = (await g.refs(origin, branch))[branch]
    parents = (await g.out(origin, "rev-parse", f"{tip}^@")).split()
    trees = [await g.out(origin, "rev-parse", f"{sha}^{{tree}}") for sha in (tip, parents[1])]
    assert trees[0] == trees[1]

    first = await workspace.prepare_subtask("two")
    second = await workspace.prepare_subtask("three")  # (both on the same tip)
    for key, path in (("two", first), ("three", second)):
        task = sim_task(key, [f"{key}.txt"], workdir=path, workflow_id=workspace.workflow_id)
        await SimWorktreeAgent().run(task, noop)
    run.clear()
    for key in ("two", "three"):
        result = await workspace.merge_subtask(key)
        assert result.status is MergeStatus.MERGED
        assert result.files == [f"{key}.txt"]
    assert "merge-tree" not in [name for _, name in run]  # (three: after two moved it)
    assert "diff" not in [name for _, name in run]  # (three's files: from the tip it was cut at)
    files = await g.out(origin, "ls-tree", "-r", "--name-only", branch)
    assert {"one.txt", "two.txt", "three.txt"} <= set(files.split())
    parents = (await g.out(origin, "rev-parse", f"{branch}^@")).split()
    merge = await g.out(origin, "merge-tree", "--write-tree", *parents)
    assert merge == await g.out(origin, "rev-parse", f"{branch}^{{tree}}")


async def test_the_merges_made_here_are_known_landed_without_a_git_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Merges this process made on the branch as it was are what ``landed_merges`` reads there,
    without a ``git log``: the same keys, commits and files git's own first-parent walk gives.
    A merge made by merge-tree (the branch moved meanwhile) leaves it to git again."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    run = _recorded(monkeypatch)
    await merged(workspace, "one", ["one.txt", "docs/one.md"])
    await merged(workspace, "two", ["two.txt"])
    run.clear()
    known = await workspace.landed_merges(2)
    assert "log" not in [name for _, name in run]
    tip = await workspace.workflow_tip()
    assert known == await workspace._merges._with_files(tip, 2)
    assert sorted(known["one"][1]) == ["docs/one.md", "one.txt"]

    first = await workspace.prepare_subtask("three")
    second = await workspace.prepare_subtask("four")  # (both on the same tip)
    for key, path in (("three", first), ("four", second)):
        task = sim_task(key, [f"{key}.txt"], workdir=path, workflow_id=workspace.workflow_id)
        await SimWorktreeAgent().run(task, noop)
        assert (await workspace.merge_subtask(key)).status is MergeStatus.MERGED
    run.clear()
    landed = await workspace.landed_merges(4)
    assert "log" in [name for _, name in run]  # (four was a real merge: git reads it)
    assert sorted(landed) == ["four", "one", "three", "two"]


async def test_a_pull_request_read_from_loose_objects_is_what_git_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The summary of a workflow branch of subtask merges (made here, so their merge base with
    the base is known) runs no ``log`` and no ``diff``: its commits and diff stat are git's."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt", "docs/one.md"])
    await merged(workspace, "two", ["two.txt"])
    run = _recorded(monkeypatch)

    summary = await workspace.pr_summary()

    said = [name for _, name in run]
    assert "log" not in said
    assert "diff" not in said
    start, head = summary.base_commit, summary.head_commit
    log = await g.out(origin, "log", "--reverse", "--format=%H%x00%s", f"{start}..{head}")
    assert [(c.sha, c.subject) for c in summary.commits] == [
        tuple(line.split("\0", 1)) for line in log.splitlines()
    ]
    numstat = await g.out(origin, "diff", "--numstat", "--no-renames", start, head)
    assert summary.diff == parse_numstat(numstat)
    assert len(summary.commits) == 4  # (two agents' commits, two merges)
