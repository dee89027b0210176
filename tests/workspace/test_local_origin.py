"""A workflow's repository given as a path on this host: the mirror reads the origin's branches
directly and fetches only when they moved; the merges' files are read in one pass."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes.origins import bare_origin
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.errors import HostError
from taskorch.runtime import remote
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


async def test_a_host_fetches_only_when_the_local_origin_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    origin = bare_origin(tmp_path / "remote")
    host_a = await workspace_on(tmp_path / "a", origin)
    host_b = await workspace_on(tmp_path / "b", origin)
    fetches: list[tuple[str, ...]] = []
    real_fetch = remote.fetch

    async def counted(repo: Path, *patterns: str) -> None:
        fetches.append(patterns)
        await real_fetch(repo, *patterns)

    monkeypatch.setattr(remote, "fetch", counted)

    await merged(host_a, "a-1", ["a.txt"])
    assert await host_b.is_merged("a-1")  # the origin moved: host B fetched it
    seen = len(fetches)
    assert seen >= 1
    assert await host_b.is_merged("a-1")
    assert not await host_b.is_merged("a-2")
    assert len(fetches) == seen  # nothing moved since: no fetch

    await merged(host_a, "a-2", ["b.txt"])
    assert await host_b.is_merged("a-2")
    assert len(fetches) == seen + 1


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
