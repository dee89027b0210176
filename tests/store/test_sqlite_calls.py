"""Where SQLite's work runs: in the event loop's thread while quick and waiting for nobody; in
aiosqlite's thread when another process holds the lock (there it waits out the busy timeout), when
trips have been slow, and for the rest of a transaction that began there."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from taskorch.domain.models import NewTask
from taskorch.store import Store, sqlite
from taskorch.store.sqlite import SqliteConnector
from taskorch.store.sqlite_calls import INLINE_MAX_S, Calls


@pytest.fixture
def database_url(sqlite_url: str) -> str:
    """SQLite alone (conftest's ``store`` opens it): what is measured here is SQLite's own."""
    return sqlite_url


def _calls(store: Store) -> Calls:
    connector = store.connector
    assert isinstance(connector, SqliteConnector)
    assert connector._calls is not None
    return connector._calls


class Hops:
    """Counts the calls sent to aiosqlite's thread."""

    def __init__(self, store: Store) -> None:
        connector = store.connector
        assert isinstance(connector, SqliteConnector)
        assert connector._connection is not None
        real: Callable[..., Awaitable[Any]] = connector._connection._execute
        self.count = 0

        async def counted(fn: Callable[..., Any], *args: Any) -> Any:
            self.count += 1
            return await real(fn, *args)

        connector._connection._execute = counted  # type: ignore[method-assign]


@contextmanager
def write_lock_held(path: Path) -> Iterator[sqlite3.Connection]:
    """Another program's connection holding the write lock (``BEGIN IMMEDIATE``); the caller
    commits it to let go."""
    holder = sqlite3.connect(path, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        yield holder
    finally:
        if holder.in_transaction:
            holder.rollback()
        holder.close()


async def test_quick_trips_run_in_the_loops_thread(store: Store) -> None:
    hops = Hops(store)
    task = await store.create_task(NewTask.create("Write the file"))
    workflow = await store.create_workflow(task.id)
    assert (await store.get_workflow(workflow.id)).task_id == task.id
    assert [t.title for t in await store.list_tasks()] == ["Write the file"]
    assert hops.count == 0
    assert not _calls(store).last_in_thread


async def test_a_write_refused_as_busy_waits_in_the_thread_then_lands(
    store: Store, tmp_path: Path
) -> None:
    hops = Hops(store)
    with write_lock_held(tmp_path / "taskorch.db") as holder:
        adding = asyncio.create_task(store.create_task(NewTask.create("after the lock")))
        await asyncio.sleep(0.3)
        assert not adding.done()  # waiting, in the thread: the loop goes on meanwhile
        holder.commit()
        task = await asyncio.wait_for(adding, 10)
    assert hops.count >= 1
    assert (await store.get_task(task.id)).title == "after the lock"
    # Once the lock is free, trips come back to the loop's thread (the wait made the recent
    # trips slow: a few quick ones first).
    for i in range(40):
        await store.create_task(NewTask.create(f"quick again {i}"))
        if not _calls(store).last_in_thread:
            break
    hops.count = 0
    await store.create_task(NewTask.create("quick"))
    assert hops.count == 0


async def test_a_transaction_begun_in_the_thread_stays_there(store: Store, tmp_path: Path) -> None:
    hops = Hops(store)

    async def two_trips() -> list[str]:
        async with store.connector.transaction() as tx:
            rows = await tx.fetchall("list_tasks", {"status": None, "limit": 10})
            await asyncio.sleep(0)
            rows += await tx.fetchall("list_tasks", {"status": None, "limit": 10})
            return [row["title"] for row in rows]

    await store.create_task(NewTask.create("one"))
    with write_lock_held(tmp_path / "taskorch.db") as holder:
        running = asyncio.create_task(two_trips())
        await asyncio.sleep(0.2)
        holder.commit()
        assert await asyncio.wait_for(running, 10) == ["one", "one"]
    assert hops.count == 3  # the first trip, the second, the commit


async def test_reads_refused_as_busy_are_asked_again_where_they_may_wait(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A WAL reader is refused only in rare moments (another connection recovering the WAL, say),
    which no test can hold open: the read is refused here once, as SQLite refuses it."""
    await store.create_task(NewTask.create("kept"))
    real = sqlite._fetch_dicts
    refused: list[str] = []

    def refused_here(connection: Any, sql: str, params: Any) -> list[dict[str, Any]]:
        if threading.current_thread() is threading.main_thread() and not refused:
            refused.append(sql)
            exc = sqlite3.OperationalError("database is locked")
            exc.sqlite_errorcode = 5
            raise exc
        return real(connection, sql, params)

    monkeypatch.setattr(sqlite, "_fetch_dicts", refused_here)
    hops = Hops(store)
    assert [t.title for t in await store.list_tasks()] == ["kept"]
    assert refused
    assert hops.count == 1


async def test_slow_trips_go_to_the_thread_until_they_are_quick_again(store: Store) -> None:
    calls = _calls(store)
    hops = Hops(store)
    calls._took(INLINE_MAX_S * 50)  # (a slow disk's fsync, say)
    await store.create_task(NewTask.create("slow"))
    assert hops.count >= 1
    assert calls.last_in_thread
    for i in range(40):
        await store.create_task(NewTask.create(f"task {i}"))
        if not calls.last_in_thread:
            break
    assert not calls.last_in_thread
    assert len(await store.list_tasks(limit=100)) == i + 2
