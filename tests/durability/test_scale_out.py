"""Scale-out on PostgreSQL with real ``taskorch worker`` processes: three workers share one workflow
of 2,000 subtasks and one is killed mid-run; a worker whose database connections are terminated
under it carries on. In both, every subtask must complete exactly once.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.rows import dict_row

from durability.harness import (
    Deps,
    WorkerProcess,
    assert_completed_exactly_once,
    assert_dependency_order,
    count_completed,
    kill_leftover_workers,
    read_ledger,
    start_worker,
    wait_exit,
    wait_for,
    with_query,
)
from fakes.workflows import queued_workflow
from taskorch.store import Store, open_store
from taskorch.store.queue import SubtaskQueue

pytestmark = [pytest.mark.postgres, pytest.mark.timeout(240)]

CONCURRENCY = 50


@pytest.fixture
def reaper() -> Iterator[None]:
    """No worker outlives its test, failed or not. Ask for it last, so that it runs before the
    database fixtures tear down."""
    yield
    kill_leftover_workers()


def mixed_dag(independent: int, chains: int, chain_length: int, joins: int) -> Deps:
    """Mostly independent subtasks, some chains, some joins over four independents each."""
    deps: Deps = {f"solo-{i}": [] for i in range(independent)}
    for c in range(chains):
        previous: list[str] = []
        for step in range(chain_length):
            deps[f"chain-{c}-{step}"] = previous
            previous = [f"chain-{c}-{step}"]
    for j in range(joins):
        deps[f"join-{j}"] = [f"solo-{(4 * j + k) % independent}" for k in range(4)]
    return deps


@pytest.fixture
async def pg_store(postgres_url: str) -> AsyncIterator[Store]:
    opened = await open_store(postgres_url, migrate=True)
    try:
        yield opened
    finally:
        await opened.close()


async def _query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as connection:
        cursor = await connection.execute(sql.encode(), params)
        return await cursor.fetchall() if cursor.description else []


async def _backends(url: str, application_name: str) -> int:
    rows = await _query(
        url,
        "SELECT COUNT(*) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = %s",
        application_name,
    )
    return int(rows[0]["n"])


async def _terminate(url: str, application_name: str) -> int:
    """End every session of that application (a DBA's pg_terminate_backend); how many ended."""
    rows = await _query(
        url,
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name = %s",
        application_name,
    )
    return sum(bool(row["done"]) for row in rows)


async def _sample_holdings(url: str, most: dict[str, int]) -> None:
    """Until cancelled: the most subtasks each worker has held at once (assigned or running)."""
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as connection:
        while True:
            cursor = await connection.execute(
                b"SELECT lease_owner, COUNT(*) AS n FROM subtasks "
                b"WHERE status IN ('assigned', 'running') GROUP BY lease_owner"
            )
            for row in await cursor.fetchall():
                owner = str(row["lease_owner"])
                most[owner] = max(most.get(owner, 0), int(row["n"]))
            await asyncio.sleep(0.05)


async def _completed_at_least(store: Store, workflow_id: str, n: int) -> None:
    async def enough() -> bool:
        return await count_completed(store, workflow_id) >= n

    await wait_for(enough, timeout_s=120, what=f"{n} subtasks completed")


async def test_three_workers_one_killed_each_subtask_completed_exactly_once(
    pg_store: Store, postgres_url: str, tmp_path: Path, reaper: None
) -> None:
    deps = mixed_dag(independent=1_600, chains=30, chain_length=10, joins=100)
    assert len(deps) == 2_000
    workflow_id = await queued_workflow(pg_store, deps)
    workers: dict[str, WorkerProcess] = {}
    for i in range(3):
        name = f"scale-{secrets.token_hex(3)}-w{i}"
        workers[name] = start_worker(
            with_query(postgres_url, application_name=name),
            tmp_path,
            name,
            ["--agent", "sim", "--concurrency", str(CONCURRENCY), "--sim-duration", "0.3"],
            lease_s=3.0,
        )
    most_held: dict[str, int] = {}
    sampler = asyncio.create_task(_sample_holdings(postgres_url, most_held))

    # Kill one mid-run, after ~30% completed: the one holding the most running subtasks.
    await _completed_at_least(pg_store, workflow_id, 600)
    owners = await _query(
        postgres_url,
        "SELECT lease_owner, COUNT(*) AS n FROM subtasks WHERE status = 'running' "
        "GROUP BY lease_owner ORDER BY n DESC",
    )
    assert owners, "nothing running at 30%"
    victim_pid = int(str(owners[0]["lease_owner"]).split(":")[1])
    [(victim_name, victim)] = [(n, w) for n, w in workers.items() if w.pid == victim_pid]
    victim.kill9()

    # Its sessions end when PostgreSQL notices; after that, what it held is fixed.
    async def victim_gone() -> bool:
        return await _backends(postgres_url, victim_name) == 0

    await wait_for(victim_gone, timeout_s=30, what="the killed worker's sessions to end")
    victim_id = str(owners[0]["lease_owner"])
    held = {
        int(row["id"])
        for row in await _query(
            postgres_url,
            "SELECT id FROM subtasks WHERE lease_owner = %s AND status IN ('assigned', 'running')",
            victim_id,
        )
    }

    survivors = [w for n, w in workers.items() if n != victim_name]
    for worker in survivors:
        code = await wait_exit(worker, timeout_s=180)
        assert code == 0, worker.describe()
    sampler.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await sampler
    # No worker ever held more than its concurrency.
    assert most_held, "no holdings sampled"
    assert max(most_held.values()) <= CONCURRENCY, most_held

    ledger = await read_ledger(pg_store, workflow_id)
    assert_completed_exactly_once(ledger, deps)
    assert_dependency_order(ledger, deps)

    zombie_events = await _query(
        postgres_url, "SELECT subtask_id, payload FROM events WHERE kind = 'task:zombie'"
    )
    zombie_attempts = {
        a.subtask_id for ats in ledger.attempts.values() for a in ats if a.outcome == "zombie"
    }
    recovered = {int(e["subtask_id"]) for e in zombie_events}
    # The killed worker's claims were recovered as zombies, and only its claims: the survivors
    # never lost a lease.
    assert held <= recovered, f"claims of the killed worker not recovered: {held - recovered}"
    assert held <= zombie_attempts
    assert all(victim_id in str(e["payload"]["error"]) for e in zombie_events), zombie_events
    wins_by_worker: dict[str, int] = {}
    for attempts in ledger.attempts.values():
        for attempt in attempts:
            if attempt.outcome == "succeeded":
                key = str(attempt.worker_id)
                wins_by_worker[key] = wins_by_worker.get(key, 0) + 1
    print(
        f"\n3 workers, 2,000 subtasks: killed {victim_id} holding {len(held)} running subtasks; "
        f"{len(recovered)} zombies recovered; completions by worker {wins_by_worker}; "
        f"most held at once by worker {most_held}; "
        f"attempts by outcome {ledger.outcomes()}"
    )


async def test_worker_reconnects_after_its_connections_are_terminated(
    pg_store: Store, postgres_url: str, tmp_path: Path, reaper: None
) -> None:
    deps = mixed_dag(independent=640, chains=10, chain_length=8, joins=80)
    workflow_id = await queued_workflow(pg_store, deps)
    name = f"cut-{secrets.token_hex(4)}"
    worker = start_worker(
        with_query(postgres_url, application_name=name),
        tmp_path,
        name,
        ["--agent", "sim", "--concurrency", "20", "--sim-duration", "0.2"],
        lease_s=2.0,
    )

    async def connected() -> bool:
        return worker.exited() or await _backends(postgres_url, name) > 0

    terminated = []
    for share in (0.2, 0.45, 0.7):
        await _completed_at_least(pg_store, workflow_id, int(share * len(deps)))
        await wait_for(connected, timeout_s=30, what="the worker to be connected")
        terminated.append(await _terminate(postgres_url, name))
    code = await wait_exit(worker, timeout_s=180)
    assert code == 0, worker.describe()
    assert all(n >= 1 for n in terminated), terminated

    ledger = await read_ledger(pg_store, workflow_id)
    assert_completed_exactly_once(ledger, deps)
    assert_dependency_order(ledger, deps)
    output = worker.output()
    complaints = [line for line in output.splitlines() if "PostgreSQL" in line]
    assert complaints, f"the worker did not log the lost connections\n{worker.describe()}"
    print(
        f"\n{len(deps)} subtasks; backends terminated per round {terminated}; "
        f"attempts by outcome {ledger.outcomes()}; worker said:\n" + "\n".join(complaints)
    )


async def test_idle_once_worker_reconnects_after_its_connections_are_terminated(
    pg_store: Store, postgres_url: str, tmp_path: Path, reaper: None
) -> None:
    """The same while a ``--once`` worker is idle: everything left is held by another worker that
    died (a ghost claim whose lease has yet to expire), so it polls the queue until it may take
    over; its connections are terminated in the meantime."""
    deps = mixed_dag(independent=30, chains=0, chain_length=0, joins=0)
    workflow_id = await queued_workflow(pg_store, deps)
    ghost = await SubtaskQueue(pg_store.connector).claim("ghost:0:dead", 10, lease_s=10.0)
    name = f"idle-{secrets.token_hex(4)}"
    worker = start_worker(
        with_query(postgres_url, application_name=name),
        tmp_path,
        name,
        ["--agent", "sim", "--concurrency", "20", "--sim-duration", "0.05"],
        lease_s=2.0,
    )

    async def connected() -> bool:
        return worker.exited() or await _backends(postgres_url, name) > 0

    await _completed_at_least(pg_store, workflow_id, len(deps) - len(ghost))
    terminated = []
    for _ in range(3):
        await wait_for(connected, timeout_s=30, what="the worker to be connected")
        cut = await _terminate(postgres_url, name)
        if cut == 0 and worker.exited():
            # On a loaded machine the rounds can outlast the ghost's lease: the worker took
            # over and finished; the rounds it met stand.
            break
        terminated.append(cut)
    code = await wait_exit(worker, timeout_s=120)
    assert code == 0, worker.describe()
    assert terminated, "the worker finished before a round cut its connections"
    assert all(n >= 1 for n in terminated), terminated

    ledger = await read_ledger(pg_store, workflow_id)
    assert_completed_exactly_once(ledger, deps)
    assert {s.key for s in ghost} == {
        key for key, attempts in ledger.attempts.items() if attempts[0].outcome == "zombie"
    }
