"""``task list``, ``task show`` and ``status`` name a pending task that cannot start, and why."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from cli_harness import run_cli

from taskorch.domain.models import TaskStatus
from taskorch.engine import OrchestrationEngine
from taskorch.settings import load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "DB_HOST", "TASKORCH_CONFIG"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".taskorch"


async def _fail(home: Path, task_id: int) -> None:
    async with OrchestrationEngine(load_settings(taskorch_home=home)) as engine:
        await engine.store.set_task_status(task_id, TaskStatus.PENDING, TaskStatus.PROCESSING)
        await engine.store.set_task_status(task_id, TaskStatus.PROCESSING, TaskStatus.FAILED)


def test_a_task_behind_a_failed_dependency_is_named_with_the_reason(home: Path) -> None:
    assert run_cli(["task", "add", "first"]).code == 0
    assert run_cli(["task", "add", "second", "--depends-on", "task-1"]).code == 0
    assert "pending (waiting)" in run_cli(["task", "list"]).out
    shown = json.loads(run_cli(["task", "show", "2", "--json"]).out)
    assert shown["hold"] == {"blocked": False, "reason": "waits for task-1 (pending)"}

    asyncio.run(_fail(home, 1))
    reason = "task-2 cannot start: it depends on task-1, which failed"
    listed = run_cli(["task", "list"]).out
    assert "pending (blocked)" in listed
    assert reason in listed
    assert reason in run_cli(["status"]).out
    assert (
        "(cannot start: it depends on task-1, which failed)" in run_cli(["task", "show", "2"]).out
    )
    [_, second] = json.loads(run_cli(["task", "list", "--json"]).out)
    assert second["hold"] == {"blocked": True, "reason": reason.removeprefix("task-2 ")}


def test_a_dependency_ring_written_by_sql_is_shown_as_held(home: Path) -> None:
    """Tasks that SQL made wait for each other (``task import`` refuses such a file) are shown
    held, with the ring, rather than pending for ever with no word."""
    for title in ("first", "second"):
        assert run_cli(["task", "add", title]).code == 0
    with closing(sqlite3.connect(home / "taskorch.db")) as connection:
        connection.execute("UPDATE tasks SET dependencies = '[2]' WHERE id = 1")
        connection.execute("UPDATE tasks SET dependencies = '[1]' WHERE id = 2")
        connection.commit()
    ring = "dependency cycle: task-1 -> task-2 -> task-1"
    listed = run_cli(["task", "list"]).out
    assert listed.count("pending (blocked)") == 2
    assert f"task-1 {ring}" in listed
    assert f"task-2 {ring}" in listed
    assert f"task-2 {ring}" in run_cli(["status"]).out
    holds = [task["hold"] for task in json.loads(run_cli(["task", "list", "--json"]).out)]
    assert holds == [{"blocked": True, "reason": ring}] * 2
