"""Lone SQLite reads asked for together share a trip to aiosqlite's thread, each still answered
with its own rows (or its own error), in the order asked; a workflow's status is two trips."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from fakes.sqlite_trips import Trips
from taskorch.domain.errors import NotFoundError
from taskorch.domain.models import NewTask
from taskorch.domain.states import WorkflowState as W
from taskorch.engine import OrchestrationEngine
from taskorch.engine.overview import workflow_statuses
from taskorch.engine.setup import open_engine
from taskorch.settings import load_settings
from taskorch.store import Store, open_store
from taskorch.store.connector import Statement


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite alone (conftest's ``store`` opens it): what is measured here is SQLite's own."""
    return sqlite_url


async def test_reads_asked_together_share_one_trip(store: Store) -> None:
    tasks = [await store.create_task(NewTask.create(f"Write file {i}")) for i in range(3)]
    trips = Trips(store)
    found, agents = await asyncio.gather(
        asyncio.gather(*(store.get_task(t.id) for t in tasks)), store.list_agents()
    )
    assert trips.take() == 1  # it was four
    assert [t.title for t in found] == ["Write file 0", "Write file 1", "Write file 2"]
    assert agents == []
    rows = await store.connector.reads(
        [Statement("get_task", {"id": tasks[2].id}), Statement("get_task", {"id": tasks[0].id})]
    )
    assert trips.take() == 1
    assert [r[0]["title"] for r in rows] == ["Write file 2", "Write file 0"]


async def test_an_error_goes_to_its_reader_only(store: Store) -> None:
    task = await store.create_task(NewTask.create("Write the file"))
    missing, found = await asyncio.gather(
        store.get_task(task.id + 1), store.get_task(task.id), return_exceptions=True
    )
    assert isinstance(missing, NotFoundError)
    assert not isinstance(found, BaseException)
    assert found.id == task.id


async def test_a_cancelled_reader_strands_nobody(store: Store) -> None:
    task = await store.create_task(NewTask.create("Write the file"))
    cancelled = asyncio.create_task(store.get_task(task.id))
    behind = asyncio.create_task(store.get_task(task.id))
    await asyncio.sleep(0)  # both asked
    cancelled.cancel()
    assert (await behind).id == task.id
    with pytest.raises(asyncio.CancelledError):
        await cancelled
    assert (await store.get_task(task.id)).id == task.id


async def test_a_read_after_a_write_sees_it(store: Store) -> None:
    task = await store.create_task(NewTask.create("Write the file"))
    workflow = await store.create_workflow(task.id)
    reading = asyncio.create_task(store.get_workflow(workflow.id))
    await store.transition_workflow(workflow.id, W.PENDING, W.NLP_PARSING)
    # Asked before the write committed: either state, never a half-written one.
    assert (await reading).status in (W.PENDING, W.NLP_PARSING)
    assert (await store.get_workflow(workflow.id)).status is W.NLP_PARSING


async def test_a_workflow_status_is_two_trips(sqlite_url: str, tmp_path: Path) -> None:
    settings = load_settings(database_url=sqlite_url, taskorch_home=tmp_path / "home")
    engine: OrchestrationEngine
    async with open_engine(settings) as engine:
        task = await engine.add_task(NewTask.create("Write the file"))
        workflow = await engine.store.create_workflow(task.id)
        trips = Trips(engine.store)
        status = await engine.get_workflow_status(workflow.id)
        # The workflow, its subtasks, history, events, budget, rate windows, attempts and the
        # agents in one trip; then its task (it names the task) and the budget's rates: it was
        # fourteen, one read after another.
        assert trips.take() <= 2
        assert status.task.id == task.id
        assert [h.to_state for h in status.history] == [W.PENDING]


async def test_the_statuses_of_a_batch_share_their_trips(sqlite_url: str, tmp_path: Path) -> None:
    settings = load_settings(database_url=sqlite_url, taskorch_home=tmp_path / "home")
    engine: OrchestrationEngine
    async with open_engine(settings) as engine:
        ids = []
        for i in range(3):
            task = await engine.add_task(NewTask.create(f"Write file {i}"))
            ids.append((await engine.store.create_workflow(task.id)).id)
        trips = Trips(engine.store)
        statuses = await workflow_statuses(
            engine.store, engine.queue, engine.agent_directory, list(reversed(ids))
        )
        assert trips.take() <= 2  # the end of a batch read them one after another: six
        assert [s.workflow.id for s in statuses] == list(reversed(ids))


def test_a_store_read_in_one_event_loop_then_another(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'taskorch.db'}"

    async def first() -> tuple[Store, int]:
        opened = await open_store(url, migrate=True)
        task = await opened.create_task(NewTask.create("Write the file"))
        # A read left on its way when the loop ends (a command stopped mid-way).
        asyncio.get_running_loop().create_task(opened.get_task(task.id))
        return opened, task.id

    opened, task_id = asyncio.run(first())

    async def second() -> str:
        try:
            return (await opened.get_task(task_id)).title
        finally:
            await opened.close()

    assert asyncio.run(second()) == "Write the file"
