"""Database faults at full size: ``taskorch serve`` and two ``taskorch worker`` processes on
PostgreSQL carry 40 workflows (200 subtasks) while every session of theirs is terminated
(``pg_terminate_backend``), 20 rounds; then the counts: serve alive, subtasks lost, workflows
merged / cancelled / failed, duration. The suite runs a small version
(``tests/durability/test_db_faults.py``).

It works in a schema of its own on the server of ``TASKORCH_BENCH_DATABASE_URL`` (default
postgresql://postgres@127.0.0.1:5432/test), dropped afterwards, and terminates only the sessions
of its own processes (each names itself with ``application_name``).

    python bench/db_faults.py                      # 40 workflows, 20 rounds, 3 s apart
    python bench/db_faults.py --workflows 10 --rounds 8 --gap 1
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import sys
import tempfile
from pathlib import Path

import psycopg
from psycopg import sql

sys.path[:0] = [str(Path(__file__).resolve().parents[1] / "tests")]

from durability.db_fault_lab import FaultReport, run_lab  # noqa: E402

DEFAULT_URL = "postgresql://postgres@127.0.0.1:5432/test"


async def bench(workflows: int, rounds: int, gap_s: float) -> FaultReport:
    base = os.environ.get("TASKORCH_BENCH_DATABASE_URL", DEFAULT_URL)
    schema = f"bench_db_faults_{secrets.token_hex(4)}"
    with psycopg.connect(base, autocommit=True) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    separator = "&" if "?" in base else "?"
    url = f"{base}{separator}options=-csearch_path%3D{schema}"
    try:
        with tempfile.TemporaryDirectory(prefix="taskorch-db-faults-") as root:
            return await run_lab(
                url,
                Path(root),
                workflows=workflows,
                rounds=rounds,
                round_gap_s=gap_s,
                deadline_s=1200,
            )
    finally:
        with psycopg.connect(base, autocommit=True) as connection:
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=40, help="5 subtasks each")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--gap", type=float, default=3.0, help="seconds between rounds")
    args = parser.parse_args()
    report = asyncio.run(bench(args.workflows, args.rounds, args.gap))
    print(f"workflows            {report.tasks}")
    print(f"subtasks             {report.subtasks}")
    print(f"rounds               {len(report.rounds)} (sessions terminated: {report.rounds})")
    print(f"serve alive          {report.serve_alive}")
    print(f"subtasks lost        {len(report.subtasks_lost)}")
    print(f"workflows merged     {report.count('merged')}")
    print(f"workflows cancelled  {report.count('cancelled')}")
    print(f"workflows failed     {report.count('failed')}")
    print(f"extra subtasks       {len(report.extra)} (redone or fix-ups)")
    print(f"exit codes           {report.exits}")
    print(f"duration             {report.duration_s:.1f} s")
    for name, lines in report.complaints.items():
        print(f"{name} said:", *lines, sep="\n  ")
    for lost in report.subtasks_lost[:20]:
        print("lost:", lost)
    clean = report.serve_alive and not report.subtasks_lost
    clean = clean and report.count("merged") == report.tasks
    return 0 if clean else 1


if __name__ == "__main__":
    sys.exit(main())
