"""A pull request's commits and diff stat read from loose objects are what ``git log --reverse
--format=%H%x00%s start..head`` and ``git diff --numstat --no-renames start head`` print; where
git could print otherwise (a file changed in place, attributes, a quoted path, a rewritten
history) the files say nothing and git is asked."""

from __future__ import annotations

import asyncio
import os
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskorch.runtime import commit_objects, loose_summary
from taskorch.runtime.workspace_records import CommitInfo, parse_numstat

Files = dict[str, bytes | None]


def _git(repo: Path, *args: str, env: dict[str, str] | None = None) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
    ).stdout.strip()


def _commit(repo: Path, files: Files, message: str = "change") -> str:
    for name, data in files.items():
        path = repo / name
        if data is None:
            path.unlink()
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    _git(repo, "add", "-A")
    _git(repo, "commit", "-q", "--allow-empty", "-m", message)
    return _git(repo, "rev-parse", "HEAD")


def _git_log(repo: Path, start: str, head: str) -> list[CommitInfo]:
    said = _git(repo, "log", "--reverse", "--format=%H%x00%s", f"{start}..{head}")
    return [CommitInfo(*line.split("\0", 1)) for line in said.splitlines() if line]


def _git_numstat(repo: Path, start: str, head: str) -> object:
    said = subprocess.run(
        [
            "git",
            "-C",
            str(repo),
            "-c",
            "core.quotepath=off",
            "diff",
            "--numstat",
            "--no-renames",
            start,
            head,
        ],
        check=True,
        capture_output=True,
    ).stdout.decode(errors="replace")
    return parse_numstat(said)


@pytest.fixture(autouse=True)
def _fresh_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    commit_objects._identities.clear()


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@t")
    _commit(repo, {"README": b"readme\n", "src/old.py": b"a\nb\n"}, "root")
    return repo


ADDED: list[Files] = [
    {"new.txt": b"one\ntwo\n"},
    {"no-newline.txt": b"one\ntwo"},
    {"empty.txt": b""},
    {"deep/er/file.py": b"x\n" * 30, "deep/other": b"y\n"},
    {"binary.bin": b"a\0b\n"},
    {"late-nul.txt": b"a" * 8000 + b"\0\n"},  # (git looks at the first 8,000 bytes only)
    {"t\u00e9l\u00e9.txt": b"accent\n"},
    {"with space.txt": b"s\n"},
    {"src/old.py": None, "gone-and-new.txt": b"n\n"},  # a removal
]


@pytest.mark.parametrize("files", ADDED)
async def test_a_diff_stat_of_added_and_removed_files_is_git_s(repo: Path, files: Files) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    head = _commit(repo, files)
    assert await loose_summary.numstat(repo, start, head) == _git_numstat(repo, start, head)


async def test_an_executable_file_counts_like_any(repo: Path) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    (repo / "run.sh").write_text("echo\n")
    os.chmod(repo / "run.sh", 0o755)
    head = _commit(repo, {})
    assert await loose_summary.numstat(repo, start, head) == _git_numstat(repo, start, head)


@pytest.mark.parametrize(
    "files",
    [
        {"src/old.py": b"a\nchanged\n"},  # changed in place: git's diff counts the lines
        {'say "hi".txt': b"quoted by git\n"},
        {"tab\there.txt": b"quoted by git\n"},
        {".gitattributes": b"*.txt binary\n", "a.txt": b"text\n"},
    ],
)
async def test_what_git_might_count_otherwise_is_left_to_git(repo: Path, files: Files) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    head = _commit(repo, files)
    assert await loose_summary.numstat(repo, start, head) is None


async def test_a_symbolic_link_is_left_to_git(repo: Path) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    (repo / "link").symlink_to("README")
    head = _commit(repo, {})
    assert await loose_summary.numstat(repo, start, head) is None


@pytest.mark.parametrize(
    ("key", "value"), [("diff.orderFile", "order.txt"), ("core.bigFileThreshold", "1")]
)
async def test_settings_that_change_the_stat_are_left_to_git(
    repo: Path, key: str, value: str
) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    head = _commit(repo, {"b.txt": b"b\n", "a.txt": b"a\n"})
    assert await loose_summary.numstat(repo, start, head) is not None
    _git(repo, "config", key, value)
    commit_objects._identities.clear()
    assert await loose_summary.numstat(repo, start, head) is None


@pytest.mark.parametrize("place", ["checkout", "info", "global", "configured"])
async def test_attributes_outside_the_trees_are_left_to_git(
    repo: Path, tmp_path: Path, place: str
) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    head = _commit(repo, {"deep/a.txt": b"text\n"})
    assert await loose_summary.numstat(repo, start, head) is not None
    rule = "*.txt binary\n"
    if place == "checkout":
        (repo / "deep" / ".gitattributes").write_text(rule)  # (not committed)
    elif place == "info":
        (repo / ".git" / "info").mkdir(exist_ok=True)
        (repo / ".git" / "info" / "attributes").write_text(rule)
    elif place == "global":
        (tmp_path / "config" / "git").mkdir(parents=True)
        (tmp_path / "config" / "git" / "attributes").write_text(rule)
    else:
        (tmp_path / "attributes").write_text(rule)
        _git(repo, "config", "core.attributesFile", str(tmp_path / "attributes"))
        commit_objects._identities.clear()
    assert await loose_summary.numstat(repo, start, head) is None


async def test_the_commits_of_a_line_are_git_s_log(repo: Path) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    _commit(repo, {"a": b"1\n"}, "first\nstill the subject\n\nbody")
    head = _commit(repo, {"b": b"2\n"}, "second")
    assert await loose_summary.commits(repo, start, head) == _git_log(repo, start, head)
    assert await loose_summary.commits(repo, head, head) == []


@pytest.mark.parametrize("key", ["i18n.logOutputEncoding", "i18n.commitEncoding"])
async def test_a_log_printed_in_another_encoding_is_left_to_git(repo: Path, key: str) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    head = _commit(repo, {"a": b"1\n"}, "t\u00e9l\u00e9")
    _git(repo, "config", key, "UTF-8")
    commit_objects._identities.clear()
    assert await loose_summary.commits(repo, start, head) == _git_log(repo, start, head)
    _git(repo, "config", key, "ISO-8859-1")
    commit_objects._identities.clear()
    assert await loose_summary.commits(repo, start, head) is None


async def test_a_rewritten_history_is_left_to_git(repo: Path) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    middle = _commit(repo, {"a": b"1\n"})
    head = _commit(repo, {"b": b"2\n"})
    assert await loose_summary.commits(repo, start, head) is not None
    _git(repo, "replace", "--graft", middle)  # (middle now has no parent, for git)
    assert await loose_summary.commits(repo, start, head) is None


async def test_a_packed_commit_is_left_to_git(repo: Path) -> None:
    start = _git(repo, "rev-parse", "HEAD")
    _commit(repo, {"a": b"1\n"})
    _git(repo, "gc", "-q")
    head = _commit(repo, {"b": b"2\n"})
    assert await loose_summary.commits(repo, start, head) is None


# Each commit: its parents (indexes of earlier commits; -1 is ``start``) and its committer
# date (few of them, so that ties are common).
_history = st.lists(
    st.tuples(
        st.lists(st.integers(min_value=-1, max_value=12), min_size=1, max_size=3, unique=True),
        st.sampled_from([1_700_000_000, 1_700_000_100, 1_700_000_200]),
    ),
    min_size=1,
    max_size=10,
)


@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(history=_history)
def test_the_order_of_any_history_is_git_s_log(
    tmp_path_factory: pytest.TempPathFactory, history: list[tuple[list[int], int]]
) -> None:
    repo = tmp_path_factory.mktemp("log")
    _git(repo, "init", "-q", "-b", "main")
    _git(repo, "config", "user.name", "t")
    _git(repo, "config", "user.email", "t@t")
    root = _git(repo, "commit-tree", _git(repo, "mktree", "--missing"), "-m", "root")
    start = _git(repo, "commit-tree", f"{root}^{{tree}}", "-p", root, "-m", "start")
    made: list[str] = []
    for number, (parents, date) in enumerate(history):
        shas = [start if i < 0 else made[i % len(made)] if made else start for i in parents]
        argv = [arg for sha in dict.fromkeys(shas) for arg in ("-p", sha)]
        stamp = {"GIT_COMMITTER_DATE": f"{date} +0000", "GIT_AUTHOR_DATE": f"{date} +0000"}
        tree = f"{root}^{{tree}}"
        made.append(_git(repo, "commit-tree", tree, *argv, "-m", f"c{number}", env=stamp))
    said = asyncio.run(loose_summary.commits(repo, start, made[-1]))
    assert said == _git_log(repo, start, made[-1])
