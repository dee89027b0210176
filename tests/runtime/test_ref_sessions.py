"""Ref moves through one long-lived ``git update-ref --stdin`` per repository: every move lands,
a failed transaction says what a process of its own said and leaves the next one working, a
cancelled caller's transaction finishes, and no git process outlives its use: idle, closed, its
loop ended, taskorch killed."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from taskorch.agents import captured
from taskorch.runtime import git as g
from taskorch.runtime import gitlocks, ref_sessions

pytestmark = pytest.mark.skipif(not captured.supported(), reason="sessions need pidfds")
ZEROS = "0" * 40


def run(cwd: Path, *args: str) -> str:
    done = subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, text=True)
    return done.stdout.strip()


def repository(folder: Path) -> tuple[Path, str, str]:
    """A repository with two commits: (folder, first, second)."""
    folder.mkdir(parents=True)
    run(folder, "init", "-q", "-b", "main")
    for n in ("one", "two"):
        run(folder, "-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "--allow-empty",
            "-m", n)  # fmt: skip
    return folder, run(folder, "rev-parse", "main~1"), run(folder, "rev-parse", "main")


def gone(pid: int) -> bool:
    """No such process, not even a zombie."""
    return not Path(f"/proc/{pid}").exists()


async def until(condition: Any, what: str, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"still waiting for {what}"
        await asyncio.sleep(0.02)


@pytest.fixture(autouse=True)
async def closed() -> Any:
    yield
    await ref_sessions.close_all()


async def test_concurrent_transactions_all_land_on_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, first, second = repository(tmp_path / "repo")
    spawned: list[list[str]] = []
    start = captured.start

    def counted(argv: Any, **options: Any) -> captured.Child:
        spawned.append(list(argv))
        return start(argv, **options)

    monkeypatch.setattr(captured, "start", counted)
    moves = [
        g.update_refs(repo, {f"refs/heads/b{n}": (first, ZEROS), f"refs/tags/t{n}": (second, None)})
        for n in range(60)
    ]
    assert all(await asyncio.gather(*moves))
    # and moved on again, each from where it is
    await asyncio.gather(
        *(g.update_refs(repo, {f"refs/heads/b{n}": (second, first)}) for n in range(60))
    )

    found = await g.matching_refs(repo, "refs/heads/", "refs/tags/")
    assert {name for name, sha in found.items() if sha == second} >= {
        *(f"refs/heads/b{n}" for n in range(60)),
        *(f"refs/tags/t{n}" for n in range(60)),
    }
    assert [argv for argv in spawned if "update-ref" in argv] == [spawned[0]]
    assert len(spawned) == 1  # (the old way: a process per call, 120)


@pytest.mark.parametrize(
    "case", ["old value", "must not exist", "missing object", "lock file", "delete missing"]
)
async def test_a_failed_transaction_says_what_a_process_of_its_own_says(
    tmp_path: Path, case: str
) -> None:
    repo, first, second = repository(tmp_path / "repo")
    await g.update_refs(repo, {"refs/heads/x": (first, None)})
    pid = ref_sessions.running()[repo]
    moves: dict[str, dict[str, tuple[str | None, str | None]]] = {
        "old value": {"refs/heads/x": (second, second)},
        "must not exist": {"refs/heads/x": (second, ZEROS)},
        "missing object": {"refs/heads/x": ("1234" * 10, None)},
        "lock file": {"refs/heads/x": (second, first)},
        "delete missing": {"refs/heads/nope": (None, first)},
    }
    both = {**moves[case], "refs/heads/other": (second, None)}  # all or nothing
    if case == "lock file":
        (repo / ".git/refs/heads/x.lock").touch()
    lines = "".join(
        " ".join(["delete" if new is None else "update", name, *filter(None, (new, old))]) + "\n"
        for name, (new, old) in both.items()
    )
    alone = await g.git(repo, "update-ref", "--stdin", stdin=lines, check=False)

    assert not await g.update_refs(repo, both, check=False)
    with pytest.raises(g.GitError) as raised:
        await g.update_refs(repo, both)
    assert raised.value.git_args == ["update-ref", "--stdin"]
    assert (raised.value.returncode, raised.value.stderr) == (alone.returncode, alone.stderr)
    assert alone.returncode == 128
    assert alone.stderr.startswith("fatal: cannot ")
    assert await g.refs(repo, "refs/heads/x", "refs/heads/other") == {"refs/heads/x": first}
    assert gone(pid)  # (git died at the failed prepare)

    (repo / ".git/refs/heads/x.lock").unlink(missing_ok=True)
    assert await g.update_refs(repo, {"refs/heads/x": (second, first)})  # a new session
    assert ref_sessions.running()[repo] != pid
    assert await g.refs(repo, "refs/heads/x") == {"refs/heads/x": second}


async def test_a_cancelled_caller_lets_its_transaction_finish(tmp_path: Path) -> None:
    repo, first, second = repository(tmp_path / "repo")
    await g.update_refs(repo, {"refs/heads/x": (first, None)})
    pid = ref_sessions.running()[repo]
    at, other = first, second
    for n in range(20):
        moves = {"refs/heads/x": (other, at), f"refs/heads/y{n}": (other, ZEROS)}
        move = asyncio.create_task(g.update_refs(repo, moves))
        for _ in range(n % 4):
            await asyncio.sleep(0)  # (cancelled at different steps of its way)
        move.cancel()
        with pytest.raises(asyncio.CancelledError):
            await move
        found = await g.refs(repo, "refs/heads/x", f"refs/heads/y{n}")
        if n % 4 == 0:  # cancelled before it began: nothing moved
            assert found == {"refs/heads/x": at}
        else:  # once written, all of it
            assert found == {"refs/heads/x": other, f"refs/heads/y{n}": other}
            at, other = other, at
    assert ref_sessions.running()[repo] == pid  # the same session throughout


async def test_an_idle_session_ends_and_leaves_no_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(ref_sessions, "IDLE_S", 0.2)
    repo, first, _ = repository(tmp_path / "repo")
    await g.update_refs(repo, {"refs/heads/x": (first, None)})
    pid = ref_sessions.running()[repo]
    await until(lambda: gone(pid), "the idle session's git to end")
    assert ref_sessions.running() == {}
    assert await g.update_refs(repo, {"refs/heads/x": (None, first)})  # and a new one begins


async def test_close_all_ends_the_sessions(tmp_path: Path) -> None:
    repos = [repository(tmp_path / name) for name in ("a", "b")]
    for repo, first, _ in repos:
        await g.update_refs(repo, {"refs/heads/x": (first, None)})
    pids = list(ref_sessions.running().values())
    assert len(pids) == 2
    await ref_sessions.close_all()
    assert ref_sessions.running() == {}
    assert all(gone(pid) for pid in pids)


async def test_a_loop_that_ends_ends_its_sessions(tmp_path: Path) -> None:
    repo, first, _ = repository(tmp_path / "repo")

    async def moved() -> int:
        await g.update_refs(repo, {"refs/heads/x": (first, None)})
        return ref_sessions.running()[repo]

    pid = await asyncio.to_thread(asyncio.run, moved())
    assert gone(pid)


async def test_a_replaced_repository_gets_a_session_of_its_own(tmp_path: Path) -> None:
    repo, first, _ = repository(tmp_path / "repo")
    await g.update_refs(repo, {"refs/heads/x": (first, None)})
    shutil.rmtree(repo)
    _, again, _ = repository(repo)
    assert await g.update_refs(repo, {"refs/heads/x": (again, ZEROS)})
    assert run(repo, "rev-parse", "refs/heads/x") == again


async def test_a_transaction_past_its_timeout_kills_the_session(tmp_path: Path) -> None:
    never = ["sleep", "30"]  # (answers nothing)
    with pytest.raises(TimeoutError):
        await ref_sessions.transact(tmp_path, never, dict(os.environ), "update x y\n", 0.2)
    pid = ref_sessions.running()[tmp_path]
    await until(lambda: gone(pid), "the timed-out session to end")


async def test_a_missing_folder_is_a_workspace_error(tmp_path: Path) -> None:
    with pytest.raises(g.WorkspaceError, match="directory does not exist"):
        await g.update_refs(tmp_path / "nowhere", {"refs/heads/x": (None, None)})


def test_taskorch_killed_its_session_git_exits(tmp_path: Path) -> None:
    repo, first, _ = repository(tmp_path / "repo")
    script = (
        "import asyncio, sys\n"
        "from pathlib import Path\n"
        "from taskorch.runtime import git as g, ref_sessions\n"
        "async def main():\n"
        f"    await g.update_refs(Path({str(repo)!r}), {{'refs/heads/x': ({first!r}, None)}})\n"
        f"    print(ref_sessions.running()[Path({str(repo)!r})], flush=True)\n"
        "    await asyncio.sleep(60)\n"
        "asyncio.run(main())\n"
    )
    with subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE) as child:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert not gone(pid)
        child.send_signal(signal.SIGKILL)
        child.wait()
    deadline = time.monotonic() + 10
    while not gone(pid) and time.monotonic() < deadline:  # (init reaps the orphan)
        time.sleep(0.02)
    assert gone(pid)
    assert run(repo, "rev-parse", "refs/heads/x") == first


async def test_a_session_does_not_keep_a_stale_lock_from_being_removed(tmp_path: Path) -> None:
    """A killed git's lock beside a live session is judged by its age alone: the session holds
    locks only for a transaction's milliseconds (another live git keeps them: test_gitlocks)."""
    repo, first, _ = repository(tmp_path / "repo")
    await g.update_refs(repo, {"refs/heads/x": (first, None)})
    pid = ref_sessions.running()[repo]
    live = gitlocks.live_gits()
    assert live is not None
    assert pid not in [git.pid for git in live]
    lock = repo / ".git/refs/heads/y.lock"
    lock.touch()
    old = time.time() - 60
    os.utime(lock, (old, old))
    assert gitlocks.stale_locks(repo) == [lock]
    assert ref_sessions.running()[repo] == pid
