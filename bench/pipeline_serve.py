"""The pipeline bench's ``serve`` case: N one-subtask tasks stored as pending, then carried to
merged by P processes at once, each the daemon of ``taskorch serve`` (``bench/_serve_process.py``)
sharing one database and one repository on this host: how the work scales with processes, where
``many-workflows`` runs every workflow in one process's event loop."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from pathlib import Path

from taskorch.domain.models import NewTask
from taskorch.domain.states import WorkflowState
from taskorch.engine import OrchestrationEngine
from taskorch.settings import load_settings
from taskorch.store import open_store

HELPER = Path(__file__).with_name("_serve_process.py")


async def _add_tasks(home: Path, url: str, n: int) -> None:
    async with OrchestrationEngine(load_settings(taskorch_home=home, database_url=url)) as engine:
        for i in range(n):
            await engine.add_task(NewTask.create(f"Write file {i}"))


async def _merged(url: str) -> int:
    store = await open_store(url)
    try:
        workflows = await store.list_workflows()
        return sum(w.status is WorkflowState.MERGED for w in workflows)
    finally:
        await store.close()


def carry(home: Path, url: str, n: int, processes: int, concurrency: int) -> tuple[float, int]:
    """(wall seconds from "go" until every process has stopped, workflows merged); the CPU of
    the processes and of their git children is the caller's ``RUSAGE_CHILDREN``."""
    asyncio.run(_add_tasks(home, url, n))
    children = [
        subprocess.Popen(
            [sys.executable, str(HELPER), str(home), url, str(concurrency)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    try:
        for child in children:
            assert child.stdout is not None
            if child.stdout.readline().strip() != "ready":
                raise RuntimeError("a serve process did not start")
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            child.communicate()
        wall = time.perf_counter() - started
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return wall, asyncio.run(_merged(url))
