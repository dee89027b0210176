"""A registered agent's concurrency limit holds at every moment, across workers (issue 14): the
subtasks it runs are counted and claimed in one transaction, one claimer per agent at a time.

Three workers, each with room for more than the limit, share one database (each its own
connection); the agent counts how many of its runs overlap, and a sampler reads the running count
from the database throughout. Neither may ever exceed the limit.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path

from fakes.workflows import queued_workflow
from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store
from taskorch.store.agent_stats import AgentStats, RoutingWrite
from taskorch.store.queue import SubtaskQueue

StoreFactory = Callable[..., Awaitable[Store]]
LIMIT = 4
SUBTASKS = 36
CONFIG = WorkerConfig(concurrency=8, lease_s=5, timeout_s=30, poll_s=0.02, shutdown_grace_s=1)


class OverlapAgent:
    """Counts its runs that overlap (all workers are in this process)."""

    def __init__(self) -> None:
        self.now = 0
        self.most = 0
        self.runs = 0

    @property
    def name(self) -> str:
        return "overlap"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.now += 1
        self.runs += 1
        self.most = max(self.most, self.now)
        try:
            await asyncio.sleep(0.01 * (task.subtask.id % 5))
        finally:
            self.now -= 1
        return AgentResult(True, "done")


async def test_the_agent_limit_holds_across_workers(
    store: Store, store_factory: StoreFactory, tmp_path: Path
) -> None:
    await store.upsert_agent("editor", name="editor", type="cli", max_concurrency=LIMIT)
    workflow_id = await queued_workflow(store, {f"s-{i}": [] for i in range(SUBTASKS)})
    routes = [RoutingWrite(s.id, "editor") for s in await store.list_subtasks(workflow_id)]
    await AgentStats(store.connector).route(routes)

    agent = OverlapAgent()
    workers = []
    for i in range(3):
        own = await store_factory()
        events = EventBus(jsonl_path=tmp_path / f"events-{i}.jsonl")
        workers.append(
            Worker(
                SubtaskQueue(own.connector),
                {"editor": agent},
                config=CONFIG,
                recovery=ErrorRecoveryManager(time_scale=0.01, seed=7),
                events=events,
                worker_id=f"w{i}",
                agent_limits={"editor": LIMIT},
            )
        )
    queue = SubtaskQueue(store.connector)
    sampled: list[int] = []
    runners = [asyncio.create_task(w.run(once=True)) for w in workers]
    while not all(r.done() for r in runners):
        sampled.append((await queue.agent_load()).get("editor", 0))
        await asyncio.sleep(0)
    await asyncio.gather(*runners)

    counts = (await queue.workflow_counts([workflow_id]))[workflow_id]
    assert counts == {"completed": SUBTASKS}
    assert agent.runs == SUBTASKS
    assert agent.most <= LIMIT, f"{agent.most} runs of the agent overlapped (limit {LIMIT})"
    assert max(sampled) <= LIMIT, f"the database showed {max(sampled)} running (limit {LIMIT})"
    assert len(sampled) > 10
