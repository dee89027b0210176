"""A clean merge's tree written by taskorch is the tree ``git merge-tree --write-tree`` writes,
byte for byte; wherever git might merge otherwise (a path both sides changed, a deletion where
both changed a folder, a file turned folder, packed trees) taskorch leaves it to git and writes
nothing."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskorch.runtime import loose_objects, tree_merge

Files = dict[str, str | None]


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=check, capture_output=True, text=True
    )


def _out(repo: Path, *args: str) -> str:
    return _git(repo, *args).stdout.strip()


def _commit_on(repo: Path, parent: str, files: Files, message: str) -> str:
    """A commit of ``parent``'s files with ``files`` put in (None: removed, a folder whole)."""
    _git(repo, "checkout", "-q", "-f", "--detach", parent)
    for name, text in files.items():
        path = repo / name
        if path.is_dir():
            subprocess.run(["rm", "-rf", str(path)], check=True)
        elif path.exists():
            path.unlink()
        if text is not None:
            for folder in reversed(path.relative_to(repo).parents):
                if (repo / folder).is_file():
                    (repo / folder).unlink()  # (a file where a folder goes)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _out(repo, "rev-parse", "HEAD")


def _git_merge(repo: Path, one: str, other: str) -> str | None:
    said = _git(repo, "merge-tree", "--write-tree", one, other, check=False)
    return said.stdout.split("\n", 1)[0] if said.returncode == 0 else None


def _ours(repo: Path, base: str, one: str, other: str) -> str | None:
    dirs = loose_objects.object_dirs(repo)
    assert dirs
    trees = [loose_objects.commit_tree(dirs, sha) for sha in (base, one, other)]
    return tree_merge.merged(dirs, *trees)


def _new_repo(repo: Path) -> Path:
    repo.mkdir(parents=True, exist_ok=True)
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@t")
    return repo


BASE: Files = {
    "a.txt": "a\n",
    "b": "b\n",
    "src/app/main.py": "m\n",
    "src/lib.py": "l\n",
    "x/p": "p\n",
    "x.y": "sorts before x/\n",
}


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return _new_repo(tmp_path / "repo")


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"new.txt": "n\n"}, {"src/app/other.py": "o\n"}),
        ({"src/app/main.py": "changed\n"}, {"src/lib.py": "changed too\n"}),
        ({"deep/er/still/f": "1\n"}, {"deep/er/g": "2\n", "x/q": "q\n"}),
        ({"same.txt": "alike\n"}, {"same.txt": "alike\n", "x.z": "z\n"}),
        ({"src/app": None, "moved/main.py": "m\n"}, {"a.txt": "only here\n"}),  # one side alone
        ({"x-/a": "sorts around x/\n"}, {"x/p": "pp\n", "x0": "and after\n"}),
    ],
)
def test_a_clean_merge_is_git_s_own_tree(repo: Path, one: Files, other: Files) -> None:
    base = _commit_on(repo, _root(repo), BASE, "base")
    ours, theirs = _commit_on(repo, base, one, "one"), _commit_on(repo, base, other, "other")
    tree = _ours(repo, base, ours, theirs)
    assert tree is not None
    assert tree == _git_merge(repo, ours, theirs)
    assert _git(repo, "fsck", "--strict", "--no-dangling").returncode == 0


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ({"a.txt": "one\n"}, {"a.txt": "other\n"}),  # both changed a file
        ({"src/lib.py": None}, {"src/app/new.py": "n\n"}),  # a deletion in a folder both changed
        ({"src/app": None, "moved/main.py": "m\n"}, {"src/app/new.py": "n\n"}),  # renamed away
        ({"b": None, "b/inner": "a folder\n"}, {"b": "changed\n"}),  # a file became a folder
        ({"new": "a file\n"}, {"new/inner": "a folder\n"}),  # added as both
        ({"a.txt": None, "c.txt": "a\n"}, {"a.txt": None, "d.txt": "a\n"}),  # renamed twice
        # ... from a folder both changed alike (it keeps a file): git's rename/rename conflict
        ({"src/lib.py": None, "one/lib.py": "l\n"}, {"src/lib.py": None, "two/lib.py": "l\n"}),
        ({"b": None, "b/in": "b\n", "x.z": "1\n"}, {"b": None, "b/in": "b\n", "y.z": "2\n"}),
    ],
)
def test_what_git_might_merge_otherwise_is_left_to_git(
    repo: Path, one: Files, other: Files
) -> None:
    base = _commit_on(repo, _root(repo), BASE, "base")
    ours, theirs = _commit_on(repo, base, one, "one"), _commit_on(repo, base, other, "other")
    objects = _loose_count(repo)
    assert _ours(repo, base, ours, theirs) is None
    assert _loose_count(repo) == objects  # (nothing written)


def test_a_packed_tree_on_the_way_is_left_to_git(repo: Path) -> None:
    base = _commit_on(repo, _root(repo), BASE, "base")
    _git(repo, "gc", "-q")
    ours = _commit_on(repo, base, {"src/one.py": "1\n"}, "one")
    theirs = _commit_on(repo, base, {"src/two.py": "2\n"}, "other")
    with pytest.raises(loose_objects.Unreadable):
        _ours(repo, base, ours, theirs)  # (the base commit itself is packed)
    dirs = loose_objects.object_dirs(repo)
    assert dirs
    trees = [_out(repo, "rev-parse", f"{sha}^{{tree}}") for sha in (base, ours, theirs)]
    assert tree_merge.merged(dirs, *trees) is None


def test_more_folders_than_the_walk_takes_are_left_to_git(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = _commit_on(repo, _root(repo), BASE, "base")
    ours = _commit_on(repo, base, {"d/e/f/one": "1\n"}, "one")
    theirs = _commit_on(repo, base, {"d/e/f/two": "2\n"}, "other")
    monkeypatch.setattr(tree_merge, "WALK", 3)
    assert _ours(repo, base, ours, theirs) is None
    monkeypatch.setattr(tree_merge, "WALK", 4)
    assert _ours(repo, base, ours, theirs) == _git_merge(repo, ours, theirs)


def test_a_sha256_repository(tmp_path: Path) -> None:
    repo = tmp_path / "repo256"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main", "--object-format=sha256")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@t")
    base = _commit_on(repo, _root(repo), BASE, "base")
    ours = _commit_on(repo, base, {"src/one.py": "1\n"}, "one")
    theirs = _commit_on(repo, base, {"src/app/two.py": "2\n"}, "other")
    tree = _ours(repo, base, ours, theirs)
    assert tree is not None
    assert len(tree) == 64
    assert tree == _git_merge(repo, ours, theirs)


PATHS = ["a", "b.txt", "d", "d/x", "d/y", "d/e/z", "d.e", "f/g/h", "f-", "f/i"]
_change = st.dictionaries(
    st.sampled_from(PATHS), st.one_of(st.none(), st.sampled_from(["1\n", "2\n", "3\n"])), max_size=4
)


_moves = st.lists(st.tuples(st.sampled_from(PATHS), st.sampled_from(PATHS)), max_size=2)
"""Renames: each side may move a file of the base elsewhere (git's rename detection finds it)."""


def _moved(base: Files, change: Files, moves: list[tuple[str, str]]) -> Files:
    moved = dict(change)
    for source, target in moves:
        if base.get(source) is not None and source != target:
            moved.update({source: None, target: base[source]})
    return moved


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(base=_change, one=_change, other=_change, one_moves=_moves, other_moves=_moves)
def test_any_merge_taskorch_writes_is_git_s(
    tmp_path_factory: pytest.TempPathFactory,
    base: Files,
    one: Files,
    other: Files,
    one_moves: list[tuple[str, str]],
    other_moves: list[tuple[str, str]],
) -> None:
    repo = _new_repo(tmp_path_factory.mktemp("merge"))
    start = _commit_on(repo, _root(repo), base, "base")
    one, other = _moved(base, one, one_moves), _moved(base, other, other_moves)
    ours, theirs = _commit_on(repo, start, one, "one"), _commit_on(repo, start, other, "other")
    tree = _ours(repo, start, ours, theirs)
    if tree is not None:
        assert tree == _git_merge(repo, ours, theirs)


def _root(repo: Path) -> str:
    """A first commit (so that every later one has a parent to start from)."""
    found = _git(repo, "rev-parse", "-q", "--verify", "refs/heads/root", check=False)
    if found.returncode == 0:
        return found.stdout.strip()
    _git(repo, "commit", "-q", "--allow-empty", "-m", "root")
    _git(repo, "branch", "root")
    return _out(repo, "rev-parse", "HEAD")


def _loose_count(repo: Path) -> int:
    return sum(1 for path in (repo / ".git" / "objects").glob("??/*"))
