"""The store contract: every test here runs once per backend (SQLite and PostgreSQL).

Both backends must behave identically: the same records, the same errors, the same history, the same
answer to a race. A difference between them is a bug in one of them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from taskorch.domain.errors import (
    InputError,
    InvalidTransitionError,
    NotFoundError,
    StaleStateError,
    StoreError,
)
from taskorch.domain.models import (
    AgentStatus,
    AttemptOutcome,
    Capabilities,
    NewTask,
    Priority,
    TaskStatus,
    Workflow,
)
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.store import Store, open_store, sqlite_calls
from taskorch.store.migrate import latest_version

StoreFactory = Callable[..., Awaitable[Store]]  # the conftest fixture
W = WorkflowState
S = SubtaskState

# Nested data with every JSON type, unicode beyond the BMP, escapes and awkward keys. (PostgreSQL's
# jsonb refuses "\u0000" and reads 1e300 back as an integer, so neither is part of the contract.)
AWKWARD: dict[str, Any] = {
    "text": 'Grüße, 世界 🚀 — "quoted" \\ back\\slash\ttab\nnewline \u2028',
    "int": 2**53 + 1,
    "negative": -7,
    "float": 0.1,
    "whole_float": 1.0,
    "true": True,
    "false": False,
    "null": None,
    "empty_object": {},
    "empty_list": [],
    "nested": {"a": [1, "two", {"three": [None, True, 3.5]}], "ключ": {"深い": ["😀"]}},
    "key with spaces.and.dots": "v",
    'key "with" quotes': "$[0]",
    "": "empty key",
}


def same_json(left: Any, right: Any) -> bool:
    """Equal as JSON: unlike ``==`` this tells ``True`` from ``1`` and ``1.0`` from ``1``."""
    return json.dumps(left, sort_keys=True) == json.dumps(right, sort_keys=True)


def assert_utc(*stamps: datetime | None) -> None:
    for stamp in stamps:
        assert stamp is not None
        assert stamp.tzinfo is not None, f"{stamp!r} is naive"
        assert stamp.utcoffset() == timedelta(0), f"{stamp!r} is not UTC"


async def new_workflow(store: Store, *, metadata: dict[str, Any] | None = None) -> Workflow:
    task = await store.create_task(NewTask.create("Add login"))
    return await store.create_workflow(task.id, metadata=metadata)


async def walk(store: Store, workflow: Workflow, *states: WorkflowState) -> Workflow:
    for state in states:
        workflow = await store.transition_workflow(workflow.id, workflow.status, state)
    return workflow


TO_PROCESSING = (
    W.NLP_PARSING,
    W.TASK_DECOMPOSITION,
    W.DEPENDENCY_RESOLUTION,
    W.AGENT_ASSIGNMENT,
    W.PROCESSING,
)


def plan_subtask(key: str, *, dependencies: list[str] | None = None) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id="task-1",
        title=f"Do {key}",
        description=f"Description of {key} ✓",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        dependencies=dependencies or [],
        files_affected=[f"src/{key}.py", "docs/ü.md"],
        success_criteria="tests pass",
        estimated_duration_minutes=20,
        estimated_tokens=4000,
        command=["pytest", "-q", "--name=ä b"],
    )


# --- health ---------------------------------------------------------------------------------------


async def test_health_reports_backend_and_latest_schema(store: Store, database_url: str) -> None:
    health = await store.health()
    assert health.backend == ("sqlite" if database_url.startswith("sqlite") else "postgres")
    assert health.backend == store.backend
    assert health.schema_version == latest_version(store.backend) == health.latest_version
    assert health.schema_version >= 2
    assert health.up_to_date


# --- tasks ----------------------------------------------------------------------------------------


async def test_create_and_get_task(store: Store) -> None:
    before = datetime.now(UTC)
    created = await store.create_task(
        NewTask.create("  Add login  ", "Users sign in", priority="high", metadata={"k": "v"})
    )
    after = datetime.now(UTC)
    assert created.id > 0
    assert created.title == "Add login"
    assert created.description == "Users sign in"
    assert created.status is TaskStatus.PENDING
    assert created.priority is Priority.HIGH
    assert created.dependencies == []
    assert created.metadata == {"k": "v"}
    assert before <= created.created_at <= after
    assert created.updated_at == created.created_at
    assert await store.get_task(created.id) == created


async def test_task_dependencies_must_exist(store: Store) -> None:
    first = await store.create_task(NewTask.create("first"))
    second = await store.create_task(NewTask.create("second", dependencies=[first.id]))
    assert second.dependencies == [first.id]
    missing = first.id + 1000
    with pytest.raises(NotFoundError, match=rf"\b{missing}\b"):
        await store.create_task(NewTask.create("third", dependencies=[first.id, missing]))
    assert [t.id for t in await store.list_tasks()] == [first.id, second.id]


async def test_get_unknown_task_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"\b4242\b"):
        await store.get_task(4242)


async def test_list_tasks_in_id_order_with_status_filter_and_limit(store: Store) -> None:
    tasks = [await store.create_task(NewTask.create(f"task {i}")) for i in range(5)]
    await store.set_task_status(tasks[1].id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    await store.set_task_status(tasks[3].id, TaskStatus.PENDING, TaskStatus.PROCESSING)

    assert [t.id for t in await store.list_tasks()] == [t.id for t in tasks]
    assert [t.id for t in await store.list_tasks(limit=2)] == [tasks[0].id, tasks[1].id]
    processing = await store.list_tasks(status=TaskStatus.PROCESSING)
    assert [t.id for t in processing] == [tasks[1].id, tasks[3].id]
    assert all(t.status is TaskStatus.PROCESSING for t in processing)
    pending = await store.list_tasks(status=TaskStatus.PENDING, limit=2)
    assert [t.id for t in pending] == [tasks[0].id, tasks[2].id]
    assert await store.list_tasks(status=TaskStatus.FAILED) == []


async def test_set_task_status_checks_the_current_status(store: Store) -> None:
    task = await store.create_task(NewTask.create("t"))
    moved = await store.set_task_status(task.id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    assert moved.status is TaskStatus.PROCESSING
    assert moved.updated_at >= task.updated_at
    with pytest.raises(StaleStateError, match="processing") as caught:
        await store.set_task_status(task.id, TaskStatus.PENDING, TaskStatus.CANCELLED)
    assert caught.value.found == "processing"
    assert (await store.get_task(task.id)).status is TaskStatus.PROCESSING
    with pytest.raises(StaleStateError, match="missing"):
        await store.set_task_status(9999, TaskStatus.PENDING, TaskStatus.PROCESSING)


# --- workflows ------------------------------------------------------------------------------------


async def test_create_workflow_writes_its_first_history_row(store: Store) -> None:
    task = await store.create_task(NewTask.create("t"))
    workflow = await store.create_workflow(task.id, metadata={"source": "cli"}, workflow_id="wf-1")
    assert workflow.id == "wf-1"
    assert workflow.task_id == task.id
    assert workflow.status is W.PENDING
    assert workflow.start_time is None
    assert workflow.end_time is None
    assert workflow.result is None
    assert workflow.metadata == {"source": "cli"}
    assert await store.get_workflow("wf-1") == workflow

    [entry] = await store.workflow_history("wf-1")
    assert entry.workflow_id == "wf-1"
    assert entry.from_state is None
    assert entry.to_state is W.PENDING
    assert entry.timestamp == workflow.created_at
    assert entry.metadata == {}


async def test_create_workflow_generates_distinct_ids(store: Store) -> None:
    task = await store.create_task(NewTask.create("t"))
    first = await store.create_workflow(task.id)
    second = await store.create_workflow(task.id)
    assert first.id != second.id
    assert first.id.startswith("wf-")


async def test_create_workflow_for_unknown_task_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match=r"\b77\b"):
        await store.create_workflow(77)
    assert await store.list_workflows() == []


async def test_get_unknown_workflow_is_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="wf-nope"):
        await store.get_workflow("wf-nope")
    with pytest.raises(NotFoundError, match="wf-nope"):
        await store.transition_workflow("wf-nope", W.PENDING, W.NLP_PARSING)
    assert await store.workflow_history("wf-nope") == []


async def test_list_workflows_filters_by_status_and_task(store: Store) -> None:
    one = await store.create_task(NewTask.create("one"))
    two = await store.create_task(NewTask.create("two"))
    a = await store.create_workflow(one.id)
    b = await store.create_workflow(two.id)
    c = await store.create_workflow(two.id)
    await store.transition_workflow(b.id, W.PENDING, W.CANCELLED)

    assert {w.id for w in await store.list_workflows()} == {a.id, b.id, c.id}
    assert {w.id for w in await store.list_workflows(task_id=two.id)} == {b.id, c.id}
    assert [w.id for w in await store.list_workflows(status=W.CANCELLED)] == [b.id]
    assert [w.id for w in await store.list_workflows(status=W.PENDING, task_id=two.id)] == [c.id]
    assert len(await store.list_workflows(limit=2)) == 2


async def test_transition_updates_state_times_metadata_and_history(store: Store) -> None:
    workflow = await new_workflow(store, metadata={"keep": 1, "nested": {"x": 1}, "over": "old"})

    before = datetime.now(UTC)
    parsing = await store.transition_workflow(
        workflow.id, W.PENDING, W.NLP_PARSING, metadata={"over": "new", "step": 1}
    )
    assert parsing.status is W.NLP_PARSING
    assert parsing.start_time is not None
    assert before <= parsing.start_time <= datetime.now(UTC)
    assert parsing.end_time is None
    assert parsing.updated_at == parsing.start_time
    assert parsing.metadata == {"keep": 1, "nested": {"x": 1}, "over": "new", "step": 1}
    assert await store.get_workflow(workflow.id) == parsing

    # A second transition keeps start_time; metadata merges key by key like dict.update:
    # a nested object is replaced, not deep-merged, and a null value is stored, not a deletion.
    decomposing = await store.transition_workflow(
        workflow.id,
        W.NLP_PARSING,
        W.TASK_DECOMPOSITION,
        metadata={"nested": {"y": 2}, "keep": None, "step": 2},
    )
    assert decomposing.start_time == parsing.start_time
    assert decomposing.end_time is None
    assert same_json(
        decomposing.metadata, {"keep": None, "nested": {"y": 2}, "over": "new", "step": 2}
    )

    # No metadata: nothing merged, an empty object recorded.
    resolving = await store.transition_workflow(
        workflow.id, W.TASK_DECOMPOSITION, W.DEPENDENCY_RESOLUTION
    )
    assert resolving.metadata == decomposing.metadata

    history = await store.workflow_history(workflow.id)
    assert [(h.from_state, h.to_state) for h in history] == [
        (None, W.PENDING),
        (W.PENDING, W.NLP_PARSING),
        (W.NLP_PARSING, W.TASK_DECOMPOSITION),
        (W.TASK_DECOMPOSITION, W.DEPENDENCY_RESOLUTION),
    ]
    assert [h.metadata for h in history] == [
        {},
        {"over": "new", "step": 1},
        {"nested": {"y": 2}, "keep": None, "step": 2},
        {},
    ]
    assert history[1].timestamp == parsing.updated_at
    assert history[2].timestamp == decomposing.updated_at
    assert [h.id for h in history] == sorted(h.id for h in history)
    assert all(h.workflow_id == workflow.id for h in history)


@pytest.mark.parametrize(
    ("path", "result"),
    [
        pytest.param((W.CANCELLED,), None, id="cancelled"),
        pytest.param((*TO_PROCESSING, W.FAILED), {"error": "gave up"}, id="failed"),
        pytest.param(
            (*TO_PROCESSING, W.PR_CREATED, W.VALIDATION_RUNNING, W.VALIDATION_PASSED, W.MERGED),
            {"pr": 12, "sha": "abc"},
            id="merged",
        ),
    ],
)
async def test_terminal_state_sets_end_time_and_result(
    store: Store, path: tuple[WorkflowState, ...], result: dict[str, Any] | None
) -> None:
    workflow = await new_workflow(store)
    workflow = await walk(store, workflow, *path[:-1])
    assert workflow.end_time is None
    done = await store.transition_workflow(workflow.id, workflow.status, path[-1], result=result)
    assert done.status is path[-1]
    assert done.end_time == done.updated_at
    assert done.start_time is not None
    assert done.start_time <= done.end_time
    assert done.result == result


async def test_result_is_kept_when_a_later_transition_gives_none(store: Store) -> None:
    workflow = await new_workflow(store)
    first = await store.transition_workflow(
        workflow.id, W.PENDING, W.NLP_PARSING, result={"items": ["a"]}
    )
    assert first.result == {"items": ["a"]}
    second = await store.transition_workflow(workflow.id, W.NLP_PARSING, W.TASK_DECOMPOSITION)
    assert second.result == {"items": ["a"]}


@pytest.mark.parametrize(
    ("reach", "target"),
    [
        pytest.param((), W.PROCESSING, id="pending->processing"),
        pytest.param((), W.MERGED, id="pending->merged"),
        pytest.param((*TO_PROCESSING, W.PR_CREATED), W.MERGED, id="pr_created->merged"),
        pytest.param((W.CANCELLED,), W.PENDING, id="cancelled->pending"),
        pytest.param((W.NLP_PARSING,), W.NLP_PARSING, id="self"),
    ],
)
async def test_illegal_transition_is_refused_and_nothing_written(
    store: Store, reach: tuple[WorkflowState, ...], target: WorkflowState
) -> None:
    workflow = await walk(store, await new_workflow(store), *reach)
    history = await store.workflow_history(workflow.id)
    with pytest.raises(InvalidTransitionError) as caught:
        await store.transition_workflow(
            workflow.id, workflow.status, target, metadata={"written": True}
        )
    assert workflow.status.value in str(caught.value)
    assert target.value in str(caught.value)
    assert caught.value.from_state == workflow.status
    assert caught.value.to_state == target
    assert await store.get_workflow(workflow.id) == workflow
    assert await store.workflow_history(workflow.id) == history


async def test_stale_from_state_is_refused_and_nothing_written(store: Store) -> None:
    workflow = await walk(store, await new_workflow(store), W.NLP_PARSING, W.TASK_DECOMPOSITION)
    history = await store.workflow_history(workflow.id)
    # Legal as a transition, but the workflow is no longer pending.
    with pytest.raises(StaleStateError, match="task_decomposition") as caught:
        await store.transition_workflow(
            workflow.id, W.PENDING, W.NLP_PARSING, metadata={"written": True}
        )
    assert caught.value.found == "task_decomposition"
    assert caught.value.expected == "pending"
    assert workflow.id in str(caught.value)
    assert await store.get_workflow(workflow.id) == workflow
    assert await store.workflow_history(workflow.id) == history


async def test_full_pipeline_with_a_fix_up_round_is_recorded(store: Store) -> None:
    workflow = await new_workflow(store)
    path = (
        *TO_PROCESSING,
        W.PR_CREATED,
        W.VALIDATION_RUNNING,
        W.VALIDATION_FAILED,
        W.PROCESSING,
        W.PR_CREATED,
        W.VALIDATION_RUNNING,
        W.VALIDATION_PASSED,
        W.MERGED,
    )
    for number, state in enumerate(path):
        workflow = await store.transition_workflow(
            workflow.id, workflow.status, state, metadata={"step": number}
        )
    assert workflow.status is W.MERGED
    assert workflow.end_time is not None
    assert workflow.metadata == {"step": len(path) - 1}

    history = await store.workflow_history(workflow.id)
    # The stored strings, exactly as DESIGN.md spells them.
    assert [(h.from_state and h.from_state.value, h.to_state.value) for h in history] == [
        (None, "pending"),
        ("pending", "nlp_parsing"),
        ("nlp_parsing", "task_decomposition"),
        ("task_decomposition", "dependency_resolution"),
        ("dependency_resolution", "agent_assignment"),
        ("agent_assignment", "processing"),
        ("processing", "pr_created"),
        ("pr_created", "validation_running"),
        ("validation_running", "validation_failed"),
        ("validation_failed", "processing"),
        ("processing", "pr_created"),
        ("pr_created", "validation_running"),
        ("validation_running", "validation_passed"),
        ("validation_passed", "merged"),
    ]
    assert [h.metadata for h in history[1:]] == [{"step": n} for n in range(len(path))]
    stamps = [h.timestamp for h in history]
    assert stamps == sorted(stamps)


async def _race(
    first: Store, second: Store, workflow_id: str
) -> tuple[list[Workflow], list[BaseException]]:
    outcomes = await asyncio.gather(
        first.transition_workflow(workflow_id, W.PENDING, W.NLP_PARSING, metadata={"by": 1}),
        second.transition_workflow(workflow_id, W.PENDING, W.CANCELLED, metadata={"by": 2}),
        return_exceptions=True,
    )
    won = [o for o in outcomes if isinstance(o, Workflow)]
    lost = [o for o in outcomes if isinstance(o, BaseException)]
    return won, lost


async def _assert_one_winner(
    store: Store, workflow_id: str, won: list[Workflow], lost: list[BaseException]
) -> None:
    assert len(won) == 1, lost
    assert len(lost) == 1
    [error] = lost
    assert isinstance(error, StaleStateError), repr(error)
    assert error.found == won[0].status.value
    assert await store.get_workflow(workflow_id) == won[0]
    history = await store.workflow_history(workflow_id)
    assert [(h.from_state, h.to_state) for h in history] == [
        (None, W.PENDING),
        (W.PENDING, won[0].status),
    ]
    assert history[1].metadata == {"by": 1 if won[0].status is W.NLP_PARSING else 2}


async def test_concurrent_transitions_in_one_store_have_one_winner(store: Store) -> None:
    for _ in range(5):
        workflow = await new_workflow(store)
        won, lost = await _race(store, store, workflow.id)
        await _assert_one_winner(store, workflow.id, won, lost)


async def test_concurrent_transitions_from_two_stores_have_one_winner(
    store: Store, store_factory: StoreFactory
) -> None:
    other = await store_factory(migrate=False)
    for _ in range(10):
        workflow = await new_workflow(store)
        won, lost = await _race(store, other, workflow.id)
        await _assert_one_winner(store, workflow.id, won, lost)


# --- agents ---------------------------------------------------------------------------------------


async def test_agents_upsert_get_list_status_remove(store: Store) -> None:
    capabilities = Capabilities(
        domains=[Domain.DEVELOPMENT, Domain.SECURITY],
        worker_types=[WorkerType.IMPLEMENTATION, WorkerType.AUDIT],
        languages=["python", "go"],
        specialties=["auth"],
    )
    before = datetime.now(UTC)
    claude = await store.upsert_agent(
        "agent-claude",
        name="claude",
        type="agentapi",
        capabilities=capabilities,
        max_concurrency=3,
        metadata={"url": "http://127.0.0.1:3284", "track": {"ok": 3, "failed": 1}},
    )
    assert claude.id == "agent-claude"
    assert claude.name == "claude"
    assert claude.type == "agentapi"
    assert claude.capabilities == capabilities
    assert claude.status is AgentStatus.AVAILABLE
    assert claude.max_concurrency == 3
    assert claude.metadata == {"url": "http://127.0.0.1:3284", "track": {"ok": 3, "failed": 1}}
    assert before <= claude.created_at == claude.updated_at
    aider = await store.upsert_agent("agent-aider", name="aider", type="cli")
    assert aider.capabilities == Capabilities()
    assert aider.max_concurrency == 1
    assert aider.metadata == {}

    assert await store.get_agent("agent-claude") == claude
    assert await store.get_agent("claude") == claude
    assert [a.name for a in await store.list_agents()] == ["aider", "claude"]

    # Upsert again: every field replaced, created_at kept.
    updated = await store.upsert_agent(
        "agent-claude",
        name="claude-code",
        type="cli",
        status=AgentStatus.OFFLINE,
        max_concurrency=5,
        metadata={"command": ["claude", "-p"]},
    )
    assert updated.name == "claude-code"
    assert updated.type == "cli"
    assert updated.capabilities == Capabilities()
    assert updated.status is AgentStatus.OFFLINE
    assert updated.max_concurrency == 5
    assert updated.metadata == {"command": ["claude", "-p"]}
    assert updated.created_at == claude.created_at
    assert updated.updated_at >= claude.updated_at
    with pytest.raises(NotFoundError, match="'claude'"):
        await store.get_agent("claude")
    assert len(await store.list_agents()) == 2

    busy = await store.set_agent_status("agent-claude", AgentStatus.BUSY)
    assert busy.status is AgentStatus.BUSY
    assert (await store.get_agent("claude-code")).status is AgentStatus.BUSY

    removed = await store.remove_agent("aider")
    assert removed == aider
    with pytest.raises(NotFoundError, match="aider"):
        await store.get_agent("agent-aider")
    assert [a.id for a in await store.list_agents()] == ["agent-claude"]


async def test_agent_lookup_prefers_the_id(store: Store) -> None:
    first = await store.upsert_agent("alpha", name="beta", type="sim")
    second = await store.upsert_agent("beta", name="gamma", type="sim")
    assert await store.get_agent("beta") == second
    assert await store.get_agent("alpha") == first


async def test_unknown_agents_are_not_found(store: Store) -> None:
    with pytest.raises(NotFoundError, match="ghost"):
        await store.get_agent("ghost")
    with pytest.raises(NotFoundError, match="ghost"):
        await store.remove_agent("ghost")
    with pytest.raises(NotFoundError, match="ghost"):
        await store.set_agent_status("ghost", AgentStatus.BUSY)


async def test_agent_concurrency_must_be_positive(store: Store) -> None:
    with pytest.raises(InputError, match="0"):
        await store.upsert_agent("a", name="a", type="sim", max_concurrency=0)
    assert await store.list_agents() == []


async def test_agent_names_are_unique(store: Store) -> None:
    await store.upsert_agent("a", name="same", type="sim")
    with pytest.raises(StoreError):
        await store.upsert_agent("b", name="same", type="sim")
    assert [a.id for a in await store.list_agents()] == ["a"]


# --- subtasks and attempts ------------------------------------------------------------------------


async def test_add_subtasks_is_idempotent_and_ordered_by_stage(store: Store) -> None:
    workflow = await new_workflow(store)
    plan = [
        plan_subtask("c-docs", dependencies=["b-impl"]),
        plan_subtask("a-design"),
        plan_subtask("b-impl", dependencies=["a-design"]),
        plan_subtask("d-audit", dependencies=["a-design"]),
    ]
    stage_of = {"a-design": 1, "b-impl": 2, "d-audit": 2, "c-docs": 3}
    added = await store.add_subtasks(workflow.id, plan, stage_of)
    assert [(s.key, s.stage) for s in added] == [
        ("a-design", 1),
        ("b-impl", 2),
        ("d-audit", 2),
        ("c-docs", 3),
    ]
    again = await store.add_subtasks(workflow.id, plan, stage_of)
    assert again == added
    assert await store.list_subtasks(workflow.id) == added

    impl = added[1]
    assert impl.workflow_id == workflow.id
    assert impl.title == "Do b-impl"
    assert impl.description == "Description of b-impl ✓"
    assert impl.assigned_to is Domain.DEVELOPMENT
    assert impl.worker_type is WorkerType.IMPLEMENTATION
    assert impl.dependencies == ["a-design"]
    assert impl.files_affected == ["src/b-impl.py", "docs/ü.md"]
    assert impl.success_criteria == "tests pass"
    assert impl.estimated_duration_minutes == 20
    assert impl.estimated_tokens == 4000
    assert impl.command == ["pytest", "-q", "--name=ä b"]
    assert impl.status is S.PENDING
    assert impl.attempts == 0
    assert impl.agent_id is None
    assert impl.result is None
    assert await store.get_subtask(impl.id) == impl

    # A subtask missing from stage_of lands in stage 0; another workflow's subtasks stay apart.
    other = await new_workflow(store)
    [lone] = await store.add_subtasks(other.id, [plan_subtask("a-design")], {})
    assert lone.stage == 0
    assert lone.command == ["pytest", "-q", "--name=ä b"]
    assert len(await store.list_subtasks(workflow.id)) == 4
    assert await store.list_subtasks("wf-none") == []


async def test_subtask_without_command_stores_null(store: Store) -> None:
    workflow = await new_workflow(store)
    sub = plan_subtask("a").model_copy(update={"command": None})
    [stored] = await store.add_subtasks(workflow.id, [sub], {"a": 1})
    assert stored.command is None


async def test_subtask_transitions_are_checked(store: Store) -> None:
    workflow = await new_workflow(store)
    [sub] = await store.add_subtasks(workflow.id, [plan_subtask("a")], {"a": 1})

    queued = await store.transition_subtask(sub.id, S.PENDING, S.QUEUED)
    assert queued.status is S.QUEUED
    assert queued.updated_at >= sub.updated_at
    assert await store.get_subtask(sub.id) == queued

    with pytest.raises(InvalidTransitionError, match="queued -> completed"):
        await store.transition_subtask(sub.id, S.QUEUED, S.COMPLETED)
    with pytest.raises(StaleStateError, match="queued") as caught:
        await store.transition_subtask(sub.id, S.PENDING, S.QUEUED)
    assert caught.value.found == "queued"
    assert await store.get_subtask(sub.id) == queued

    with pytest.raises(NotFoundError, match="9999"):
        await store.transition_subtask(9999, S.PENDING, S.QUEUED)
    with pytest.raises(NotFoundError, match="9999"):
        await store.get_subtask(9999)


async def test_concurrent_subtask_transitions_have_one_winner(store: Store) -> None:
    workflow = await new_workflow(store)
    [sub] = await store.add_subtasks(workflow.id, [plan_subtask("a")], {"a": 1})
    outcomes = await asyncio.gather(
        store.transition_subtask(sub.id, S.PENDING, S.QUEUED),
        store.transition_subtask(sub.id, S.PENDING, S.CANCELLED),
        return_exceptions=True,
    )
    errors = [o for o in outcomes if isinstance(o, BaseException)]
    assert len(errors) == 1
    assert isinstance(errors[0], StaleStateError)


async def test_attempts_start_finish_list(store: Store) -> None:
    workflow = await new_workflow(store)
    [sub] = await store.add_subtasks(workflow.id, [plan_subtask("a")], {"a": 1})
    await store.upsert_agent("agent-1", name="one", type="sim")

    before = datetime.now(UTC)
    first = await store.start_attempt(sub.id, 1, agent_id="agent-1", worker_id="worker-a")
    assert first.subtask_id == sub.id
    assert first.number == 1
    assert first.agent_id == "agent-1"
    assert first.worker_id == "worker-a"
    assert first.outcome is AttemptOutcome.RUNNING
    assert first.ended_at is None
    assert before <= first.started_at

    failed = await store.finish_attempt(
        first.id, AttemptOutcome.FAILED, error_class="timeout", error_message="took 31 s ⏱"
    )
    assert failed.outcome is AttemptOutcome.FAILED
    assert failed.error_class == "timeout"
    assert failed.error_message == "took 31 s ⏱"
    assert failed.ended_at is not None
    assert failed.started_at <= failed.ended_at
    assert failed.tokens_in is None
    assert failed.cost_usd is None

    with pytest.raises(StaleStateError, match="finished"):
        await store.finish_attempt(first.id, AttemptOutcome.SUCCEEDED)

    second = await store.start_attempt(sub.id, 2, agent_id=None, worker_id=None)
    succeeded = await store.finish_attempt(
        second.id, AttemptOutcome.SUCCEEDED, tokens_in=1200, tokens_out=340, cost_usd=0.0123
    )
    assert succeeded.tokens_in == 1200
    assert succeeded.tokens_out == 340
    assert succeeded.cost_usd == pytest.approx(0.0123)
    assert succeeded.agent_id is None

    assert await store.list_attempts(sub.id) == [failed, succeeded]
    assert await store.list_attempts(9999) == []


async def test_attempt_numbers_are_unique_per_subtask(store: Store) -> None:
    workflow = await new_workflow(store)
    [sub] = await store.add_subtasks(workflow.id, [plan_subtask("a")], {"a": 1})
    await store.start_attempt(sub.id, 1, agent_id=None, worker_id="w1")
    with pytest.raises(StoreError):
        await store.start_attempt(sub.id, 1, agent_id=None, worker_id="w2")
    assert [a.worker_id for a in await store.list_attempts(sub.id)] == ["w1"]


# --- events ---------------------------------------------------------------------------------------


async def test_events_append_and_list(store: Store) -> None:
    one = await new_workflow(store)
    two = await new_workflow(store)
    [sub] = await store.add_subtasks(one.id, [plan_subtask("a")], {"a": 1})

    first = await store.append_event("workflow.created", workflow_id=one.id)
    second = await store.append_event(
        "subtask.started", workflow_id=one.id, subtask_id=sub.id, payload={"agent": "ä"}
    )
    third = await store.append_event("workflow.created", workflow_id=two.id, payload={"n": [1]})
    fourth = await store.append_event("engine.started")

    assert first.kind == "workflow.created"
    assert first.payload == {}
    assert first.subtask_id is None
    assert second.subtask_id == sub.id
    assert second.payload == {"agent": "ä"}
    assert fourth.workflow_id is None
    assert first.id < second.id < third.id < fourth.id

    assert await store.list_events() == [first, second, third, fourth]
    assert await store.list_events(after_id=second.id) == [third, fourth]
    assert await store.list_events(after_id=fourth.id) == []
    assert await store.list_events(workflow_id=one.id) == [first, second]
    assert await store.list_events(workflow_id=one.id, after_id=first.id) == [second]
    assert await store.list_events(limit=3) == [first, second, third]
    assert await store.list_events(after_id=first.id, limit=1) == [second]


# --- values ---------------------------------------------------------------------------------------


async def test_json_columns_round_trip_exactly(store: Store) -> None:
    task = await store.create_task(NewTask.create("t", metadata=AWKWARD))
    assert same_json(task.metadata, AWKWARD)
    assert same_json((await store.get_task(task.id)).metadata, AWKWARD)

    workflow = await store.create_workflow(task.id, metadata=AWKWARD)
    assert same_json(workflow.metadata, AWKWARD)
    moved = await store.transition_workflow(
        workflow.id, W.PENDING, W.CANCELLED, metadata={"more": AWKWARD}, result=AWKWARD
    )
    assert same_json(moved.metadata, {**AWKWARD, "more": AWKWARD})
    assert same_json(moved.result, AWKWARD)
    assert same_json((await store.get_workflow(workflow.id)).result, AWKWARD)
    history = await store.workflow_history(workflow.id)
    assert same_json(history[-1].metadata, {"more": AWKWARD})

    agent = await store.upsert_agent("a", name="ä", type="sim", metadata=AWKWARD)
    assert same_json((await store.get_agent("ä")).metadata, AWKWARD)
    assert agent.name == "ä"

    event = await store.append_event("kind ✓", payload=AWKWARD)
    [listed] = await store.list_events()
    assert listed == event
    assert listed.kind == "kind ✓"
    assert same_json(listed.payload, AWKWARD)


async def test_timestamps_are_utc(store: Store) -> None:
    task = await store.create_task(NewTask.create("t"))
    workflow = await store.create_workflow(task.id)
    done = await store.transition_workflow(workflow.id, W.PENDING, W.CANCELLED)
    [sub] = await store.add_subtasks(workflow.id, [plan_subtask("a")], {"a": 1})
    attempt = await store.start_attempt(sub.id, 1, agent_id=None, worker_id=None)
    finished = await store.finish_attempt(attempt.id, AttemptOutcome.SUCCEEDED)
    agent = await store.upsert_agent("a", name="a", type="sim")
    event = await store.append_event("e")
    history = await store.workflow_history(workflow.id)

    assert_utc(task.created_at, task.updated_at)
    assert_utc(done.created_at, done.updated_at, done.start_time, done.end_time)
    assert_utc(sub.created_at, sub.updated_at)
    assert_utc(finished.started_at, finished.ended_at)
    assert_utc(agent.created_at, agent.updated_at, event.created_at)
    assert_utc(*(h.timestamp for h in history))


async def test_timestamps_are_utc_whatever_the_clock_and_session_zone(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A PostgreSQL session in another zone (libpq reads PGTZ) and a clock that is not in UTC.
    monkeypatch.setenv("PGTZ", "Asia/Kolkata")
    kolkata = ZoneInfo("Asia/Kolkata")
    opened = await open_store(database_url, migrate=True)
    try:
        store = Store(opened.connector, clock=lambda: datetime.now(kolkata))
        before = datetime.now(UTC)
        task = await store.create_task(NewTask.create("t"))
        workflow = await store.create_workflow(task.id)
        done = await store.transition_workflow(workflow.id, W.PENDING, W.CANCELLED)
        event = await store.append_event("e")
        [entry, *_] = await store.workflow_history(workflow.id)
        assert_utc(task.created_at, done.start_time, done.end_time, event.created_at)
        assert_utc(entry.timestamp, (await store.get_task(task.id)).created_at)
        assert before <= task.created_at <= datetime.now(UTC)
    finally:
        await opened.close()


@pytest.mark.parametrize("in_thread", [False, True], ids=["as-it-comes", "sqlite-in-thread"])
@pytest.mark.parametrize("yields", [0, 1, 2, 3])
async def test_a_transaction_cancelled_as_it_begins_leaves_the_connection_usable(
    store: Store, yields: int, in_thread: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A task cancelled while its BEGIN is on the wire (a worker stopping its lease keeper, say)
    must not leave a transaction open for the next one to trip over. (SQLite runs quick trips in
    the loop's thread, where nothing is on the wire to cancel: ``in_thread`` sends them all to
    aiosqlite's thread.)"""
    if in_thread:
        monkeypatch.setattr(sqlite_calls, "INLINE_MAX_S", -1.0)

    async def read() -> None:
        async with store.connector.transaction(write=True) as tx:
            await tx.fetchall("list_tasks", {"status": None, "limit": 10})

    task = asyncio.create_task(read())
    for _ in range(yields):
        await asyncio.sleep(0)
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):  # (or it had ended: nothing to cut off)
        await task
    await read()
    assert (await store.create_task(NewTask.create("after a cancel"))).title == "after a cancel"


async def test_a_lone_read_never_sees_what_an_open_transaction_has_not_committed(
    store: Store,
) -> None:
    """``read`` runs one statement without a transaction of its own: on SQLite's one shared
    connection it must wait for another coroutine's open transaction, not run inside it (it
    would see a row that is then rolled back), and a cancelled read leaves the connection
    usable."""
    started, go_on = asyncio.Event(), asyncio.Event()

    async def write_then_fail() -> None:
        async with store.connector.transaction() as tx:
            await tx.fetchone(
                "insert_task",
                {"title": "rolled back", "description": "", "priority": "medium",
                 "dependencies": "[]", "metadata": "{}", "now": datetime.now(UTC)},
            )  # fmt: skip
            started.set()
            await go_on.wait()
            raise LookupError("rolled back")

    writer = asyncio.create_task(write_then_fail())
    await started.wait()
    listing = {"status": None, "limit": 9}
    reader = asyncio.create_task(store.connector.read("list_tasks", listing))
    await asyncio.sleep(0.05)
    go_on.set()
    with pytest.raises(LookupError):
        await writer
    assert await reader == []

    task = await store.create_task(NewTask.create("committed"))
    assert [row["title"] for row in await store.connector.read("list_tasks", listing)] == [
        "committed"
    ]
    assert (await store.connector.read_one("get_task", {"id": task.id}) or {})["id"] == task.id
    assert await store.connector.read_one("get_task", {"id": -1}) is None

    cancelled = asyncio.create_task(store.connector.read("list_tasks", listing))
    await asyncio.sleep(0)
    cancelled.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await cancelled
    assert (await store.create_task(NewTask.create("after a cancel"))).title == "after a cancel"
