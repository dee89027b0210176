"""The paths two commits' trees differ in, read from loose objects, are what ``git diff
--name-only --no-renames`` lists, in its order; packed trees on a changed path say nothing (git
is asked)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from taskorch.runtime import loose_objects


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _git_says(repo: Path, one: str, other: str) -> list[str]:
    raw = _git(repo, "diff", "--name-only", "--no-renames", "-z", one, other)
    return [name for name in raw.split("\0") if name]


def _snapshot(repo: Path, files: dict[str, str | None], message: str) -> str:
    for name, text in files.items():
        path = repo / name
        if text is None:
            if path.is_dir():
                subprocess.run(["rm", "-rf", str(path)], check=True)
            else:
                path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.name", "t")
    _git(tmp_path, "config", "user.email", "t@t")
    return tmp_path


CHANGES: list[dict[str, str | None]] = [
    {"a.txt": "changed\n"},
    {"new/deep/file.py": "x\n", "z.txt": "z\n"},
    {"src/app/main.py": None},  # a deletion
    {"src": None, "src-old/a.py": "moved\n"},  # a folder gone, a neighbour that sorts near it
    {"b": None, "b/inner.txt": "a file became a folder\n"},
    {"x.y/z": "sorts before x/ in a tree\n", "x/q": "and after\n"},
    {},  # nothing changed
]


@pytest.mark.parametrize("change", CHANGES)
def test_changed_paths_are_what_git_lists(repo: Path, change: dict[str, str | None]) -> None:
    base = _snapshot(
        repo,
        {"a.txt": "a\n", "b": "b\n", "src/app/main.py": "m\n", "src/lib.py": "l\n", "x/p": "p"},
        "base",
    )
    tip = _snapshot(repo, change, "change")
    said = loose_objects.changed_paths(repo, base, tip)
    assert said == _git_says(repo, base, tip)
    assert loose_objects.changed_paths(repo, tip, base) == _git_says(repo, tip, base)


def test_a_mode_change_is_a_change(repo: Path) -> None:
    base = _snapshot(repo, {"run.sh": "echo\n"}, "base")
    os.chmod(repo / "run.sh", 0o755)
    tip = _snapshot(repo, {}, "executable")
    assert loose_objects.changed_paths(repo, base, tip) == ["run.sh"] == _git_says(repo, base, tip)


def test_packed_trees_on_a_changed_path_say_nothing(repo: Path) -> None:
    base = _snapshot(repo, {"docs/a.md": "a\n"}, "base")
    _git(repo, "gc", "-q")  # the base's trees are packed now
    tip = _snapshot(repo, {"docs/b.md": "b\n"}, "tip")
    assert loose_objects.changed_paths(repo, base, tip) is None
    assert loose_objects.changed_paths(repo, base, "not a commit") is None


def test_objects_borrowed_through_alternates_are_read(tmp_path: Path) -> None:
    origin, mirror = tmp_path / "origin", tmp_path / "mirror"
    _git(tmp_path, "init", "-q", "-b", "main", str(origin))
    _git(origin, "config", "user.name", "t")
    _git(origin, "config", "user.email", "t@t")
    base = _snapshot(origin, {"a.txt": "a\n"}, "base")
    _git(tmp_path, "clone", "-q", "--shared", str(origin), str(mirror))
    _git(mirror, "config", "user.name", "t")
    _git(mirror, "config", "user.email", "t@t")
    tip = _snapshot(mirror, {"b.txt": "b\n"}, "tip")
    assert not (mirror / ".git" / "objects" / base[:2] / base[2:]).exists()
    assert loose_objects.changed_paths(mirror, base, tip) == ["b.txt"]


MESSAGES = [
    b"one line\n\nbody\n",
    b"first\nsecond\n\nbody\n",  # (git joins the first paragraph's lines)
    b"\n\n  \nafter blank lines  \t\r\nand more \n",
    b"ends without a newline",
    b"",
    b"   leading spaces stay\n",
    b"t\xc3\xa9l\xc3\xa9\n",
]


@pytest.mark.parametrize("message", MESSAGES)
def test_a_subject_is_what_git_prints(repo: Path, message: bytes) -> None:
    tree = _git(repo, "mktree", "--missing")  # (the empty tree, from no input)
    content = b"tree %s\nauthor t <t@t> 1 +0000\ncommitter t <t@t> 1 +0000\n\n%s" % (
        tree.encode(),
        message,
    )
    sha = (
        subprocess.run(
            ["git", "-C", str(repo), "hash-object", "-t", "commit", "-w", "--stdin"],
            input=content,
            check=True,
            capture_output=True,
        )
        .stdout.decode()
        .strip()
    )
    dirs = loose_objects.object_dirs(repo)
    body = loose_objects.read_any(dirs or [], sha, b"commit")
    assert body is not None
    printed = subprocess.run(
        ["git", "-C", str(repo), "log", "-1", "--format=%s", sha],
        check=True,
        capture_output=True,
    ).stdout.decode()
    assert loose_objects.subject(body) == printed.removesuffix("\n")


def test_a_subject_in_another_encoding_is_left_to_git() -> None:
    headers = b"tree " + b"a" * 40 + b"\nauthor t <t@t> 1 +0000\ncommitter t <t@t> 1 +0000"
    assert loose_objects.subject(headers + b"\nencoding latin-1\n\nline\n") is None
    assert loose_objects.subject(headers + b"\n\nt\xe9l\xe9\n") is None
