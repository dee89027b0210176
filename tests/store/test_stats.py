"""Workflow aggregates for /metrics, computed by the database on both backends."""

from __future__ import annotations

import re
import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest

from taskorch.domain.models import NewTask
from taskorch.domain.states import WorkflowState as W
from taskorch.store import Store, open_store
from taskorch.store.stats import DURATION_BUCKETS_S, workflow_stats

SQL = Path(__file__).parents[2] / "src" / "taskorch" / "store" / "sql"


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_the_sql_spells_out_the_same_bounds(backend: str) -> None:
    migration = SQL.parent / "migrations" / backend / "0006_workflow_durations.sql"
    for text in ((SQL / f"{backend}.sql").read_text(), migration.read_text()):
        bounds = [int(b) for b in re.findall(r"WHEN seconds <= (\d+) THEN", text)]
        assert tuple(bounds) == DURATION_BUCKETS_S


async def test_counts_and_duration_buckets(database_url: str) -> None:
    opened = await open_store(database_url, migrate=True)
    now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
    try:
        store = Store(opened.connector, clock=lambda: now)
        task = await store.create_task(NewTask.create("t"))
        durations = [0.5, 3.0, 3.0, 100.0, 50_000.0]
        for seconds in durations:
            now = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
            workflow = await store.create_workflow(task.id)
            await store.transition_workflow(workflow.id, W.PENDING, W.NLP_PARSING)  # starts it
            now += timedelta(seconds=seconds)
            await store.transition_workflow(workflow.id, W.NLP_PARSING, W.CANCELLED)
        for _ in range(2):
            await store.create_workflow(task.id)
        stats = await workflow_stats(opened.connector)
    finally:
        await opened.close()
    assert stats.by_state == {"cancelled": 5, "pending": 2}
    cancelled = stats.durations["cancelled"]
    assert cancelled.cumulative == tuple(
        sum(d <= bound for d in durations) for bound in DURATION_BUCKETS_S
    )
    assert cancelled.count == 5
    assert cancelled.total_s == pytest.approx(sum(durations), abs=0.01)
    assert "pending" not in stats.durations


async def test_an_empty_store(store: Store) -> None:
    stats = await workflow_stats(store.connector)
    assert stats.by_state == {}
    assert stats.durations == {}


async def test_the_migration_counts_workflows_that_ended_before_it(database_url: str) -> None:
    opened = await open_store(database_url)
    try:
        await opened.migrate(target=4)
        task = await opened.create_task(NewTask.create("t"))
        workflow = await opened.create_workflow(task.id)
        # Ended under schema 4, as that version's code ended it: no histogram to count it in.
        await _end_under_schema_4(database_url, workflow.id)
        await opened.migrate()
        stats = await workflow_stats(opened.connector)
    finally:
        await opened.close()
    assert stats.durations["cancelled"].count == 1
    assert stats.by_state == {"cancelled": 1}


async def _end_under_schema_4(database_url: str, workflow_id: str) -> None:
    update = (
        "UPDATE workflows SET status = 'cancelled', start_time = created_at,"
        " end_time = created_at WHERE id = "
    )
    if database_url.startswith("sqlite:"):
        with sqlite3.connect(database_url.removeprefix("sqlite:///")) as db:
            db.execute(update + "?", (workflow_id,))
        return
    async with await psycopg.AsyncConnection.connect(database_url, autocommit=True) as db:
        await db.execute(update + "%s", (workflow_id,))
