"""PostgreSQL: a subtask's state changes are HOT updates (migration 0011), so no index of
``subtasks`` may name a column that they write; the budget's claim finds its candidates through
the mirror's ``budgeted`` flag instead, and a database created before 0011 upgrades to that."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable

import psycopg
import pytest

from fakes.workflows import queued_workflow
from taskorch.domain.budget import Caps
from taskorch.domain.models import NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.store import Store
from taskorch.store.budget import BudgetLedger
from taskorch.store.queue import SubtaskQueue

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

StoreFactory = Callable[..., Awaitable[Store]]  # the conftest fixture

MAY_BE_INDEXED = {"id", "workflow_id", "budgeted"}
"""Columns that no claim, settle, renewal, retry or expiry writes (budgeted is set before a
workflow's subtasks are queued, and again only when its caps change)."""


def _indexed_columns(url: str, table: str) -> set[str]:
    """Every column of ``table`` that one of its indexes names, as a key or in its predicate."""
    with psycopg.connect(url) as connection:
        columns = [
            str(row[0])
            for row in connection.execute(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name = %s",
                [table],
            ).fetchall()
        ]
        definitions = [
            str(row[0])
            for row in connection.execute(
                "SELECT indexdef FROM pg_indexes "
                "WHERE schemaname = current_schema() AND tablename = %s",
                [table],
            ).fetchall()
        ]
    named = set()
    for definition in definitions:
        body = definition.split(" USING ", 1)[1]  # past "... ON schema.table"
        named |= {c for c in columns if re.search(rf"\b{re.escape(c)}\b", body)}
    return named


async def test_no_index_of_subtasks_names_a_column_a_state_change_writes(
    store: Store, database_url: str
) -> None:
    assert _indexed_columns(database_url, "subtasks") <= MAY_BE_INDEXED


async def test_budgeted_subtasks_are_claimed_by_the_budget_only(
    store: Store, database_url: str
) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": []})
    queue = SubtaskQueue(store.connector)
    await BudgetLedger(queue).set_caps(workflow_id, Caps(usd=1000.0))
    with psycopg.connect(database_url) as connection:
        flags = connection.execute("SELECT budgeted FROM subtask_active").fetchall()
    assert flags == [(True,), (True,)]

    assert await queue.claim("w1", 5, 30) == []
    _, claimed = await queue.settle("w1", [], claim_limit=5)
    assert claimed == []
    started, _, _ = await BudgetLedger(queue).claim("w1", 5, 30, agents=[], unassigned=True)
    assert sorted(s.key for s in started) == ["a", "b"]


async def test_a_database_from_before_0011_upgrades(store_factory: StoreFactory) -> None:
    store = await store_factory(migrate=False)
    await store.migrate(target=10)
    plain = await _queued_at_version_10(store, "p")
    capped = await _queued_at_version_10(store, "c")
    queue = SubtaskQueue(store.connector)
    await BudgetLedger(queue).set_caps(capped, Caps(usd=1000.0))  # marked at version 10

    report = await store.migrate()
    assert report.applied[:1] == ("0011_hot_subtasks",)

    [ordinary] = await queue.claim("w1", 5, 30)
    assert ordinary.workflow_id == plain
    started, _, _ = await BudgetLedger(queue).claim("w1", 5, 30, agents=[], unassigned=True)
    assert [(s.workflow_id, s.key) for s in started] == [(capped, "c")]


async def _queued_at_version_10(store: Store, key: str) -> str:
    """A workflow of one subtask, queued by a plain update as version 10's query did (today's
    writes the mirror's columns itself, ``budgeted`` among them, which 0011 adds)."""
    task = await store.create_task(NewTask.create("before 0011"))
    workflow = await store.create_workflow(task.id)
    subtask = PlanSubtask(
        subtask_id=key,
        parent_task_id=task.ref,
        title=f"do {key}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
    )
    await store.add_subtasks(workflow.id, [subtask], {})
    await SubtaskQueue(store.connector).link_workflow(workflow.id)
    async with store.connector.transaction() as tx:
        await tx.execute_sql(
            "UPDATE subtasks SET status = 'queued', queued_at = now() "
            f"WHERE workflow_id = '{workflow.id}' AND status = 'pending'"
        )
    return workflow.id
