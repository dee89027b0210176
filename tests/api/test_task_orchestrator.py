"""The specification's generic ``TaskOrchestrator``: tasks with dependencies run in dependency
order through the pipeline; ``update_task_state`` is stored and shown; a JSON task log; a
completion callback and bus event."""

from __future__ import annotations

import asyncio
import itertools
import json
from pathlib import Path
from typing import Any

import pytest

from agents.e2e import demo_repo
from taskorch.cli.main import invoke
from taskorch.domain.errors import InputError
from taskorch.domain.models import TaskStatus
from taskorch.engine.orchestrator import TaskCompletion, TaskOrchestrator
from taskorch.settings import load_settings


def orchestrator(tmp_path: Path, **options: Any) -> TaskOrchestrator:
    return TaskOrchestrator(
        settings=load_settings(taskorch_home=tmp_path / ".taskorch"), agent="sim", options=options
    )


async def test_tasks_run_in_dependency_order_each_through_the_pipeline(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    finished: list[TaskCompletion] = []
    async with orchestrator(tmp_path, repo=str(repo)) as orch:
        inbox = orch.engine.events.subscribe()
        schema = await orch.add_task("Add a users table to the schema")
        api = await orch.add_task("Add a users endpoint", dependencies=[schema.id])
        orch.on_task_complete(finished.append)

        runs = await orch.execute_with_dependencies([f"task-{api.id}", schema.id])

        assert [(r.task_id, r.status) for r in runs] == [
            (schema.id, "completed"),
            (api.id, "completed"),
        ]
        assert finished == runs
        workflows = [await orch.engine.store.get_workflow(str(r.workflow_id)) for r in runs]
        for before, after in itertools.pairwise(workflows):
            assert before.end_time is not None
            assert after.start_time is not None
            assert before.end_time <= after.start_time
        for task in (schema, api):
            assert (await orch.engine.get_task(task.id)).status == TaskStatus.COMPLETED
        events = []
        while not inbox.empty():
            events.append(inbox.get_nowait())
        completed = [e["task_id"] for e in events if e["event"] == "task:completed"]
        assert completed == [schema.id, api.id]
        log = json.loads(orch.task_log_path(api.id).read_text())
        assert log["taskId"] == f"task-{api.id}"
        assert log["dependencies"] == [f"task-{schema.id}"]
        assert [w["status"] for w in log["workflows"]] == ["merged"]


async def test_update_task_state_is_stored_shown_logged_and_completes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    finished: list[TaskCompletion] = []
    async with orchestrator(tmp_path) as orch:
        first = await orch.add_task("Migrate the billing data")
        second = await orch.add_task("Drop the old billing tables", dependencies=[first.id])
        orch.on_task_complete(finished.append)

        state = await orch.update_task_state(first.id, "in_progress", 40, "copied 4 of 10 tables")
        assert (state.status, state.reported_status) == (TaskStatus.PENDING, "in_progress")
        assert (state.progress, state.message) == (40.0, "copied 4 of 10 tables")
        with pytest.raises(InputError, match="progress must be a percentage from 0 to 100"):
            await orch.update_task_state(first.id, "in_progress", 140)
        with pytest.raises(InputError, match="invalid status 'paused'"):
            await orch.update_task_state(first.id, "paused")
        assert finished == []

        # a skipped dependent: its dependency has not completed
        [skipped] = await orch.execute_with_dependencies([second.id])
        assert skipped.status == "skipped"
        assert skipped.reason == f"task-{first.id} is pending, not completed"

        done = await orch.update_task_state(first.id, "completed", 100, "all 10 tables copied")
        assert done.status == TaskStatus.COMPLETED
        assert [(c.task_id, c.status) for c in finished] == [
            (second.id, "skipped"),
            (first.id, "completed"),
        ]
        log = await orch.get_task_log(first.id)
        assert [h["progress"] for h in log["history"]] == [40.0, 100.0]
        assert json.loads(orch.task_log_path(first.id).read_text())["progress"] == 100.0

    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    assert await asyncio.to_thread(invoke, ["task", "show", str(first.id)]) == 0
    shown = capsys.readouterr().out
    assert "completed, 100 % at" in shown
    assert "all 10 tables copied" in shown


def test_a_task_orchestrator_runs_without_a_running_loop_of_its_own(tmp_path: Path) -> None:
    async def body() -> int:
        orch = orchestrator(tmp_path)
        with pytest.raises(InputError, match="not initialised"):
            await orch.add_task("x")
        await orch.initialize()
        try:
            return (await orch.add_task("Write the changelog")).id
        finally:
            await orch.shutdown()

    assert asyncio.run(body()) == 1
