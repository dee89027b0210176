"""Schema migrations on both backends: stepwise upgrades keep data, reruns are no-ops, concurrent
migrators apply each version once, and a failing migration leaves the schema at a whole version."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from contextlib import closing
from typing import Any

import psycopg
import pytest

import taskorch.store.migrate as migrations
from taskorch.domain.errors import MigrationError
from taskorch.domain.models import AgentStatus, NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.store import Store, open_store
from taskorch.store.migrate import Migration, available_migrations, latest_version

StoreFactory = Callable[..., Awaitable[Store]]  # the conftest fixture


def raw_query(url: str, query: str) -> list[tuple[Any, ...]]:
    """Run one read-only statement with the bare driver, outside the store."""
    if url.startswith("sqlite:///"):
        with closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as connection:
            return list(connection.execute(query).fetchall())
    with psycopg.connect(url) as connection:
        return list(connection.execute(query.encode()).fetchall())


def applied_versions(url: str) -> list[int]:
    rows = raw_query(url, "SELECT version FROM schema_migrations ORDER BY version")
    return [int(row[0]) for row in rows]


def table_exists(url: str, table: str) -> bool:
    if url.startswith("sqlite:///"):
        query = f"SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '{table}'"
    else:
        query = (
            "SELECT count(*) FROM information_schema.tables "
            f"WHERE table_schema = current_schema() AND table_name = '{table}'"
        )
    return bool(raw_query(url, query)[0][0])


def column_exists(url: str, table: str, column: str) -> bool:
    if url.startswith("sqlite:///"):
        query = f"SELECT count(*) FROM pragma_table_info('{table}') WHERE name = '{column}'"
    else:
        query = (
            "SELECT count(*) FROM information_schema.columns WHERE table_schema = current_schema() "
            f"AND table_name = '{table}' AND column_name = '{column}'"
        )
    return bool(raw_query(url, query)[0][0])


def all_names(dialect: str) -> tuple[str, ...]:
    return tuple(f"{m.version:04d}_{m.name}" for m in available_migrations(dialect))


async def test_step_by_step_upgrade_keeps_data(
    store_factory: StoreFactory, database_url: str
) -> None:
    store = await store_factory(migrate=False)
    assert (await store.health()).schema_version == 0

    first = await store.migrate(target=1)
    assert first.from_version == 0
    assert first.to_version == 1
    assert first.applied == ("0001_initial",)
    assert (await store.health()).schema_version == 1
    assert applied_versions(database_url) == [1]
    assert not table_exists(database_url, "subtasks")
    assert not column_exists(database_url, "agents", "max_concurrency")

    task = await store.create_task(NewTask.create("written at v1", metadata={"v": 1}))
    workflow = await store.create_workflow(task.id)

    rest = await store.migrate()
    assert rest.from_version == 1
    assert rest.to_version == latest_version(store.backend)
    assert rest.applied == all_names(store.backend)[1:]
    assert "0002_runtime" in rest.applied
    health = await store.health()
    assert health.schema_version == health.latest_version
    assert health.up_to_date

    # The v1 rows survived; the v2 tables and columns work.
    assert await store.get_task(task.id) == task
    assert await store.get_workflow(workflow.id) == workflow
    agent = await store.upsert_agent("a", name="a", type="sim", max_concurrency=4)
    assert agent.max_concurrency == 4
    assert (await store.set_agent_status("a", AgentStatus.BUSY)).status is AgentStatus.BUSY
    subtask = PlanSubtask(
        subtask_id="s1",
        parent_task_id=task.ref,
        title="s1",
        assigned_to=Domain.DOCS,
        worker_type=WorkerType.DOCUMENTATION,
    )
    [stored] = await store.add_subtasks(workflow.id, [subtask], {"s1": 1})
    attempt = await store.start_attempt(stored.id, 1, agent_id="a", worker_id=None)
    assert await store.list_attempts(stored.id) == [attempt]
    event = await store.append_event("migrated", workflow_id=workflow.id)
    assert await store.list_events() == [event]


async def test_an_agent_written_at_v1_gets_the_v2_default(
    store_factory: StoreFactory, database_url: str
) -> None:
    store = await store_factory(migrate=False)
    await store.migrate(target=1)
    insert = (
        "INSERT INTO agents (id, name, type, created_at, updated_at) "
        "VALUES ('old', 'old-agent', 'cli', '2026-01-02T03:04:05+00:00', "
        "'2026-01-02T03:04:05+00:00')"
    )
    async with store.connector.transaction() as tx:
        await tx.execute_sql(insert)
    await store.migrate()
    agent = await store.get_agent("old-agent")
    assert agent.max_concurrency == 1
    assert agent.status is AgentStatus.AVAILABLE
    assert agent.created_at.isoformat() == "2026-01-02T03:04:05+00:00"


async def test_migrating_again_is_a_no_op(store: Store, database_url: str) -> None:
    latest = latest_version(store.backend)
    again = await store.migrate()
    assert again.applied == ()
    assert again.from_version == again.to_version == latest
    assert (await store.migrate(target=1)).applied == ()
    assert (await store.health()).schema_version == latest
    assert applied_versions(database_url) == list(range(1, latest + 1))


async def test_open_store_migrates_an_existing_database_once(
    store: Store, database_url: str
) -> None:
    task = await store.create_task(NewTask.create("t"))
    reopened = await open_store(database_url, migrate=True)
    try:
        assert await reopened.get_task(task.id) == task
    finally:
        await reopened.close()
    assert applied_versions(database_url) == list(range(1, latest_version(store.backend) + 1))


async def test_concurrent_migrators_apply_each_version_once(
    store_factory: StoreFactory, database_url: str
) -> None:
    first, second = await store_factory(migrate=False), await store_factory(migrate=False)
    reports = await asyncio.gather(first.migrate(), second.migrate())
    latest = latest_version(first.backend)
    assert all(r.to_version == latest for r in reports)
    applied = [name for report in reports for name in report.applied]
    assert sorted(applied) == list(all_names(first.backend))
    assert applied_versions(database_url) == list(range(1, latest + 1))
    # Both see a working schema.
    task = await first.create_task(NewTask.create("t"))
    assert await second.get_task(task.id) == task


async def test_a_failing_migration_leaves_the_previous_whole_version(
    store_factory: StoreFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await store_factory(migrate=False)
    real = available_migrations(store.backend)
    broken = Migration(
        version=2,
        name="broken",
        statements=(
            "CREATE TABLE half_done (id INTEGER PRIMARY KEY)",
            "ALTER TABLE tasks ADD COLUMN half_column INTEGER",
            "THIS IS NOT SQL AT ALL",
        ),
    )
    monkeypatch.setattr(migrations, "available_migrations", lambda dialect: [real[0], broken])

    with pytest.raises(MigrationError, match="0002_broken") as caught:
        await store.migrate()
    assert "failed" in str(caught.value)

    assert (await store.health()).schema_version == 1
    assert applied_versions(database_url) == [1]
    assert table_exists(database_url, "tasks")
    assert not table_exists(database_url, "half_done")
    assert not column_exists(database_url, "tasks", "half_column")
    assert column_exists(database_url, "tasks", "title")
    task = await store.create_task(NewTask.create("still works at v1"))

    # With the real migrations back, the upgrade goes through.
    monkeypatch.undo()
    report = await store.migrate()
    assert report.from_version == 1
    assert report.to_version == latest_version(store.backend)
    assert await store.get_task(task.id) == task


async def test_a_failing_first_migration_leaves_an_empty_schema(
    store_factory: StoreFactory, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = await store_factory(migrate=False)
    broken = Migration(1, "broken", ("CREATE TABLE half_done (id INTEGER)", "NOT SQL"))
    monkeypatch.setattr(migrations, "available_migrations", lambda dialect: [broken])
    with pytest.raises(MigrationError, match="0001_broken"):
        await store.migrate()
    assert (await store.health()).schema_version == 0
    assert not table_exists(database_url, "half_done")


async def test_subtasks_stored_before_0004_keep_unique_keys(store_factory: StoreFactory) -> None:
    """0004 moves a subtask key's uniqueness out of the subtasks table (PostgreSQL) and drops an
    index: subtasks stored at v3 are still there, their keys still refuse a second copy, and new
    subtasks are stored next to them."""
    store = await store_factory(migrate=False)
    await store.migrate(target=3)
    task = await store.create_task(NewTask.create("stored at v3"))
    workflow = await store.create_workflow(task.id)

    def sub(key: str) -> PlanSubtask:
        return PlanSubtask(
            subtask_id=key,
            parent_task_id=task.ref,
            title=key,
            assigned_to=Domain.DOCS,
            worker_type=WorkerType.DOCUMENTATION,
        )

    async with store.connector.transaction() as tx:  # as the v3 code stored them
        for key in ("a", "b"):
            await tx.execute_sql(
                "INSERT INTO subtasks (workflow_id, key, title, assigned_to, worker_type, stage, "
                f"created_at, updated_at) VALUES ('{workflow.id}', '{key}', '{key}', 'docs', "
                "'documentation', 1, '2026-01-02T03:04:05+00:00', '2026-01-02T03:04:05+00:00')"
            )
    assert (await store.migrate()).to_version == latest_version(store.backend)
    before = await store.list_subtasks(workflow.id)
    assert [s.key for s in before] == ["a", "b"]

    after = await store.add_subtasks(
        workflow.id, [sub("a"), sub("b"), sub("c")], {"a": 1, "b": 1, "c": 2}
    )
    assert after[:2] == before
    assert [s.key for s in after] == ["a", "b", "c"]
    assert await store.list_subtasks(workflow.id) == after


async def test_task_intake_defaults_keep_rows_ids_and_references(
    store_factory: StoreFactory, database_url: str
) -> None:
    """0007 gives the tasks' timestamps defaults (SQLite rebuilds the table): the rows, their
    workflows' references and the id counter survive, and a plain INSERT then works."""
    store = await store_factory(migrate=False)
    await store.migrate(target=6)
    first = await store.create_task(NewTask.create("first", dependencies=[]))
    second = await store.create_task(NewTask.create("second", dependencies=[first.id]))
    workflow = await store.create_workflow(second.id)
    await store.migrate()
    assert await store.get_task(second.id) == second
    assert await store.get_workflow(workflow.id) == workflow
    if database_url.startswith("sqlite:///"):
        assert raw_query(database_url, "PRAGMA foreign_key_check") == []
        insert = "INSERT INTO tasks (title, description) VALUES ('third', 'by SQL')"
        with closing(sqlite3.connect(database_url.removeprefix("sqlite:///"))) as connection:
            connection.execute(insert)
            connection.commit()
    else:
        with psycopg.connect(database_url, autocommit=True) as connection:
            connection.execute(b"INSERT INTO tasks (title, description) VALUES ('third', 'by SQL')")
    third = (await store.list_tasks())[-1]
    assert (third.id, third.title, third.status.value) == (second.id + 1, "third", "pending")
    assert third.created_at >= second.created_at
