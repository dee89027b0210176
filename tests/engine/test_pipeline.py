"""The pipeline's decisions, state by state, with the runtime for real and the code delivery
recorded by a test double (the git delivery has its own tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

import pytest

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.domain.errors import AgentError, ConfigError, InputError, StaleStateError
from taskorch.domain.models import JSONDict, NewTask, Subtask, Task, Workflow
from taskorch.domain.plan import Plan
from taskorch.domain.states import WorkflowState as W
from taskorch.engine import OrchestrationEngine
from taskorch.engine.pipeline import Pipeline, ValidationOutcome
from taskorch.engine.runner import drive
from taskorch.planning import TaskNLP
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.settings import load_settings
from taskorch.store import Store
from taskorch.store.queue import QueueEvent, SubtaskQueue

HAPPY_PATH = [
    None,
    "pending",
    "nlp_parsing",
    "task_decomposition",
    "dependency_resolution",
    "agent_assignment",
    "processing",
    "pr_created",
    "validation_running",
    "validation_passed",
    "merged",
]


class RecordingDelivery:
    def __init__(self, verdicts: list[bool] | None = None) -> None:
        self.verdicts = verdicts or [True]
        self.calls: list[str] = []

    async def target(self, task: Task, options: JSONDict) -> JSONDict:
        return options

    async def prepare(self, workflow: Workflow, plan: Plan) -> Plan:
        self.calls.append("prepare")
        return plan

    async def verify(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        return {}

    async def open_pull_request(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> JSONDict:
        self.calls.append("pr")
        return {"branch": f"taskorch/{workflow.id}", "subtasks": [s.key for s in subtasks]}

    async def validate(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> ValidationOutcome:
        self.calls.append("validate")
        passed = self.verdicts.pop(0) if self.verdicts else True
        return ValidationOutcome(
            passed,
            "tests passed" if passed else "2 tests failed",
            log="FAILED test_login" if not passed else "",
        )

    async def merge(self, workflow: Workflow) -> JSONDict:
        self.calls.append("merge")
        return {"base": "main"}

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None:
        self.calls.append("cleanup-cancelled" if cancelled else "cleanup")


class Agent:
    def __init__(self, failing: set[str] | None = None) -> None:
        self.failing = failing or set()
        self.runs: list[str] = []

    @property
    def name(self) -> str:
        return "test-agent"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.runs.append(task.subtask.key)
        if any(task.subtask.key.endswith(f) for f in self.failing):
            raise AgentError("cannot do it", error_class="auth", retryable=False)
        return AgentResult(True, f"did {task.subtask.key}")


async def heuristic(text: str, context: str | None, ref: str) -> tuple[Plan, str]:
    async with TaskNLP() as nlp:
        result = await nlp.plan(text, context, ref)
    return result.plan, result.describe()


async def run_requirement(
    store: Store, tmp_path: Path, text: str, delivery: RecordingDelivery, agent: Agent
) -> Workflow:
    events = EventBus(jsonl_path=tmp_path / "events.jsonl")
    pipeline = Pipeline(store, heuristic, delivery, publish=events.publish)
    task = await store.create_task(NewTask.create(text))
    workflow = await pipeline.start(task)
    worker = Worker(
        SubtaskQueue(store.connector),
        {None: agent},
        config=WorkerConfig(concurrency=4, lease_s=5, poll_s=0.05),
        recovery=ErrorRecoveryManager(time_scale=0.0),
        events=events,
    )
    [final] = await drive(pipeline, events, [workflow.id], worker=worker, poll_s=0.05)
    return final


async def test_requirement_goes_through_every_state_to_merged(store: Store, tmp_path: Path) -> None:
    delivery = RecordingDelivery()
    agent = Agent()
    text = "Add authentication system with security audit and documentation"
    final = await run_requirement(store, tmp_path, text, delivery, agent)
    assert final.status == "merged"
    history = await store.workflow_history(final.id)
    assert [h.from_state for h in history] == HAPPY_PATH[:-1]
    assert [h.to_state for h in history] == HAPPY_PATH[1:]
    assert len(agent.runs) == 6
    assert delivery.calls == ["prepare", "pr", "validate", "merge", "cleanup"]
    task = await store.get_task(final.task_id)
    assert task.status == "completed"
    assert final.metadata["pull_request"]["branch"] == f"taskorch/{final.id}"
    assert final.metadata["planner"].startswith("heuristic")


async def test_simple_task_takes_the_same_path(store: Store, tmp_path: Path) -> None:
    final = await run_requirement(
        store,
        tmp_path,
        "Scan repository for security vulnerabilities",
        RecordingDelivery(),
        Agent(),
    )
    assert final.status == "merged"
    assert len(await store.list_subtasks(final.id)) == 1


async def test_validation_failure_repaired_by_a_fixup_round(store: Store, tmp_path: Path) -> None:
    delivery = RecordingDelivery([False, True])
    agent = Agent()
    final = await run_requirement(
        store, tmp_path, "Fix bug in dashboard/server/index.js line 42", delivery, agent
    )
    assert final.status == "merged"
    states = [h.to_state.value for h in await store.workflow_history(final.id)]
    assert states.count("validation_failed") == 1
    assert "fix-1" in agent.runs
    fix = next(s for s in await store.list_subtasks(final.id) if s.key == "fix-1")
    assert "FAILED test_login" in fix.description


async def test_validation_that_never_passes_fails_with_the_log(
    store: Store, tmp_path: Path
) -> None:
    delivery = RecordingDelivery([False, False, False])
    final = await run_requirement(
        store, tmp_path, "Fix bug in dashboard/server/index.js line 42", delivery, Agent()
    )
    assert final.status == "failed"
    states = [h.to_state.value for h in await store.workflow_history(final.id)]
    assert states.count("validation_failed") == 3
    assert final.result is not None
    assert "FAILED test_login" in final.result["validation"]["log_tail"]


async def test_failed_subtask_escalates_and_fails_the_workflow(
    store: Store, tmp_path: Path
) -> None:
    agent = Agent(failing={"backend"})
    final = await run_requirement(
        store,
        tmp_path,
        "Add authentication system with security audit and documentation",
        RecordingDelivery(),
        agent,
    )
    assert final.status == "failed"
    escalation = final.metadata["escalation"]
    assert escalation["blocking_subtask"].endswith("backend")
    assert "cannot do it" in escalation["reason"]
    assert escalation["blocked"]
    assert (await store.get_task(final.task_id)).status == "failed"


@pytest.mark.parametrize("listening", [True, False])
async def test_queued_subtasks_are_announced_only_to_listeners(
    store: Store, tmp_path: Path, listening: bool
) -> None:
    # Nobody listening (the engine's event bus has no reader), the fan-out builds no
    # task:enqueued events; the subtasks are queued either way.
    published: list[str] = []

    async def publish(events: Sequence[QueueEvent]) -> None:
        published.extend(e.kind for e in events)

    pipeline = Pipeline(
        store, heuristic, RecordingDelivery(), publish=publish, listened=lambda: listening
    )
    task = await store.create_task(NewTask.create("List all repositories in the portfolio"))
    workflow = await pipeline.advance((await pipeline.start(task)).id)
    assert workflow.status is W.PROCESSING
    assert ("task:enqueued" in published) is listening
    counts = await pipeline.queue.workflow_counts([workflow.id])
    assert counts[workflow.id].get("queued", 0) > 0


async def test_cancel_before_processing_ends_the_workflow(store: Store, tmp_path: Path) -> None:
    delivery = RecordingDelivery()
    pipeline = Pipeline(store, heuristic, delivery)
    task = await store.create_task(NewTask.create("List all repositories in the portfolio"))
    workflow = await pipeline.start(task)
    cancelled = await pipeline.cancel(workflow.id)
    assert cancelled.status == "cancelled"
    assert delivery.calls == ["cleanup-cancelled"]
    assert (await store.get_task(task.id)).status == "cancelled"


async def test_cancel_racing_a_step_cancels_from_the_new_state(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A worker moving the workflow on between the cancel's read and its write does not turn
    the cancel into a refusal: it is taken again from the state the worker left."""
    pipeline = Pipeline(store, heuristic, RecordingDelivery())
    task = await store.create_task(NewTask.create("List all repositories in the portfolio"))
    workflow = await pipeline.start(task)
    cancel_subtasks = pipeline.queue.cancel_workflow
    raced: list[str] = []

    async def step_meanwhile(workflow_id: str) -> list[QueueEvent]:
        if not raced:
            moved = await store.transition_workflow(workflow_id, workflow.status, W.NLP_PARSING)
            raced.append(moved.status.value)
        return await cancel_subtasks(workflow_id)

    monkeypatch.setattr(pipeline.queue, "cancel_workflow", step_meanwhile)
    cancelled = await pipeline.cancel(workflow.id)
    assert raced == ["nlp_parsing"]
    assert cancelled.status == "cancelled"
    history = [entry.from_state for entry in await store.workflow_history(workflow.id)]
    assert history[-1] == "nlp_parsing"


async def test_a_step_that_sees_the_cancelled_subtasks_first_ends_the_workflow_cancelled(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel cancels the subtasks, then moves the workflow; the run loop stepping between
    the two sees only cancelled subtasks. It ends the workflow cancelled (it used to fail it,
    and the cancel then found an illegal failed -> cancelled), and the cancel returns it."""
    delivery = RecordingDelivery()
    pipeline = Pipeline(store, heuristic, delivery)
    task = await store.create_task(NewTask.create("List all repositories in the portfolio"))
    workflow = await pipeline.start(task)
    while workflow.status is not W.PROCESSING:
        workflow = await pipeline.advance(workflow.id)
    cancel_subtasks = pipeline.queue.cancel_workflow
    stepped: list[str] = []

    async def step_meanwhile(workflow_id: str) -> list[QueueEvent]:
        events = await cancel_subtasks(workflow_id)
        if not stepped:
            stepped.append((await pipeline.advance(workflow_id)).status.value)
        return events

    monkeypatch.setattr(pipeline.queue, "cancel_workflow", step_meanwhile)
    cancelled = await pipeline.cancel(workflow.id)
    assert stepped == ["cancelled"]
    assert cancelled.status == "cancelled"
    assert (await store.get_task(task.id)).status == "cancelled"
    assert delivery.calls[-1] == "cleanup-cancelled"


async def test_engine_processes_a_batch_and_reports_status(store: Store, tmp_path: Path) -> None:
    settings = load_settings(taskorch_home=tmp_path / "home", nlp_provider="heuristic")
    engine = OrchestrationEngine(settings, store=store, delivery=RecordingDelivery())
    tasks = [
        await engine.add_task(NewTask.create(text))
        for text in (
            "Scan repository for security vulnerabilities",
            "List all repositories in the portfolio",
            "Add authentication system with security audit and documentation",
        )
    ]
    seen: list[str] = []
    statuses = await engine.process_batch(
        [t.id for t in tasks], agents={None: Agent()}, on_progress=lambda w: seen.append(w.status)
    )
    assert [s.state for s in statuses] == ["merged"] * 3
    detail = statuses[2].to_dict()
    assert detail["progress_percent"] == 100.0
    assert detail["current_stage"] is None
    assert len(detail["completed_subtasks"]) == 6
    assert [h["to"] for h in detail["history"]][-1] == "merged"
    assert (await engine.get_status())["workflows"] == {"merged": 3}
    assert (tmp_path / "home" / "events.jsonl").is_file()


async def test_engine_without_delivery_says_so(store: Store, tmp_path: Path) -> None:
    engine = OrchestrationEngine(load_settings(taskorch_home=tmp_path), store=store)
    task = await engine.add_task(NewTask.create("List all repositories in the portfolio"))
    with pytest.raises(ConfigError, match="no code delivery"):
        await engine.process_task(task.id)


async def test_a_task_is_carried_by_one_workflow_at_a_time(store: Store, tmp_path: Path) -> None:
    settings = load_settings(taskorch_home=tmp_path / "home", nlp_provider="heuristic")
    engine = OrchestrationEngine(settings, store=store, delivery=RecordingDelivery())
    done = await engine.add_task(NewTask.create("List all repositories in the portfolio"))
    [merged] = await engine.process_batch([done.id], agents={None: Agent()})
    with pytest.raises(
        InputError, match=rf"task-{done.id} is already done \(workflow {merged.workflow.id}"
    ):
        await engine.process_task(done.id, agents={None: Agent()})

    other = await engine.add_task(NewTask.create("Scan repository for security vulnerabilities"))
    with pytest.raises(InputError, match="already done"):
        await engine.process_batch([other.id, done.id], agents={None: Agent()})
    assert (await store.get_task(other.id)).status == "pending"  # given back: all or none

    carried = await Pipeline(store, heuristic, RecordingDelivery()).start(other)
    with pytest.raises(InputError, match=f"being carried by workflow {carried.id}"):
        await engine.process_task(other.id, agents={None: Agent()})
    assert len(await store.list_workflows(task_id=other.id)) == 1


async def test_a_failed_task_may_be_tried_again(store: Store, tmp_path: Path) -> None:
    settings = load_settings(taskorch_home=tmp_path / "home", nlp_provider="heuristic")
    engine = OrchestrationEngine(settings, store=store, delivery=RecordingDelivery())
    task = await engine.add_task(
        NewTask.create("Add authentication system with security audit and documentation")
    )
    [failed] = await engine.process_batch([task.id], agents={None: Agent(failing={"backend"})})
    assert failed.state == "failed"
    assert (await store.get_task(task.id)).status == "failed"
    [again] = await engine.process_batch([task.id], agents={None: Agent()})
    assert again.state == "merged"
    assert (await store.get_task(task.id)).status == "completed"


async def test_a_plan_that_breaks_the_working_spec_is_cancelled_before_execution(
    store: Store, tmp_path: Path
) -> None:
    async def reaching_outside(text: str, context: str | None, ref: str) -> tuple[Plan, str]:
        plan, described = await heuristic(text, context, ref)
        first = plan.subtasks[0].model_copy(update={"files_affected": ["../elsewhere/secrets.py"]})
        return plan.model_copy(update={"subtasks": [first, *plan.subtasks[1:]]}), described

    delivery = RecordingDelivery()
    events = EventBus(jsonl_path=tmp_path / "events.jsonl")
    pipeline = Pipeline(store, reaching_outside, delivery, publish=events.publish)
    task = await store.create_task(NewTask.create("Add a health endpoint with tests"))
    workflow = await pipeline.start(task)
    [final] = await drive(pipeline, events, [workflow.id], poll_s=0.05)
    assert final.status == "cancelled"
    assert "invalid working spec" in final.metadata["reason"]
    assert "../elsewhere/secrets.py" in final.metadata["reason"]
    assert final.metadata["step"] == "task_decomposition"
    assert await store.list_subtasks(final.id) == []
    assert "prepare" not in delivery.calls  # no workspace was made for it
    assert (await store.get_task(task.id)).status == "cancelled"


# --- what a step reads again: the row a move returned is the row as stored --------------------


def _count_reads(store: Store) -> list[str]:
    reads: list[str] = []
    real: Callable[[str], Awaitable[Workflow]] = store.get_workflow

    async def counted(workflow_id: str) -> Workflow:
        reads.append(workflow_id)
        return await real(workflow_id)

    store.get_workflow = counted  # type: ignore[method-assign]
    return reads


async def test_planning_reads_the_workflow_once_for_five_moves(
    store: Store, tmp_path: Path
) -> None:
    pipeline = Pipeline(store, heuristic, RecordingDelivery())
    workflow = await pipeline.start(await store.create_task(NewTask.create("Fix a typo")))
    reads = _count_reads(store)
    moved = await pipeline.advance(workflow.id)
    # pending -> nlp_parsing -> ... -> processing, then waiting on its subtask: five moves.
    assert moved.status is W.PROCESSING
    assert [h.to_state for h in await store.workflow_history(workflow.id)][-1] == W.PROCESSING
    assert len(reads) == 1  # it was six: once more after every move


async def test_a_move_made_elsewhere_is_caught_where_the_next_move_writes(
    store: Store, tmp_path: Path
) -> None:
    """Another process cancels during a step: the step's move is refused as stale (the state it
    starts from is checked where it writes), and the next advance reads the workflow again."""
    pipeline = Pipeline(store, heuristic, RecordingDelivery())
    workflow = await pipeline.start(await store.create_task(NewTask.create("Fix a typo")))
    real_parse = pipeline._steps[W.NLP_PARSING]

    async def parse_after_a_cancel(current: Workflow) -> Workflow | None:
        await store.transition_workflow(current.id, W.NLP_PARSING, W.CANCELLED)
        return await real_parse(current)

    pipeline._steps[W.NLP_PARSING] = parse_after_a_cancel
    with pytest.raises(StaleStateError):
        await pipeline.advance(workflow.id)
    pipeline._steps[W.NLP_PARSING] = real_parse
    ended = await pipeline.advance(workflow.id)
    assert ended.status is W.CANCELLED
    history = [(h.from_state, h.to_state) for h in await store.workflow_history(workflow.id)]
    assert history[-1] == (W.NLP_PARSING, W.CANCELLED)


async def test_the_step_at_a_subtasks_end_queues_nothing_when_none_is_pending(
    store: Store, tmp_path: Path
) -> None:
    """Queueing takes a write transaction: it is taken only while a subtask is pending (the
    processing step runs again at every subtask's end)."""
    events = EventBus()
    pipeline = Pipeline(store, heuristic, RecordingDelivery(), publish=events.publish)
    queued: list[str] = []
    real_queue_ready = pipeline.queue.queue_ready

    async def queue_ready(workflow_id: str, *, quiet: bool = False) -> list[QueueEvent]:
        queued.append(workflow_id)
        return await real_queue_ready(workflow_id, quiet=quiet)

    pipeline.queue.queue_ready = queue_ready  # type: ignore[method-assign]
    workflow = await pipeline.start(await store.create_task(NewTask.create("Fix a typo")))
    worker = Worker(
        SubtaskQueue(store.connector),
        {None: Agent()},
        config=WorkerConfig(concurrency=2, lease_s=5, poll_s=0.05),
        recovery=ErrorRecoveryManager(time_scale=0.0),
        events=events,
    )
    [final] = await drive(pipeline, events, [workflow.id], worker=worker, poll_s=0.05)
    assert final.status is W.MERGED
    assert queued == [workflow.id]  # its one subtask, once
