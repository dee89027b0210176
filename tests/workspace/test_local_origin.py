"""A workflow's repository given as a path on this host: the mirror reads the origin's branches
directly and its objects in place (nothing copied in when they moved; a fetch only when one is
gone there); the merges' files are read in one pass."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from fakes.origins import bare_origin
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.errors import HostError
from taskorch.runtime import git as g
from taskorch.runtime import remote, spare_pools
from taskorch.runtime.remote import Origin
from taskorch.runtime.workspace import MergeStatus, Workspace

from .conftest import noop, sim_task


async def workspace_on(home: Path, origin: Path) -> Workspace:
    found = Origin(str(origin))
    assert found.path is not None  # a path, not a URL
    workspace = Workspace(await remote.mirror(home, found), "wf-1", "main", home=home, origin=found)
    await workspace.start()
    return workspace


async def merged(workspace: Workspace, key: str, files: list[str]) -> None:
    path = await workspace.prepare_subtask(key)
    task = sim_task(key, files, workdir=path, workflow_id=workspace.workflow_id)
    await SimWorktreeAgent().run(task, noop)
    assert (await workspace.merge_subtask(key)).status is MergeStatus.MERGED


async def test_a_host_follows_a_local_origin_that_moved_without_a_fetch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = bare_origin(tmp_path / "remote")
    host_a = await workspace_on(tmp_path / "a", origin)
    host_b = await workspace_on(tmp_path / "b", origin)
    fetches: list[tuple[str, ...]] = []
    copies: list[Path] = []
    real_fetch, real_copy = remote.fetch, g.copy_objects

    async def fetch(repo: Path, *patterns: str) -> None:
        fetches.append(patterns)
        await real_fetch(repo, *patterns)

    async def copy(source: Path, target: Path, *args: Any) -> None:
        copies.append(target)
        await real_copy(source, target, *args)

    monkeypatch.setattr(remote, "fetch", fetch)
    monkeypatch.setattr(g, "copy_objects", copy)

    await merged(host_a, "a-1", ["a.txt"])
    copies.clear()
    assert await host_b.is_merged("a-1")  # the origin moved: B's mirror reads its objects there
    assert (fetches, copies) == ([], [])
    assert not await host_b.is_merged("a-2")
    assert (fetches, copies) == ([], [])

    await merged(host_a, "a-2", ["b.txt"])
    copies.clear()
    assert await host_b.is_merged("a-2")
    assert (fetches, copies) == ([], [])
    tracking = f"refs/remotes/{remote.REMOTE}/{host_b.workflow_branch}"
    workflow = f"refs/heads/{host_b.workflow_branch}"
    assert (await g.refs(host_b.repo, tracking))[tracking] == (await g.refs(origin, workflow))[
        workflow
    ]
    assert (await g.git(host_b.repo, "fsck", "--connectivity-only", check=False)).ok

    await g.git(origin, "update-ref", "-d", workflow)  # gone there: the fetch prunes it
    await host_b.sync()
    assert len(fetches) == 1
    assert tracking not in await g.refs(host_b.repo, tracking)


async def test_landed_merges_name_each_merges_files_and_follow_new_merges(
    tmp_path: Path,
) -> None:
    workspace = await workspace_on(tmp_path / "home", bare_origin(tmp_path / "remote"))
    await merged(workspace, "one", ["docs/a b.md", "é.txt"])
    first = await workspace.landed_merges()
    assert first["one"][1] == ["docs/a b.md", "é.txt"]

    await merged(workspace, "two", ["src/two.py"])
    landed = await workspace.landed_merges()
    assert sorted(landed) == ["one", "two"]
    assert landed["one"] == first["one"]
    assert landed["two"][1] == ["src/two.py"]
    assert landed["two"][0] != landed["one"][0]


async def test_a_local_origin_gone_is_a_host_error(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    origin.rename(tmp_path / "moved.git")
    with pytest.raises(HostError, match="fetch failed"):
        await workspace.is_merged("one")


async def test_merges_reach_a_local_origin_in_place_complete_and_leased(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No push: the merge's objects are copied in and the origin's branch moved in place. The
    origin is whole (fsck), holds each subtask's file, and a host that merged from a stale view
    is refused and merges again on top."""
    origin = bare_origin(tmp_path / "remote")
    host_a = await workspace_on(tmp_path / "a", origin)
    host_b = await workspace_on(tmp_path / "b", origin)
    run = []
    real = g._run_git

    async def recorded(cwd: Path, *args: str, **kwargs: Any) -> g.GitResult:
        run.append(g._subcommand(args))
        return await real(cwd, *args, **kwargs)

    monkeypatch.setattr(g, "_run_git", recorded)
    await merged(host_a, "a-1", ["a.txt"])
    path = await host_b.prepare_subtask("b-1")  # (host B's mirror now has a-1's merge)
    await merged(host_a, "a-2", ["a2.txt"])  # the origin moves on without host B seeing it
    task = sim_task("b-1", ["b.txt"], workdir=path, workflow_id=host_b.workflow_id)
    await SimWorktreeAgent().run(task, noop)
    assert (await host_b.merge_subtask("b-1")).status is MergeStatus.MERGED

    assert "push" not in run
    assert "unpack-objects" not in run  # (the mirror's loose objects copied as files)
    branch = "refs/heads/taskorch/wf-1/main"
    fsck = await g.git(origin, "fsck", "--strict", "--no-dangling", branch, check=False)
    assert fsck.ok, fsck.stdout + fsck.stderr
    files = (await g.out(origin, "ls-tree", "-r", "--name-only", branch)).split()
    assert {"a.txt", "a2.txt", "b.txt"} <= set(files)
    subjects = (await g.out(origin, "log", "--first-parent", "--format=%s", branch)).splitlines()
    merges = [s.split()[3] for s in subjects if s.startswith("taskorch: merge")]
    assert merges == ["b-1", "a-2", "a-1"]


async def test_after_the_base_merge_its_checks_and_the_clean_up_ask_git_nothing_it_said(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The base merge says the base now contains the workflow: the check that it does and the
    clean-up's "which branches are merged" need no ``merge-base``, and the branches and the
    worktrees are read from the repository's files (no ``for-each-ref``, no ``worktree list``
    or ``prune``); git still shows them gone."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt"])
    merge = await workspace.merge_to_base()
    run: list[str] = []
    real = g._run_git

    async def recorded(cwd: Path, *args: str, **kwargs: Any) -> g.GitResult:
        run.append(g._subcommand(args))
        return await real(cwd, *args, **kwargs)

    monkeypatch.setattr(g, "_run_git", recorded)
    assert await workspace.base_contains_workflow() == merge.commit
    await workspace.cleanup(cancelled=False)
    assert {"merge-base", "for-each-ref", "worktree"}.isdisjoint(run), run
    left = await g.out(origin, "for-each-ref", "--format=%(refname)", "refs/heads/")
    assert left.split() == ["refs/heads/main"]
    assert await g.out(origin, "rev-parse", "refs/heads/main") == merge.commit
    left_over = [e for e in await g.worktrees(workspace.repo) if not e.bare]
    assert [workspace.folders.pooled(e.path) for e in left_over] == [True]  # (its spare)
    await spare_pools.empty_all()
    assert [e for e in await g.worktrees(workspace.repo) if not e.bare] == []


async def test_a_workflow_on_a_base_that_stood_still_runs_no_merge_base(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The subtask merges made the workflow's commits on top of the base: the pull request's
    start and the fast-forward into the base follow from that, in the mirror and in the origin
    (a commit is the same everywhere), with no ``merge-base``."""
    origin = bare_origin(tmp_path / "remote")
    started = await g.out(origin, "rev-parse", "refs/heads/main")
    workspace = await workspace_on(tmp_path / "home", origin)
    run: list[str] = []
    real = g._run_git

    async def recorded(cwd: Path, *args: str, **kwargs: Any) -> g.GitResult:
        run.append(g._subcommand(args))
        return await real(cwd, *args, **kwargs)

    monkeypatch.setattr(g, "_run_git", recorded)
    await merged(workspace, "one", ["one.txt"])
    await merged(workspace, "two", ["two.txt"])
    summary = await workspace.pr_summary()
    merge = await workspace.merge_to_base()

    assert "merge-base" not in run, run
    assert summary.base_commit == started
    assert [c.subject for c in summary.commits][-1].startswith("taskorch: merge subtask two")
    assert merge.fast_forward
    assert await g.out(origin, "rev-parse", "refs/heads/main") == merge.commit
    assert await g.succeeds(origin, "merge-base", "--is-ancestor", started, merge.commit)


async def test_landed_merges_read_all_of_ours_and_not_the_history_below_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Fewer merges expected than there are: git is asked again for more. Below them the
    base's own history (every earlier workflow's merges) is not listed: git diffs each merge it
    lists."""
    origin = bare_origin(tmp_path / "remote")
    earlier = await workspace_on(tmp_path / "earlier", origin)
    for n in range(3):
        await merged(earlier, f"old-{n}", [f"old{n}.txt"])
    await earlier.merge_to_base()

    workspace = Workspace(earlier.repo, "wf-2", "main", home=earlier.home, origin=earlier.origin)
    await workspace.start()
    keys = [f"k{n}" for n in range(5)]
    for key in keys:
        await merged(workspace, key, [f"{key}.txt"])
    limits: list[int] = []
    real = g.git

    async def recorded(cwd: Path, *args: str, **kwargs: Any) -> g.GitResult:
        if args[:1] == ("log",):
            limits.append(int(args[args.index("-n") + 1]))
        return await real(cwd, *args, **kwargs)

    monkeypatch.setattr(g, "git", recorded)
    # Read as another process would (the merges made by this object it knows without git).
    reader = Workspace(earlier.repo, "wf-2", "main", home=earlier.home, origin=earlier.origin)
    await reader.start()
    landed = await reader.landed_merges(expected=1)
    assert sorted(landed) == keys
    assert await workspace.landed_merges(expected=1) == landed
    assert landed["k3"][1] == ["k3.txt"]
    assert limits == [3, 12]


async def test_a_mirror_of_a_local_origin_reads_its_objects_in_place(tmp_path: Path) -> None:
    """Git's alternates, as ``clone --shared`` sets them: the mirror names the origin's object
    folder; made before borrowing existed, it is given that (and no maintenance process after
    each commit) when opened again. An origin given as
    a URL is another host's: its mirror keeps objects of its own."""
    origin = bare_origin(tmp_path / "remote")
    home = tmp_path / "home"
    mirror = await remote.mirror(home, Origin(str(origin)))
    alternates = mirror / "objects" / "info" / "alternates"
    assert alternates.read_text() == f"{origin / 'objects'}\n"
    assert remote.borrows(mirror)

    alternates.unlink()  # (a mirror as an earlier taskorch made it, opened by a new process)
    config = mirror / "config"
    config.write_text(config.read_text().replace("[maintenance]\n\tauto = false\n", ""))
    remote._borrowing.clear()
    remote._settled.clear()
    assert not remote.borrows(mirror)
    assert await remote.mirror(home, Origin(str(origin))) == mirror
    assert remote.borrows(mirror)
    main = await g.out(origin, "rev-parse", "refs/heads/main")
    assert await g.out(mirror, "cat-file", "-t", main) == "commit"  # read there, not copied
    assert await g.out(mirror, "config", "maintenance.auto") == "false"

    by_url = await remote.mirror(home, Origin(origin.as_uri()))
    assert not (by_url / "objects" / "info" / "alternates").exists()
    assert not remote.borrows(by_url)


async def test_the_origin_never_needs_the_mirrors_objects(tmp_path: Path) -> None:
    """What the mirror makes reaches the origin by copy: after a merge the origin's own objects
    are complete with the mirror gone."""
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt"])
    await workspace.merge_to_base()
    shutil.rmtree(workspace.repo)
    assert (await g.git(origin, "fsck", "--connectivity-only", check=False)).ok
    assert "one.txt" in await g.out(origin, "ls-tree", "-r", "--name-only", "refs/heads/main")


async def test_taskorchs_branches_in_a_users_repository_make_no_reflogs(tmp_path: Path) -> None:
    """A user's checkout as the origin: the workflow branch comes and goes without a reflog file
    and folder made for it (the base's reflog records the landing as before), and the agent's
    commit in the mirror's worktree starts no maintenance process."""
    origin = tmp_path / "user"
    await g.git(tmp_path, "init", "-q", "-b", "main", str(origin))
    (origin / "README.md").write_text("hello\n")
    await g.git(origin, "add", "README.md")
    await g.git(origin, "commit", "-q", "-m", "first")
    workspace = await workspace_on(tmp_path / "home", origin)
    await merged(workspace, "one", ["one.txt"])
    assert await g.rev(origin, f"refs/heads/{workspace.workflow_branch}") is not None
    assert not (origin / ".git" / "logs" / "refs" / "heads" / "taskorch").exists()

    await workspace.merge_to_base()
    reflog = await g.out(origin, "reflog", "--format=%gs", "refs/heads/main")
    assert reflog.splitlines()[0].startswith("taskorch: merge workflow wf-1")
    assert (origin / "one.txt").is_file()
    assert await g.out(workspace.repo, "config", "maintenance.auto") == "false"
