"""Why a pending task has not started: each dependency that failed, was cancelled or does not
exist is named (the task is blocked), else the ones it still waits for; ``serve`` logs it once
(the CLI's part is in tests/cli/test_cli_blocked.py)."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from pathlib import Path

import pytest

from taskorch.domain.models import NewTask, Task, TaskStatus
from taskorch.engine import OrchestrationEngine
from taskorch.engine.daemon import Daemon
from taskorch.engine.status import TaskHold, task_hold, task_holds
from taskorch.settings import load_settings
from taskorch.store import Store

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def task(task_id: int, status: str = "pending", *dependencies: int) -> Task:
    return Task(
        id=task_id,
        title=f"task {task_id}",
        status=TaskStatus(status),
        dependencies=list(dependencies),
        created_at=NOW,
        updated_at=NOW,
    )


@pytest.mark.parametrize(
    ("status", "dependencies", "expected"),
    [
        ("pending", {}, None),
        ("pending", {1: "completed"}, None),
        ("processing", {1: "failed"}, None),
        (
            "pending",
            {1: "pending", 2: "processing"},
            (False, "waits for task-1 (pending), task-2 (processing)"),
        ),
        ("pending", {1: "failed"}, (True, "cannot start: it depends on task-1, which failed")),
        (
            "pending",
            {1: "cancelled"},
            (True, "cannot start: it depends on task-1, which was cancelled"),
        ),
        ("pending", {1: None}, (True, "cannot start: it depends on task-1, which does not exist")),
        (
            "pending",
            {1: "pending", 2: "failed", 3: None},
            (
                True,
                "cannot start: it depends on task-2, which failed and task-3, which does not exist",
            ),
        ),
    ],
)
def test_task_hold_names_each_dependency_in_the_way(
    status: str, dependencies: dict[int, str | None], expected: tuple[bool, str] | None
) -> None:
    known = {n: task(n, s) for n, s in dependencies.items() if s is not None}
    hold = task_hold(task(9, status, *dependencies), known)
    assert hold == (TaskHold(9, *expected) if expected else None)


@pytest.fixture
def engine(store: Store, tmp_path: Path) -> OrchestrationEngine:
    return OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home"), store=store)


async def _failed_and_its_dependent(engine: OrchestrationEngine) -> tuple[Task, Task]:
    first = await engine.add_task(NewTask.create("first"))
    second = await engine.add_task(NewTask.create("second", dependencies=[first.id]))
    await engine.store.set_task_status(first.id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    await engine.store.set_task_status(first.id, TaskStatus.PROCESSING, TaskStatus.FAILED)
    return first, second


async def test_task_holds_looks_up_dependencies_not_listed(engine: OrchestrationEngine) -> None:
    first, second = await _failed_and_its_dependent(engine)
    holds = await task_holds([second], engine.get_task)
    assert holds == {
        second.id: TaskHold(
            second.id, True, f"cannot start: it depends on {first.ref}, which failed"
        )
    }


async def test_serve_logs_a_task_it_cannot_start_once(
    engine: OrchestrationEngine, caplog: pytest.LogCaptureFixture
) -> None:
    first, second = await _failed_and_its_dependent(engine)
    daemon = Daemon(engine, {}, options={"agent": "sim"})
    caplog.set_level(logging.INFO, logger="taskorch.engine.daemon")
    assert not await daemon._dependencies_done(second)
    assert not await daemon._dependencies_done(second)
    said = [r for r in caplog.records if r.name == "taskorch.engine.daemon"]
    assert [(r.levelno, r.getMessage()) for r in said] == [
        (logging.WARNING, f"{second.ref} cannot start: it depends on {first.ref}, which failed")
    ]
