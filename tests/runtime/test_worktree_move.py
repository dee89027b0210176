"""A linked worktree moved by its files as ``git worktree move`` would; the cases left to git."""

from __future__ import annotations

from pathlib import Path

import pytest

from fakes.origins import bare_origin, git
from taskorch.runtime import git as g
from taskorch.runtime.worktree_move import move_checkout


@pytest.fixture
def mirror(tmp_path: Path) -> Path:
    """A bare repository with one linked worktree, ``<tmp>/wt/a``, on branch ``a``."""
    bare = bare_origin(tmp_path)
    git(bare, "worktree", "add", "-q", "-b", "a", str(tmp_path / "wt" / "a"))
    return bare


async def test_a_moved_worktree_is_where_git_lists_it_and_works_there(
    mirror: Path, tmp_path: Path
) -> None:
    source, destination = tmp_path / "wt" / "a", tmp_path / "spare" / "a-1"
    destination.parent.mkdir()
    (source / "new.txt").write_text("uncommitted\n")

    assert move_checkout(source, destination)

    assert not source.exists()
    listed = {e.path: e.branch for e in await g.worktrees(mirror) if not e.bare}
    assert listed == {destination: "a"}
    assert not [e for e in await g.worktrees(mirror) if e.prunable]
    assert "?? new.txt" in git(destination, "status", "--porcelain")
    git(destination, "add", "new.txt")
    git(destination, "commit", "-q", "-m", "from the new place")
    git(mirror, "worktree", "remove", "--force", str(destination))
    assert [e for e in await g.worktrees(mirror) if not e.bare] == []


async def test_the_same_as_git_worktree_move(mirror: Path, tmp_path: Path) -> None:
    git(mirror, "worktree", "add", "-q", "-b", "b", str(tmp_path / "wt" / "b"))
    (tmp_path / "by-git").mkdir()
    (tmp_path / "by-us").mkdir()

    git(mirror, "worktree", "move", str(tmp_path / "wt" / "a"), str(tmp_path / "by-git" / "x"))
    assert move_checkout(tmp_path / "wt" / "b", tmp_path / "by-us" / "x")

    records = sorted((mirror / "worktrees").iterdir())
    written = [(r / "gitdir").read_text() for r in records]
    assert written == [f"{tmp_path}/by-git/x/.git\n", f"{tmp_path}/by-us/x/.git\n"]


def test_a_locked_worktree_is_left_to_git(mirror: Path, tmp_path: Path) -> None:
    git(mirror, "worktree", "lock", str(tmp_path / "wt" / "a"))
    assert not move_checkout(tmp_path / "wt" / "a", tmp_path / "b")
    assert (tmp_path / "wt" / "a").is_dir()


def test_a_destination_that_exists_is_left_to_git(mirror: Path, tmp_path: Path) -> None:
    (tmp_path / "taken").mkdir()
    assert not move_checkout(tmp_path / "wt" / "a", tmp_path / "taken")
    assert not move_checkout(tmp_path / "wt" / "a", tmp_path / "no" / "parent")
    assert (tmp_path / "wt" / "a" / "README.md").is_file()


def test_relative_records_and_main_checkouts_are_left_to_git(mirror: Path, tmp_path: Path) -> None:
    source = tmp_path / "wt" / "a"
    record = Path((source / ".git").read_text().removeprefix("gitdir: ").strip())
    (source / ".git").write_text("gitdir: ../../origin.git/worktrees/a\n")
    assert not move_checkout(source, tmp_path / "b")
    (source / ".git").write_text(f"gitdir: {record}\n")
    (record / "gitdir").write_text("../wt/a/.git\n")
    assert not move_checkout(source, tmp_path / "b")
    git(tmp_path, "clone", "-q", str(mirror), "work")
    assert not move_checkout(tmp_path / "work", tmp_path / "b")  # (its .git is a folder)
    assert source.is_dir()
    assert (tmp_path / "work").is_dir()
