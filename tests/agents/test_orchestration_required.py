"""A task flagged ``orchestration_required`` always gets a full plan in stages, even when the
requirement is simple; a simple task without the flag runs as one subtask."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.test_pipeline import Agent, RecordingDelivery, heuristic
from taskorch.domain.models import NewTask
from taskorch.domain.plan import WorkerType
from taskorch.engine.pipeline import Pipeline
from taskorch.engine.runner import drive
from taskorch.planning.heuristic import HeuristicPlanner
from taskorch.planning.orchestration import full_plan, orchestration_required
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store
from taskorch.store.queue import SubtaskQueue

SIMPLE = "Fix bug in dashboard/server/index.js line 42"


@pytest.mark.parametrize(
    ("metadata", "required"),
    [
        ({"orchestration_required": True}, True),
        ({"orchestrationRequired": "true"}, True),
        ({"taskmaster": {"record": {"id": 3, "orchestration_required": True}}}, True),
        ({"orchestration_required": False}, False),
        ({"orchestration_required": "no"}, False),
        ({"taskmaster": {"record": {"id": 3}}}, False),
        ({}, False),
    ],
)
def test_the_flag_is_read_from_the_task_or_its_imported_record(
    metadata: dict[str, Any], required: bool
) -> None:
    assert orchestration_required(metadata) is required


def test_a_simple_plan_becomes_plan_work_test_audit_in_stages() -> None:
    simple = HeuristicPlanner().plan(SIMPLE, task_ref=7)
    assert simple.is_simple
    assert len(simple.subtasks) == 1
    [work] = simple.subtasks
    full = full_plan(simple)
    assert not full.is_simple
    kinds = [s.worker_type for s in full.subtasks]
    assert kinds == [
        WorkerType.PLANNER,
        WorkerType.IMPLEMENTATION,
        WorkerType.TEST,
        WorkerType.AUDIT,
    ]
    assert len(full.execution_plan) == 4  # each stage hands off to the next
    plan_step, main, test, audit = full.subtasks
    assert (main.title, main.files_affected) == (work.title, work.files_affected)
    assert main.dependencies == [plan_step.subtask_id]
    assert audit.dependencies == [test.subtask_id]
    assert full_plan(full) == full  # a complex plan is left as it is


async def test_process_honours_the_flag(store: Store, tmp_path: Path) -> None:
    events = EventBus()
    pipeline = Pipeline(store, heuristic, RecordingDelivery(), publish=events.publish)
    flagged = await store.create_task(
        NewTask.create(SIMPLE, metadata={"orchestration_required": True})
    )
    plain = await store.create_task(NewTask.create(SIMPLE))
    started = [await pipeline.start(flagged), await pipeline.start(plain)]
    agent = Agent()
    worker = Worker(
        SubtaskQueue(store.connector),
        {None: agent},
        config=WorkerConfig(concurrency=4, lease_s=5, poll_s=0.05),
        recovery=ErrorRecoveryManager(time_scale=0.0),
        events=events,
    )
    orchestrated, simple = await drive(
        pipeline, events, [w.id for w in started], worker=worker, poll_s=0.05
    )

    assert (orchestrated.status, simple.status) == ("merged", "merged")
    subtasks = await store.list_subtasks(orchestrated.id)
    kinds = [s.worker_type.value for s in subtasks]
    assert kinds == ["planner", "implementation", "test", "audit"]
    assert [s.stage for s in subtasks] == [0, 1, 2, 3]
    # each stage ran after the one before it had completed
    order = [key for key in agent.runs if key in {s.key for s in subtasks}]
    assert order == [s.key for s in subtasks]
    history = await store.workflow_history(orchestrated.id)
    [decomposed] = [h for h in history if h.to_state.value == "task_decomposition"]
    assert decomposed.metadata["orchestration_required"] is True
    assert decomposed.metadata["complexity"] == "medium"
    assert len(await store.list_subtasks(simple.id)) == 1  # no flag: one subtask
