"""The queue's hot path (``settle_completed``) on both backends: fenced by the lease, dependents
counted down and claimed in the same transaction, the same objects as the general decoder."""

from __future__ import annotations

from datetime import timedelta

import pytest

from fakes.workflows import queued_workflow
from taskorch.domain.models import NewTask, Subtask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.store import Store
from taskorch.store.connector import Params, Row
from taskorch.store.postgres import PostgresConnector
from taskorch.store.queries import load_queries
from taskorch.store.queue import Outcome, SubtaskQueue
from taskorch.store.records import decode
from taskorch.store.rows import subtask_from_row


def plan_subtask(parent: str, key: str) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id=parent,
        title=f"do {key}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
    )


def done(queue: SubtaskQueue, subtask: Subtask) -> Outcome:
    now = queue.now
    return Outcome(subtask, "completed", now, now, result={"success": True, "output": "ok"})


async def by_key(store: Store, workflow_id: str) -> dict[str, Subtask]:
    return {s.key: s for s in await store.list_subtasks(workflow_id)}


async def test_a_chain_step_claims_the_next_step_in_the_same_call(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": ["a"], "c": ["b"]})
    queue = SubtaskQueue(store.connector)
    [a] = await queue.claim("w1", 5, 30)
    events, claimed = await queue.settle("w1", [done(queue, a)], claim_limit=5)
    assert [s.key for s in claimed] == ["b"]
    assert claimed[0].status == "running"
    assert claimed[0].lease_owner == "w1"
    assert claimed[0].attempts == 1
    assert claimed[0].queued_at is not None
    kinds = [(e.kind, e.payload["key"]) for e in events]
    assert ("task:complete", "a") in kinds
    assert ("task:enqueued", "b") in kinds
    assert ("task:started", "b") in kinds
    rows = await by_key(store, workflow_id)
    assert rows["a"].status == "completed"
    assert rows["a"].result == {"success": True, "output": "ok"}
    assert rows["b"].status == "running"
    assert rows["c"].status == "pending"
    assert rows["c"].pending_deps == 1
    [attempt] = await store.list_attempts(a.id)
    assert (attempt.number, attempt.outcome, attempt.worker_id) == (1, "succeeded", "w1")


async def test_without_room_a_released_step_stays_queued(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": ["a"]})
    queue = SubtaskQueue(store.connector)
    [a] = await queue.claim("w1", 5, 30)
    events, claimed = await queue.settle("w1", [done(queue, a)], claim_limit=0)
    assert claimed == []
    assert [(e.kind, e.payload["key"]) for e in events] == [
        ("task:complete", "a"),
        ("task:enqueued", "b"),
    ]
    assert (await by_key(store, workflow_id))["b"].status == "queued"
    [b] = await queue.claim("w2", 5, 30)
    assert b.key == "b"


async def test_a_completion_without_the_lease_changes_nothing(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": [], "join": ["a", "b"]})
    queue = SubtaskQueue(store.connector)
    claimed = {s.key: s for s in await queue.claim("w1", 5, 0.001)}
    later = SubtaskQueue(store.connector, clock=lambda: queue.now + timedelta(seconds=5))
    await later.expire_leases(max_interrupted=5)  # both leases ran out: zombies, requeued
    [a2, b2] = sorted(await later.claim("w2", 5, 30), key=lambda s: s.key)
    events, _ = await queue.settle("w1", [done(queue, claimed["a"])], claim_limit=0)
    assert events == []
    assert (await by_key(store, workflow_id))["a"].status == "running"
    events, _ = await later.settle("w2", [done(later, a2), done(later, b2)], claim_limit=0)
    rows = await by_key(store, workflow_id)
    assert rows["a"].status == rows["b"].status == "completed"
    assert rows["join"].status == "queued"
    assert rows["join"].pending_deps == 0
    assert sorted(e.payload["key"] for e in events if e.kind == "task:complete") == ["a", "b"]
    attempts = await store.list_attempts(rows["a"].id)
    assert [(x.number, x.outcome) for x in attempts] == [(1, "zombie"), (2, "succeeded")]


async def test_an_earlier_attempts_outcome_writes_no_second_row(store: Store) -> None:
    # The same worker claims a subtask again after its lease ran out; the first run's outcome
    # arrives late. Its attempt's row (the zombie) stays the only one of that number, and the
    # settle raises nothing (PostgreSQL's insert has no ON CONFLICT to skip a duplicate).
    workflow_id = await queued_workflow(store, {"a": []})
    queue = SubtaskQueue(store.connector)
    [first] = await queue.claim("w1", 5, 0.001)
    later = SubtaskQueue(store.connector, clock=lambda: queue.now + timedelta(seconds=5))
    await later.expire_leases(max_interrupted=5)
    [second] = await later.claim("w1", 5, 30)
    assert (first.attempts, second.attempts) == (1, 2)
    await later.settle("w1", [done(later, first)], claim_limit=0)
    attempts = await store.list_attempts(first.id)
    assert [(x.number, x.outcome) for x in attempts] == [(1, "zombie")]
    assert (await by_key(store, workflow_id))["a"].status == "completed"


def test_the_postgres_settle_inserts_attempts_without_on_conflict() -> None:
    # A speculative insertion per attempt (and a WAL record to confirm it) for a conflict that
    # cannot happen: the number fence above makes each row new.
    assert "ON CONFLICT" not in load_queries("postgres")["settle_completed"]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_the_settle_statement_is_prepared_once_per_connection(store: Store) -> None:
    # The warm-up (nothing to settle), a claim and a settle of completions send parameters of
    # the same types, so the statement is prepared and planned once, at the warm-up: a list of
    # ids was sent untyped when empty and as int2[] once it held ids (int4[], int8[] as ids
    # grow), each a new prepared statement and plan on the connection.
    connector = store.connector
    assert isinstance(connector, PostgresConnector)
    await queued_workflow(store, {"a": [], "b": []})
    queue = SubtaskQueue(connector)
    await queue.warm_up()
    _, [a] = await queue.settle("w1", [], claim_limit=1)
    _, [b] = await queue.settle("w1", [done(queue, a)], claim_limit=1)
    await queue.settle("w1", [done(queue, b)])
    async with connector._connection(await connector._scripts()) as connection:
        prepared = await connection.execute("SELECT count(*) AS n FROM pg_prepared_statements")
        assert await prepared.fetchone() == {"n": 1}


async def test_the_join_is_released_once_by_whichever_completion_is_last(store: Store) -> None:
    deps: dict[str, list[str]] = {f"s{i}": [] for i in range(6)}
    workflow_id = await queued_workflow(store, {**deps, "join": list(deps)})
    queue = SubtaskQueue(store.connector)
    first = await queue.claim("w1", 3, 30)
    second = await queue.claim("w2", 3, 30)
    _, claimed = await queue.settle("w1", [done(queue, s) for s in first], claim_limit=5)
    assert claimed == []
    _, claimed = await queue.settle("w2", [done(queue, s) for s in second], claim_limit=5)
    assert [s.key for s in claimed] == ["join"]
    assert (await by_key(store, workflow_id))["join"].lease_owner == "w2"


async def test_the_fast_decoder_gives_the_same_subtask(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": ["a"]})
    queue = SubtaskQueue(store.connector)
    [a] = await queue.claim("w1", 5, 30)
    async with store.connector.transaction(write=False) as tx:
        rows = await tx.fetchall("list_subtasks", {"workflow_id": workflow_id})
    for row in rows:
        assert subtask_from_row({"what": "claimed", **row}) == decode(Subtask, row)
    assert a == decode(Subtask, next(r for r in rows if r["key"] == "a"))


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
async def test_scripts_are_planned_once_on_connections_of_their_own(store: Store) -> None:
    # PostgreSQL: the hot path's statement is prepared and its plan generic (planned once per
    # connection, not per batch); the other queries keep custom plans.
    connector = store.connector
    assert isinstance(connector, PostgresConnector)
    workflow_id = await queued_workflow(store, {"a": []})
    queue = SubtaskQueue(connector)
    _, [a] = await queue.settle("w1", [], claim_limit=1)
    await queue.settle("w1", [done(queue, a)])
    async with connector._connection(await connector._scripts()) as connection:
        mode = await (await connection.execute("SHOW plan_cache_mode")).fetchone()
        prepared = await connection.execute(
            "SELECT count(*) AS n FROM pg_prepared_statements WHERE generic_plans > 0"
        )
        assert mode == {"plan_cache_mode": "force_generic_plan"}
        seqscan = await (await connection.execute("SHOW enable_seqscan")).fetchone()
        assert seqscan == {"enable_seqscan": "off"}  # a plan made on small tables stays indexed
        zone = await (await connection.execute("SHOW timezone")).fetchone()
        assert zone == {"TimeZone": "UTC"}  # times decoded as they come
        row = await prepared.fetchone()
        assert row is not None
        assert row["n"] >= 1
    async with connector._connection() as connection:
        mode = await (await connection.execute("SHOW plan_cache_mode")).fetchone()
        assert mode == {"plan_cache_mode": "auto"}
    assert (await by_key(store, workflow_id))["a"].status == "completed"


async def test_a_quiet_settle_reports_only_the_completions(store: Store) -> None:
    # A worker whose events nobody reads asks for no routine events of released or started
    # subtasks; the completions' events stay (the worker counts them).
    await queued_workflow(store, {"a": [], "b": ["a"]})
    queue = SubtaskQueue(store.connector)
    events, [a] = await queue.settle("w1", [], claim_limit=5, quiet=True)
    assert events == []
    events, claimed = await queue.settle("w1", [done(queue, a)], claim_limit=5, quiet=True)
    assert [s.key for s in claimed] == ["b"]
    assert [(e.kind, e.payload["key"]) for e in events] == [("task:complete", "a")]


async def test_a_quiet_fan_out_queues_the_same_and_wakes_the_workers(store: Store) -> None:
    # Queued quietly (nobody reads the events): no events built, the same subtasks queued, and
    # the workers waiting for a notification are still woken.
    task = await store.create_task(NewTask.create("fan-out"))
    workflow = await store.create_workflow(task.id)
    keys = [f"s{i}" for i in range(30)]
    await store.add_subtasks(workflow.id, [plan_subtask(task.ref, key) for key in keys], {})
    queue = SubtaskQueue(store.connector)
    await queue.link_workflow(workflow.id)
    await queue.wait_for_work(0.5)  # listening from here on (its first answer: connected)
    await queue.wait_for_work(0.05)
    assert await queue.queue_ready(workflow.id, quiet=True) == []
    if store.connector.dialect == "postgres":  # (SQLite's workers poll)
        assert await queue.wait_for_work(5.0)
    rows = await by_key(store, workflow.id)
    assert {rows[key].status for key in keys} == {"queued"}
    assert await queue.queue_ready(workflow.id) == []  # idempotent: nothing left to queue
    _, claimed = await queue.settle("w1", [], claim_limit=50)
    assert sorted(s.key for s in claimed) == sorted(keys)


async def test_warming_up_settles_and_claims_nothing(store: Store) -> None:
    workflow_id = await queued_workflow(store, {"a": [], "b": ["a"]})
    queue = SubtaskQueue(store.connector)
    await queue.warm_up()
    await queue.warm_up()
    rows = await by_key(store, workflow_id)
    assert (rows["a"].status, rows["b"].status) == ("queued", "pending")
    assert rows["a"].attempts == 0
    _, [a] = await queue.settle("w1", [], claim_limit=5)
    assert a.key == "a"


async def test_a_queue_warms_up_once(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    queue = SubtaskQueue(store.connector)
    scripts: list[str] = []
    run_script = store.connector.script

    async def counted(name: str, params: Params) -> list[Row]:
        scripts.append(name)
        return await run_script(name, params)

    monkeypatch.setattr(store.connector, "script", counted)
    await queue.warm_up()
    await queue.warm_up()
    assert scripts == ["settle_completed"]
    await SubtaskQueue(store.connector).warm_up()  # another queue warms up its own
    assert scripts == ["settle_completed"] * 2
