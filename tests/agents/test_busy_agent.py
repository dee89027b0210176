"""An agentapi agent busy with another turn (HTTP 500 "agent is busy") is not the agent's try:
the subtask goes at once to a second, idle capable agent, or waits for the busy one; either way
no attempt of its retry budget is used up and the busy agent's track record is untouched."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from pathlib import Path

from agents.e2e import REQUIREMENT, TESTS_FILE, base_branch_files, demo_repo, write_tests_hook
from agents.fake_agentapi import FakeAgentApi
from agents.test_adapters_in_worker import one_subtask
from taskorch.agents.agentapi import AgentApiAdapter
from taskorch.agents.base import AgentAdapter
from taskorch.agents.registry import AgentSpec
from taskorch.agents.routing import AgentCoordinator
from taskorch.domain.models import Agent, NewTask, Subtask
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.settings import load_settings
from taskorch.store import Store
from taskorch.store.agent_stats import AgentStats, RoutingWrite
from taskorch.store.queue import SubtaskQueue

CONFIG = WorkerConfig(concurrency=2, lease_s=5.0, timeout_s=30.0, poll_s=0.05)
"""Leases long enough that a loaded machine loses no attempt as a zombie."""


async def routed_to(store: Store, names: list[str]) -> tuple[str, list[Agent], int]:
    """One queued subtask routed to ``names[0]``, with every named agent registered."""
    workflow_id = await one_subtask(store)
    agents = [
        await store.upsert_agent(name, name=name, type="claude-code", max_concurrency=1)
        for name in names
    ]
    [subtask] = await store.list_subtasks(workflow_id)
    await AgentStats(store.connector).route([RoutingWrite(subtask.id, names[0])])
    return workflow_id, agents, subtask.id


def worker(
    store: Store, adapters: dict[str | None, AgentAdapter], agents: list[Agent], tmp_path: Path
) -> Worker:
    coordinator = AgentCoordinator(agents)

    def reassign(subtask: Subtask, error_class: str, policy_says: bool) -> str | None:
        return coordinator.reassign(subtask, subtask.agent_id, error_class, policy_says)

    return Worker(
        SubtaskQueue(store.connector),
        adapters,
        config=CONFIG,
        recovery=ErrorRecoveryManager(time_scale=0.01, seed=7),
        events=EventBus(jsonl_path=tmp_path / "events.jsonl"),
        reassign=reassign,
    )


async def test_a_busy_agent_hands_the_subtask_to_an_idle_capable_one(
    store: Store, tmp_path: Path
) -> None:
    workflow_id, agents, subtask_id = await routed_to(store, ["api-1", "api-2"])
    with (
        FakeAgentApi(busy=True) as busy,
        FakeAgentApi(reply="Added tests/test_billing.py") as idle,
    ):
        adapters: dict[str | None, AgentAdapter] = {
            "api-1": AgentApiAdapter(busy.base_url, poll_s=0.05, busy_retry_after_s=30),
            "api-2": AgentApiAdapter(idle.base_url, poll_s=0.05),
        }
        stats = await worker(store, adapters, agents, tmp_path).run(once=True)
        assert busy.posts() == []  # the busy agent was never sent anything
        assert len(idle.user_messages) == 1

    [subtask] = await store.list_subtasks(workflow_id)
    assert (subtask.status, subtask.agent_id) == ("completed", "api-2")
    assert subtask.result is not None
    assert subtask.result["output"] == "Added tests/test_billing.py"
    assert (subtask.attempts, subtask.interrupted) == (2, 1)  # the busy turn: not the agent's try
    attempts = await store.list_attempts(subtask_id)
    assert [(a.agent_id, a.outcome, a.error_class) for a in attempts] == [
        ("api-1", "failed", "busy"),
        ("api-2", "succeeded", None),
    ]
    assert stats.retried == 1
    events = [json.loads(x) for x in (tmp_path / "events.jsonl").read_text().splitlines()]
    [retry] = [e for e in events if e["event"] == "task:retry"]
    assert (retry["error_class"], retry["reassigned_to"]) == ("busy", "api-2")
    # at once, not after the busy agent's Retry-After of 30 s
    assert attempts[0].ended_at is not None
    waited = datetime.fromisoformat(retry["run_after"]) - attempts[0].ended_at
    assert waited < timedelta(seconds=1)
    records = await AgentStats(store.connector).track_records()
    assert "api-1" not in records  # busy says nothing about how the agent works
    assert (records["api-2"].attempts, records["api-2"].successes) == (1, 1)


async def test_with_no_other_agent_the_subtask_waits_for_the_busy_one(
    store: Store, tmp_path: Path
) -> None:
    workflow_id, agents, subtask_id = await routed_to(store, ["api-1"])
    with FakeAgentApi(busy=True, reply="Added tests/test_billing.py") as fake:
        adapter = AgentApiAdapter(fake.base_url, poll_s=0.05, busy_retry_after_s=0.3)
        busy_worker = worker(store, {"api-1": adapter}, agents, tmp_path)
        events = busy_worker.events.subscribe()
        run = asyncio.create_task(busy_worker.run(once=True))
        while (await asyncio.wait_for(events.get(), 30))["event"] != "task:retry":
            pass  # the first try met the busy agent
        fake.finish_busy_turn()
        await asyncio.wait_for(run, 30)
        assert len(fake.posts()) == 1

    [subtask] = await store.list_subtasks(workflow_id)
    assert (subtask.status, subtask.agent_id) == ("completed", "api-1")
    # however often the agent was still busy, only the turn it took was its try
    assert subtask.attempts - subtask.interrupted == 1
    attempts = await store.list_attempts(subtask_id)
    assert len(attempts) == subtask.attempts >= 2
    assert {(a.outcome, a.error_class) for a in attempts[:-1]} == {("failed", "busy")}
    assert (attempts[-1].outcome, attempts[-1].error_class) == ("succeeded", None)


async def test_a_run_routed_to_a_busy_agentapi_agent_is_merged_by_the_idle_one(
    tmp_path: Path,
) -> None:
    repo = demo_repo(tmp_path)
    settings = load_settings(taskorch_home=tmp_path / ".taskorch")
    with FakeAgentApi(busy=True) as busy, FakeAgentApi(hook=write_tests_hook) as idle:
        async with open_engine(settings) as engine:
            # Same type and capabilities: routing breaks the tie by name, so api-1 goes first.
            await engine.add_agent(AgentSpec(name="api-1", type="claude-code", url=busy.base_url))
            await engine.add_agent(AgentSpec(name="api-2", type="claude-code", url=idle.base_url))
            pool = await agents_for_run(engine, "auto")
            task = await engine.add_task(NewTask.create(REQUIREMENT))
            options = {"agent": "auto", "repo": str(repo)}
            status = await asyncio.wait_for(
                engine.process_task(task.id, agents=pool, options=options), 120
            )
        assert busy.posts() == []
        assert len(idle.user_messages) == 1

    assert status.state == "merged"
    [subtask] = status.subtasks
    assert status.assignments()[subtask.key] == "api-1"  # routed to the busy one first
    assert (subtask.agent_id, subtask.attempts, subtask.interrupted) == ("api-2", 2, 1)
    assert TESTS_FILE in base_branch_files(repo)
