"""kill -9 of a real ``taskorch run`` inside the merge into the user's checked-out base branch:
the user's checkout is never left broken, and ``taskorch resume`` lands the merge (read from git).

The process is paused at a named point (``TASKORCH_FAULT_PAUSE``) and killed there; the state a
git killed half-way through updating the checkout leaves (some files new, the index old, its
``index.lock`` left behind) is planted by the test after the kill at ``base-merge:ref``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fakes.cli import ok, taskorch

REQUIREMENT = "Fix bug in dashboard/server/index.js line 42"
CHANGED = "dashboard/server/index.js"


def _git(cwd: Path, *args: str, check: bool = True) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=check,
        capture_output=True,
        text=True,
    ).stdout


def _user_repo(tmp_path: Path) -> Path:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    (repo / "README.md").write_text("hello\n")
    _git(repo, "add", "README.md")
    _git(repo, "commit", "-q", "-m", "init")
    return repo


def _run_until(point: str, repo: Path, home: Path, tmp_path: Path) -> None:
    """``taskorch run --repo`` paused at ``point``, then killed -9 (its whole process group)."""
    marker = tmp_path / "paused-at"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_"))
    }
    env |= {
        "TASKORCH_HOME": str(home),
        "TASKORCH_FAULT_PAUSE": point,
        "TASKORCH_FAULT_FILE": str(marker),
    }
    argv = [sys.executable, "-m", "taskorch", "run", REQUIREMENT, "--repo", str(repo)]
    with subprocess.Popen(
        argv,
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    ) as proc:
        deadline = time.monotonic() + 120
        while not marker.exists():
            if proc.poll() is not None or time.monotonic() > deadline:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=30)
                err = proc.stderr.read().decode() if proc.stderr else ""
                pytest.fail(f"never paused at {point} (exit {proc.returncode}): {err[-2000:]}")
            time.sleep(0.05)
        assert marker.read_text().split()[0] == point
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)


def _plant_half_done_checkout(repo: Path) -> None:
    """What a ``read-tree -u`` killed half-way leaves: the new file written, the index (and so
    ``git status``) still the old one, and its lock file."""
    content = _git(repo, "show", f"main:{CHANGED}")
    (repo / CHANGED).parent.mkdir(parents=True, exist_ok=True)
    (repo / CHANGED).write_text(content)
    (repo / ".git" / "index.lock").write_bytes(b"")


@pytest.mark.parametrize("point", ["base-merge:journal", "base-merge:ref", "base-merge:checkout"])
def test_kill_9_inside_the_base_merge_leaves_the_checkout_whole_and_resume_lands_it(
    tmp_path: Path, point: str
) -> None:
    repo, home = _user_repo(tmp_path), tmp_path / ".taskorch"
    before = _git(repo, "rev-parse", "main").strip()
    _run_until(point, repo, home, tmp_path)
    if point == "base-merge:journal":  # nothing touched yet
        assert _git(repo, "status", "--porcelain") == ""
        assert _git(repo, "rev-parse", "main").strip() == before
    if point == "base-merge:ref":
        assert _git(repo, "rev-parse", "main").strip() != before  # the branch moved...
        _plant_half_done_checkout(repo)  # ...and the checkout was half-way behind it

    resumed = json.loads(ok(taskorch("resume", "--json", home=home, timeout_s=180)))

    assert resumed["state"] == "merged", resumed
    assert _git(repo, "status", "--porcelain") == ""
    assert not (repo / ".git" / "index.lock").exists()
    assert CHANGED in _git(repo, "log", "--name-only", "--format=", "main")
    assert (repo / CHANGED).read_text() == _git(repo, "show", f"main:{CHANGED}")
    assert _git(repo, "rev-parse", "HEAD") == _git(repo, "rev-parse", "main")
    assert not list((home / "base-moves").glob("*.json"))


def test_a_change_of_the_users_after_a_kill_is_never_overwritten(tmp_path: Path) -> None:
    repo, home = _user_repo(tmp_path), tmp_path / ".taskorch"
    before = _git(repo, "rev-parse", "main").strip()
    _run_until("base-merge:ref", repo, home, tmp_path)
    (repo / "README.md").write_text("my own edit\n")  # the user's, not taskorch's

    refused = taskorch("resume", "--json", home=home, timeout_s=180)

    assert refused.returncode == 1
    assert "Traceback" not in refused.stderr
    assert "base branch 'main' has uncommitted changes in" in refused.stderr
    # their edit untouched, and the branch back where their checkout is: nothing else to see
    assert (repo / "README.md").read_text() == "my own edit\n"
    assert _git(repo, "rev-parse", "main").strip() == before
    assert _git(repo, "status", "--porcelain") == " M README.md\n"
    _git(repo, "commit", "-q", "-am", "my own commit")  # which must not revert taskorch's work
    resumed = json.loads(ok(taskorch("resume", "--json", home=home, timeout_s=180)))
    assert resumed["state"] == "merged", resumed
    assert _git(repo, "status", "--porcelain") == ""
    assert (repo / CHANGED).read_text() == _git(repo, "show", f"main:{CHANGED}")
    assert (repo / "README.md").read_text() == "my own edit\n"


def test_git_lock_files_a_kill_left_are_removed_and_the_workflow_completes(
    tmp_path: Path,
) -> None:
    repo, home = _user_repo(tmp_path), tmp_path / ".taskorch"
    _run_until("base-merge:journal", repo, home, tmp_path)
    (mirror,) = (home / "mirrors").iterdir()
    planted = [
        repo / ".git" / "index.lock",
        repo / ".git" / "refs" / "heads" / "main.lock",
        mirror / "HEAD.lock",
        mirror / "packed-refs.lock",
        # (merges need no checkout: at this point only a subtask's worktree may be left)
        *[admin / "index.lock" for admin in _entries(mirror / "worktrees")],
    ]
    for lock in planted:  # what git processes killed with taskorch would have left
        lock.write_bytes(b"")

    resumed = taskorch("resume", "--json", home=home, timeout_s=180)

    assert json.loads(ok(resumed))["state"] == "merged"
    assert not [lock for lock in planted if lock.exists()], resumed.stderr
    assert resumed.stderr.count("removed stale git lock") == len(planted), resumed.stderr
    assert CHANGED in _git(repo, "log", "--name-only", "--format=", "main")
    assert _git(repo, "status", "--porcelain") == ""


def _entries(folder: Path) -> list[Path]:
    return sorted(folder.iterdir()) if folder.is_dir() else []
