"""taskorch's merge commits written by itself are the commits its ``git commit-tree`` writes
(taskorch's identity, never signed): with the dates fixed, the very same id; without, the same
identity, now, and a repository ``fsck`` finds whole. Where commit-tree would re-encode, or
cannot find the tree or a parent, git writes."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from taskorch.runtime import commit_objects
from taskorch.runtime import git as g

MESSAGE = "taskorch: merge subtask one into taskorch/wf-1/main\n\nTaskorch-Subtask: one"


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.name", "Ada Lovelace")
    _git(tmp_path, "config", "user.email", "ada@example.com")
    (tmp_path / "a.txt").write_text("a\n")
    _git(tmp_path, "add", "a.txt")
    _git(tmp_path, "commit", "-q", "-m", "base")
    (tmp_path / "b.txt").write_text("b\n")
    _git(tmp_path, "add", "b.txt")
    _git(tmp_path, "commit", "-q", "-m", "side")
    commit_objects._identities.clear()
    return tmp_path


async def test_with_fixed_dates_the_id_is_the_one_git_writes(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2024-05-01T10:00:00+0200")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2024-05-02T11:30:00-0500")
    base, side = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    tree = _git(repo, "rev-parse", "HEAD^{tree}")
    written = await commit_objects.write_commit(repo, tree, [base, side], MESSAGE)
    by_git = await g.out(repo, "commit-tree", tree, "-p", base, "-p", side, "-m", MESSAGE)
    assert written == by_git
    _git(repo, "config", "commit.gpgSign", "true")  # (taskorch's commits are never signed)
    commit_objects._identities.clear()
    assert await commit_objects.write_commit(repo, tree, [base, side], MESSAGE) == by_git
    tree_ish = await commit_objects.write_commit(repo, f"{side}^{{tree}}", [base, side], MESSAGE)
    assert tree_ish == by_git


async def test_now_it_is_git_s_identity_at_the_local_time(repo: Path) -> None:
    base, side = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    written = await commit_objects.write_commit(repo, f"{side}^{{tree}}", [base, side], MESSAGE)
    assert written is not None
    _git(repo, "update-ref", "refs/heads/merged", written)
    _git(repo, "fsck", "--strict", "--no-dangling")
    fields = _git(
        repo, "log", "-1", "--format=%an <%ae>|%cn <%ce>|%ad|%P|%B", "--date=raw", written
    )
    author, committer, date, parents, body = fields.split("|", 4)
    assert author == committer == "taskorch <taskorch@localhost>"
    assert parents.split() == [base, side]
    assert body.strip() == MESSAGE
    assert date.split()[1] == _git(repo, "log", "-1", "--format=%ad", "--date=raw").split()[1]


async def test_where_commit_tree_would_do_more_git_writes(repo: Path) -> None:
    base, side = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    tree = _git(repo, "rev-parse", "HEAD^{tree}")
    _git(repo, "config", "i18n.commitEncoding", "ISO-8859-1")
    commit_objects._identities.clear()
    assert await commit_objects.write_commit(repo, tree, [base, side], MESSAGE) is None
    _git(repo, "config", "--unset", "i18n.commitEncoding")
    _git(repo, "config", "core.sharedRepository", "group")
    commit_objects._identities.clear()
    assert await commit_objects.write_commit(repo, tree, [base, side], MESSAGE) is None
    _git(repo, "config", "--unset", "core.sharedRepository")
    commit_objects._identities.clear()
    assert await commit_objects.write_commit(repo, "f" * 40, [base, side], MESSAGE) is None
    assert await commit_objects.write_commit(repo, tree, [base, "e" * 40], MESSAGE) is None


async def test_packed_trees_and_parents_are_found_by_their_pack_index(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_AUTHOR_DATE", "2024-05-01T10:00:00+0200")
    monkeypatch.setenv("GIT_COMMITTER_DATE", "2024-05-01T10:00:00+0200")
    _git(repo, "gc", "-q")
    base, side = _git(repo, "rev-parse", "HEAD~1"), _git(repo, "rev-parse", "HEAD")
    tree = _git(repo, "rev-parse", "HEAD^{tree}")
    written = await commit_objects.write_commit(repo, tree, [base, side], MESSAGE)
    by_git = await g.out(repo, "commit-tree", tree, "-p", base, "-p", side, "-m", MESSAGE)
    assert written == by_git
