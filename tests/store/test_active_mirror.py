"""PostgreSQL finds ready and leased subtasks in ``subtask_active`` (migration 0008), a narrow
mirror kept by triggers: whichever query changes a subtask, the mirror holds exactly the queued,
assigned and running ones, with the columns the queue looks up."""

from __future__ import annotations

from datetime import timedelta

import psycopg
import pytest

from fakes.workflows import queued_workflow
from taskorch.store import Store
from taskorch.store.queue import Outcome, SubtaskQueue

pytestmark = pytest.mark.parametrize("database_url", ["postgres"], indirect=True)

COLUMNS = "id, workflow_id, status, priority, agent_id, run_after, lease_expires_at, budgeted"


async def assert_mirrored(database_url: str) -> list[tuple[object, ...]]:
    async with await psycopg.AsyncConnection.connect(database_url) as connection:
        truth = await connection.execute(
            f"SELECT {COLUMNS} FROM subtasks "
            "WHERE status IN ('queued', 'assigned', 'running') ORDER BY id"
        )
        expected = await truth.fetchall()
        mirror = await connection.execute(f"SELECT {COLUMNS} FROM subtask_active ORDER BY id")
        assert await mirror.fetchall() == expected
    return expected


async def test_the_mirror_follows_every_change_of_state(store: Store, database_url: str) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": [], "c": ["a"], "d": ["a", "b"]})
    queue = SubtaskQueue(store.connector)
    assert len(await assert_mirrored(database_url)) == 2  # a and b queued

    [a] = await queue.claim("w1", 1, 30)
    await queue.renew("w1", [a.id], 60)  # a new lease time, mirrored
    await assert_mirrored(database_url)

    now = queue.now
    done = Outcome(a, "completed", now, now, result={})
    _, claimed = await queue.settle("w1", [done], claim_limit=1)  # c released, b claimed or c
    assert len(claimed) == 1
    active = await assert_mirrored(database_url)
    assert sorted(str(row[2]) for row in active) == ["queued", "running"]

    later = SubtaskQueue(store.connector, clock=lambda: queue.now + timedelta(minutes=5))
    zombies = await later.expire_leases(max_interrupted=5)  # requeued: queued in the mirror
    assert len(zombies) == 1
    assert {row[2] for row in await assert_mirrored(database_url)} == {"queued"}

    retried = await later.claim("w2", 5, 30)
    now = later.now
    retry = Outcome(
        retried[0],
        "retry",
        now,
        now,
        error_class="transient",
        error_message="again",
        run_after=now + timedelta(seconds=30),
    )
    await later.settle("w2", [retry])  # queued again with a run_after, mirrored
    mirrored = await assert_mirrored(database_url)
    assert any(row[5] is not None for row in mirrored)

    await queue.cancel_workflow(workflow_id)
    assert await assert_mirrored(database_url) == []


async def test_claims_find_work_through_the_mirror_only_while_it_is_queued(
    store: Store, database_url: str
) -> None:
    await queued_workflow(store, {"a": [], "b": []})
    first, second = SubtaskQueue(store.connector), SubtaskQueue(store.connector)
    mine = await first.claim("w1", 1, 30)
    theirs = await second.claim("w2", 5, 30)
    assert len(mine) == len(theirs) == 1
    assert mine[0].id != theirs[0].id
    assert await first.claim("w3", 5, 30) == []
    await assert_mirrored(database_url)


async def test_the_hot_statements_write_the_mirror_themselves(
    store: Store, database_url: str
) -> None:
    # queue_ready and settle_completed keep the mirror without the trigger (migration 0012):
    # queued, claimed, completed, and a join released and taken by the worker that completed the
    # last of its dependencies.
    await queued_workflow(store, {"a": [], "b": [], "c": [], "join": ["a", "b", "c"]})
    queue = SubtaskQueue(store.connector)
    assert len(await assert_mirrored(database_url)) == 3
    _, claimed = await queue.settle("w1", [], claim_limit=2)
    assert len(await assert_mirrored(database_url)) == 3
    kinds = []
    while claimed:
        now = queue.now
        done = [Outcome(s, "completed", now, now, result={}) for s in claimed]
        events, claimed = await queue.settle("w1", done, claim_limit=2)
        kinds += [e.kind for e in events]
        await assert_mirrored(database_url)
    assert kinds.count("task:complete") == 4
    assert await assert_mirrored(database_url) == []


async def test_the_trigger_passes_over_one_statement_only(store: Store, database_url: str) -> None:
    await queued_workflow(store, {"a": [], "b": []})
    # A statement that wrote the mirror itself says so; the trigger passes over that statement
    # only: the next one in the same transaction is mirrored again.
    connection = await psycopg.AsyncConnection.connect(database_url)
    async with connection, connection.transaction():
        await connection.execute("SELECT set_config('taskorch.mirror_written', 'on', true)")
        await connection.execute("UPDATE subtasks SET priority = priority WHERE false")
        await connection.execute("UPDATE subtasks SET priority = 9 WHERE key = 'a'")
    rows = await assert_mirrored(database_url)
    assert 9 in [row[3] for row in rows]
