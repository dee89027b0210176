"""The linked worktrees read from the repository's own files, as ``git worktree list`` gives them,
and the records of gone ones deleted as ``git worktree prune`` would."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fakes.origins import git
from taskorch.runtime import git as g
from taskorch.runtime import ref_files, worktree_admin


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A bare repository with worktrees: two on branches, a detached one, a locked one, and one
    whose folder was deleted."""
    work = tmp_path / "work"
    work.mkdir()
    git(work, "init", "-q", "-b", "main")
    git(work, "commit", "-q", "--allow-empty", "-m", "init")
    bare = tmp_path / "mirror.git"
    git(tmp_path, "clone", "-q", "--bare", str(work), str(bare))
    root = tmp_path / "worktrees" / "wf-1"
    git(bare, "worktree", "add", "-q", "-b", "taskorch/wf-1/main", str(root / "workflow"))
    git(bare, "worktree", "add", "-q", "-b", "taskorch/wf-1/sub/a", str(root / "a"))
    git(bare, "worktree", "add", "-q", "--detach", str(root / "detached"))
    git(bare, "worktree", "add", "-q", "-b", "other", str(tmp_path / "elsewhere"))
    git(bare, "worktree", "add", "-q", "-b", "taskorch/wf-1/sub/b", str(root / "locked"))
    git(bare, "worktree", "lock", str(root / "locked"))
    shutil.rmtree(root / "a")
    return bare


async def test_the_files_list_what_git_lists(mirror: Path) -> None:
    from_git = [e for e in await g.worktrees(mirror) if not e.bare]
    from_files = worktree_admin.linked_worktrees(mirror)
    assert from_files is not None
    assert sorted(from_files, key=str) == sorted(from_git, key=str)
    assert len(from_git) == 5
    assert any(e.prunable for e in from_git)
    assert any(e.branch is None for e in from_git)


async def test_only_the_wanted_worktrees_are_given(
    mirror: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A caller that wants some (the clean-up: its workflow's) gets those, the same entries,
    and only their branches' tips are read."""
    read: list[tuple[str, ...]] = []
    real = ref_files.read_refs

    def reading(cwd: Path, names: tuple[str, ...]) -> dict[str, str] | None:
        read.append(names)
        return real(cwd, names)

    monkeypatch.setattr(ref_files, "read_refs", reading)
    every = worktree_admin.linked_worktrees(mirror)
    assert every is not None
    read.clear()

    def wanted(path: Path, branch: str | None) -> bool:
        return branch is not None and branch.startswith("taskorch/wf-1/")

    some = worktree_admin.linked_worktrees(mirror, wanted)
    assert some == [e for e in every if wanted(e.path, e.branch)]
    assert len(some or []) == 3
    assert sorted(read) == sorted((f"refs/heads/{e.branch}",) for e in some or [])


async def test_gone_worktrees_under_a_folder_are_forgotten_as_prune_would(
    mirror: Path, tmp_path: Path
) -> None:
    root = tmp_path / "worktrees" / "wf-1"
    shutil.rmtree(root)

    assert worktree_admin.forget_gone(mirror, root)

    left = {e.path.name for e in await g.worktrees(mirror) if not e.bare}
    assert left == {"elsewhere", "locked"}  # (outside the folder; locked: prune keeps it too)
    assert not [e for e in await g.worktrees(mirror) if e.prunable and e.path.name != "locked"]


async def test_a_record_it_cannot_read_is_left_togit(mirror: Path, tmp_path: Path) -> None:
    half_added = mirror / "worktrees" / "half"
    half_added.mkdir()
    (half_added / "gitdir").write_text("")  # (a worktree add killed half-way)
    assert worktree_admin.linked_worktrees(mirror) is None
    assert not worktree_admin.forget_gone(mirror, tmp_path / "worktrees")
