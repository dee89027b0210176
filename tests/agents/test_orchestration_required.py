"""A task flagged ``orchestration_required`` always gets a full plan in stages, even when the
requirement is simple; a simple task without the flag runs as one subtask."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.domain.models import JSONDict, NewTask, Subtask, Task, Workflow
from taskorch.domain.plan import Plan, WorkerType
from taskorch.engine.pipeline import Pipeline, ValidationOutcome
from taskorch.engine.runner import drive
from taskorch.planning.heuristic import HeuristicPlanner
from taskorch.planning.orchestration import full_plan, orchestration_required
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store
from taskorch.store.queue import SubtaskQueue

SIMPLE = "Fix bug in dashboard/server/index.js line 42"


class NoGit:
    """The code delivery as a no-op (the git delivery has its own tests)."""

    async def target(self, task: Task, options: JSONDict) -> JSONDict:
        return options

    async def prepare(self, workflow: Workflow, plan: Plan) -> Plan:
        return plan

    async def verify(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        return {}

    async def open_pull_request(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> JSONDict:
        return {"branch": f"taskorch/{workflow.id}"}

    async def validate(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> ValidationOutcome:
        return ValidationOutcome(True, "tests passed")

    async def merge(self, workflow: Workflow) -> JSONDict:
        return {"base": "main"}

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None:
        return None


class Agent:
    def __init__(self) -> None:
        self.runs: list[str] = []

    @property
    def name(self) -> str:
        return "test-agent"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.runs.append(task.subtask.key)
        return AgentResult(True, f"did {task.subtask.key}")


async def heuristic(text: str, context: str | None, ref: str) -> tuple[Plan, str]:
    return HeuristicPlanner().plan(text, context, ref), "heuristic"


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
    pipeline = Pipeline(store, heuristic, NoGit(), publish=events.publish)
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
