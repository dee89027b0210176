"""A commit's parents read from its loose object, as git itself names them, and nothing said where
the file does not say it (a packed commit, a tree, an id that is no object)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from taskorch.runtime import ancestry, loose_commits


def _git(repo: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-C", str(repo), *args], check=True, capture_output=True, text=True
    ).stdout.strip()


def _commit(repo: Path, *parents: str, message: str = "m") -> str:
    tree = _git(repo, "write-tree")
    return _git(repo, "commit-tree", tree, *[a for p in parents for a in ("-p", p)], "-m", message)


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    _git(tmp_path, "init", "-q", "-b", "main")
    _git(tmp_path, "config", "user.name", "t")
    _git(tmp_path, "config", "user.email", "t@t")
    ancestry.forget()
    return tmp_path


def test_parents_are_what_git_says(repo: Path) -> None:
    root = _commit(repo, message="root")
    one, other = _commit(repo, root), _commit(repo, root, message="other")
    merge = _commit(repo, one, other, message="parent lines\n\nparent 0000 in the message")
    common = repo / ".git"
    for sha in (root, one, merge):
        said = _git(repo, "rev-parse", f"{sha}^@").split()
        assert loose_commits.parents(common, sha) == said


def test_what_the_loose_files_do_not_say_is_none(repo: Path) -> None:
    root = _commit(repo)
    common = repo / ".git"
    assert loose_commits.parents(common, _git(repo, "write-tree")) is None  # a tree
    assert loose_commits.parents(common, "f" * 40) is None
    assert loose_commits.parents(common, "not an id") is None
    _git(repo, "update-ref", "refs/heads/main", root)
    _git(repo, "gc", "-q", "--prune=now")
    assert loose_commits.parents(common, root) is None  # packed: ask git


def test_learn_walks_loose_commits_down_to_the_one_asked(repo: Path) -> None:
    base = _commit(repo, message="base")
    tip = base
    for i in range(3):
        tip = _commit(repo, tip, message=f"agent {i}")
    assert not ancestry.known(base, tip)
    assert loose_commits.learn(repo, tip, base)
    assert ancestry.known(base, tip)
    elsewhere = _commit(repo, message="unrelated root")
    assert not loose_commits.learn(repo, tip, elsewhere)


def test_learn_reads_at_most_its_walk(repo: Path) -> None:
    base = _commit(repo, message="base")
    tip = base
    for i in range(loose_commits.WALK + 4):
        tip = _commit(repo, tip, message=f"agent {i}")
    assert not loose_commits.learn(repo, tip, base)  # git is asked instead


def _file_commit(repo: Path, parent: str, name: str) -> str:
    """A commit on ``parent`` adding the file ``name`` (without a checkout)."""
    blob = subprocess.run(
        ["git", "-C", str(repo), "hash-object", "-w", "--stdin"],
        input=name,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    _git(repo, "read-tree", parent)
    _git(repo, "update-index", "--add", "--cacheinfo", f"100644,{blob},{name}")
    return _commit(repo, parent, message=f"add {name}")


def _workflow(repo: Path, fork: str, name: str) -> str:
    """A workflow branch's head as taskorch makes it: a subtask commit on ``fork`` merged."""
    sub = _file_commit(repo, fork, name)
    _git(repo, "read-tree", sub)
    return _commit(repo, fork, sub, message=f"taskorch: merge subtask {name}")


def test_a_landing_after_others_moved_the_base_finds_the_fork_point(repo: Path) -> None:
    """The pull request's summary found the fork point against the base as it was; two other
    workflows landed since. The loose commits above the fork point share nothing, so the fork
    point is the merge base, as git says, without asking it."""
    fork = _file_commit(repo, _commit(repo, message="root"), "start.txt")
    head = _workflow(repo, fork, "ours.txt")
    base = fork
    for name in ("a.txt", "b.txt"):
        other = _workflow(repo, fork if name == "a.txt" else base, name)
        _git(repo, "read-tree", other)
        base = _commit(repo, base, other, message=f"taskorch: merge workflow {name}")
    ancestry.note_merge_base(fork, head, fork)  # (what the summary learned)
    assert loose_commits.merge_base(repo, head, base) == fork
    assert _git(repo, "merge-base", head, base) == fork


def test_a_commit_both_sides_hold_above_the_fork_point_leaves_it_to_git(repo: Path) -> None:
    fork = _file_commit(repo, _commit(repo, message="root"), "start.txt")
    head = _workflow(repo, fork, "ours.txt")
    base = _commit(repo, fork, head, message="someone merged our branch by hand")
    moved = _file_commit(repo, base, "later.txt")
    ancestry.note_merge_base(fork, head, fork)
    assert loose_commits.merge_base(repo, head, moved) is None  # (git: the head itself)
    assert _git(repo, "merge-base", head, moved) == head


def test_packed_commits_above_the_fork_point_leave_it_to_git(repo: Path) -> None:
    fork = _file_commit(repo, _commit(repo, message="root"), "start.txt")
    head = _workflow(repo, fork, "ours.txt")
    base = _file_commit(repo, fork, "theirs.txt")
    _git(repo, "update-ref", "refs/heads/main", base)
    _git(repo, "update-ref", "refs/heads/wf", head)
    _git(repo, "gc", "-q", "--prune=now")
    ancestry.note_merge_base(fork, head, fork)
    assert loose_commits.merge_base(repo, head, base) is None


def test_the_fork_point_of_an_agent_s_commits_on_an_older_tip(repo: Path) -> None:
    """The line of single-parent commits down from the agent's tip, to a commit the facts place
    under the branch's tip now: where the subtask was cut, a candidate for the merge base."""
    old_tip = _file_commit(repo, _commit(repo, message="root"), "start.txt")
    agent = _file_commit(repo, _file_commit(repo, old_tip, "one.txt"), "two.txt")
    moved = _workflow(repo, old_tip, "other.txt")
    ancestry.note(old_tip, moved)  # (the merge that moved the branch said so)
    assert loose_commits.fork_point(repo, agent, moved) == old_tip
    assert loose_commits.merge_base(repo, moved, agent, (old_tip,)) == old_tip
    assert _git(repo, "merge-base", moved, agent) == old_tip
    _git(repo, "read-tree", agent)
    merged_in = _commit(repo, agent, moved, message="a merge in the agent's history")
    assert loose_commits.fork_point(repo, merged_in, moved) is None
