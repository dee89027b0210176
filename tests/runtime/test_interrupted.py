"""An attempt ended by a kill or by the host is not counted as the agent's failed try (issue 14):
lost leases, released claims and host errors are counted apart (``Subtask.interrupted``), never
use up the retry budget of the agent's error classes, and a separate, larger cap still ends a
subtask that kills its worker every time."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from fakes.workflows import queued_workflow
from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.domain.errors import AgentError, WorkspaceError
from taskorch.domain.retry import DEFAULT_POLICIES, ErrorClass
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store
from taskorch.store.queue import QueueEvent, SubtaskQueue

CONFIG = WorkerConfig(concurrency=2, lease_s=5, timeout_s=10, poll_s=0.02, shutdown_grace_s=1)
AGENT_TRIES = DEFAULT_POLICIES[ErrorClass.AGENT].max_attempts


class FailingAgent:
    """Fails every run: first with the errors in ``first``, then as the agent's own fault."""

    def __init__(self, first: list[Exception] | None = None) -> None:
        self.first = list(first or [])
        self.runs = 0

    @property
    def name(self) -> str:
        return "failing"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.runs += 1
        if self.first:
            raise self.first.pop(0)
        raise AgentError("the agent got it wrong", error_class=ErrorClass.AGENT.value)


def worker(store: Store, agent: FailingAgent, tmp_path: Path) -> Worker:
    return Worker(
        SubtaskQueue(store.connector),
        {None: agent},
        config=CONFIG,
        recovery=ErrorRecoveryManager(time_scale=0.001, seed=3),
        events=EventBus(jsonl_path=tmp_path / "events.jsonl"),
    )


async def lose_lease(store: Store, *, max_interrupted: int = 10) -> list[QueueEvent]:
    """Claim the ready subtask and let its lease run out (its worker was killed)."""
    queue = SubtaskQueue(store.connector)
    assert len(await queue.claim("doomed", 5, 0.001)) == 1
    soon = queue.now + timedelta(seconds=5)
    return await SubtaskQueue(store.connector, clock=lambda: soon).expire_leases(
        max_interrupted=max_interrupted
    )


async def test_lost_leases_do_not_use_up_the_agents_tries(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"a": []})
    for _ in range(2):
        await lose_lease(store)
    [sub] = await store.list_subtasks(workflow_id)
    assert (sub.status, sub.attempts, sub.interrupted) == ("queued", 2, 2)

    agent = FailingAgent()
    await worker(store, agent, tmp_path).run(once=True)

    assert agent.runs == AGENT_TRIES  # every try the agent's policy allows, none taken by kills
    [sub] = await store.list_subtasks(workflow_id)
    assert (sub.status, sub.attempts, sub.interrupted) == ("failed", 2 + AGENT_TRIES, 2)


async def test_host_errors_do_not_use_up_the_agents_tries(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"a": []})
    agent = FailingAgent([WorkspaceError("git fetch failed: the remote hung up")] * 2)
    while agent.runs < 2 + AGENT_TRIES:
        # A host error sends the workflow to other hosts: this worker leaves it and exits.
        await worker(store, agent, tmp_path).run(once=True)
        [sub] = await store.list_subtasks(workflow_id)
        if sub.status == "failed":
            break
    [sub] = await store.list_subtasks(workflow_id)
    assert agent.runs == 2 + AGENT_TRIES
    assert (sub.status, sub.interrupted) == ("failed", 2)


async def test_a_subtask_that_kills_its_worker_every_time_still_ends(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"poison": [], "after": ["poison"]})
    for lost in range(1, 4):
        events = await lose_lease(store, max_interrupted=3)
        requeued = lost < 3
        assert [e.payload["requeued"] for e in events if e.kind == "task:zombie"] == [requeued]
    subtasks = {s.key: s for s in await store.list_subtasks(workflow_id)}
    assert (subtasks["poison"].status, subtasks["poison"].interrupted) == ("failed", 3)
    assert subtasks["after"].status == "blocked"
