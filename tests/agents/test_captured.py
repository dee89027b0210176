"""Short child processes through posix_spawn and a pidfd: output and exit code captured, input fed
as the child reads it, killed on request, and nothing left behind (no zombie, no descriptor)."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from taskorch.agents import captured
from taskorch.runtime import git as g

pytestmark = pytest.mark.skipif(
    not captured.supported(), reason="no pidfds here: git goes through asyncio's subprocesses"
)

ENV = dict(os.environ)


def open_descriptors() -> int:
    return len(os.listdir("/proc/self/fd"))


async def test_output_error_and_exit_code_are_captured() -> None:
    before = open_descriptors()
    script = "import sys; print('out'); print('err', file=sys.stderr); sys.exit(3)"
    found = await captured.start([sys.executable, "-c", script], env=ENV).result
    assert found == captured.Captured(3, b"out\n", b"err\n")
    assert open_descriptors() == before


async def test_input_larger_than_a_pipe_is_fed_as_the_child_reads() -> None:
    data = os.urandom(3 << 20)  # many times a pipe's buffer, both ways
    script = "import sys; sys.stdout.buffer.write(sys.stdin.buffer.read())"
    found = await captured.start([sys.executable, "-c", script], env=ENV, stdin=data).result
    assert found.returncode == 0
    assert found.stdout == data


async def test_a_child_that_ignores_its_input_does_not_hang_the_writer() -> None:
    before = open_descriptors()
    found = await captured.start(["true"], env=ENV, stdin=b"x" * (1 << 20)).result
    assert found.returncode == 0
    await asyncio.sleep(0.05)  # the writer sees the broken pipe and lets go of its end
    assert open_descriptors() == before


async def test_a_killed_child_is_reaped() -> None:
    child = captured.start(["sleep", "30"], env=ENV)
    child.kill()
    found = await asyncio.wait_for(child.result, 5)
    assert found.returncode == -9
    assert not await asyncio.to_thread(Path(f"/proc/{child.pid}").exists)  # no zombie left
    child.kill()  # once reaped, a no-op


async def test_a_missing_program_is_file_not_found() -> None:
    before = open_descriptors()
    with pytest.raises(FileNotFoundError):
        captured.start(["no-such-program-taskorch"], env=ENV)
    assert open_descriptors() == before


async def test_a_program_is_found_on_the_path_it_is_started_with(tmp_path: Path) -> None:
    """Looked up once per PATH, not at every start; one moved away is looked up again."""
    for name, said in (("one", "first"), ("two", "second")):
        (tmp_path / name).mkdir()
        script = tmp_path / name / "taskorch-probe"
        script.write_text(f"#!/bin/sh\necho {said}\n")
        script.chmod(0o755)

    async def probe(path: str) -> bytes:
        child = captured.start(["taskorch-probe"], env={**ENV, "PATH": path})
        return (await child.result).stdout

    assert await probe(str(tmp_path / "one")) == b"first\n"
    assert await probe(f"{tmp_path / 'two'}:{tmp_path / 'one'}") == b"second\n"
    (tmp_path / "one" / "taskorch-probe").rename(tmp_path / "moved")
    with pytest.raises(FileNotFoundError):
        await probe(str(tmp_path / "one"))
    (tmp_path / "moved").rename(tmp_path / "one" / "taskorch-probe")
    assert await probe(str(tmp_path / "one")) == b"first\n"


async def test_git_without_pidfds_goes_through_asyncio_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await g.git(tmp_path, "init", "-q")
    spawned = await g.git(tmp_path, "rev-parse", "--git-dir")
    missing = await g.git(tmp_path, "rev-parse", "HEAD", check=False)
    monkeypatch.setattr(captured, "_supported", False)
    assert await g.git(tmp_path, "rev-parse", "--git-dir") == spawned
    assert (await g.git(tmp_path, "rev-parse", "HEAD", check=False)).returncode == (
        missing.returncode
    )


async def test_git_in_a_folder_that_does_not_exist_says_so(tmp_path: Path) -> None:
    with pytest.raises(g.WorkspaceError, match="directory does not exist"):
        await g.git(tmp_path / "gone", "status", check=False)


async def test_git_sees_the_environment_as_it_is_at_each_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    await g.git(tmp_path, "init", "-q")
    config = {"GIT_CONFIG_COUNT": "1", "GIT_CONFIG_KEY_0": "probe.value"}
    for name, value in config.items():
        monkeypatch.setenv(name, value)
    for value in ("one", "two"):
        monkeypatch.setenv("GIT_CONFIG_VALUE_0", value)
        assert await g.out(tmp_path, "config", "probe.value") == value
    monkeypatch.delenv("GIT_CONFIG_COUNT")
    assert not (await g.git(tmp_path, "config", "probe.value", check=False)).ok


async def test_a_child_is_started_in_the_loops_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """vfork + exec of git takes about 0.15 ms: a hop to a thread for it cost more CPU (the GIL
    handed over and back) than the loop would have gained."""
    real, threads = captured._spawn, []

    def spawn(*args: Any) -> int:
        threads.append(threading.current_thread())
        return real(*args)

    monkeypatch.setattr(captured, "_spawn", spawn)
    await g.git(tmp_path, "init", "-q")
    assert threads == [threading.main_thread()]
    assert (tmp_path / ".git").is_dir()


async def test_a_run_cancelled_once_its_child_started_still_lets_it_finish(
    tmp_path: Path,
) -> None:
    """A git cancelled mid-write leaves lock files behind: one whose caller is cancelled once the
    child has started still runs to its end before the cancel is seen."""
    fds = open_descriptors()
    running = asyncio.ensure_future(g.git(tmp_path, "init", "-q", "made"))
    await asyncio.sleep(0)  # (started: the spawn is part of the run's first step)
    running.cancel()
    with pytest.raises(asyncio.CancelledError):
        await running
    assert (tmp_path / "made" / ".git" / "HEAD").is_file()
    assert open_descriptors() == fds
