"""The task-orchestrator agent's files, kept per workflow by an event subscriber: the plan, the
state (rewritten at each transition), a handoff per completed subtask for those that depend on
it, every event as a JSON line, and the completion report; checked after a simulated run."""

from __future__ import annotations

import asyncio
import json
import stat
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from fakes.sqlite_trips import Trips
from taskorch.domain.models import Attempt, NewTask
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import OrchestrationEngine
from taskorch.engine.daemon import Daemon
from taskorch.engine.setup import agent_adapters, open_engine
from taskorch.settings import load_settings

REQUIREMENT = "Add authentication system with security audit and documentation"


@pytest.fixture
async def engine(sqlite_url: str, tmp_path: Path) -> AsyncIterator[OrchestrationEngine]:
    settings = load_settings(database_url=sqlite_url, taskorch_home=tmp_path / "home")
    async with open_engine(settings) as running:
        yield running


async def _run_one(engine: OrchestrationEngine) -> str:
    ended = engine.events.subscribe()
    daemon = Daemon(engine, agent_adapters(engine, "sim"), options={"agent": "sim"})
    running = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(120):
            while True:
                event = await ended.get()
                if event["event"] == "workflow:transition" and event["to"] in WORKFLOW_TERMINAL:
                    break
    finally:
        engine.events.unsubscribe(ended)
        daemon.stop()
    stats = await running
    [(workflow_id, state)] = stats.finished.items()
    assert state == "merged"
    return workflow_id


async def test_a_run_leaves_plan_state_handoffs_events_and_report(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    task = await engine.add_task(NewTask.create(REQUIREMENT))
    read_again: list[int] = []
    real_list_attempts = engine.store.list_attempts

    async def list_attempts(subtask_id: int) -> list[Attempt]:
        read_again.append(subtask_id)
        return await real_list_attempts(subtask_id)

    engine.store.list_attempts = list_attempts  # type: ignore[method-assign]
    workflow_id = await _run_one(engine)
    await engine.files.stop()  # what a command's end does: the queued events are written
    assert read_again == []  # the report's attempts are those its status read, not read again
    folder = tmp_path / "home" / "workflows" / workflow_id
    status = await engine.get_workflow_status(workflow_id)
    keys = [s.key for s in status.subtasks]
    assert len(keys) >= 4

    plan = json.loads((folder / "plan.json").read_text())
    assert plan["workflow_id"] == workflow_id
    assert plan["task"] == task.ref
    assert [s["subtask_id"] for s in plan["plan"]["subtasks"]] == keys

    state = json.loads((folder / "state.json").read_text())
    assert state["state"] == "merged"
    assert state["completed_subtasks"] == keys
    assert [h["to"] for h in state["history"]] == [h.to_state.value for h in status.history]

    handoffs = sorted(p.stem for p in (folder / "handoffs").glob("*.md"))
    assert handoffs == sorted(keys)
    first = status.subtasks[0]
    waiting = [s.key for s in status.subtasks if first.key in s.dependencies]
    assert waiting
    text = (folder / "handoffs" / f"{first.key}.md").read_text()
    section = text.split("## For the subtasks that depend on it", 1)[1]
    assert all(f"- {key}:" in section for key in waiting)
    assert first.result is not None
    assert all(f"- {name}" in text for name in first.result["files"])
    assert str(first.result["commit"]) in text

    lines = [
        json.loads(line) for line in (folder / "dashboard-events.jsonl").read_text().splitlines()
    ]
    assert {line["workflow_id"] for line in lines} == {workflow_id}
    transitions = [line["to"] for line in lines if line["event"] == "workflow:transition"]
    assert transitions == [h.to_state.value for h in status.history]
    completed = sorted(line["key"] for line in lines if line["event"] == "task:complete")
    assert completed == sorted(keys)

    report = (folder / "report.md").read_text()
    assert "- outcome: merged" in report
    assert f"- merged as: {status.workflow.result['base_commit']}" in report  # type: ignore[index]
    assert f"- subtasks: {len(keys)}; attempts: {len(keys)};" in report
    assert all(f"| {key} |" in report for key in keys)
    assert stat.S_IMODE((folder / "report.md").stat().st_mode) == 0o600


async def test_files_can_be_turned_off(sqlite_url: str, tmp_path: Path) -> None:
    settings = load_settings(
        database_url=sqlite_url, taskorch_home=tmp_path / "home", taskorch_workflow_files=False
    )
    async with open_engine(settings) as engine:
        await engine.add_task(NewTask.create("Fix bug in app/views.py line 12"))
        await _run_one(engine)
    assert not (tmp_path / "home" / "workflows").exists()


async def test_a_batch_of_workflows_is_read_at_once_and_written_in_one_hop(
    engine: OrchestrationEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = []
    for i in range(3):
        task = await engine.add_task(NewTask.create(f"Write file {i}"))
        ids.append((await engine.store.create_workflow(task.id)).id)
    records = [
        {"event": "workflow:transition", "workflow_id": w, "from": None, "to": "pending"}
        for w in ids
    ] + [{"event": "task:assigned", "workflow_id": ids[0], "key": "a"}]
    hops: list[str] = []
    real_to_thread = asyncio.to_thread

    async def to_thread(fn: Callable[..., Any], /, *args: Any) -> Any:
        hops.append(fn.__name__)
        return await real_to_thread(fn, *args)

    monkeypatch.setattr(asyncio, "to_thread", to_thread)
    trips = Trips(engine.store)
    await engine.files._write_batch(records)
    # One hop for the three workflows' files, and their three statuses in two trips: it was
    # two hops and two (before: fourteen) trips per workflow.
    assert hops == ["_write_workflows"]
    assert trips.take() == 2
    for workflow_id in ids:
        folder = tmp_path / "home" / "workflows" / workflow_id
        assert json.loads((folder / "state.json").read_text())["state"] == "pending"
        lines = (folder / "dashboard-events.jsonl").read_text().splitlines()
        assert len(lines) == (2 if workflow_id == ids[0] else 1)
