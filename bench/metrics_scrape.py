"""What one Prometheus scrape of ``/metrics`` costs as the stored workflows grow: 10, then
100,000 finished workflows (each with a subtask and an attempt), on SQLite and on PostgreSQL.
Side by side: the scrape as served (SQL aggregates), and loading every workflow (what a scrape
did before, and what a dashboard listing without a limit still does).

    python bench/metrics_scrape.py [--counts 10,100000] [--backend sqlite|postgres|both]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from taskorch.engine import OrchestrationEngine
from taskorch.http.prometheus import Exporter
from taskorch.settings import load_settings
from taskorch.store import open_store

PG_URL = "postgresql://postgres@127.0.0.1:5432/test"
STATES = ("merged", "failed", "cancelled")


def rows(count: int) -> list[tuple[Any, ...]]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    out = []
    for i in range(count):
        began = start + timedelta(seconds=i)
        out.append((f"wf-{i:010d}", STATES[i % 3], began, began + timedelta(seconds=i % 4000)))
    return out


async def fill_sqlite(path: Path, count: int) -> None:
    import sqlite3

    def write() -> None:
        db = sqlite3.connect(path)
        now = datetime.now(UTC).isoformat()
        db.execute(
            "INSERT INTO tasks (title, description, priority, status, dependencies, metadata,"
            " created_at, updated_at) VALUES ('t', '', 'medium', 'completed', '[]', '{}', ?, ?)",
            (now, now),
        )
        db.executemany(
            "INSERT INTO workflows (id, task_id, status, start_time, end_time, metadata,"
            " created_at, updated_at) VALUES (?, 1, ?, ?, ?, '{}', ?, ?)",
            [(w, s, b.isoformat(), e.isoformat(), now, now) for w, s, b, e in rows(count)],
        )
        db.commit()
        db.close()

    await asyncio.to_thread(write)


async def fill_postgres(url: str, count: int) -> None:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as db:
        await db.execute(
            "INSERT INTO tasks (title, description, priority, status, dependencies, metadata,"
            " created_at, updated_at) VALUES ('t', '', 'medium', 'completed', '[]', '{}',"
            " now(), now())"
        )
        (task_id,) = await (await db.execute("SELECT max(id) FROM tasks")).fetchone() or (1,)
        async with db.cursor().copy(
            "COPY workflows (id, task_id, status, start_time, end_time, metadata, created_at,"
            " updated_at) FROM STDIN"
        ) as copy:
            for w, s, b, e in rows(count):
                await copy.write_row((w, task_id, s, b, e, "{}", b, e))


async def at_schema_4(url: str) -> None:
    """The schema before the duration histogram: the rows filled in then are the ones migration
    0006 must count (an upgrade of a database that already holds workflows)."""
    store = await open_store(url)
    try:
        await store.migrate(target=4)
    finally:
        await store.close()


async def timed(action: Callable[[], Awaitable[object]], runs: int = 5) -> float:
    times = []
    for _ in range(runs):
        began = time.perf_counter()
        await action()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


async def measure(url: str, home: Path) -> tuple[float, float]:
    settings = load_settings(taskorch_home=home, database_url=url, nlp_provider="heuristic")
    async with OrchestrationEngine(settings) as engine:
        stats = await engine.workflow_stats()
        assert sum(d.count for d in stats.durations.values()) == sum(stats.by_state.values())
        exporter = Exporter(engine)
        scrape = await timed(exporter.render)
        listing = await timed(engine.list_workflows, runs=3)
    return scrape, listing


async def on_sqlite(count: int) -> tuple[float, float]:
    with tempfile.TemporaryDirectory() as scratch:
        home = Path(scratch)
        url = f"sqlite:///{home / 'bench.db'}"
        await at_schema_4(url)
        await fill_sqlite(home / "bench.db", count)
        return await measure(url, home)  # migrates: 0006 builds the duration histogram


async def on_postgres(count: int) -> tuple[float, float]:
    schema = f"bench_metrics_{count}"
    async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as admin:
        await admin.execute(
            sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
        )
        await admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    url = f"{PG_URL}?options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory() as scratch:
            home = Path(scratch)
            await at_schema_4(url)
            await fill_postgres(url, count)
            return await measure(url, home)
    finally:
        async with await psycopg.AsyncConnection.connect(PG_URL, autocommit=True) as admin:
            await admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--counts", default="10,100000")
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    args = parser.parse_args()
    backends = ("sqlite", "postgres") if args.backend == "both" else (args.backend,)
    print(f"{'backend':<10} {'workflows':>10} {'scrape ms':>10} {'load all ms':>12}")
    for backend in backends:
        for count in (int(c) for c in args.counts.split(",")):
            run = on_sqlite if backend == "sqlite" else on_postgres
            scrape, listing = await run(count)
            print(f"{backend:<10} {count:>10,} {scrape:>10.1f} {listing:>12.1f}")


if __name__ == "__main__":
    asyncio.run(main())
