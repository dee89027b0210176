"""The daemon behind ``taskorch serve``, in process: pending tasks become workflows within the
concurrency limit, unfinished workflows are carried on, and a stop leaves nothing mid-air."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any, cast

from taskorch.domain.errors import StaleStateError, StateError, WorkspaceError
from taskorch.domain.models import NewTask
from taskorch.domain.states import WORKFLOW_TERMINAL, WorkflowState
from taskorch.engine import OrchestrationEngine
from taskorch.engine.daemon import Daemon, DaemonStats
from taskorch.engine.pipeline import Pipeline
from taskorch.engine.runner import AT_ONCE
from taskorch.engine.setup import agent_adapters

WAIT_S = 120.0


async def _run(daemon: Daemon, engine: OrchestrationEngine, count: int) -> DaemonStats:
    """Run the daemon until ``count`` workflows have ended, then stop it."""
    ended = engine.events.subscribe()
    running = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(WAIT_S):
            done = 0
            while done < count:
                event = await ended.get()
                if event["event"] == "workflow:transition" and event["to"] in WORKFLOW_TERMINAL:
                    done += 1
    finally:
        engine.events.unsubscribe(ended)
        daemon.stop()
    return await running


async def test_pending_tasks_run_within_the_workflow_limit(engine: OrchestrationEngine) -> None:
    for n in range(4):
        await engine.add_task(NewTask.create(f"Fix bug in app/module_{n}.py line {n + 1}"))
    inbox = engine.events.subscribe()
    daemon = Daemon(
        engine,
        agent_adapters(engine, "sim", 0.05),
        options={"agent": "sim"},
        max_workflows=2,
    )
    stats = await _run(daemon, engine, 4)
    engine.events.unsubscribe(inbox)

    unfinished: set[str] = set()
    most = 0
    while not inbox.empty():
        event: dict[str, Any] = inbox.get_nowait()
        if event["event"] != "workflow:transition":
            continue
        if event["from"] is None:
            unfinished.add(event["workflow_id"])
        elif event["to"] in WORKFLOW_TERMINAL:
            unfinished.discard(event["workflow_id"])
        most = max(most, len(unfinished))
    assert most == 2
    assert len(stats.started) == 4
    assert set(stats.finished.values()) == {"merged"}
    assert stats.worker is not None
    assert stats.worker.completed == 4


async def test_unfinished_workflows_are_carried_on(engine: OrchestrationEngine) -> None:
    task = await engine.add_task(NewTask.create("Scan repository for security vulnerabilities"))
    workflow = await engine.pipeline().start(task)  # a workflow left behind by a stopped server
    daemon = Daemon(engine, agent_adapters(engine, "sim"), options={"agent": "sim"})
    assert await daemon.prepare() == [workflow.id]
    stats = await _run(daemon, engine, 1)
    assert stats.resumed == [workflow.id]
    assert stats.started == []
    assert stats.finished == {workflow.id: "merged"}


async def test_unfinished_workflows_of_other_agents_are_left_alone(
    engine: OrchestrationEngine,
) -> None:
    task = await engine.add_task(NewTask.create("Scan repository for security vulnerabilities"))
    routed = await engine.pipeline().start(task, options={"agent": "claude-1"})
    daemon = Daemon(engine, agent_adapters(engine, "sim"), options={"agent": "sim"})
    assert await daemon.prepare() == []  # its workers would never take claude-1's subtasks
    assert daemon.stats.left_alone == {routed.id: "claude-1"}


async def test_a_task_waits_for_its_dependencies(engine: OrchestrationEngine) -> None:
    first = await engine.add_task(NewTask.create("Add login page"))
    second = await engine.add_task(NewTask.create("Add logout", dependencies=[first.id]))
    daemon = Daemon(engine, agent_adapters(engine, "sim", 0.05), options={"agent": "sim"})
    await _run(daemon, engine, 2)
    by_task = {w.task_id: w for w in await engine.list_workflows()}
    before, after = by_task[first.id], by_task[second.id]
    assert before.end_time is not None
    assert after.start_time is not None
    assert before.end_time <= after.start_time


async def test_a_task_taken_by_another_process_is_not_started_twice(
    engine: OrchestrationEngine,
) -> None:
    task = await engine.add_task(NewTask.create("Add login page"))
    listed = (await engine.list_tasks())[0]  # what the daemon saw: pending
    await engine.pipeline().start(task)  # meanwhile another process started it
    daemon = Daemon(engine, agent_adapters(engine, "sim"), options={"agent": "sim"})
    assert await daemon._start(engine.pipeline(), listed) is None
    assert len(await engine.list_workflows()) == 1


class _OverlapPipeline:
    """Steps that take a while, counting how many run at the same time; ``wf-bad``'s fails."""

    def __init__(self) -> None:
        self.now: set[str] = set()
        self.most = 0

    async def advance(self, workflow_id: str) -> Any:
        assert workflow_id not in self.now
        self.now.add(workflow_id)
        self.most = max(self.most, len(self.now))
        try:
            await asyncio.sleep(0.01)
            if workflow_id == "wf-bad":
                raise StateError("no such step")
            return SimpleNamespace(status=WorkflowState.MERGED)
        finally:
            self.now.discard(workflow_id)

    def waiting_for_approval(self, workflow: object) -> bool:
        return False


async def test_a_pass_advances_workflows_at_the_same_time_up_to_the_bound(
    engine: OrchestrationEngine,
) -> None:
    """One step at a time left the daemon waiting on each git process and commit in turn."""
    daemon = Daemon(engine, agent_adapters(engine, "sim", 0.0))
    ids = {f"wf-{n}" for n in range(AT_ONCE * 2)} | {"wf-bad"}
    daemon._active = set(ids)
    pipeline = _OverlapPipeline()

    await daemon._advance(cast(Pipeline, pipeline), ids)

    assert pipeline.most == AT_ONCE
    assert daemon.active == ["wf-bad"]  # (the rest merged; the failed one is tried again later)
    assert len(daemon.stats.finished) == AT_ONCE * 2


async def test_a_workflow_another_daemon_ended_is_finished_here_without_a_retry(
    engine: OrchestrationEngine, caplog: Any
) -> None:
    """Two daemons carrying one workflow: the one whose step failed because the other landed it
    (its branch gone) takes it as finished, with no warning and no 30 s retry; a step refused
    as stale, the workflow still running, is looked at again at the next pass."""
    task = await engine.add_task(NewTask.create("Fix a typo"))
    pipeline = engine.pipeline()
    workflow = await pipeline.start(task)
    daemon = Daemon(engine, agent_adapters(engine, "sim", 0.0))
    daemon._active = {workflow.id}

    class _Stale:
        async def advance(self, workflow_id: str) -> Any:
            raise StaleStateError(f"workflow {workflow_id}", "pending", None)

    await daemon._advance_one(cast(Pipeline, _Stale()), workflow.id)
    assert (daemon.active, daemon._stuck_until) == ([workflow.id], {})

    class _EndedElsewhere:
        async def advance(self, workflow_id: str) -> Any:
            await pipeline.cancel(workflow_id)  # (what the other daemon did meanwhile)
            raise WorkspaceError("refs/heads/taskorch/x/main does not exist")

    with caplog.at_level("WARNING", logger="taskorch.engine.daemon"):
        await daemon._advance_one(cast(Pipeline, _EndedElsewhere()), workflow.id)
    assert daemon.active == []
    assert daemon.stats.finished == {workflow.id: "cancelled"}
    assert not daemon._stuck_until
    assert "retrying later" not in caplog.text
