"""A workflow's repository by URL: this host's mirror of it, pushes with a lease, two hosts (two
homes) merging into one workflow branch, and the repairs a kill makes necessary."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fakes.origins import bare_origin, files_on, tip, url
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.errors import HostError, InputError
from taskorch.runtime import remote
from taskorch.runtime.remote import Origin, is_url, parse_origin
from taskorch.runtime.workspace import MergeStatus, Workspace

from .conftest import git, noop, sim_task


@pytest.mark.parametrize(
    ("text", "url"),
    [
        ("file:///srv/app.git", True),
        ("ssh://git@host/app.git", True),
        ("git@github.com:acme/app.git", True),
        ("https://example.com/app.git", True),
        ("git://127.0.0.1:9418/app.git", True),
        ("/srv/app", False),
        ("./app", False),
        ("relative/dir:with-colon", False),
    ],
)
def test_urls_and_paths_are_told_apart(text: str, url: bool) -> None:
    assert is_url(text) is url


def test_a_path_is_made_absolute_and_a_url_kept_as_given(tmp_path: Path) -> None:
    assert parse_origin("app").url == str(Path("app").absolute())
    assert parse_origin(" file:///srv/app.git ").url == "file:///srv/app.git"
    assert parse_origin("file:///srv/app.git").path is None


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("https://bob:hunter2@example.com/app.git", "carries a password"),
        ("ftp://example.com/app.git", "unknown scheme 'ftp'"),
        ("   ", "repository is empty"),
    ],
)
def test_bad_repository_urls_are_one_line_errors(text: str, says: str) -> None:
    with pytest.raises(InputError, match=says) as caught:
        parse_origin(text)
    assert "\n" not in caught.value.message
    assert "hunter2" not in caught.value.message


async def test_the_base_branch_is_the_remotes_head_unless_named(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path, "develop")
    found = Origin(url(origin))
    assert await remote.remote_base(found, tmp_path) == "main"
    assert await remote.remote_base(found, tmp_path, "develop") == "develop"
    with pytest.raises(Exception, match="base branch 'nope' does not exist"):
        await remote.remote_base(found, tmp_path, "nope")


async def test_an_unreachable_repository_is_a_host_error(tmp_path: Path) -> None:
    with pytest.raises(HostError, match="ls-remote failed"):
        await remote.remote_base(Origin((tmp_path / "gone.git").as_uri()), tmp_path)


async def test_a_push_with_a_stale_lease_is_refused_not_forced(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path)
    mirror = await remote.mirror(tmp_path / "home", Origin(url(origin)))
    async with remote.mirror_lock(mirror):
        await remote.fetch(mirror, "main")
    first = tip(origin)
    second = git(mirror, "commit-tree", f"{first}^{{tree}}", "-p", first, "-m", "second")
    assert await remote.push(mirror, {"topic": first}, {"topic": None})
    assert not await remote.push(mirror, {"topic": second}, {"topic": None})  # exists now
    assert not await remote.push(mirror, {"main": second}, {"main": second})  # main moved?
    assert tip(origin) == first  # refused, never forced
    assert await remote.push(mirror, {"main": second}, {"main": first})
    assert tip(origin) == second
    assert not await remote.push(mirror, {"topic": None}, {"topic": second})
    assert await remote.push(mirror, {"topic": None}, {"topic": first})
    assert "topic" not in git(origin, "branch", "--list")


async def workspace_on(home: Path, origin: Path, workflow_id: str = "wf-1") -> Workspace:
    found = Origin(url(origin))
    mirror = await remote.mirror(home, found)
    workspace = Workspace(mirror, workflow_id, "main", home=home, origin=found)
    await workspace.start()
    return workspace


async def run_sim(workspace: Workspace, key: str, files: list[str]) -> None:
    path = await workspace.prepare_subtask(key)
    task = sim_task(key, files, workdir=path, workflow_id=workspace.workflow_id)
    await SimWorktreeAgent().run(task, noop)


async def test_two_hosts_merge_into_one_workflow_branch_and_land_it_on_the_remote(
    tmp_path: Path,
) -> None:
    origin = bare_origin(tmp_path / "remote")
    before = tip(origin)
    host_a = await workspace_on(tmp_path / "a", origin)
    host_b = await workspace_on(tmp_path / "b", origin)
    assert host_a.repo != host_b.repo  # each host its own mirror

    # Both finish a subtask at once; each merge is pushed with a lease, the later one refused
    # once, refetched and merged onto the other's.
    await asyncio.gather(run_sim(host_a, "a-1", ["a.txt"]), run_sim(host_b, "b-1", ["b.txt"]))
    merged = await asyncio.gather(host_a.merge_subtask("a-1"), host_b.merge_subtask("b-1"))
    assert [m.status for m in merged] == [MergeStatus.MERGED, MergeStatus.MERGED]
    branch = "taskorch/wf-1/main"
    assert {"a.txt", "b.txt"} <= set(files_on(origin, branch))
    assert tip(origin) == before  # the base branch is not touched before the end

    # Host B sees host A's merge: it is on the remote, not only on A's disk.
    assert await host_b.is_merged("a-1")
    assert await host_b.landed_merges() == await host_a.landed_merges()

    landed = await host_b.merge_to_base()
    assert not landed.already_merged
    assert tip(origin) == landed.commit
    assert {"a.txt", "b.txt"} <= set(files_on(origin))
    assert await host_a.base_contains_workflow() == landed.commit
    assert (await host_a.merge_to_base()).already_merged  # a re-run changes nothing

    await host_a.cleanup(cancelled=False)
    assert "taskorch/" not in git(origin, "branch", "--list")  # merged branches are gone


async def test_a_final_merge_that_conflicts_is_seen_in_validation_and_merged_by_a_fixup(
    tmp_path: Path,
) -> None:
    origin = bare_origin(tmp_path / "remote")
    first = await workspace_on(tmp_path / "a", origin, "wf-1")
    second = await workspace_on(tmp_path / "b", origin, "wf-2")
    await run_sim(first, "edit-1", ["README.md"])
    await run_sim(second, "edit-2", ["README.md"])
    await first.merge_subtask("edit-1")
    await second.merge_subtask("edit-2")
    await first.merge_to_base()

    await second.refresh()
    assert await second.base_conflicts() == ["README.md"]
    path = await second.prepare_subtask("fix-1", merge_base=True)
    assert "<<<<<<< " in (path / "README.md").read_text()
    task = sim_task("fix-1", ["README.md"], workdir=path, workflow_id="wf-2")
    await SimWorktreeAgent().run(task, noop)  # keeps both sides, drops the markers
    assert await second.conflict_markers("fix-1") == []
    assert (await second.merge_subtask("fix-1")).status is MergeStatus.MERGED
    assert await second.base_conflicts() == []
    landed = await second.merge_to_base()
    readme = git(origin, "show", f"{landed.commit}:README.md")
    assert "edit-1" in readme
    assert "edit-2" in readme
    assert "<<<<<<<" not in readme


async def test_a_worktree_whose_creation_was_killed_does_not_break_fetching(
    tmp_path: Path,
) -> None:
    origin = bare_origin(tmp_path / "remote")
    workspace = await workspace_on(tmp_path / "a", origin)
    path = await workspace.prepare_subtask("s-1")
    admin = Path(git(path, "rev-parse", "--absolute-git-dir"))
    (admin / "HEAD").write_text("0" * 40 + "\n")  # as `git worktree add` leaves it, killed
    (admin / "locked").write_text("initializing\n")
    async with remote.mirror_lock(workspace.repo):
        await remote.fetch(workspace.repo, "main", "taskorch/wf-1/*")
    assert not await asyncio.to_thread(admin.exists)
    assert not await asyncio.to_thread(path.exists)
    assert await workspace.prepare_subtask("s-1") == path  # and the subtask can start afresh
