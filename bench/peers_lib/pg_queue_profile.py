"""What taskorch's PostgreSQL queue writes per workload: WAL bytes per step and HOT updates.

In one process, on a fresh schema: store W1 (a fan-out of ``size`` and a join) or W2 (a chain),
queue it, claim one batch, then settle batch after batch (each settle claims the next) until
nothing is left, as one worker does. Prints wall time and WAL bytes of each step and the
table statistics (inserts, updates, HOT updates). Time figures on a shared machine are noise;
the WAL bytes and the HOT ratio are not.

    python bench/peers_lib/pg_queue_profile.py W1 5000
    python bench/peers_lib/pg_queue_profile.py W2 300 --batch 1
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from taskorch.store.queue import Outcome, SubtaskQueue
from throughput import POSTGRES_URL, _prepare


def _wal(admin: psycopg.Connection[Any]) -> int:
    row = admin.execute("SELECT pg_current_wal_insert_lsn() - '0/0'::pg_lsn").fetchone()
    assert row is not None
    return int(row[0])


async def profile(workload: str, size: int, batch: int) -> None:
    schema = "prof_" + uuid.uuid4().hex[:8]
    with psycopg.connect(POSTGRES_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}".encode())
        try:
            store, workflow_id = await _prepare(
                f"{POSTGRES_URL}?options=-csearch_path%3D{schema}", workload, size
            )
            queue = SubtaskQueue(store.connector)
            steps: dict[str, list[float]] = {}

            def record(name: str, began: float, wal_before: int) -> None:
                total = steps.setdefault(name, [0.0, 0.0, 0.0])
                total[0] += 1
                total[1] += time.perf_counter() - began
                total[2] += _wal(admin) - wal_before

            wal, began = _wal(admin), time.perf_counter()
            await queue.queue_ready(workflow_id)
            record("queue_ready", began, wal)
            wal, began = _wal(admin), time.perf_counter()
            claimed = await queue.claim("w1", batch, 30)
            record("claim", began, wal)
            while claimed:
                now = queue.now
                done = [Outcome(s, "completed", now, now, result={}) for s in claimed]
                wal, began = _wal(admin), time.perf_counter()
                _, claimed = await queue.settle("w1", done, claim_limit=batch)
                record("settle", began, wal)
            await store.close()
            for name, (count, seconds, wal_bytes) in steps.items():
                print(
                    f"{name:12} x{count:<5.0f} {seconds * 1000:9.1f} ms  "
                    f"WAL {wal_bytes / 1e6:6.2f} MB ({wal_bytes / size:,.0f} B per subtask)"
                )
            stats = admin.execute(
                "SELECT relname, n_tup_ins, n_tup_upd, n_tup_hot_upd FROM pg_stat_user_tables "
                "WHERE schemaname = %s AND (n_tup_ins > 0 OR n_tup_upd > 0) ORDER BY relname",
                [schema],
            ).fetchall()
            print(f"{'table':16} {'inserts':>8} {'updates':>8} {'HOT':>8}")
            for name, inserts, updates, hot in stats:
                print(f"{name:16} {inserts:>8} {updates:>8} {hot:>8}")
        finally:
            admin.execute(f"DROP SCHEMA {schema} CASCADE".encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("workload", choices=["W1", "W2"])
    parser.add_argument("size", type=int)
    parser.add_argument("--batch", type=int, default=1000, help="claim limit (default 1000)")
    args = parser.parse_args()
    asyncio.run(profile(args.workload, args.size, args.batch))


if __name__ == "__main__":
    main()
