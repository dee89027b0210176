"""The file lock: made in a folder that does not exist yet, exclusive between coroutines and
between processes, and given up with one clear line after its timeout."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from taskorch.domain.errors import WorkspaceError
from taskorch.store.filelock import file_lock


async def test_a_lock_in_a_folder_not_made_yet_makes_it(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "lock"
    async with file_lock(path):
        assert path.is_file()


async def test_coroutines_take_turns(tmp_path: Path) -> None:
    inside: list[int] = []
    most = 0

    async def hold() -> None:
        nonlocal most
        async with file_lock(tmp_path / "lock"):
            inside.append(1)
            most = max(most, len(inside))
            await asyncio.sleep(0.01)
            inside.pop()

    await asyncio.gather(*(hold() for _ in range(5)))
    assert most == 1


async def test_another_process_holding_it_makes_us_wait_then_give_up(tmp_path: Path) -> None:
    path = tmp_path / "lock"
    script = (
        "import fcntl, sys, time; f = open(sys.argv[1], 'w'); fcntl.flock(f, fcntl.LOCK_EX); "
        "print('held', flush=True); time.sleep(30)"
    )
    holder = await asyncio.create_subprocess_exec(
        sys.executable, "-c", script, str(path), stdout=asyncio.subprocess.PIPE
    )
    try:
        assert holder.stdout is not None
        assert await holder.stdout.readline() == b"held\n"
        with pytest.raises(WorkspaceError, match="waiting for the lock"):
            async with file_lock(path, timeout_s=0.2):
                pass
    finally:
        holder.kill()
        await holder.communicate()
    async with file_lock(path, timeout_s=5):  # the kernel let go of the dead holder's lock
        pass
