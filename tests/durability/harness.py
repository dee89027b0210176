"""What the durability tests share: ``taskorch worker`` subprocesses, workflow DAGs, the agent's run
record, and the exactly-once checks read back from the database.

Every wait here is a generous deadline that fails the test if something hangs; nothing asserts how
fast anything was.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

from taskorch.domain.models import Attempt, Subtask
from taskorch.store import Store
from taskorch.store.queue import SubtaskQueue

Deps = dict[str, list[str]]

# Settings a developer's shell might carry that would point a worker elsewhere.
_FOREIGN_ENV = ("DATABASE_URL", "DB_HOST", "TASKORCH_CONFIG", "TASKORCH_HOME", "TASKORCH_LEASE_S")


# --- worker subprocesses ---------------------------------------------------------------------


@dataclass
class WorkerProcess:
    """One ``taskorch worker --once`` process, leader of its own process group."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.popen.pid

    def exited(self) -> bool:
        return self.popen.poll() is not None

    def ready(self) -> bool:
        """The worker printed its ``worker <id> on <db>`` line: engine open, loop about to run."""
        return any(line.startswith("worker ") for line in self.output().splitlines())

    def kill9(self) -> None:
        """SIGKILL the worker's whole process group and reap the worker."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.popen.pid, signal.SIGKILL)
        self.popen.wait(timeout=30)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""

    def describe(self) -> str:
        tail = self.output()[-3000:]
        return f"--- worker {self.name} (pid {self.pid}, exit {self.popen.returncode}) ---\n{tail}"


def start_worker(
    database_url: str,
    home: Path,
    name: str,
    args: Sequence[str],
    *,
    lease_s: float,
) -> WorkerProcess:
    """``python -m taskorch worker --once ARGS`` on ``database_url``, output in ``home/NAME.log``"""
    env = {k: v for k, v in os.environ.items() if k not in _FOREIGN_ENV}
    env |= {
        "DATABASE_URL": database_url,
        "TASKORCH_HOME": str(home / "taskorch-home"),
        "TASKORCH_LEASE_S": str(lease_s),
        "PYTHONUNBUFFERED": "1",
    }
    log = home / f"{name}.log"
    # The worker is the leader of a new session, so killpg(worker) ends it and nothing else.
    with log.open("wb") as out:
        popen = subprocess.Popen(
            [sys.executable, "-m", "taskorch", "worker", "--once", *args],
            env=env,
            cwd=home,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    worker = WorkerProcess(name, popen, log)
    _started.append(worker)
    return worker


_started: list[WorkerProcess] = []


def kill_leftover_workers() -> None:
    """After a test, failed or not: no worker of it may outlive it."""
    while _started:
        worker = _started.pop()
        if not worker.exited():
            worker.kill9()


def with_query(url: str, **params: str) -> str:
    """``url`` with query parameters added (libpq keeps ``application_name`` and ``options``)."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True)) | params
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


async def wait_until(
    condition: Callable[[], bool], *, timeout_s: float, what: str, poll_s: float = 0.05
) -> None:
    """Poll ``condition`` until true; fail the test after the (generous) deadline."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s:g} s for {what}")
        await asyncio.sleep(poll_s)


async def wait_for(
    probe: Callable[[], Awaitable[bool]], *, timeout_s: float, what: str, poll_s: float = 0.05
) -> None:
    """:func:`wait_until` for a condition that needs the database."""
    deadline = time.monotonic() + timeout_s
    while not await probe():
        if time.monotonic() > deadline:
            raise AssertionError(f"still waiting after {timeout_s:g} s for {what}")
        await asyncio.sleep(poll_s)


async def wait_exit(worker: WorkerProcess, *, timeout_s: float) -> int:
    await wait_until(worker.exited, timeout_s=timeout_s, what=f"worker {worker.name} to exit")
    code = worker.popen.returncode
    assert code is not None
    return code


# --- agent processes -------------------------------------------------------------------------


def live_agents(marker: str) -> list[int]:
    """Pids of live (not zombie) ``sim_process`` agents whose command line contains ``marker``
    (their guards left out)."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = (
                Path(f"/proc/{entry}/cmdline")
                .read_bytes()
                .replace(b"\0", b" ")
                .decode(errors="replace")
            )
            state = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        guard = "agents/guard.py" in cmdline  # the worker's child: the agent runs below it
        if "sim_process" in cmdline and marker in cmdline and state != "Z" and not guard:
            pids.append(int(entry))
    return pids


@dataclass(frozen=True, slots=True)
class Run:
    """One line of the agent's record: ``start|done <key> <unix time> <pid>``."""

    kind: str
    key: str
    at: float
    pid: int


def read_record(path: Path) -> list[Run]:
    if not path.exists():
        return []
    runs = []
    for line in path.read_text().splitlines():
        kind, key, at, pid = line.split()
        assert kind in ("start", "done"), line
        runs.append(Run(kind, key, float(at), int(pid)))
    return runs


# --- workflows -------------------------------------------------------------------------------


async def count_completed(store: Store, workflow_id: str) -> int:
    counts = await SubtaskQueue(store.connector).workflow_counts([workflow_id])
    return counts[workflow_id].get("completed", 0)


# --- what the database says ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ledger:
    """A workflow's subtasks and every attempt of each, as stored."""

    subtasks: dict[str, Subtask]
    attempts: dict[str, list[Attempt]]

    def succeeded(self, key: str) -> Attempt:
        [attempt] = [a for a in self.attempts[key] if a.outcome == "succeeded"]
        return attempt

    def completed_at(self, key: str) -> float:
        """When the agent's successful run was over, as the worker recorded it."""
        ended = self.succeeded(key).ended_at
        assert ended is not None
        return ended.timestamp()

    def outcomes(self) -> dict[str, int]:
        tally: dict[str, int] = {}
        for attempts in self.attempts.values():
            for attempt in attempts:
                tally[attempt.outcome.value] = tally.get(attempt.outcome.value, 0) + 1
        return tally


async def read_ledger(store: Store, workflow_id: str) -> Ledger:
    subtasks = {s.key: s for s in await store.list_subtasks(workflow_id)}
    attempts = {key: await store.list_attempts(s.id) for key, s in subtasks.items()}
    return Ledger(subtasks, attempts)


def assert_completed_exactly_once(ledger: Ledger, deps: Deps) -> None:
    """Every subtask of the plan is ``completed`` with exactly one succeeded attempt."""
    assert sorted(ledger.subtasks) == sorted(deps)
    not_done = {
        k: (
            s.status.value,
            s.error,
            [(a.outcome.value, a.error_message) for a in ledger.attempts[k]],
        )
        for k, s in ledger.subtasks.items()
        if s.status != "completed"
    }
    assert not_done == {}, f"subtasks not completed (status, error, attempts): {not_done}"
    wins = {k: sum(a.outcome == "succeeded" for a in ats) for k, ats in ledger.attempts.items()}
    not_once = {k: n for k, n in wins.items() if n != 1}
    assert not_once == {}, f"subtasks without exactly one succeeded attempt: {not_once}"


def assert_dependency_order(ledger: Ledger, deps: Deps) -> None:
    """Each subtask's succeeded attempt started after its dependencies' succeeded attempts ended."""
    for key, after in deps.items():
        started = ledger.succeeded(key).started_at.timestamp()
        for dep in after:
            assert started > ledger.completed_at(dep), (
                f"{key} started at {started} before its dependency {dep} ended "
                f"at {ledger.completed_at(dep)}"
            )
