"""A checkout's cleanliness read from git's index file: a yes only where ``git status`` lists
nothing, a no (ask git) wherever the files do not say enough."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskorch.runtime import index_status

GIT = ["git", "-c", "user.name=t", "-c", "user.email=t@localhost"]


def git(repo: Path, *args: str) -> str:
    return subprocess.run(
        [*GIT, "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout


def status(repo: Path, *, untracked: bool) -> str:
    mode = "--untracked-files=all" if untracked else "--untracked-files=no"
    extra = ["--ignored=matching"] if untracked else []
    # (GIT_OPTIONAL_LOCKS=0: the status must not refresh the index this test reads next)
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    return subprocess.run(
        [*GIT, "-C", str(repo), "status", "--porcelain", mode, *extra],
        check=True, capture_output=True, text=True, env=env,
    ).stdout  # fmt: skip


def committed(tmp_path: Path, files: dict[str, str] | None = None) -> Path:
    repo = tmp_path / "repo"
    git(tmp_path, "init", "-q", "-b", "main", str(repo))
    for name, text in (files or {"README.md": "hello\n", "src/app.py": "print(1)\n"}).items():
        (repo / name).parent.mkdir(parents=True, exist_ok=True)
        (repo / name).write_text(text)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "first")
    _unracy(repo)
    return repo


def _unracy(repo: Path) -> None:
    """The index's time a second on: no entry is racily clean."""
    index = repo / ".git" / "index"
    stamp = index.stat().st_mtime_ns + 1_000_000_000
    os.utime(index, ns=(stamp, stamp))


def _racy(repo: Path) -> None:
    """The index's time set back to its newest entry's: every such entry is racily clean."""
    there = [repo / p for p in git(repo, "ls-files").split() if (repo / p).exists()]
    if not there:
        return
    newest = max(path.stat().st_mtime_ns for path in there)
    os.utime(repo / ".git" / "index", ns=(newest, newest))


def test_a_fresh_commit_is_clean_both_ways(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    assert index_status.clean(repo, untracked=True)
    assert index_status.clean(repo, untracked=False)
    assert status(repo, untracked=True) == ""


def test_a_changed_file_is_not(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    path = repo / "README.md"
    path.write_text("HELLO\n")  # (same size; a second later than recorded)
    later = path.stat().st_mtime_ns + 1_000_000_000
    os.utime(path, ns=(later, later))
    assert not index_status.clean(repo, untracked=False)
    assert status(repo, untracked=False) != ""


def test_untracked_and_ignored_files_count_only_when_asked(tmp_path: Path) -> None:
    repo = committed(tmp_path, {".gitignore": "*.log\n", "a.txt": "a\n"})
    (repo / "build.log").write_text("x\n")
    assert not index_status.clean(repo, untracked=True)
    assert index_status.clean(repo, untracked=False)
    (repo / "build.log").unlink()
    (repo / "deep" / "er").mkdir(parents=True)  # (a folder without files: git lists nothing)
    assert index_status.clean(repo, untracked=True)
    (repo / "deep" / "er" / "new.txt").write_text("n\n")
    assert not index_status.clean(repo, untracked=True)


def test_a_staged_change_is_not(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    (repo / "README.md").write_text("staged\n")
    git(repo, "add", "README.md")
    _unracy(repo)
    assert not index_status.clean(repo, untracked=False)
    assert "M  README.md" in status(repo, untracked=False)


def test_a_racy_entry_is_read_as_git_reads_it(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    _racy(repo)
    assert index_status.clean(repo, untracked=True)  # (the same bytes: git's blob)
    path = repo / "README.md"
    recorded = path.stat().st_mtime_ns
    path.write_text("HELLO\n")  # (same size, and the same time as recorded)
    os.utime(path, ns=(recorded, recorded))
    _racy(repo)
    assert not index_status.clean(repo, untracked=True)
    assert status(repo, untracked=True) != ""


def test_a_racy_entry_under_attributes_is_gits(tmp_path: Path) -> None:
    repo = committed(tmp_path, {".gitattributes": "*.txt ident\n", "a.txt": "$Id$\n"})
    assert index_status.clean(repo, untracked=True)  # (not racy: the stat says it)
    _racy(repo)
    assert not index_status.clean(repo, untracked=True)


def test_a_packed_head_or_a_conflict_is_gits(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    git(repo, "gc", "-q")
    _unracy(repo)
    assert not index_status.clean(repo, untracked=False)
    assert status(repo, untracked=False) == ""


def test_a_linked_worktree_is_read_through_its_git_file(tmp_path: Path) -> None:
    repo = committed(tmp_path)
    linked = tmp_path / "linked"
    git(repo, "worktree", "add", "-q", "-b", "side", str(linked))
    index = repo / ".git" / "worktrees" / "linked" / "index"
    stamp = index.stat().st_mtime_ns + 1_000_000_000
    os.utime(index, ns=(stamp, stamp))
    assert index_status.clean(linked, untracked=True)
    (linked / "src" / "new.py").write_text("x = 1\n")
    assert not index_status.clean(linked, untracked=True)


@pytest.mark.parametrize("version", ["4"])
def test_an_index_of_another_version_is_gits(tmp_path: Path, version: str) -> None:
    repo = committed(tmp_path)
    git(repo, "update-index", "--index-version", version)
    _unracy(repo)
    assert not index_status.clean(repo, untracked=False)


_OPS = st.lists(
    st.tuples(
        st.sampled_from(["write", "same-size", "delete", "add", "commit", "racy", "unracy"]),
        st.sampled_from(["a.txt", "b/c.txt", "b/d.txt", "e.txt"]),
    ),
    max_size=8,
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(ops=_OPS)
def test_a_yes_is_never_a_status_git_would_print(
    tmp_path_factory: pytest.TempPathFactory, ops: list[tuple[str, str]]
) -> None:
    repo = committed(tmp_path_factory.mktemp("r"), {"a.txt": "one\n", "b/c.txt": "two\n"})
    for op, name in ops:
        path = repo / name
        if op == "write":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(f"{name} {len(ops)}\n")
        elif op == "same-size" and path.exists():
            recorded = path.stat().st_mtime_ns
            path.write_bytes(path.read_bytes().upper())
            os.utime(path, ns=(recorded, recorded))
        elif op == "delete" and path.exists():
            path.unlink()
        elif op == "add":
            git(repo, "add", "-A")
        elif op == "commit":
            git(repo, "add", "-A")
            git(repo, "commit", "-q", "--allow-empty", "-m", "more")
        elif op == "racy":
            _racy(repo)
        elif op == "unracy":
            _unracy(repo)
    for untracked in (True, False):
        if index_status.clean(repo, untracked=untracked):
            assert status(repo, untracked=untracked) == "", ops
