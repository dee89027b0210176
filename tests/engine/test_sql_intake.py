"""Requirements "from a database": a task inserted by plain SQL, through the database's own
driver and with only the specification's two columns, is taken by ``serve``'s daemon and carried
to merged code; tasks that SQL made depend on each other in a ring are held with the ring named
(logged once), not left pending with no word."""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
from collections.abc import AsyncIterator
from pathlib import Path

import psycopg
import pytest

from taskorch.domain.models import TaskStatus
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import OrchestrationEngine
from taskorch.engine.daemon import Daemon
from taskorch.engine.setup import agent_adapters, open_engine
from taskorch.engine.status import TaskHold, task_holds
from taskorch.settings import load_settings

WAIT_S = 120.0


def run_sql(database_url: str, *statements: str) -> None:
    """What a user or another program does: the driver, autocommit, no taskorch code."""
    if database_url.startswith("sqlite:///"):
        connection = sqlite3.connect(database_url.removeprefix("sqlite:///"))
        try:
            for statement in statements:
                connection.execute(statement)
            connection.commit()
        finally:
            connection.close()
    else:
        with psycopg.connect(database_url, autocommit=True) as pg:
            for statement in statements:
                pg.execute(statement.encode())


def git_log(repository: Path) -> str:
    argv = ["git", "log", "--format=%s", "main"]
    return subprocess.run(argv, cwd=repository, capture_output=True, text=True, check=True).stdout


@pytest.fixture
async def engine(database_url: str, tmp_path: Path) -> AsyncIterator[OrchestrationEngine]:
    settings = load_settings(database_url=database_url, taskorch_home=tmp_path / "home")
    async with open_engine(settings) as running:
        yield running


async def test_a_task_inserted_by_plain_sql_is_carried_to_merged(
    engine: OrchestrationEngine, database_url: str, tmp_path: Path
) -> None:
    await asyncio.to_thread(
        run_sql,
        database_url,
        "INSERT INTO tasks (title, description) "
        "VALUES ('Fix bug in app/views.py line 12', 'The order page crashes on an empty cart')",
    )
    [task] = await engine.list_tasks()
    assert (task.status, task.priority.value) == (TaskStatus.PENDING, "medium")
    assert task.dependencies == []
    assert task.created_at.tzinfo is not None

    ended = engine.events.subscribe()
    daemon = Daemon(engine, agent_adapters(engine, "sim", 0.0), options={"agent": "sim"})
    running = asyncio.create_task(daemon.run())
    try:
        async with asyncio.timeout(WAIT_S):
            while True:
                event = await ended.get()
                if event["event"] == "workflow:transition" and event["to"] in WORKFLOW_TERMINAL:
                    break
    finally:
        engine.events.unsubscribe(ended)
        daemon.stop()
    stats = await running
    assert list(stats.finished.values()) == ["merged"]
    assert (await engine.get_task(task.id)).status is TaskStatus.COMPLETED
    scratch = tmp_path / "home" / "repos" / "scratch"
    log = await asyncio.to_thread(git_log, scratch)
    # The simulated agent's commit, made from the inserted description, reached main.
    assert "The order page crashes on an empty cart" in log
    assert "taskorch: merge subtask" in log


async def test_a_dependency_ring_written_by_sql_is_held_and_named_once(
    engine: OrchestrationEngine, database_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    await asyncio.to_thread(
        run_sql,
        database_url,
        "INSERT INTO tasks (title) VALUES ('Add login page')",
        "INSERT INTO tasks (title) VALUES ('Add logout')",
        "INSERT INTO tasks (title) VALUES ('Add profile page')",
        "UPDATE tasks SET dependencies = '[2]' WHERE title = 'Add login page'",
        "UPDATE tasks SET dependencies = '[1]' WHERE title = 'Add logout'",
        "UPDATE tasks SET dependencies = '[2]' WHERE title = 'Add profile page'",
    )
    tasks = await engine.list_tasks()
    ring = "dependency cycle: task-1 -> task-2 -> task-1"
    assert await task_holds(tasks, engine.get_task) == {
        1: TaskHold(1, True, ring),
        2: TaskHold(2, True, ring),
        3: TaskHold(3, True, f"cannot start: it waits on a {ring}"),
    }

    daemon = Daemon(engine, {}, options={"agent": "sim"})
    caplog.set_level(logging.INFO, logger="taskorch.engine.daemon")
    for _ in range(2):
        for task in tasks:
            assert not await daemon._dependencies_done(task)
    said = [r.getMessage() for r in caplog.records if r.name == "taskorch.engine.daemon"]
    assert said == [f"task-1 {ring}", f"task-3 cannot start: it waits on a {ring}"]
