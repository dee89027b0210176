"""The worker against real databases: DAG order, retries, escalation, zombies, cancellation."""

from __future__ import annotations

import asyncio
import gc
import json
import os
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from fakes.workflows import queued_workflow
from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask, Heartbeat
from taskorch.agents.sim import SimAgent, SimBehaviour
from taskorch.agents.sim_subprocess import SimProcessAgent
from taskorch.domain.errors import AgentError
from taskorch.domain.models import Subtask
from taskorch.domain.plan import Domain, WorkerType
from taskorch.domain.retry import RetryPolicy
from taskorch.runtime.events import EventBus
from taskorch.runtime.metrics import collect_metrics
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import (
    YOUNG_OBJECTS_PER_ATTEMPT,
    Worker,
    WorkerConfig,
    instructions_for,
)
from taskorch.store import Store
from taskorch.store.agent_stats import AgentStats, RoutingWrite
from taskorch.store.queue import SubtaskQueue

FAST = WorkerConfig(concurrency=8, lease_s=0.6, timeout_s=5.0, poll_s=0.05, shutdown_grace_s=1)


class RecordingAgent:
    """Runs instantly and records the order of runs; fails the keys in ``plan`` as told."""

    def __init__(self, failures: dict[str, list[AgentError]] | None = None) -> None:
        self.runs: list[str] = []
        self.failures = failures or {}

    @property
    def name(self) -> str:
        return "recording"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.runs.append(task.subtask.key)
        planned = self.failures.get(task.subtask.key)
        if planned:
            raise planned.pop(0)
        return AgentResult(True, f"did {task.subtask.key}")


def fast_recovery() -> ErrorRecoveryManager:
    return ErrorRecoveryManager(time_scale=0.01, seed=7)


def worker_for(
    store: Store, agent: AgentAdapter, tmp_path: Path, config: WorkerConfig = FAST
) -> Worker:
    events = EventBus(jsonl_path=tmp_path / "events.jsonl", task_log_dir=tmp_path / "tasks")
    queue = SubtaskQueue(store.connector)
    return Worker(queue, {None: agent}, config=config, recovery=fast_recovery(), events=events)


def events_of(tmp_path: Path) -> list[dict[str, Any]]:
    lines = (tmp_path / "events.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines]


async def test_dag_runs_in_dependency_order_once_each(store: Store, tmp_path: Path) -> None:
    deps = {
        "design": [],
        "api": ["design"],
        "ui": ["design"],
        "tests": ["api", "ui"],
        "docs": ["tests"],
    }
    workflow_id = await queued_workflow(store, deps)
    agent = RecordingAgent()
    stats = await worker_for(store, agent, tmp_path).run(once=True)
    assert Counter(agent.runs) == Counter(list(deps))
    position = {key: i for i, key in enumerate(agent.runs)}
    for key, after in deps.items():
        assert all(position[d] < position[key] for d in after)
    subtasks = await store.list_subtasks(workflow_id)
    assert {s.status for s in subtasks} == {"completed"}
    assert stats.completed == 5
    attempts = [await store.list_attempts(s.id) for s in subtasks]
    assert all(len(a) == 1 and a[0].outcome == "succeeded" for a in attempts)


async def test_retry_is_stored_and_then_succeeds(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"flaky": []})
    agent = RecordingAgent(
        {"flaky": [AgentError("429", error_class="rate_limit", retry_after_s=0.2)]}
    )
    await worker_for(store, agent, tmp_path).run(once=True)
    [subtask] = await store.list_subtasks(workflow_id)
    assert subtask.status == "completed"
    attempts = await store.list_attempts(subtask.id)
    assert [(a.number, a.outcome, a.error_class) for a in attempts] == [
        (1, "failed", "rate_limit"),
        (2, "succeeded", None),
    ]
    first_ended = attempts[0].ended_at
    assert first_ended is not None
    assert attempts[1].started_at >= first_ended
    retry = [e for e in events_of(tmp_path) if e["event"] == "task:retry"]
    assert retry
    assert retry[0]["error_class"] == "rate_limit"
    log = json.loads((tmp_path / "tasks" / f"{workflow_id}-flaky.json").read_text())
    assert [a["outcome"] for a in log["attempts"]] == ["failed", "succeeded"]
    assert log["status"] == "completed"


async def test_last_attempt_fails_blocks_dependents_and_escalates(
    store: Store, tmp_path: Path
) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": ["a"], "c": ["b"], "x": []})
    agent = RecordingAgent({"a": [AgentError("bad key", error_class="auth", retryable=False)]})
    stats = await worker_for(store, agent, tmp_path).run(once=True)
    states = {s.key: s.status for s in await store.list_subtasks(workflow_id)}
    assert states == {"a": "failed", "b": "blocked", "c": "blocked", "x": "completed"}
    assert stats.failed == 1
    escalations = [e for e in events_of(tmp_path) if e["event"] == "workflow:escalated"]
    assert escalations[0]["blocking_subtask"] == "a"
    assert sorted(escalations[0]["blocked_dependents"]) == ["b", "c"]
    assert "b" not in agent.runs


async def test_custom_recovery_strategy_is_used(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"a": []})
    agent = RecordingAgent({"a": [AgentError("oops", error_class="mine")] * 3})
    worker = worker_for(store, agent, tmp_path)
    worker.recovery.register_recovery_strategy("mine", RetryPolicy(2, 0.0))
    await worker.run(once=True)
    [subtask] = await store.list_subtasks(workflow_id)
    assert subtask.status == "failed"
    assert subtask.attempts == 2


class HangingOnce:
    """Hangs without heartbeats on its first run (a stuck agent), succeeds afterwards."""

    def __init__(self) -> None:
        self.calls = 0

    @property
    def name(self) -> str:
        return "hanging"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.calls += 1
        if self.calls == 1:
            await asyncio.sleep(3600)
        return AgentResult(True, "finally")


async def test_attempts_past_the_shutdown_grace_are_released_at_once(
    store: Store, tmp_path: Path
) -> None:
    workflow_id = await queued_workflow(store, {"long": []})
    config = WorkerConfig(lease_s=60, poll_s=0.05, shutdown_grace_s=0.2)
    stopping = worker_for(store, HangingOnce(), tmp_path, config=config)
    runner = asyncio.create_task(stopping.run())
    [subtask] = await store.list_subtasks(workflow_id)
    for _ in range(250):
        if (await store.get_subtask(subtask.id)).status == "running":
            break
        await asyncio.sleep(0.02)
    stopping.stop()
    await runner

    released = await store.get_subtask(subtask.id)
    assert (released.status, released.lease_owner, released.attempts) == ("queued", None, 1)
    [ended] = await store.list_attempts(subtask.id)
    assert ended.outcome == "cancelled"
    assert str(ended.error_message).startswith("released: worker ")
    assert [e["key"] for e in events_of(tmp_path) if e["event"] == "task:released"] == ["long"]
    # the next worker takes it now, not when a 60 s lease would have lapsed
    agent = RecordingAgent()
    await worker_for(store, agent, tmp_path, config=config).run(once=True)
    assert agent.runs == ["long"]
    assert (await store.get_subtask(subtask.id)).status == "completed"


async def test_hung_agent_becomes_zombie_and_is_requeued(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"stuck": []})
    agent = HangingOnce()
    stats = await worker_for(store, agent, tmp_path).run(once=True)
    [subtask] = await store.list_subtasks(workflow_id)
    assert subtask.status == "completed"
    outcomes = [a.outcome for a in await store.list_attempts(subtask.id)]
    assert outcomes == ["zombie", "succeeded"]
    assert stats.zombies == 1
    assert any(e["event"] == "task:zombie" for e in events_of(tmp_path))


async def test_timeout_is_classified_and_retried(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"slow": []})
    config = WorkerConfig(concurrency=2, lease_s=5, timeout_s=0.2, poll_s=0.05)
    agent = SimAgent(SimBehaviour(duration_s=1.0, heartbeat_s=0.05))
    worker = worker_for(store, agent, tmp_path, config=config)
    worker.recovery.register_recovery_strategy("timeout", RetryPolicy(2, 0.0))
    await worker.run(once=True)
    [subtask] = await store.list_subtasks(workflow_id)
    attempts = await store.list_attempts(subtask.id)
    assert [(a.outcome, a.error_class) for a in attempts] == [("timeout", "timeout")] * 2
    assert subtask.status == "failed"


async def _cancel_when_running(store: Store, workflow_id: str, worker: Worker) -> None:
    queue = SubtaskQueue(store.connector)
    for _ in range(200):
        if worker.stats.claimed:
            break
        await asyncio.sleep(0.02)
    await queue.cancel_workflow(workflow_id)


async def test_cancel_stops_running_attempts_within_seconds(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"long": [], "next": ["long"]})
    agent = SimAgent(SimBehaviour(duration_s=60, heartbeat_s=0.05))
    worker = worker_for(store, agent, tmp_path)
    run = asyncio.create_task(worker.run(once=True))
    await _cancel_when_running(store, workflow_id, worker)
    await asyncio.wait_for(run, timeout=5)
    assert {s.status for s in await store.list_subtasks(workflow_id)} == {"cancelled"}
    assert any(e["event"] == "task:cancelled" for e in events_of(tmp_path))


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split()[2] == "Z")


async def test_cancel_ends_the_agents_whole_process_group(store: Store, tmp_path: Path) -> None:
    record = tmp_path / "runs.log"
    workflow_id = await queued_workflow(store, {"proc": []})
    agent = SimProcessAgent(duration_s=60, record=record, spawn_child=True, heartbeat_s=0.05)
    worker = worker_for(store, agent, tmp_path)
    run = asyncio.create_task(worker.run(once=True))
    for _ in range(300):
        if record.exists() and record.read_text():
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # let the grandchild start
    agent_pid = int(record.read_text().split()[3])
    leader = _pgid(agent_pid)  # its guard's group (the guard leads it), or its own
    group = [int(p) for p in os.listdir("/proc") if p.isdigit() and _pgid(int(p)) == leader]
    assert len(group) >= 2
    await SubtaskQueue(store.connector).cancel_workflow(workflow_id)
    await asyncio.wait_for(run, timeout=10)
    await asyncio.sleep(0.2)
    assert [pid for pid in group if _alive(pid)] == []


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


@pytest.mark.parametrize("concurrency", [1, 50])
async def test_fan_out_and_join(store: Store, tmp_path: Path, concurrency: int) -> None:
    n = 200
    deps: dict[str, list[str]] = {f"s{i}": [] for i in range(n)}
    deps["join"] = list(deps)
    workflow_id = await queued_workflow(store, deps)
    agent = RecordingAgent()
    config = WorkerConfig(concurrency=concurrency, lease_s=5, poll_s=0.05)
    await worker_for(store, agent, tmp_path, config=config).run(once=True)
    assert agent.runs[-1] == "join"
    assert Counter(agent.runs) == Counter(list(deps))
    assert {s.status for s in await store.list_subtasks(workflow_id)} == {"completed"}


async def test_a_full_batchs_next_claim_goes_out_before_its_attempts_run(
    store: Store, tmp_path: Path
) -> None:
    """The database settles and claims while the last claim's attempts run: the step after a
    full batch is on its way before any of that batch's attempts starts."""
    workflow_id = await queued_workflow(store, {f"s{i}": [] for i in range(12)})
    steps_begun: list[int] = []
    begun_when_run: dict[str, int] = {}

    class CountingAgent(RecordingAgent):
        async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
            begun_when_run[task.subtask.key] = len(steps_begun)
            return await super().run(task, heartbeat)

    worker = worker_for(store, CountingAgent(), tmp_path, WorkerConfig(concurrency=4, lease_s=5))
    settle = worker.queue.settle

    async def counted_settle(*args: Any, **kwargs: Any) -> Any:
        steps_begun.append(len(args[1]))
        return await settle(*args, **kwargs)

    worker.queue.settle = counted_settle  # type: ignore[method-assign]
    await worker.run(once=True)
    assert {s.status for s in await store.list_subtasks(workflow_id)} == {"completed"}
    first_batch = sorted(begun_when_run.values())[:2]  # batch = concurrency / 2
    assert first_batch == [2, 2]  # the second step had begun; before, they ran after the first
    assert sum(steps_begun) == 12  # every outcome was settled once


async def test_a_failed_attempt_records_what_it_spent(store: Store, tmp_path: Path) -> None:
    workflow_id = await queued_workflow(store, {"a": []})
    spent = AgentError("no edit", error_class="agent").with_usage(1200, 80, 0.004)
    await worker_for(store, RecordingAgent({"a": [spent]}), tmp_path).run(once=True)
    [subtask] = await store.list_subtasks(workflow_id)
    first, second = await store.list_attempts(subtask.id)
    assert (first.outcome, first.tokens_in, first.tokens_out, first.cost_usd) == (
        "failed",
        1200,
        80,
        0.004,
    )
    assert second.outcome == "succeeded"


async def test_dispatch_latencies_are_kept_for_recent_claims_only(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("taskorch.runtime.worker_config.LATENCY_WINDOW", 50)
    await queued_workflow(store, {f"s{i}": [] for i in range(120)})
    worker = worker_for(store, RecordingAgent(), tmp_path)
    stats = await worker.run(once=True)
    assert stats.completed == 120
    assert len(stats.dispatch_latency_s) == 50
    assert all(latency >= 0 for latency in stats.dispatch_latency_s)


class ThresholdAgent(RecordingAgent):
    """Records the collector's youngest-generation threshold while it runs."""

    def __init__(self) -> None:
        super().__init__()
        self.thresholds: list[int] = []

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.thresholds.append(gc.get_threshold()[0])
        return await super().run(task, heartbeat)


async def test_a_working_worker_collects_its_young_objects_per_batch(
    store: Store, tmp_path: Path
) -> None:
    await queued_workflow(store, {"a": [], "b": ["a"]})
    agent = ThresholdAgent()
    before = gc.get_threshold()
    config = WorkerConfig(concurrency=100, lease_s=5, poll_s=0.05)
    await worker_for(store, agent, tmp_path, config=config).run(once=True)
    sized = max(before[0], YOUNG_OBJECTS_PER_ATTEMPT * 100)
    assert agent.thresholds == [sized, sized]
    assert gc.get_threshold() == before


async def test_claimed_subtasks_decode_like_the_store(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": ["a"]})
    queue = SubtaskQueue(store.connector)
    [claimed] = await queue.claim("w1", 5, 30.0)
    stored = await store.get_subtask(claimed.id)
    assert claimed.model_dump() == stored.model_dump()
    assert claimed.workflow_id == workflow_id
    assert claimed.status == "running"


async def test_metrics_count_what_happened(store: Store, tmp_path: Path) -> None:
    await queued_workflow(store, {"a": [], "b": [], "c": ["a"]})
    agent = RecordingAgent({"a": [AgentError("down", error_class="service_unavailable")]})
    await worker_for(store, agent, tmp_path).run(once=True)
    figures = await collect_metrics(SubtaskQueue(store.connector))
    assert figures.attempts == 4
    assert figures.successes == 3
    assert figures.errors_by_class == {"service_unavailable": 1}
    assert figures.subtasks_by_state == {"completed": 3}
    assert figures.queue_depth == 0
    assert figures.throughput_per_s > 0
    assert figures.to_dict()["success_rate"] == 0.75


async def test_worker_without_a_default_adapter_leaves_unassigned_work_alone(
    store: Store, tmp_path: Path
) -> None:
    """A worker that runs only registered agents claims what was routed to them, never the
    unassigned subtasks of other workflows (those wait for a worker that can run them)."""
    routed_id = await queued_workflow(store, {"mine": []})
    other_id = await queued_workflow(store, {"theirs": []})
    [mine] = await store.list_subtasks(routed_id)
    await AgentStats(store.connector).route([RoutingWrite(mine.id, "api-1")])
    agent = RecordingAgent()
    events = EventBus(jsonl_path=tmp_path / "events.jsonl", task_log_dir=tmp_path / "tasks")
    worker = Worker(
        SubtaskQueue(store.connector),
        {"api-1": agent},
        config=FAST,
        recovery=fast_recovery(),
        events=events,
    )
    runner = asyncio.create_task(worker.run())
    try:
        for _ in range(200):
            if (await store.get_subtask(mine.id)).status == "completed":
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(3 * FAST.poll_s)  # room to (wrongly) take the other one
    finally:
        worker.stop()
        await runner
    assert agent.runs == ["mine"]
    [theirs] = await store.list_subtasks(other_id)
    assert theirs.status == "queued"
    assert theirs.attempts == 0


def test_instructions_say_each_thing_once() -> None:
    now = datetime.now(UTC)
    subtask = Subtask(
        id=1,
        workflow_id="wf-1",
        key="unit-001-add",
        title="Add unit tests for billing",
        description="Add unit tests for billing ",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.TEST,
        files_affected=["tests/test_billing.py"],
        success_criteria="Automated tests for billing pass",
        created_at=now,
        updated_at=now,
    )
    assert instructions_for(subtask) == (
        "Add unit tests for billing\n\nFiles: tests/test_billing.py\n\n"
        "Done when: Automated tests for billing pass"
    )
