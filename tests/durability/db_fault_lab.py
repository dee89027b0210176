"""A ``taskorch serve`` and two ``taskorch worker`` processes on PostgreSQL carrying a batch of
workflows while their database sessions are terminated (``pg_terminate_backend``) round after
round; then what became of the work. Used by ``test_db_faults.py`` (small) and
``bench/db_faults.py`` (full size).

Only this lab's own sessions are terminated: each process names itself with a unique
``application_name`` in its ``DATABASE_URL`` (the server is shared with other tests).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg.rows import dict_row

from durability.harness import WorkerProcess, with_query
from fakes.origins import bare_origin
from taskorch.domain.models import NewTask
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.store import Store, open_store

_CLEARED = (
    "DATABASE_URL",
    "DB_HOST",
    "TASKORCH_CONFIG",
    "TASKORCH_HOME",
    "TASKORCH_REPO",
    "MERGE_POLICY",
    "TEST_COMMAND",
    "NLP_PROVIDER",
    "ANTHROPIC_API_KEY",
    "OPENAI_API_KEY",
    "AGENTAPI_URL",
    "TASKORCH_API_TOKEN",
    "API_HOST",
    "API_PORT",
    "LEASE_S",
)
_TERMINAL = {s.value for s in WORKFLOW_TERMINAL}


@dataclass
class FaultReport:
    rounds: list[int] = field(default_factory=list)
    """Sessions terminated in each round."""
    serve_alive: bool = False
    """``serve`` was still running when the work was done."""
    exits: dict[str, int | None] = field(default_factory=dict)
    """Each process's exit code after SIGTERM."""
    states: dict[str, str] = field(default_factory=dict)
    """Workflow id -> final state (with the reason, for one that failed)."""
    tasks: int = 0
    subtasks: int = 0
    subtasks_lost: list[str] = field(default_factory=list)
    """Subtasks not completed (workflow/key=status), and tasks that got no workflow."""
    extra: list[str] = field(default_factory=list)
    """Subtasks beyond the plans: redone (work git did not show) or fix-ups."""
    duration_s: float = 0.0
    complaints: dict[str, list[str]] = field(default_factory=dict)
    """What each process said about the database."""

    def count(self, state: str) -> int:
        return sum(s.split(":", 1)[0] == state for s in self.states.values())

    def summary(self) -> str:
        said = {name: len(lines) for name, lines in self.complaints.items()}
        return (
            f"{self.tasks} workflows, {self.subtasks} subtasks; sessions terminated per round "
            f"{self.rounds}; serve alive {self.serve_alive}; subtasks lost "
            f"{len(self.subtasks_lost)}; merged {self.count('merged')}, cancelled "
            f"{self.count('cancelled')}, failed {self.count('failed')}; exits {self.exits}; "
            f"database lines logged {said}; {self.duration_s:.1f} s"
        )


def requirement(index: int) -> str:
    """Five subtasks each (the heuristic planner's plan for this shape), on files of their own
    (named after ``area<index>``): the workflows never conflict with each other."""
    return f"Add area{index} system with tests and docs"


def _env(database_url: str, home: Path, lease_s: float) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in _CLEARED}
    return env | {
        "DATABASE_URL": database_url,
        "TASKORCH_HOME": str(home),
        "LEASE_S": str(lease_s),
        "PYTHONUNBUFFERED": "1",
    }


def _spawn(name: str, root: Path, url: str, args: Sequence[str], lease_s: float) -> WorkerProcess:
    home = root / name
    home.mkdir(parents=True, exist_ok=True)
    log = root / f"{name}.log"
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "taskorch", *args],
            env=_env(url, home, lease_s),
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    return WorkerProcess(name, popen, log)


async def _query(url: str, sql: str, *params: Any) -> list[dict[str, Any]]:
    async with await psycopg.AsyncConnection.connect(
        url, autocommit=True, row_factory=dict_row
    ) as connection:
        cursor = await connection.execute(sql.encode(), params)
        return await cursor.fetchall() if cursor.description else []


async def _sessions(url: str, names: Sequence[str]) -> dict[str, int]:
    rows = await _query(
        url,
        "SELECT application_name AS name, COUNT(*) AS n FROM pg_stat_activity "
        "WHERE datname = current_database() AND application_name = ANY(%s) "
        "GROUP BY application_name",
        list(names),
    )
    return {str(r["name"]): int(r["n"]) for r in rows}


async def _terminate(url: str, names: Sequence[str]) -> int:
    rows = await _query(
        url,
        "SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity "
        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
        "AND application_name = ANY(%s)",
        list(names),
    )
    return sum(bool(r["done"]) for r in rows)


async def _wait(what: str, probe: Any, timeout_s: float, poll_s: float = 0.2) -> None:
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s:g} s for {what}")
        await asyncio.sleep(poll_s)


async def _states(store: Store) -> dict[str, str]:
    return {w.id: w.status.value for w in await store.list_workflows()}


async def run_lab(
    postgres_url: str,
    root: Path,
    *,
    workflows: int,
    rounds: int,
    round_gap_s: float,
    deadline_s: float,
    workers: int = 2,
    sim_duration_s: float = 0.2,
) -> FaultReport:
    """Carry ``workflows`` tasks to the end under ``rounds`` of terminated sessions."""
    report = FaultReport(tasks=workflows)
    origin = bare_origin(root / "remote")
    tag = secrets.token_hex(3)
    names = [f"serve-{tag}", *(f"worker{i}-{tag}" for i in range(workers))]
    store = await open_store(postgres_url, migrate=True)
    processes: list[WorkerProcess] = []
    started = time.monotonic()
    try:
        task_ids = [
            (await store.create_task(NewTask.create(requirement(i)))).id for i in range(workflows)
        ]
        sim = ["--agent", "sim", "--sim-duration", str(sim_duration_s), "--concurrency", "3"]
        serve_args = ["serve", "--port", "0", "--repo", origin.as_uri(), *sim]
        for name in names:
            args = serve_args if name.startswith("serve") else ["worker", *sim]
            url = with_query(postgres_url, application_name=name)
            processes.append(_spawn(name, root, url, args, lease_s=5.0))
        serve = processes[0]

        async def up() -> bool:
            running = "taskorch serving" in serve.output()
            return running and len(await _sessions(postgres_url, names)) == len(names)

        await _wait("serve and the workers to connect", up, 60)
        for _ in range(rounds):
            await asyncio.sleep(round_gap_s)

            async def connected() -> bool:
                alive = [p for p in processes if not p.exited()]
                found = await _sessions(postgres_url, [p.name for p in alive])
                return len(found) == len(alive)

            await _wait("every process to reconnect", connected, 60)
            report.rounds.append(await _terminate(postgres_url, names))

        async def done() -> bool:
            states = await _states(store)
            return len(states) >= workflows and set(states.values()) <= _TERMINAL

        with contextlib.suppress(AssertionError):
            await _wait("every workflow to end", done, deadline_s, poll_s=0.5)
        report.duration_s = time.monotonic() - started
        report.serve_alive = not serve.exited()
        await _collect(store, task_ids, report)
    finally:
        for process in processes:
            report.exits[process.name] = _stop(process)
            report.complaints[process.name] = [
                line for line in process.output().splitlines() if "database" in line
            ]
        await store.close()
    return report


async def _collect(store: Store, task_ids: list[int], report: FaultReport) -> None:
    carried = set()
    for workflow in await store.list_workflows():
        carried.add(workflow.task_id)
        state = workflow.status.value
        if state in ("failed", "cancelled"):
            state += f": {(workflow.result or {}).get('reason')}"
        report.states[workflow.id] = state
        for subtask in await store.list_subtasks(workflow.id):
            report.subtasks += 1
            if subtask.key.endswith("-redo") or subtask.key.startswith("fix-"):
                report.extra.append(f"{workflow.id}/{subtask.key}")
            if subtask.status.value != "completed":
                report.subtasks_lost.append(
                    f"{workflow.id}/{subtask.key}={subtask.status.value} ({state})"
                )
    report.subtasks_lost += [f"task-{t}: no workflow" for t in task_ids if t not in carried]


def _stop(process: WorkerProcess, timeout_s: float = 60.0) -> int | None:
    if process.exited():
        return process.popen.returncode
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        return process.popen.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill9()
        return None
