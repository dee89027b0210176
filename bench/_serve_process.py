"""One process of the pipeline bench's ``serve`` case: the daemon ``taskorch serve`` runs (without
its HTTP API), with the bench's planner and the simulated agent in worktrees. It says "ready",
waits for "go", takes pending tasks as they come (other processes take theirs) and stops once
none is pending and those it started have ended (the caller counts what merged, in the
database)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from pipeline import _PlannedEngine
from taskorch.agents.base import AgentAdapter
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.models import TaskStatus
from taskorch.engine.daemon import Daemon
from taskorch.engine.delivery import GitDelivery, WorkspaceAgent
from taskorch.settings import load_settings

DONE_POLL_S = 0.1


async def _stop_when_done(engine: _PlannedEngine, daemon: Daemon) -> None:
    while True:
        await asyncio.sleep(DONE_POLL_S)
        if not daemon.active and not await engine.list_tasks(status=TaskStatus.PENDING):
            daemon.stop()
            return


async def main(home: Path, url: str, concurrency: int) -> None:
    settings = load_settings(
        taskorch_home=home,
        database_url=url,
        nlp_provider="heuristic",
        worker_concurrency=concurrency,
    )
    engine = _PlannedEngine(settings)
    delivery = GitDelivery(engine.store, home)
    engine.delivery = delivery
    async with engine:
        agents: dict[str | None, AgentAdapter] = {
            None: WorkspaceAgent(SimWorktreeAgent(), delivery)
        }
        daemon = Daemon(engine, agents, worker_concurrency=concurrency)
        # Before the clock, and before any process starts a workflow: a daemon's start adopts
        # every unfinished workflow (to carry on after a crash), those of a live daemon too.
        await daemon.prepare()
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        watcher = asyncio.create_task(_stop_when_done(engine, daemon))
        await daemon.run()
        await watcher


if __name__ == "__main__":
    asyncio.run(main(Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
