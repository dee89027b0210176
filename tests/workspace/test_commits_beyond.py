"""The pull request's commits and merge base from one ``log --boundary``: the same answer as
``merge-base`` and ``log start..head`` give, in every shape of history, with git asked again only
where one boundary commit does not settle it."""

from __future__ import annotations

from pathlib import Path

import pytest

from taskorch.runtime import ancestry, repository
from taskorch.runtime import git as g


async def _commit(repo: Path, message: str, *parents: str) -> str:
    tree = await g.out(repo, "write-tree")
    return await g.out(
        repo, "commit-tree", tree, *[a for p in parents for a in ("-p", p)], "-m", message
    )


@pytest.fixture
async def repo(tmp_path: Path) -> Path:
    await g.git(tmp_path, "init", "-q", "-b", "main")
    return tmp_path


async def _as_git_says(repo: Path, base: str, head: str) -> tuple[str, list[str]]:
    start = await g.out(repo, "merge-base", base, head)
    log = await g.out(repo, "log", "--reverse", "--format=%s", f"{start}..{head}")
    return start, log.splitlines()


async def _both(repo: Path, base: str, head: str) -> tuple[tuple[str, list[str]], ...]:
    ancestry.forget()
    start, commits = await repository._commits_beyond(repo, base, head)
    return (start, [c.subject for c in commits]), await _as_git_says(repo, base, head)


async def test_a_branch_ahead_of_the_base_starts_at_the_base(repo: Path) -> None:
    root = await _commit(repo, "root")
    one = await _commit(repo, "one", root)
    two = await _commit(repo, "two", one)
    ours, gits = await _both(repo, root, two)
    assert ours == gits == (root, ["one", "two"])


async def test_a_branch_and_a_moved_base_meet_at_the_fork(repo: Path) -> None:
    root = await _commit(repo, "root")
    ours_tip = await _commit(repo, "ours", root)
    theirs = await _commit(repo, "theirs", await _commit(repo, "landed", root))
    ours, gits = await _both(repo, theirs, ours_tip)
    assert ours == gits == (root, ["ours"])
    assert ancestry.merge_base(theirs, ours_tip) == root  # (the landing asks no git)


async def test_a_branch_in_the_base_already_starts_at_itself(repo: Path) -> None:
    root = await _commit(repo, "root")
    head = await _commit(repo, "head", root)
    base = await _commit(repo, "later", head)
    ours, gits = await _both(repo, base, head)
    assert ours == gits == (head, [])


async def test_the_base_merged_into_the_branch_moves_the_merge_base(repo: Path) -> None:
    root = await _commit(repo, "root")
    landed = await _commit(repo, "landed", root)
    work = await _commit(repo, "work", root)
    fixup = await _commit(repo, "base merged in", work, landed)
    ours, gits = await _both(repo, landed, fixup)
    assert ours == gits
    assert ours[0] == landed


async def test_criss_cross_histories_ask_merge_base(repo: Path) -> None:
    root = await _commit(repo, "root")
    a, b = await _commit(repo, "a", root), await _commit(repo, "b", root)
    base = await _commit(repo, "base", a, b)
    head = await _commit(repo, "head", b, a)
    ours, gits = await _both(repo, base, head)
    assert ours == gits


async def test_unrelated_histories_are_an_error(repo: Path) -> None:
    one = await _commit(repo, "one")
    other = await _commit(repo, "other")
    ancestry.forget()
    with pytest.raises(g.GitError):
        await repository._commits_beyond(repo, one, other)
