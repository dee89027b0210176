"""The git workspace against real repositories in temporary directories."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

import pytest

from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.errors import InputError
from taskorch.domain.overlap import serialise_overlaps
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.runtime import git as g
from taskorch.runtime.git import MergeConflictError, WorkspaceError
from taskorch.runtime.workspace import MergeStatus, Workspace, check_repository
from taskorch.settings import default_worktrees_root

from .conftest import branch_list, commit_file, git, git_ok, init_repo, noop, sim_task


def worktrees_of(home: Path, workflow_id: str = "wf-1") -> Path:
    return default_worktrees_root(home) / workflow_id


async def open_ws(repo: Path, home: Path, workflow_id: str = "wf-1") -> Workspace:
    workspace = await Workspace.for_repo(repo, workflow_id, home=home)
    await workspace.start()
    return workspace


async def sim_run(workspace: Workspace, key: str, files: list[str]) -> Path:
    path = await workspace.prepare_subtask(key)
    task = sim_task(key, files, workdir=path, workflow_id=workspace.workflow_id)
    await SimWorktreeAgent().run(task, noop)
    return path


def plan_subtask(key: str, files: list[str], deps: list[str] | None = None) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id="task-1",
        title=f"Work on {key}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        dependencies=deps or [],
        files_affected=files,
    )


# --- opening a repository --------------------------------------------------------------------


async def test_a_directory_that_is_not_a_repository_is_refused(tmp_path: Path) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    with pytest.raises(WorkspaceError) as caught:
        await Workspace.for_repo(plain, "wf-1", home=tmp_path / "home")
    assert caught.value.message == f"repository path is not a git repository: {plain}"
    assert "\n" not in caught.value.message


async def test_a_missing_path_is_refused(tmp_path: Path) -> None:
    with pytest.raises(WorkspaceError, match="does not exist"):
        await check_repository(tmp_path / "nowhere")


async def test_a_subdirectory_of_a_repository_is_not_taken_for_it(repo: Path) -> None:
    with pytest.raises(WorkspaceError, match=r"is not a git repository: .*inside the repository"):
        await check_repository(repo / "src")


async def test_a_dirty_base_branch_is_refused_by_name(repo: Path, home: Path) -> None:
    (repo / "README.md").write_text("# edited, not committed\n")
    with pytest.raises(WorkspaceError) as caught:
        await Workspace.for_repo(repo, "wf-1", home=home)
    assert caught.value.message == (
        f"base branch 'main' has uncommitted changes in {repo}; commit or stash them first"
    )


async def test_untracked_files_do_not_make_the_base_dirty(repo: Path, home: Path) -> None:
    (repo / "notes.txt").write_text("scratch\n")
    workspace = await Workspace.for_repo(repo, "wf-1", home=home)
    assert workspace.base_branch == "main"


async def test_unknown_base_branch_and_detached_head_are_refused(repo: Path) -> None:
    with pytest.raises(WorkspaceError, match="base branch 'develop' does not exist"):
        await check_repository(repo, "develop")
    git(repo, "checkout", "-q", "--detach")
    with pytest.raises(WorkspaceError, match="detached"):
        await check_repository(repo)
    assert (await check_repository(repo, "main"))[1] == "main"


async def test_a_repository_without_commits_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    git(empty, "init", "-q", "-b", "main")
    with pytest.raises(WorkspaceError, match="has no commits yet"):
        await check_repository(empty)


async def test_names_that_cannot_be_branches_are_refused(repo: Path, home: Path) -> None:
    with pytest.raises(InputError, match="workflow id"):
        Workspace(repo, "wf 1", home=home)
    workspace = Workspace(repo, "wf-1", home=home)
    for bad in ("../x", "a/b", "x.lock", ""):
        with pytest.raises(InputError, match="subtask key"):
            workspace.subtask_branch(bad)


async def test_managed_creates_a_scratch_repository_once(tmp_path: Path) -> None:
    home = tmp_path / "home"
    first = await Workspace.managed(home, "wf-1")
    second = await Workspace.managed(home, "wf-2")
    scratch = home / "repos" / "scratch"
    assert first.repo == second.repo == scratch
    assert first.base_branch == "main"
    assert git(scratch, "log", "--format=%s") == "taskorch scratch repository"
    assert git(scratch, "log", "--format=%an <%ae>") == "taskorch <taskorch@localhost>"


# --- branches and worktrees ------------------------------------------------------------------


async def test_the_workflow_gets_its_branch_and_worktree(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    assert workspace.workflow_branch == "taskorch/wf-1/main"
    assert git(repo, "rev-parse", "taskorch/wf-1/main") == git(repo, "rev-parse", "main")
    # merges need no checkout: the worktree is made when a step runs commands in it
    assert not workspace.workflow_worktree.exists()
    assert await workspace.refresh() == workspace.workflow_worktree == worktrees_of(home) / "main"
    assert git(workspace.workflow_worktree, "branch", "--show-current") == "taskorch/wf-1/main"
    again = Workspace(repo, "wf-1", home=home)  # a new process: same names, nothing redone
    await again.start()
    assert await again.refresh() == workspace.workflow_worktree


async def test_two_parallel_subtasks_on_different_files_both_merge(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    paths = await asyncio.gather(
        sim_run(workspace, "api", ["src/api.py"]), sim_run(workspace, "docs", ["docs/api.md"])
    )
    assert paths[0] == worktrees_of(home) / "subtasks" / "api"
    assert git(paths[0], "branch", "--show-current") == "taskorch/wf-1/sub/api"
    assert await workspace.changed_files("api") == ["src/api.py"]

    results = await asyncio.gather(workspace.merge_subtask("api"), workspace.merge_subtask("docs"))
    assert [r.status for r in results] == [MergeStatus.MERGED, MergeStatus.MERGED]
    assert results[0].files == ["src/api.py"]
    assert results[1].files == ["docs/api.md"]
    subjects = git(repo, "log", "--first-parent", "--format=%s", "taskorch/wf-1/main").splitlines()
    assert sorted(subjects[:2]) == [
        "taskorch: merge subtask api into taskorch/wf-1/main",
        "taskorch: merge subtask docs into taskorch/wf-1/main",
    ]
    tree = git(repo, "ls-tree", "-r", "--name-only", "taskorch/wf-1/main").splitlines()
    assert {"src/api.py", "docs/api.md"} <= set(tree)
    # cleaned up after their merge: worktrees and branches gone
    assert not paths[0].exists()
    assert not paths[1].exists()
    assert branch_list(repo, "taskorch/*") == ["taskorch/wf-1/main"]
    assert await workspace.is_merged("api")
    assert await workspace.changed_files("api") == ["src/api.py"]  # read from its merge


async def test_overlapping_subtasks_serialised_run_one_after_another_and_both_merge(
    repo: Path, home: Path
) -> None:
    plan = serialise_overlaps(
        [plan_subtask("first", ["src/app.py"]), plan_subtask("second", ["src/app.py"])]
    )
    assert plan[1].dependencies == ["first"]  # serialised
    workspace = await open_ws(repo, home)

    await sim_run(workspace, "first", plan[0].files_affected)
    assert (await workspace.merge_subtask("first")).status is MergeStatus.MERGED
    # the dependent starts after its dependency merged, from the workflow branch as it is now
    second = await sim_run(workspace, "second", plan[1].files_affected)
    lines = (second / "src" / "app.py").read_text().splitlines()
    assert sum("subtask first" in line for line in lines) == 1
    assert sum("subtask second" in line for line in lines) == 1
    assert (await workspace.merge_subtask("second")).status is MergeStatus.MERGED

    merged = git(repo, "show", "taskorch/wf-1/main:src/app.py")
    assert "subtask first" in merged
    assert "subtask second" in merged
    compile(merged, "app.py", "exec")  # labelled lines are comments: the code still parses


async def test_an_undeclared_overlap_conflicts_names_the_file_and_keeps_both_branches(
    repo: Path, home: Path
) -> None:
    workspace = await open_ws(repo, home)
    # declared different files, both edit the same line of README.md, run in parallel
    one, two = await asyncio.gather(
        workspace.prepare_subtask("one"), workspace.prepare_subtask("two")
    )
    (one / "README.md").write_text("# project by one\n")
    (two / "README.md").write_text("# project by two\n")
    await workspace.commit_all("one", "one edits the title")
    two_tip = await workspace.commit_all("two", "two edits the title")

    assert (await workspace.merge_subtask("one")).status is MergeStatus.MERGED
    result = await workspace.merge_subtask("two")
    assert result.status is MergeStatus.CONFLICT
    assert not result.merged
    assert result.conflicts == ["README.md"]
    assert "conflicts in: README.md" in result.message
    # nothing moved (the merge is computed without a checkout): the branch is at the first merge
    assert "merge subtask one" in git(repo, "log", "-1", "--format=%s", "taskorch/wf-1/main")
    assert not workspace.workflow_worktree.exists()
    # both branches intact: the conflicting one still holds its commit, its worktree is there
    assert git(repo, "rev-parse", "taskorch/wf-1/sub/two") == two_tip
    assert two.is_dir()
    assert "by one" in git(repo, "show", "taskorch/wf-1/main:README.md")


async def test_cancel_removes_worktrees_keeps_unmerged_work_and_leaves_other_workflows_alone(
    repo: Path, home: Path
) -> None:
    other = await open_ws(repo, home, "wf-10")  # a prefix trap: wf-1 is a prefix of wf-10
    other_path = await sim_run(other, "a", ["src/other.py"])
    before = git(
        repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/taskorch/wf-10/"
    )

    workspace = await open_ws(repo, home, "wf-1")
    await sim_run(workspace, "merged", ["src/merged.py"])
    await workspace.merge_subtask("merged")
    busy = await workspace.prepare_subtask("busy")
    (busy / "half-done.py").write_text("x = 1\n")  # uncommitted work of a running agent
    await workspace.prepare_subtask("idle")  # prepared, nothing done

    report = await workspace.cleanup(cancelled=True)

    assert not worktrees_of(home).exists()
    assert len(report.removed_worktrees) == 2  # busy, idle (merges need no checkout)
    # unmerged work kept (its uncommitted file committed first); the rest deleted
    assert report.kept_branches == ["taskorch/wf-1/main", "taskorch/wf-1/sub/busy"]
    assert report.deleted_branches == ["taskorch/wf-1/sub/idle"]
    assert "half-done.py" in git(repo, "show", "--name-only", "--format=", "taskorch/wf-1/sub/busy")
    assert "taskorch/wf-1/" not in git(repo, "worktree", "list")
    # the other workflow: same branches at the same commits, its worktrees still there
    after = git(
        repo, "for-each-ref", "--format=%(refname) %(objectname)", "refs/heads/taskorch/wf-10/"
    )
    assert after == before
    assert other_path.is_dir()
    assert (await other.merge_subtask("a")).status is MergeStatus.MERGED
    assert await workspace.cleanup(cancelled=True) == type(report)([], [], report.kept_branches)


async def test_cleanup_after_merge_to_base_deletes_everything(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    await workspace.merge_to_base()
    report = await workspace.cleanup(cancelled=False)
    assert report.kept_branches == []
    assert report.deleted_branches == ["taskorch/wf-1/main"]
    assert branch_list(repo) == ["main"]


async def test_a_kept_attempt_whose_work_was_merged_again_goes_with_the_clean_up(
    repo: Path, home: Path
) -> None:
    """A kill after an agent committed leaves its attempt unmerged; the retry does the same work
    and merges it. The kept attempt then holds nothing that is not merged: it goes with the
    others. One whose files differ from what was merged stays."""
    workspace = await open_ws(repo, home)
    for key, retried in (("same", "print('a')\n"), ("other", "print('b')\n")):
        path = await workspace.prepare_subtask(key)
        (path / f"{key}.py").write_text("print('a')\n")
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"attempt 1 of {key}")
        await workspace.prepare_subtask(key)  # (the retry: the attempt is kept, a fresh start)
        (path / f"{key}.py").write_text(retried)
        git(path, "add", "-A")
        git(path, "commit", "-q", "-m", f"attempt 2 of {key}")
        await workspace.merge_subtask(key)
    assert "taskorch/wf-1/kept/same/1" in branch_list(repo)
    await workspace.merge_to_base()
    report = await workspace.cleanup(cancelled=False)
    assert "taskorch/wf-1/kept/same/1" in report.deleted_branches
    assert report.kept_branches == ["taskorch/wf-1/kept/other/1"]
    assert branch_list(repo) == ["main", "taskorch/wf-1/kept/other/1"]
    assert git(repo, "show", "taskorch/wf-1/kept/other/1:other.py") == "print('a')"


# --- merging into the base branch ------------------------------------------------------------


async def test_merge_to_base_fast_forwards_the_checked_out_base(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    result = await workspace.merge_to_base()
    assert result.fast_forward
    assert not result.already_merged
    assert git(repo, "rev-parse", "main") == git(repo, "rev-parse", "taskorch/wf-1/main")
    assert (repo / "src" / "a.py").is_file()  # the checkout follows
    assert git(repo, "status", "--porcelain") == ""
    assert (await workspace.merge_to_base()).already_merged


async def test_merge_to_base_refuses_a_dirty_checkout_and_changes_nothing(
    repo: Path, home: Path
) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    before = git(repo, "rev-parse", "main")
    (repo / "README.md").write_text("# user is editing\n")
    with pytest.raises(WorkspaceError, match="base branch 'main' has uncommitted changes in"):
        await workspace.merge_to_base()
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "README.md").read_text() == "# user is editing\n"


async def test_merge_to_base_makes_a_merge_commit_when_the_base_moved_on(
    repo: Path, home: Path
) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    commit_file(repo, "CHANGELOG.md", "meanwhile\n")
    result = await workspace.merge_to_base()
    assert not result.fast_forward
    parents = git(repo, "log", "-1", "--format=%P", "main").split()
    assert parents[1] == git(repo, "rev-parse", "taskorch/wf-1/main")
    assert (repo / "src" / "a.py").is_file()
    assert (repo / "CHANGELOG.md").is_file()


async def test_merge_to_base_without_a_checkout_of_the_base(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    commit_file(repo, "CHANGELOG.md", "meanwhile\n")
    git(repo, "checkout", "-q", "-b", "elsewhere")  # main is now checked out nowhere
    result = await workspace.merge_to_base()
    assert not result.fast_forward
    assert git(repo, "rev-parse", "main") == result.commit
    files = git(repo, "ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"src/a.py", "CHANGELOG.md"} <= set(files)
    assert git(repo, "status", "--porcelain") == ""


async def test_the_base_is_followed_where_it_is_checked_out_now_not_where_it_was(
    repo: Path, home: Path, tmp_path: Path
) -> None:
    """The worktree holding the base is remembered from one merge to the next; when the user
    has since checked the base out elsewhere, the next merge brings that checkout along."""
    first = await open_ws(repo, home)
    await sim_run(first, "a", ["src/a.py"])
    await first.merge_subtask("a")
    await first.merge_to_base()
    git(repo, "checkout", "-q", "-b", "elsewhere")
    git(repo, "worktree", "add", "-q", str(tmp_path / "other"), "main")

    second = await Workspace.for_repo(repo, "wf-2", home=home, base_branch="main")
    await second.start()
    await sim_run(second, "b", ["src/b.py"])
    await second.merge_subtask("b")
    result = await second.merge_to_base()
    assert git(repo, "rev-parse", "main") == result.commit
    assert (tmp_path / "other" / "src" / "b.py").is_file()
    assert git(tmp_path / "other", "status", "--porcelain") == ""
    assert not (repo / "src" / "b.py").exists()  # (the user's other branch is untouched)


@pytest.mark.parametrize("checked_out", [True, False], ids=["checkout", "no-checkout"])
async def test_a_conflict_with_the_base_is_raised_and_leaves_it_clean(
    repo: Path, home: Path, checked_out: bool
) -> None:
    workspace = await open_ws(repo, home)
    path = await workspace.prepare_subtask("a")
    (path / "README.md").write_text("# from the workflow\n")
    await workspace.commit_all("a", "retitle")
    await workspace.merge_subtask("a")
    before = commit_file(repo, "README.md", "# from the user\n")
    if not checked_out:
        git(repo, "checkout", "-q", "-b", "elsewhere")
    with pytest.raises(MergeConflictError) as caught:
        await workspace.merge_to_base()
    assert caught.value.files == ["README.md"]
    assert git(repo, "rev-parse", "main") == before
    assert git(repo, "status", "--porcelain") == ""


async def test_a_bare_repository_works_without_any_checkout(tmp_path: Path, home: Path) -> None:
    source = init_repo(tmp_path / "source")
    bare = tmp_path / "bare.git"
    git(tmp_path, "clone", "-q", "--bare", str(source), str(bare))
    workspace = await open_ws(bare, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    result = await workspace.merge_to_base()
    assert result.fast_forward
    assert "src/a.py" in git(bare, "ls-tree", "-r", "--name-only", "main")


# --- subtask details -------------------------------------------------------------------------


async def test_changed_files_and_commit_all(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    path = await workspace.prepare_subtask("a")
    assert await workspace.changed_files("a") == []
    assert await workspace.commit_all("a", "nothing") is None
    (path / "src" / "app.py").write_text("print('changed')\n")
    git(path, "add", "src/app.py")
    git(path, "commit", "-q", "-m", "agent commit")
    (path / "new.txt").write_text("new\n")
    (path / "README.md").unlink()
    assert await workspace.changed_files("a") == ["README.md", "new.txt", "src/app.py"]
    sha = await workspace.commit_all("a", "taskorch: leftovers of a")
    assert sha == git(path, "rev-parse", "HEAD")
    assert git(path, "log", "-1", "--format=%an <%ae>|%s") == (
        "taskorch <taskorch@localhost>|taskorch: leftovers of a"
    )
    assert await workspace.changed_files("a") == ["README.md", "new.txt", "src/app.py"]
    stat = await workspace.diff_stat("a")
    assert [f.path for f in stat.files] == ["README.md", "new.txt", "src/app.py"]
    assert stat.deletions == 1 + 2
    assert stat.insertions == 1 + 1


async def test_a_subtask_that_changed_nothing_has_nothing_to_merge(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    path = await workspace.prepare_subtask("lazy")
    result = await workspace.merge_subtask("lazy")
    assert result.status is MergeStatus.NOTHING_TO_MERGE
    assert not result.merged
    assert path.is_dir()  # nothing was merged, so nothing is cleaned


async def test_merge_commits_uncommitted_work_first(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    path = await workspace.prepare_subtask("a")
    (path / "left.txt").write_text("the agent forgot to commit\n")
    result = await workspace.merge_subtask("a")
    assert result.status is MergeStatus.MERGED
    assert result.files == ["left.txt"]


async def test_pr_summary(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await sim_run(workspace, "b", ["docs/b.md"])
    await workspace.merge_subtask("a")
    await workspace.merge_subtask("b")
    summary = await workspace.pr_summary()
    assert summary.base_branch == "main"
    assert summary.head_branch == "taskorch/wf-1/main"
    subjects = [c.subject for c in summary.commits]
    assert subjects == [
        "simulated: a: Work on a",
        "simulated: b: Work on b",
        "taskorch: merge subtask a into taskorch/wf-1/main",
        "taskorch: merge subtask b into taskorch/wf-1/main",
    ] or subjects == [
        "simulated: a: Work on a",
        "taskorch: merge subtask a into taskorch/wf-1/main",
        "simulated: b: Work on b",
        "taskorch: merge subtask b into taskorch/wf-1/main",
    ]
    body = summary.to_json()
    assert body["files_changed"] == 2
    assert body["insertions"] == 2
    assert body["deletions"] == 0
    assert [f["path"] for f in body["files"]] == ["docs/b.md", "src/a.py"]


# --- crashes and re-runs ---------------------------------------------------------------------


async def test_prepare_subtask_is_idempotent(repo: Path, home: Path) -> None:
    workspace = await open_ws(repo, home)
    path = await workspace.prepare_subtask("a")
    (path / "scratch.txt").write_text("left by an agent that died\n")
    git(path, "add", "scratch.txt")
    # a clean, untouched worktree at the workflow tip is reused as it is
    clean = await workspace.prepare_subtask("b")
    inode = clean.stat().st_ino
    assert await workspace.prepare_subtask("b") == clean
    assert clean.stat().st_ino == inode

    # the worktree directory vanished in a crash: recreated cleanly
    shutil.rmtree(clean)
    assert await workspace.prepare_subtask("b") == clean
    assert git(clean, "status", "--porcelain") == ""

    # an earlier attempt's work is kept on a kept branch; the new attempt starts fresh
    again = await workspace.prepare_subtask("a")
    assert again == path
    assert git(path, "status", "--porcelain") == ""
    assert not (path / "scratch.txt").exists()
    assert git(path, "rev-parse", "HEAD") == git(repo, "rev-parse", "taskorch/wf-1/main")
    kept = git(repo, "show", "--name-only", "--format=%s", "taskorch/wf-1/kept/a/1")
    assert "scratch.txt" in kept
    assert "unfinished work of subtask a" in kept


async def test_a_dependent_prepared_again_starts_from_the_moved_workflow_branch(
    repo: Path, home: Path
) -> None:
    workspace = await open_ws(repo, home)
    later = await workspace.prepare_subtask("later")  # prepared too early, e.g. before a crash
    await sim_run(workspace, "early", ["src/early.py"])
    await workspace.merge_subtask("early")
    assert not (later / "src" / "early.py").exists()
    assert await workspace.prepare_subtask("later") == later
    assert (later / "src" / "early.py").is_file()


async def test_a_merge_moves_only_refs_and_the_next_subtask_starts_from_a_fresh_spare(
    repo: Path, home: Path
) -> None:
    (repo / ".gitignore").write_text("build/\n")
    git(repo, "add", ".gitignore")
    git(repo, "commit", "-q", "-m", "ignore build/")
    workspace = await open_ws(repo, home, "wf-2")
    first = await workspace.prepare_subtask("first")
    (first / "src").mkdir(exist_ok=True)
    (first / "src" / "first.py").write_text("first = 1\n")
    await workspace.commit_all("first", "first")
    (first / "build").mkdir()
    (first / "build" / "cache.bin").write_text("ignored output\n")  # never committed
    (first / "stray.txt").write_text("untracked\n")  # would be committed by the merge

    merged = await workspace.merge_subtask("first")

    assert merged.status is MergeStatus.MERGED
    parents = git(repo, "rev-list", "--parents", "-n", "1", str(merged.commit)).split()[1:]
    assert len(parents) == 2  # a merge commit, made without a checkout
    assert not workspace.workflow_worktree.exists()
    assert not first.exists()
    assert branch_list(repo, "taskorch/wf-2/sub/*") == []
    spares = list((worktrees_of(home, "wf-2") / "spare").iterdir())
    assert len(spares) == 1

    second = await workspace.prepare_subtask("second")

    assert not spares[0].exists()  # the spare became the second subtask's worktree
    assert git(second, "branch", "--show-current") == "taskorch/wf-2/sub/second"
    assert git(second, "rev-parse", "HEAD") == merged.commit
    assert git(second, "status", "--porcelain", "--ignored") == ""  # nothing left over
    assert (second / "src" / "first.py").read_text() == "first = 1\n"
    assert (second / "stray.txt").read_text() == "untracked\n"  # committed with the merge
    assert not (second / "build").exists()
    report = await workspace.cleanup(cancelled=True)
    assert report.removed_worktrees == [str(second)]
    assert not worktrees_of(home, "wf-2").exists()


async def test_a_spare_left_pristine_is_reused_without_a_clean(
    repo: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    workspace = await open_ws(repo, home, "wf-3")
    first = await workspace.prepare_subtask("first")
    (first / "first.py").write_text("first = 1\n")
    await workspace.commit_all("first", "first")  # nothing left outside git
    await workspace.merge_subtask("first", committed=True)
    [spare] = (worktrees_of(home, "wf-3") / "spare").iterdir()
    assert spare.name.endswith(".pristine")

    ran: list[tuple[str, ...]] = []
    run_git = g._run_git

    async def watched(cwd: Path, *args: str, **options: Any) -> g.GitResult:
        ran.append(args)
        return await run_git(cwd, *args, **options)

    monkeypatch.setattr(g, "_run_git", watched)
    second = await workspace.prepare_subtask("second")

    assert not [args for args in ran if args[0] == "clean"]
    assert git(second, "status", "--porcelain", "--ignored") == ""
    assert (second / "first.py").read_text() == "first = 1\n"


async def test_merge_subtask_rerun_after_a_crash_reports_already_merged(
    repo: Path, home: Path
) -> None:
    workspace = await open_ws(repo, home)
    path = await sim_run(workspace, "a", ["src/a.py"])
    await workspace.refresh()
    # the merge landed, then the process died before the cleanup that follows it
    git(
        workspace.workflow_worktree,
        "merge",
        "--no-ff",
        "-q",
        "-m",
        "taskorch: merge subtask a into taskorch/wf-1/main",
        "taskorch/wf-1/sub/a",
    )
    first = await workspace.merge_subtask("a")
    assert first.status is MergeStatus.ALREADY_MERGED
    assert first.merged
    assert first.files == ["src/a.py"]
    assert not path.exists()
    assert branch_list(repo, "taskorch/wf-1/sub/*") == []
    second = await workspace.merge_subtask("a")  # and once more, with the branch gone
    assert second.status is MergeStatus.ALREADY_MERGED
    assert second.commit == first.commit
    merges = git(repo, "log", "--merges", "--format=%H", "taskorch/wf-1/main").splitlines()
    assert len(merges) == 1


async def test_a_half_done_merge_in_the_workflow_worktree_is_cleared(
    repo: Path, home: Path
) -> None:
    """The workflow worktree (where the test command runs) is brought back to the workflow
    branch's files before each use, whatever a killed run left in it."""
    workspace = await open_ws(repo, home)
    one = await workspace.prepare_subtask("one")
    two = await workspace.prepare_subtask("two")
    (one / "README.md").write_text("# one\n")
    (two / "README.md").write_text("# two\n")
    await workspace.commit_all("one", "one")
    await workspace.commit_all("two", "two")
    await workspace.merge_subtask("one")
    await workspace.refresh()
    # a crash in the middle of a conflicting merge leaves MERGE_HEAD and conflict markers
    done = git_ok(workspace.workflow_worktree, "merge", "--no-ff", "taskorch/wf-1/sub/two")
    assert not done
    git(two, "reset", "-q", "--hard", "taskorch/wf-1/main")  # "two" redone without conflict
    (two / "other.txt").write_text("other\n")
    result = await workspace.merge_subtask("two")
    assert result.status is MergeStatus.MERGED
    assert await workspace.refresh() == workspace.workflow_worktree
    assert git(workspace.workflow_worktree, "status", "--porcelain") == ""
    assert (workspace.workflow_worktree / "other.txt").read_text() == "other\n"
    assert git(workspace.workflow_worktree, "rev-parse", "HEAD") == result.commit


async def test_workflows_running_one_plan_from_one_base_all_land(tmp_path: Path) -> None:
    """The benchmark's shape: the same plan many times at once in the managed repository. The
    simulated changes depend only on the subtask, so the workflows' changes are identical and
    land one after another without conflicts."""
    home = tmp_path / "home"
    plan = [("design", ["docs/auth.md"]), ("impl", ["src/auth.py", "docs/auth.md"])]
    workspaces = [await Workspace.managed(home, f"wf-{i}") for i in range(8)]
    await asyncio.gather(*(w.start() for w in workspaces))  # all from the same base

    async def workflow(workspace: Workspace, pause_s: float) -> None:
        for key, files in plan:
            await sim_run(workspace, key, files)
            assert (await workspace.merge_subtask(key)).merged
            await asyncio.sleep(pause_s)
        await workspace.merge_to_base()
        await workspace.cleanup(cancelled=False)

    await asyncio.gather(*(workflow(w, 0.01 * (i % 3)) for i, w in enumerate(workspaces)))
    scratch = home / "repos" / "scratch"
    assert branch_list(scratch) == ["main"]
    assert git(scratch, "status", "--porcelain") == ""
    assert "subtask impl" in (scratch / "src" / "auth.py").read_text()


async def test_home_inside_the_repository_works_and_only_shows_as_untracked(repo: Path) -> None:
    """The default layout: ``taskorch run --repo .`` with its home in ``./.taskorch``."""
    home = repo / ".taskorch"
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    assert (await workspace.merge_subtask("a")).merged
    assert git(repo, "status", "--porcelain") == "?? .taskorch/"
    await Workspace.for_repo(repo, "wf-2", home=home)  # still counts as clean
    await workspace.merge_to_base()
    await workspace.cleanup(cancelled=False)
    assert (repo / "src" / "a.py").is_file()
    assert git(repo, "worktree", "list", "--porcelain").count("worktree ") == 1


async def test_a_clean_up_cut_short_leaves_the_folder_that_marks_it_unfinished(
    repo: Path, home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worktree folder goes last: a kill before the merged branches are deleted leaves it,
    so the workflow is found not cleaned up (``engine/leftovers.py``) and the clean-up done
    again deletes them; removed first, a kill there left the branches in the repository."""
    from taskorch.runtime.workspace_cleanup import WorkspaceCleanup

    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    await workspace.merge_to_base()

    async def killed(*_: Any) -> None:
        raise asyncio.CancelledError  # (a kill: nothing after this point runs)

    with monkeypatch.context() as patched:
        patched.setattr(WorkspaceCleanup, "_delete_merged", killed)
        with pytest.raises(asyncio.CancelledError):
            await workspace.cleanup(cancelled=False)
    assert worktrees_of(home).exists()
    assert "taskorch/wf-1/main" in branch_list(repo)
    again = await open_ws(repo, home)
    report = await again.cleanup(cancelled=False)
    assert report.deleted_branches == ["taskorch/wf-1/main"]
    assert branch_list(repo) == ["main"]
    assert not worktrees_of(home).exists()
