"""The merge into a checked-out base branch never leaves the user's checkout broken: a checkout
that cannot follow puts the branch back; a move a kill cut short is finished from its journal.
(The kill -9 of a real process is in tests/durability/test_base_merge_kill.py.)"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest

from taskorch.runtime.basemove import journal_path
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.git_recovery import recover_git_state
from taskorch.runtime.workspace import Workspace

from .conftest import git
from .test_workspace import open_ws, sim_run


async def _ready(repo: Path, home: Path) -> Workspace:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    return workspace


async def test_an_untracked_file_in_the_way_puts_the_branch_back_untouched(
    repo: Path, home: Path
) -> None:
    workspace = await _ready(repo, home)
    before = git(repo, "rev-parse", "main")
    (repo / "src" / "a.py").write_text("mine, not committed anywhere\n")

    with pytest.raises(WorkspaceError) as caught:
        await workspace.merge_to_base()

    assert "base branch 'main' could not be updated in" in caught.value.message
    assert "\n" not in caught.value.message
    assert git(repo, "rev-parse", "main") == before
    assert (repo / "src" / "a.py").read_text() == "mine, not committed anywhere\n"
    assert git(repo, "status", "--porcelain") == "?? src/a.py"
    assert not journal_path(workspace.home, repo).exists()


async def test_a_move_cut_short_is_finished_at_start_up(repo: Path, home: Path) -> None:
    workspace = await _ready(repo, home)
    old = git(repo, "rev-parse", "main")
    new = git(repo, "rev-parse", "taskorch/wf-1/main")
    # what a kill between the ref update and the end of the checkout's update leaves
    journal = journal_path(workspace.home, repo)
    journal.parent.mkdir(parents=True)
    move = {"repo": str(repo), "checkout": str(repo), "branch": "main", "old": old, "new": new}
    journal.write_text(json.dumps(move))
    git(repo, "update-ref", "refs/heads/main", new, old)
    (repo / "src" / "a.py").write_text(git(repo, "show", f"{new}:src/a.py") + "\n")
    lock = repo / ".git" / "index.lock"
    lock.write_bytes(b"")
    os.utime(lock, (time.time() - 60, time.time() - 60))
    assert git(repo, "status", "--porcelain") != ""

    removed = await recover_git_state(workspace.home, [repo])

    assert removed == [lock]
    assert git(repo, "status", "--porcelain") == ""
    assert git(repo, "rev-parse", "HEAD") == new
    assert not journal.exists()
    assert (await workspace.merge_to_base()).already_merged


@pytest.mark.parametrize("optional_locks", ["1", "0"])
async def test_files_touched_but_unchanged_do_not_stop_the_checkout_following(
    repo: Path, home: Path, optional_locks: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # (GIT_OPTIONAL_LOCKS=0: the status before the move does not write the index it refreshed)
    monkeypatch.setenv("GIT_OPTIONAL_LOCKS", optional_locks)
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/app.py"])  # changes a file the user has checked out
    await workspace.merge_subtask("a")
    later = time.time() + 5
    os.utime(repo / "src" / "app.py", (later, later))  # (an editor saved it unchanged)

    await workspace.merge_to_base()

    assert git(repo, "status", "--porcelain") == ""
    assert (repo / "src" / "app.py").read_text() == git(repo, "show", "main:src/app.py") + "\n"


@pytest.mark.parametrize("checked_out", [True, False], ids=["checkout", "no-checkout"])
async def test_a_lock_a_killed_git_left_on_the_base_does_not_stop_the_merge(
    repo: Path, home: Path, checked_out: bool
) -> None:
    workspace = await open_ws(repo, home)
    await sim_run(workspace, "a", ["src/a.py"])
    await workspace.merge_subtask("a")
    if not checked_out:
        git(repo, "checkout", "-q", "-b", "elsewhere")
    lock = repo / ".git" / "refs" / "heads" / "main.lock"
    lock.write_bytes(b"")  # (after start-up recovery looked: its git was killed a minute ago)
    os.utime(lock, (time.time() - 60, time.time() - 60))

    result = await workspace.merge_to_base()

    assert git(repo, "rev-parse", "main") == result.commit
    assert not lock.exists()
