"""Child processes are waited for through pidfds on Python 3.11 (as 3.12 does), in loops of any
thread."""

from __future__ import annotations

import asyncio
import sys
import threading

import pytest

from taskorch.agents import child_watch


async def _exit_code(*argv: str) -> tuple[int, bytes]:
    process = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out


@pytest.mark.skipif(sys.platform != "linux", reason="pidfds are Linux's")
def test_children_are_waited_for_in_loops_of_several_threads_with_their_exit_codes() -> None:
    child_watch.install()
    if sys.version_info < (3, 12):  # (3.12+ does this itself)
        if not child_watch._pidfds_work():
            pytest.skip("this kernel has no pidfds: asyncio's own watcher stays")
        assert isinstance(asyncio.get_child_watcher(), child_watch.PidfdWatcher)
    found: dict[str, list[tuple[int, bytes]]] = {}

    def in_thread(name: str) -> None:
        async def run() -> list[tuple[int, bytes]]:
            return list(
                await asyncio.gather(
                    *(
                        _exit_code(sys.executable, "-c", f"print({i}); raise SystemExit({i})")
                        for i in range(5)
                    )
                )
            )

        found[name] = asyncio.run(run())

    threads = [threading.Thread(target=in_thread, args=(f"t{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    expected = [(i, f"{i}\n".encode()) for i in range(5)]
    assert found == {f"t{i}": expected for i in range(3)}
