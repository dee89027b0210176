"""SQLite transactions in few trips to aiosqlite's thread: ``BEGIN`` goes with the first statement,
a statement that answers nothing waits for the next one that does (or for ``COMMIT``), and none of
that changes what is stored, in which order, or what an error undoes."""

from __future__ import annotations

import pytest

from fakes.sqlite_trips import Trips
from taskorch.domain.errors import StaleStateError, StoreError
from taskorch.domain.models import NewTask, Workflow
from taskorch.domain.states import WorkflowState as W
from taskorch.store import Store


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite alone (conftest's ``store`` opens it): what is measured here is SQLite's own."""
    return sqlite_url


async def _workflow(store: Store) -> Workflow:
    task = await store.create_task(NewTask.create("Write the file"))
    return await store.create_workflow(task.id)


async def test_a_state_change_with_its_history_row_is_one_trip(store: Store) -> None:
    workflow = await _workflow(store)
    trips = Trips(store)
    moved = await store.transition_workflow(workflow.id, W.PENDING, W.NLP_PARSING)
    # BEGIN, the checked UPDATE, the history row and COMMIT in the thread: it was four trips.
    assert trips.take() == 1
    assert moved.status is W.NLP_PARSING
    history = await store.workflow_history(workflow.id)
    assert [(h.from_state, h.to_state) for h in history][-1] == ("pending", "nlp_parsing")


async def test_a_stale_state_change_writes_nothing(store: Store) -> None:
    workflow = await _workflow(store)
    with pytest.raises(StaleStateError, match="is pending, expected nlp_parsing"):
        await store.transition_workflow(workflow.id, W.NLP_PARSING, W.TASK_DECOMPOSITION)
    assert len(await store.workflow_history(workflow.id)) == 1
    # The connection is usable: the transaction that matched nothing ended.
    await store.transition_workflow(workflow.id, W.PENDING, W.NLP_PARSING)


async def test_a_transaction_that_runs_nothing_makes_no_trip(store: Store) -> None:
    trips = Trips(store)
    async with store.connector.transaction():
        pass
    async with store.connector.transaction(write=False):
        pass
    assert trips.take() == 0


async def test_a_waiting_statement_runs_before_the_next_one_that_answers(store: Store) -> None:
    workflow = await _workflow(store)
    row = {
        "workflow_id": workflow.id,
        "from_state": "pending",
        "to_state": "pending",
        "now": "2026-01-01T00:00:00+00:00",
        "metadata": "{}",
    }
    async with store.connector.transaction() as tx:
        await tx.execute("insert_history", row)
        await tx.executemany("insert_history", [row, row])
        seen = await tx.fetchall("list_history", {"workflow_id": workflow.id})
    assert len(seen) == 1 + 3  # the first row (created), then the three in order


async def test_a_failing_waiting_statement_undoes_the_whole_transaction(store: Store) -> None:
    workflow = await _workflow(store)
    states = {"id": workflow.id, "from_state": "pending", "to_state": "nlp_parsing"}
    broken = {  # no such workflow: the foreign key refuses it, at COMMIT's trip
        "workflow_id": "wf-none",
        "from_state": "pending",
        "to_state": "nlp_parsing",
        "now": "2026-01-01T00:00:00+00:00",
        "metadata": "{}",
    }
    moving = {**states, "terminal": False, "result": None, "metadata": "{}", "now": "x"}

    async def move_with_a_broken_history_row() -> None:
        async with store.connector.transaction() as tx:
            moved = await tx.fetchone("transition_workflow", moving)
            assert moved is not None
            assert moved["status"] == "nlp_parsing"
            await tx.execute("insert_history", broken)

    with pytest.raises(StoreError, match="FOREIGN KEY"):
        await move_with_a_broken_history_row()
    assert (await store.get_workflow(workflow.id)).status is W.PENDING
    assert len(await store.workflow_history(workflow.id)) == 1
    # The connection is usable: the failed transaction ended.
    await store.transition_workflow(workflow.id, W.PENDING, W.NLP_PARSING)
