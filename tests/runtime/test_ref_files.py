"""Branches read from a repository's files say what ``for-each-ref`` says, loose or packed, from
the top of a repository, a linked worktree or a bare one; where they cannot (a subfolder, a
symbolic ref, a repository that is gone) git is asked."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from taskorch.runtime import git as g
from taskorch.runtime.ref_files import read_matching, read_refs

NAMES = ("refs/heads/main", "refs/heads/a", "refs/heads/a/b", "refs/remotes/origin/a", "refs/x")
REFS_CHANGED = (
    *("refs/heads/main", "refs/heads/a/b", "refs/heads/a/c/d", "refs/heads/main/x"),
    *("refs/heads/mainly", "refs/remotes/origin/a", "refs/x"),
)
PATTERNS = ("refs/heads/a/", "refs/heads/main", "refs/remotes/", "refs/x")


def run(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def for_each_ref(cwd: Path, names: tuple[str, ...]) -> dict[str, str]:
    listed = run(cwd, "for-each-ref", "--format=%(objectname) %(refname)", *names)
    found = {}
    for line in listed.splitlines():
        sha, name = line.split(" ", 1)
        found[name] = sha
    return {name: found[name] for name in names if name in found}


def repository(folder: Path, *, bare: bool = False) -> tuple[Path, list[str]]:
    folder.mkdir()
    run(folder, "init", "-q", "-b", "main", *(["--bare"] if bare else []))
    commits: list[str] = []
    for n in range(3):
        tree = run(folder, "mktree")
        commit = subprocess.run(
            ["git", "commit-tree", tree, "-m", str(n), *(["-p", commits[-1]] if commits else [])],
            cwd=folder, check=True, capture_output=True, text=True,
            env={"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                 "GIT_COMMITTER_EMAIL": "t@t", "PATH": "/usr/bin:/bin"},
        ).stdout.strip()  # fmt: skip
        commits.append(commit)
    return folder, commits


OPS = st.lists(
    st.tuples(
        st.sampled_from(["set", "delete", "pack"]),
        st.sampled_from(REFS_CHANGED),
        st.integers(0, 2),
    ),
    max_size=8,
)


@settings(max_examples=25, deadline=None)
@given(ops=OPS)
def test_loose_and_packed_refs_read_as_git_reads_them(ops: list[tuple[str, str, int]]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        repo, commits = repository(Path(folder) / "r")
        run(repo, "update-ref", "refs/heads/main", commits[0])
        for op, name, n in ops:
            # (set and delete are refused when a ref is in the way, as main is of main/x)
            if op == "set":
                subprocess.run(["git", "update-ref", name, commits[n]], cwd=repo, check=False)
            elif op == "delete":
                subprocess.run(["git", "update-ref", "-d", name], cwd=repo, check=False)
            else:
                run(repo, "pack-refs", "--all", *(["--prune"] if n else ["--no-prune"]))
            assert read_refs(repo, NAMES) == for_each_ref(repo, NAMES)
            assert read_matching(repo, PATTERNS) == listed(repo, PATTERNS)


def listed(cwd: Path, patterns: tuple[str, ...]) -> dict[str, str]:
    out = run(cwd, "for-each-ref", "--format=%(objectname) %(refname)", *patterns)
    return {name: sha for sha, name in (line.split(" ", 1) for line in out.splitlines())}


async def test_matching_refs_skip_a_lock_and_leave_wildcards_to_git(tmp_path: Path) -> None:
    repo, commits = repository(tmp_path / "r")
    run(repo, "update-ref", "refs/heads/t/a", commits[0])
    (repo / ".git/refs/heads/t/b.lock").write_text(commits[1] + "\n")  # a ref being made
    assert read_matching(repo, ("refs/heads/t/",)) == {"refs/heads/t/a": commits[0]}
    assert read_matching(repo, ("refs/heads/t/*",)) is None
    assert read_matching(repo, ("refs/heads/../x",)) is None
    assert await g.matching_refs(repo, "refs/heads/t/*") == {"refs/heads/t/a": commits[0]}
    assert await g.branches(repo, "t/") == {"t/a": commits[0]}


async def test_a_linked_worktree_and_a_bare_repository_read_the_shared_refs(
    tmp_path: Path,
) -> None:
    repo, commits = repository(tmp_path / "r")
    run(repo, "update-ref", "refs/heads/main", commits[1])
    run(repo, "update-ref", "refs/heads/side", commits[2])
    run(repo, "worktree", "add", "-q", str(tmp_path / "wt"), "side")
    run(repo, "pack-refs", "--all")
    names = ("refs/heads/main", "refs/heads/side")
    assert read_refs(tmp_path / "wt", names) == {names[0]: commits[1], names[1]: commits[2]}

    bare = tmp_path / "bare.git"
    run(tmp_path, "clone", "-q", "--bare", str(repo), str(bare))
    assert read_refs(bare, names) == for_each_ref(bare, names)
    assert await g.refs(bare, *names) == {names[0]: commits[1], names[1]: commits[2]}


async def test_where_the_files_cannot_say_git_is_asked(tmp_path: Path) -> None:
    repo, commits = repository(tmp_path / "r")
    run(repo, "update-ref", "refs/heads/main", commits[0])
    (repo / "sub").mkdir()
    assert read_refs(repo / "sub", ("refs/heads/main",)) is None  # not the top
    assert await g.refs(repo / "sub", "refs/heads/main") == {"refs/heads/main": commits[0]}

    run(repo, "symbolic-ref", "refs/heads/alias", "refs/heads/main")
    assert read_refs(repo, ("refs/heads/alias",)) is None
    assert read_refs(repo, ("HEAD",)) is None

    assert read_refs(repo, ("refs/heads/main",)) == {"refs/heads/main": commits[0]}
    shutil.rmtree(repo)
    assert read_refs(repo, ("refs/heads/main",)) is None  # gone: git says what happened
