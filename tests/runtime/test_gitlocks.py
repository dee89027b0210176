"""Stale git lock files (left by a killed git) are found and removed; a live git's are not."""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import time
from pathlib import Path

import pytest

from taskorch.runtime import gitlocks
from taskorch.runtime.git_recovery import recover_git_state
from taskorch.runtime.gitlocks import clear_stale_locks, lock_files


def _git(cwd: Path, *args: str) -> str:
    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    path = tmp_path / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    _git(path, "commit", "-q", "--allow-empty", "-m", "init")
    _git(path, "worktree", "add", "-q", "-b", "side", str(tmp_path / "side"))
    return path


def _plant(repo: Path, *, age_s: float = 60.0) -> list[Path]:
    git_dir = repo / ".git"
    (git_dir / "refs" / "heads" / "taskorch").mkdir(parents=True, exist_ok=True)
    planted = [
        git_dir / "index.lock",
        git_dir / "HEAD.lock",
        git_dir / "packed-refs.lock",
        git_dir / "config.lock",
        git_dir / "refs" / "heads" / "main.lock",
        git_dir / "refs" / "heads" / "taskorch" / "wf.lock",
        git_dir / "worktrees" / "side" / "index.lock",
    ]
    when = time.time() - age_s
    for lock in planted:
        lock.write_bytes(b"")
        os.utime(lock, (when, when))
    return sorted(planted)


async def test_locks_whose_git_is_gone_are_removed_one_line_each(
    repo: Path, caplog: pytest.LogCaptureFixture
) -> None:
    planted = _plant(repo)
    ours = repo / ".git" / "taskorch-admin.lock"  # taskorch's own flock file: never touched
    ours.write_bytes(b"")
    caplog.set_level(logging.WARNING)

    removed = await clear_stale_locks([repo])

    assert sorted(removed) == planted
    assert lock_files(repo / ".git") == []
    assert ours.exists()
    lines = [r.getMessage() for r in caplog.records if "stale git lock" in r.getMessage()]
    assert len(lines) == len(planted)
    _git(repo, "update-ref", "refs/heads/main", "HEAD")  # git works again


async def test_a_young_lock_is_left_until_it_can_be_judged(repo: Path) -> None:
    (young,) = [
        p for p in _plant(repo, age_s=0.0) if p.name == "index.lock" and "side" not in str(p)
    ]
    assert young not in await clear_stale_locks([repo])
    assert young.exists()
    assert young in await clear_stale_locks([repo], wait_young=True)


async def test_a_lock_of_a_live_git_process_is_left_alone(repo: Path, tmp_path: Path) -> None:
    planted = _plant(repo)
    # a live git working in one of the repository's checkouts (it waits on its stdin)
    live = await asyncio.create_subprocess_exec(
        "git", "cat-file", "--batch", cwd=tmp_path / "side", stdin=asyncio.subprocess.PIPE
    )
    try:
        assert await clear_stale_locks([repo]) == []
        assert all(lock.exists() for lock in planted)
    finally:
        assert live.stdin is not None
        live.stdin.close()
        await live.wait()
    assert sorted(await clear_stale_locks([repo])) == planted


async def test_locks_beside_a_live_git_are_removed_once_it_has_ended(
    repo: Path, tmp_path: Path
) -> None:
    """Recovery waiting for young locks waits for a live git in the repository too (a git a
    killed process started may outlive it a moment), then removes what was left."""
    planted = _plant(repo)
    live = await asyncio.create_subprocess_exec(
        "git", "cat-file", "--batch", cwd=tmp_path / "side", stdin=asyncio.subprocess.PIPE
    )

    async def end_soon() -> None:
        await asyncio.sleep(1.0)
        assert live.stdin is not None
        live.stdin.close()
        await live.wait()

    removed, _ = await asyncio.gather(clear_stale_locks([repo], wait_young=True), end_soon())
    assert sorted(removed) == planted


async def test_locks_of_a_live_git_that_ends_as_the_wait_runs_out_are_removed(
    repo: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The wait runs out just as the live git that kept the locks young ends: what it left is
    stale then, and removed (it was once left, unsaid, for the next step to trip over)."""
    monkeypatch.setattr(gitlocks, "LINUX_STALE_AFTER_S", 0.0)  # (the wait is over at once)
    planted = _plant(repo)
    seen = [gitlocks.LiveGit(1, "git cat-file --batch", (gitlocks._real(repo),))]
    answers = iter([seen, seen])  # (alive for two looks, gone from the third on)
    monkeypatch.setattr(gitlocks, "live_gits", lambda: next(answers, []))
    assert sorted(await clear_stale_locks([repo], wait_young=True)) == planted
    assert not any(lock.exists() for lock in planted)


async def test_locks_a_live_git_keeps_past_the_wait_get_a_line_naming_it(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(gitlocks, "LINUX_STALE_AFTER_S", 0.2)  # (the wait: four times that)
    planted = _plant(repo)
    live = await asyncio.create_subprocess_exec(
        "git", "cat-file", "--batch", cwd=tmp_path / "side", stdin=asyncio.subprocess.PIPE
    )
    caplog.set_level(logging.WARNING)
    try:
        assert await clear_stale_locks([repo], wait_young=True) == []
    finally:
        assert live.stdin is not None
        live.stdin.close()
        await live.wait()
    (line,) = [r.getMessage() for r in caplog.records if "left git locks" in r.getMessage()]
    assert f"pid {live.pid} (git cat-file --batch)" in line
    assert all(lock.name in line for lock in planted)


async def test_recovery_clears_taskorchs_mirrors_and_the_users_repository(
    repo: Path, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    mirror = home / "mirrors" / "repo-0123.git"
    mirror.mkdir(parents=True)
    _git(mirror, "init", "-q", "--bare")
    (mirror / "packed-refs.lock").write_bytes(b"")
    os.utime(mirror / "packed-refs.lock", (time.time() - 60, time.time() - 60))
    planted = _plant(repo)

    removed = await recover_git_state(home, [repo])

    assert sorted(removed) == sorted([*planted, mirror / "packed-refs.lock"])


async def test_without_proc_only_locks_older_than_ten_minutes_are_stale(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(gitlocks, "_PROC", tmp_path / "no-proc")  # (not Linux)
    recent = _plant(repo, age_s=60.0)
    assert await clear_stale_locks([repo], wait_young=True) == []
    when = time.time() - 11 * 60
    for lock in recent:
        os.utime(lock, (when, when))
    assert sorted(await clear_stale_locks([repo])) == recent


async def test_a_worktree_whose_adding_was_killed_does_not_make_every_git_a_live_one(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An empty ``gitdir`` (a ``worktree add`` killed half-way) named "." and so this process's
    own folder: a git running anywhere below it kept every lock "young"."""
    planted = _plant(repo)
    half_added = repo / ".git" / "worktrees" / "half"
    half_added.mkdir()
    (half_added / "gitdir").write_text("")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(tmp_path)
    _git(elsewhere, "init", "-q")  # (another repository, a live git in it)
    live = await asyncio.create_subprocess_exec(
        *("git", "cat-file", "--batch"),
        cwd=elsewhere,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert live.stdin is not None
    assert live.stdout is not None
    live.stdin.write(b"HEAD\n")
    await live.stdout.readline()  # (it answered: it runs as git)
    try:
        assert sorted(await clear_stale_locks([repo])) == planted
    finally:
        assert live.stdin is not None
        live.stdin.close()
        await live.wait()
