"""What a mirror made, copied into its origin as loose object files: afterwards the origin has
every object of the new commits (``fsck`` says so once a branch points there), each written after
the objects it names; where the files do not say enough (packed objects), nothing is written and
git is asked."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from taskorch.runtime import ancestry, loose_copy


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _has(repo: Path, sha: str) -> bool:
    found = subprocess.run(["git", "-C", str(repo), "cat-file", "-e", sha], capture_output=True)
    return found.returncode == 0


def _commit_files(worktree: Path, files: dict[str, str], message: str) -> str:
    for name, text in files.items():
        (worktree / name).parent.mkdir(parents=True, exist_ok=True)
        (worktree / name).write_text(text)
    _git(worktree, "add", "-A")
    _git(worktree, "commit", "-q", "-m", message)
    return _git(worktree, "rev-parse", "HEAD")


@pytest.fixture
def pair(tmp_path: Path) -> tuple[Path, Path]:
    """An origin with some history (packed, as a user's repository is after gc) and a mirror
    that borrows its objects, as taskorch's mirror of a repository on this disk does."""
    files = {"README.md": "hello\n", "src/app/main.py": "print(1)\n"}
    origin, mirror = _origin_and_mirror(tmp_path, files)
    ancestry.forget()
    return origin, mirror


def _origin_and_mirror(
    tmp_path: Path, files: dict[str, str], *init: str, gc: bool = True
) -> tuple[Path, Path]:
    origin, mirror = tmp_path / "origin", tmp_path / "mirror"
    _git(tmp_path, "init", "-q", "-b", "main", *init, str(origin))
    _git(origin, "config", "user.name", "t")
    _git(origin, "config", "user.email", "t@t")
    _commit_files(origin, files, "start")
    if gc:
        _git(origin, "gc", "-q")
    _git(tmp_path, "clone", "-q", "--shared", str(origin), str(mirror))
    _git(mirror, "config", "user.name", "t")
    _git(mirror, "config", "user.email", "t@t")
    return origin, mirror


def _agent_commit(mirror: Path, files: dict[str, str]) -> tuple[str, str]:
    """An agent's commit of ``files`` in the mirror: (the commit it was made on, its own)."""
    base = _git(mirror, "rev-parse", "HEAD")
    return base, _commit_files(mirror, files, "agent")


def _land(origin: Path, tip: str) -> None:
    _git(origin, "update-ref", "refs/heads/taskorch/wf", tip)
    _git(origin, "fsck", "--strict", "--no-dangling")


def test_a_change_in_a_subfolder_reaches_the_origin_whole(pair: tuple[Path, Path]) -> None:
    origin, mirror = pair
    files = {"src/app/main.py": "print(2)\n", "src/app/new/util.py": "x = 1\n"}
    base, tip = _agent_commit(mirror, files)
    assert not _has(origin, tip)
    assert loose_copy.copy(mirror, origin, [tip], [base])
    assert _has(origin, tip)
    _land(origin, tip)
    assert _git(origin, "show", f"{tip}:src/app/new/util.py") == "x = 1"


def test_each_object_is_written_after_those_it_names(pair: tuple[Path, Path]) -> None:
    origin, mirror = pair
    base = _git(mirror, "rev-parse", "HEAD")
    first = _commit_files(mirror, {"a/b/c.txt": "1\n"}, "one")
    tip = _commit_files(mirror, {"a/b/d.txt": "2\n"}, "two")
    objects = ref_common(mirror) / "objects"
    walk = loose_copy._Walk(objects, ref_common(origin) / "objects", {base})
    walk.commit(tip)
    order = walk.order
    assert order[-1] == tip
    assert order.index(first) < order.index(tip)
    for at, sha in enumerate(order):
        kind = _git(mirror, "cat-file", "-t", sha)
        if kind == "commit":
            named = [_git(mirror, "rev-parse", f"{sha}^{{tree}}"), *_parents(mirror, sha)]
        elif kind == "tree":
            named = [line.split()[2] for line in _git(mirror, "ls-tree", sha).splitlines()]
        else:
            named = []
        assert all(n not in order[at:] for n in named), f"{kind} {sha} before what it names"


def test_only_what_changed_is_walked(pair: tuple[Path, Path]) -> None:
    """Entries the same as in the known parent's tree are the origin's already: a tree of many
    files is not walked file by file."""
    origin, mirror = pair
    many = {f"notes/n{i}.md": f"{i}\n" for i in range(400)}
    base = _commit_files(mirror, many, "many files")
    start = _git(mirror, "rev-parse", "HEAD~1")
    assert not loose_copy.copy(mirror, origin, [base], [start])  # over WALK objects: git's
    _git(mirror, "push", "-q", "origin", f"{base}:refs/heads/taskorch/wf")
    tip = _commit_files(mirror, {"notes/n7.md": "changed\n"}, "one more")
    walk = loose_copy._Walk(ref_common(mirror) / "objects", ref_common(origin) / "objects", {base})
    walk.commit(tip)
    assert len(walk.order) == 4  # the blob, notes/, the root tree, the commit
    assert loose_copy.copy(mirror, origin, [tip], [base])
    _land(origin, tip)


def test_a_merge_of_a_subtask_made_on_an_older_tip(pair: tuple[Path, Path]) -> None:
    """The workflow branch moved on while the subtask ran: the merge commit's tree is new, and
    the subtask's own commit sits on a commit the origin has through ancestry facts."""
    origin, mirror = pair
    start = _git(mirror, "rev-parse", "HEAD")
    _git(mirror, "checkout", "-q", "-b", "sub")
    sub = _commit_files(mirror, {"sub.txt": "s\n"}, "subtask")
    _git(mirror, "checkout", "-q", "main")
    moved = _commit_files(mirror, {"other.txt": "o\n"}, "another subtask")
    assert loose_copy.copy(mirror, origin, [moved], [start])
    _land(origin, moved)
    ancestry.note(start, moved)
    _git(mirror, "merge", "-q", "--no-ff", "-m", "merge sub", "sub")
    merge = _git(mirror, "rev-parse", "HEAD")
    assert loose_copy.copy(mirror, origin, [merge], [moved])
    assert _has(origin, sub)
    _land(origin, merge)


def test_packed_objects_leave_it_to_git_and_nothing_is_written(
    pair: tuple[Path, Path],
) -> None:
    origin, mirror = pair
    base, tip = _agent_commit(mirror, {"packed.txt": "p\n"})
    _git(mirror, "repack", "-q", "-d")  # the mirror's own objects now in a pack of its own
    before = sorted(p.name for p in (ref_common(origin) / "objects").rglob("*"))
    assert not loose_copy.copy(mirror, origin, [tip], [base])
    assert sorted(p.name for p in (ref_common(origin) / "objects").rglob("*")) == before


def test_a_commit_the_origin_is_not_known_to_have_leaves_it_to_git(
    pair: tuple[Path, Path],
) -> None:
    origin, mirror = pair
    base, tip = _agent_commit(mirror, {"x.txt": "x\n"})
    assert not loose_copy.copy(mirror, origin, [tip], [])  # nothing known: the walk hits base
    assert loose_copy.copy(mirror, origin, [tip], [base])
    assert loose_copy.copy(mirror, origin, [tip], [base])  # again: all there already
    _land(origin, tip)


def ref_common(repo: Path) -> Path:
    return Path(_git(repo, "rev-parse", "--path-format=absolute", "--git-common-dir"))


def _parents(repo: Path, sha: str) -> list[str]:
    return _git(repo, "rev-parse", f"{sha}^@").split()


async def test_a_sha256_repository_reads_writes_and_copies_the_same_way(tmp_path: Path) -> None:
    """Ids of 64 hex digits, tree entries of 32 bytes: the changed files, a merge commit as
    taskorch's ``commit-tree`` writes it, and its copy into the origin, which ``fsck`` finds
    whole."""
    from taskorch.runtime import commit_objects, loose_objects
    from taskorch.runtime import git as g

    init = "--object-format=sha256"
    origin, mirror = _origin_and_mirror(tmp_path, {"a.txt": "a\n"}, init, gc=False)
    base, tip = _agent_commit(mirror, {"d/b.txt": "b\n"})
    assert len(tip) == 64
    assert loose_objects.changed_paths(mirror, base, tip) == ["d/b.txt"]
    merge = await commit_objects.write_commit(mirror, f"{tip}^{{tree}}", [base, tip], "merge")
    assert merge is not None
    assert await g.out(mirror, "cat-file", "-t", merge) == "commit"
    assert loose_copy.copy(mirror, origin, [merge], [base])
    _land(origin, merge)


async def test_a_shared_or_flushed_origin_is_left_to_git(
    pair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``core.sharedRepository`` (git gives what it writes the group's permissions) or
    ``core.fsync`` (git may flush loose objects to disk), in the repository's configuration or
    the global one: git writes there."""
    from taskorch.runtime import commit_objects

    origin, _ = pair
    assert await commit_objects.writes_allowed(origin)
    for key, value in (("core.sharedRepository", "group"), ("core.fsync", "loose-object")):
        _git(origin, "config", key, value)
        commit_objects._identities.clear()
        assert not await commit_objects.writes_allowed(origin)
        _git(origin, "config", "--unset", key)
    globally = tmp_path / "global.gitconfig"
    globally.write_text("[core]\n\tfsyncObjectFiles = true\n")
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", str(globally))
    commit_objects._identities.clear()
    assert not await commit_objects.writes_allowed(origin)
