"""Runtime throughput: W1 = 5,000 no-op sim subtasks fanned out then one join; W2 = a chain of 500.

Workers are separate processes (``bench/_worker.py``) started before the clock starts; the clock
runs from enqueueing the workflow to the end of the last attempt as stored in the database, so
neither process start-up nor a worker's drain-and-exit is counted. Durability stays on: SQLite in
WAL with synchronous=FULL, PostgreSQL with its default synchronous_commit.

    python bench/throughput.py                     # the full table
    python bench/throughput.py --quick             # smaller workloads
    python bench/throughput.py --backend sqlite --workers 1 --workload W1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

import psycopg

from _processes import kill_all, start_ready
from taskorch.domain.models import NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.store import Store, open_store
from taskorch.store.queue import SubtaskQueue

POSTGRES_URL = os.environ.get(
    "TASKORCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)
WORKER = Path(__file__).with_name("_worker.py")
SIZES = {"W1": 5000, "W2": 500}


def plan(workload: str, size: int) -> list[PlanSubtask]:
    def sub(key: str, deps: list[str]) -> PlanSubtask:
        return PlanSubtask(
            subtask_id=key,
            parent_task_id="task-1",
            title=key,
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.IMPLEMENTATION,
            dependencies=deps,
        )

    if workload == "W1":
        fan = [sub(f"s{i}", []) for i in range(size)]
        return [*fan, sub("join", [s.subtask_id for s in fan])]
    return [sub(f"c{i}", [f"c{i - 1}"] if i else []) for i in range(size)]


def _fresh_database(backend: str, folder: Path) -> str:
    if backend == "sqlite":
        return f"sqlite:///{folder / 'bench.db'}"
    schema = "bench_" + uuid.uuid4().hex[:8]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}".encode())
    return f"{POSTGRES_URL}?options=-csearch_path%3D{schema}"


def _drop(backend: str, url: str) -> None:
    if backend == "postgres":
        schema = url.rsplit("%3D", 1)[1]
        with psycopg.connect(POSTGRES_URL, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE".encode())


async def _prepare(url: str, workload: str, size: int) -> tuple[Store, str]:
    store = await open_store(url, migrate=True)
    task = await store.create_task(NewTask.create(f"bench {workload}"))
    workflow = await store.create_workflow(task.id)
    await store.add_subtasks(workflow.id, plan(workload, size), {})
    await SubtaskQueue(store.connector).link_workflow(workflow.id)  # storing the DAG: setup
    return store, workflow.id


async def _figures(store: Store, started: datetime, count: int) -> dict[str, float]:
    subtasks = await _subtasks_with_attempts(store)
    ended = max(end for _, _, end in subtasks)
    wall_s = (ended - started).total_seconds()
    latencies = sorted((begin - ready).total_seconds() * 1000 for ready, begin, _ in subtasks)
    return {
        "subtasks_per_s": count / wall_s,
        "ms_per_step": wall_s * 1000 / count,
        "dispatch_p50_ms": statistics.median(latencies),
        "dispatch_p99_ms": latencies[int(len(latencies) * 0.99) - 1],
        "wall_s": wall_s,
    }


async def _subtasks_with_attempts(store: Store) -> list[tuple[datetime, datetime, datetime]]:
    result = []
    workflows = await store.list_workflows()
    for workflow in workflows:
        for subtask in await store.list_subtasks(workflow.id):
            attempts = await store.list_attempts(subtask.id)
            assert subtask.status == "completed", f"{subtask.key} is {subtask.status}"
            assert len(attempts) == 1
            assert attempts[0].ended_at is not None
            assert subtask.queued_at is not None
            result.append((subtask.queued_at, attempts[0].started_at, attempts[0].ended_at))
    return result


def measure(
    workload: str,
    backend: str,
    workers: int,
    *,
    size: int | None = None,
    concurrency: int = 1000,
) -> dict[str, float]:
    """Run one workload and return its figures (the API ``bench/peers.py`` uses)."""
    count = size or SIZES[workload]
    with tempfile.TemporaryDirectory(prefix="taskorch-bench-") as folder:
        url = _fresh_database(backend, Path(folder))
        asyncio.run(_migrate(url))
        env = {**os.environ, "DATABASE_URL": url, "PYTHONUNBUFFERED": "1"}
        try:
            procs = start_ready([sys.executable, str(WORKER), str(concurrency)], workers, env)
            try:
                return asyncio.run(_run(url, workload, count, procs))
            finally:
                kill_all(procs)
        finally:
            _drop(backend, url)


async def _migrate(url: str) -> None:
    store = await open_store(url, migrate=True)
    await store.close()


async def _run(
    url: str, workload: str, size: int, procs: list[subprocess.Popen[str]]
) -> dict[str, float]:
    store, workflow_id = await _prepare(url, workload, size)
    try:
        await open_writers(store)
        started = datetime.now(UTC)
        # the fan-out (the clock runs), quiet as the engine queues it when no one reads its events
        await SubtaskQueue(store.connector).queue_ready(workflow_id, quiet=True)
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        await asyncio.to_thread(lambda: [proc.wait(timeout=600) for proc in procs])
        count = size + 1 if workload == "W1" else size
        return await _figures(store, started, count)
    finally:
        await store.close()


async def open_writers(store: Store) -> None:
    """Open the connections the fan-out writes on (``parallel_writes``, each held at once so that
    the pool has them all), before the clock starts: as a peer's coordinator connects before its
    clock, where the fan-out's second part connected inside it (5-15 ms under load)."""
    parts = store.connector.parallel_writes
    barrier = asyncio.Barrier(parts)

    async def hold() -> None:
        async with store.connector.transaction():
            await barrier.wait()

    await asyncio.gather(*(hold() for _ in range(parts)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="W1 = 1,000, W2 = 100")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], action="append")
    parser.add_argument("--workers", type=int, action="append")
    parser.add_argument("--workload", choices=["W1", "W2"], action="append")
    args = parser.parse_args()
    if args.quick:
        SIZES.update(W1=1000, W2=100)
    print(
        f"{'workload':8} {'backend':9} {'workers':>7} {'subtasks/s':>11} {'ms/step':>8} "
        f"{'p50 ms':>7} {'p99 ms':>7}"
    )
    for workload in args.workload or ["W1", "W2"]:
        for backend in args.backend or ["sqlite", "postgres"]:
            for workers in args.workers or [1, 2, 4]:
                f = measure(workload, backend, workers)
                print(
                    f"{workload:8} {backend:9} {workers:>7} {f['subtasks_per_s']:>11,.0f} "
                    f"{f['ms_per_step']:>8.2f} {f['dispatch_p50_ms']:>7.1f} "
                    f"{f['dispatch_p99_ms']:>7.1f}",
                    flush=True,
                )


if __name__ == "__main__":
    main()
