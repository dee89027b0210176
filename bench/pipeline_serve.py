"""The pipeline bench's ``serve`` case: N one-subtask tasks stored as pending, then carried to
merged by P processes at once, each the daemon of ``taskorch serve`` (``bench/_serve_process.py``)
sharing one database and one repository on this host: how the work scales with processes, where
``many-workflows`` runs every workflow in one process's event loop."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

from _processes import kill_all, start_ready
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
    children = start_ready(
        [sys.executable, str(HELPER), str(home), url, str(concurrency)], processes
    )
    try:
        started = time.perf_counter()
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        for child in children:
            child.communicate()
        wall = time.perf_counter() - started
    finally:
        kill_all(children)
    return wall, asyncio.run(_merged(url))
