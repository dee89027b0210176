"""The real adapters under the real worker: leases kept alive by their heartbeats, timeouts."""

from __future__ import annotations

from pathlib import Path

from agents.fake_agentapi import ESC, FakeAgentApi
from taskorch.agents.agentapi import AgentApiAdapter
from taskorch.agents.base import AgentAdapter
from taskorch.agents.shell import ShellAdapter
from taskorch.domain.models import NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.domain.retry import RetryPolicy
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store
from taskorch.store.queue import SubtaskQueue

# Short enough that the turn below outlives it 2.5 times, long enough that a loaded machine
# still sends a heartbeat within it.
SHORT_LEASE = WorkerConfig(concurrency=2, lease_s=1.2, timeout_s=10.0, poll_s=0.05)


async def one_subtask(store: Store) -> str:
    task = await store.create_task(NewTask.create("Add unit tests for the billing module"))
    workflow = await store.create_workflow(task.id)
    subtask = PlanSubtask(
        subtask_id="billing-001-tests",
        parent_task_id=task.ref,
        title="Add unit tests for the billing module",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.TEST,
    )
    await store.add_subtasks(workflow.id, [subtask], {})
    await SubtaskQueue(store.connector).enqueue_workflow(workflow.id)
    return workflow.id


def worker_for(
    store: Store, agent: AgentAdapter, tmp_path: Path, config: WorkerConfig = SHORT_LEASE
) -> Worker:
    events = EventBus(jsonl_path=tmp_path / "events.jsonl", task_log_dir=tmp_path / "tasks")
    recovery = ErrorRecoveryManager(time_scale=0.01, seed=7)
    return Worker(
        SubtaskQueue(store.connector),
        {None: agent},
        config=config,
        recovery=recovery,
        events=events,
    )


async def test_slow_agentapi_turn_outlives_a_short_lease(store: Store, tmp_path: Path) -> None:
    workflow_id = await one_subtask(store)
    with FakeAgentApi(duration_s=3.0, reply="Added tests/test_billing.py") as fake:
        agent = AgentApiAdapter(fake.base_url, poll_s=0.1)
        stats = await worker_for(store, agent, tmp_path).run(once=True)
        assert len(fake.user_messages) == 1
    [subtask] = await store.list_subtasks(workflow_id)
    assert subtask.status == "completed"
    assert subtask.result is not None
    assert subtask.result["output"] == "Added tests/test_billing.py"
    assert stats.zombies == 0
    assert [a.outcome for a in await store.list_attempts(subtask.id)] == ["succeeded"]


async def test_worker_timeout_interrupts_the_agentapi_agent(store: Store, tmp_path: Path) -> None:
    workflow_id = await one_subtask(store)
    config = WorkerConfig(concurrency=1, lease_s=5, timeout_s=0.5, poll_s=0.05)
    with FakeAgentApi(hang=True) as fake:
        worker = worker_for(store, AgentApiAdapter(fake.base_url, poll_s=0.1), tmp_path, config)
        worker.recovery.register_recovery_strategy("timeout", RetryPolicy(1))
        await worker.run(once=True)
        assert fake.raw == [ESC]
        assert fake.interrupted == 1
    [subtask] = await store.list_subtasks(workflow_id)
    attempts = await store.list_attempts(subtask.id)
    assert [(a.outcome, a.error_class) for a in attempts] == [("timeout", "timeout")]


async def test_shell_adapter_without_a_command_fails_without_retry(
    store: Store, tmp_path: Path
) -> None:
    workflow_id = await one_subtask(store)
    await worker_for(store, ShellAdapter(), tmp_path).run(once=True)
    [subtask] = await store.list_subtasks(workflow_id)
    assert subtask.status == "failed"
    attempts = await store.list_attempts(subtask.id)
    assert [(a.outcome, a.error_class) for a in attempts] == [("failed", "validation")]
