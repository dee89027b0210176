"""A database that keeps dropping its connections under the pipeline: every workflow still ends
merged, none is cancelled or failed for it, and no subtask is lost or done twice.

The connector double fails some transactions with :class:`DatabaseUnavailableError` (what the
backends raise for a dropped connection, a deadlock, a busy database): half of them before the
work runs, half after it committed (the answer lost on the way back, the hardest case for a
retry)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from pathlib import Path
from typing import cast

import psycopg
import pytest

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.cli.run import _status_through_outage
from taskorch.domain.errors import DatabaseUnavailableError, StoreError
from taskorch.domain.models import JSONDict, NewTask, Subtask, Task, Workflow
from taskorch.domain.plan import Plan
from taskorch.engine import OrchestrationEngine
from taskorch.engine.pipeline import Pipeline, ValidationOutcome
from taskorch.engine.runner import drive
from taskorch.planning import TaskNLP
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store, open_store
from taskorch.store import outage as outage_module
from taskorch.store.connector import Connector, Params, Row, Transaction
from taskorch.store.outage import Outage, is_transient, retry_transient
from taskorch.store.postgres import PostgresConnector, _transient
from taskorch.store.queue import SubtaskQueue

HAPPY_PATH = [
    "pending",
    "nlp_parsing",
    "task_decomposition",
    "dependency_resolution",
    "agent_assignment",
    "processing",
    "pr_created",
    "validation_running",
    "validation_passed",
    "merged",
]


class NoCode:
    """A delivery that touches no git: every step passes."""

    async def target(self, task: Task, options: JSONDict) -> JSONDict:
        return options

    async def prepare(self, workflow: Workflow, plan: Plan) -> Plan:
        return plan

    async def verify(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        return {}

    async def open_pull_request(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> JSONDict:
        return {"branch": f"taskorch/{workflow.id}"}

    async def validate(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> ValidationOutcome:
        return ValidationOutcome(True, "tests passed")

    async def merge(self, workflow: Workflow) -> JSONDict:
        return {"base": "main"}

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None:
        return


class Agent:
    def __init__(self) -> None:
        self.runs: list[str] = []

    @property
    def name(self) -> str:
        return "test-agent"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        self.runs.append(f"{task.subtask.workflow_id}/{task.subtask.key}")
        return AgentResult(True, f"did {task.subtask.key}")


async def heuristic(text: str, context: str | None, ref: str) -> tuple[Plan, str]:
    async with TaskNLP() as nlp:
        result = await nlp.plan(text, context, ref)
    return result.plan, result.describe()


class DroppingConnector(Connector):
    """``inner``, but every ``every``-th transaction or script fails as a dropped connection
    would; odd failures after the work committed."""

    def __init__(self, inner: Connector, every: int) -> None:
        self.inner = inner
        self.dialect = inner.dialect
        self.every = every
        self.calls = 0
        self.dropped = 0

    def describe(self) -> str:
        return self.inner.describe()

    async def open(self) -> None:
        await self.inner.open()

    async def close(self) -> None:
        await self.inner.close()

    def _drop_now(self) -> str | None:
        self.calls += 1
        if self.calls % self.every:
            return None
        self.dropped += 1
        return "after" if self.dropped % 2 else "before"

    def _error(self) -> DatabaseUnavailableError:
        return DatabaseUnavailableError("PostgreSQL at test failed: terminating connection")

    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        return self._transaction(write)

    @asynccontextmanager
    async def _transaction(self, write: bool) -> AsyncIterator[Transaction]:
        when = self._drop_now()
        if when == "before":
            raise self._error()
        async with self.inner.transaction(write=write) as tx:
            yield tx
        if when == "after":
            raise self._error()

    async def script(self, name: str, params: Params) -> list[Row]:
        when = self._drop_now()
        if when == "before":
            raise self._error()
        rows = await self.inner.script(name, params)
        if when == "after":
            raise self._error()
        return rows

    async def wait_for_notification(self, timeout_s: float) -> bool:
        return await self.inner.wait_for_notification(timeout_s)

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        async with self.inner.exclusive(key):
            yield


async def test_dropped_connections_never_cancel_or_fail_a_workflow(
    sqlite_url: str, tmp_path: Path
) -> None:
    """On SQLite (the pipeline's handling is the same on both backends; PostgreSQL's real
    dropped connections are ``durability/test_db_faults.py``)."""
    store = await open_store(sqlite_url, migrate=True)
    try:
        await _dropped_connections(store, tmp_path, every=9)
    finally:
        await store.close()


async def _dropped_connections(store: Store, tmp_path: Path, every: int) -> None:
    tasks = [
        await store.create_task(NewTask.create(f"Add {topic} system with security audit and docs"))
        for topic in ("billing", "search", "audit log")
    ]
    flaky = DroppingConnector(store.connector, every)
    dropping = Store(flaky)
    events = EventBus(jsonl_path=tmp_path / "events.jsonl")
    delivery = NoCode()
    pipeline = Pipeline(dropping, heuristic, delivery, publish=events.publish)
    starter = Pipeline(store, heuristic, delivery)  # started before the trouble begins
    workflows = [(await starter.start(task)).id for task in tasks]
    agent = Agent()
    worker = Worker(
        SubtaskQueue(flaky),
        {None: agent},
        config=WorkerConfig(concurrency=4, lease_s=1, poll_s=0.05),
        recovery=ErrorRecoveryManager(time_scale=0.0),
        events=events,
    )
    final = await drive(pipeline, events, workflows, worker=worker, poll_s=0.05)

    assert [w.status.value for w in final] == ["merged"] * len(tasks)
    assert flaky.dropped >= 10, flaky.dropped
    for workflow in final:
        history = await store.workflow_history(workflow.id)
        assert [h.to_state for h in history] == HAPPY_PATH  # no step undone, none twice
        subtasks = await store.list_subtasks(workflow.id)
        assert {s.status.value for s in subtasks} == {"completed"}
        assert (await store.get_task(workflow.task_id)).status == "completed"
    # Each subtask's work succeeded once (an outcome whose answer was lost is not run again).
    assert sorted(agent.runs) == sorted(set(agent.runs))


def test_only_database_unavailable_is_transient() -> None:
    assert is_transient(DatabaseUnavailableError("gone"))
    assert not is_transient(StoreError("constraint failed"))
    assert not is_transient(ValueError("x"))


async def test_an_outage_is_logged_once_however_many_retries_and_loops(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outage_module, "_last_failure_s", -outage_module.QUIET_S)
    outage = Outage("worker w1", first_delay_s=0.001, max_delay_s=0.004)
    other_loop = Outage("workflow wf-1", first_delay_s=0.001, max_delay_s=0.004)
    tries = 0

    async def flaky() -> str:
        nonlocal tries
        tries += 1
        if tries < 12:
            if tries == 5:
                other_loop.failed(DatabaseUnavailableError("the same outage, seen elsewhere"))
            raise DatabaseUnavailableError("PostgreSQL at db failed: terminating connection")
        return "answer"

    with caplog.at_level(logging.INFO, logger="taskorch.store.outage"):
        assert await retry_transient(flaky, outage) == "answer"
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1, warnings
    assert "worker w1: database unavailable" in warnings[0]
    assert "terminating connection" in warnings[0]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert len(infos) == 1, infos
    assert "database back after" in infos[0]
    assert not outage.ongoing


async def test_backoff_grows_to_its_cap_and_a_bounded_retry_gives_up() -> None:
    outage = Outage("t", first_delay_s=0.01, max_delay_s=0.04)
    delays = [outage.failed(DatabaseUnavailableError("x")) for _ in range(6)]
    assert all(d <= 0.04 for d in delays)
    assert delays[-1] >= 0.02  # capped, jittered between half and all of the cap

    async def down() -> None:
        raise DatabaseUnavailableError("still down")

    with pytest.raises(DatabaseUnavailableError):
        await retry_transient(down, Outage("t", first_delay_s=0.001), give_up_after_s=0.05)


async def test_monitor_keeps_watching_through_an_outage(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("taskorch.cli.run.MONITOR_POLL_S", 0.01)
    answers: list[object] = [
        DatabaseUnavailableError("PostgreSQL at db failed: terminating connection"),
        DatabaseUnavailableError("PostgreSQL at db failed: connection refused"),
        "status",
    ]

    class Engine:
        async def get_workflow_status(self, workflow_id: str) -> object:
            answer = answers.pop(0)
            if isinstance(answer, Exception):
                raise answer
            return answer

    engine = cast(OrchestrationEngine, Engine())
    status: object = await _status_through_outage(engine, "wf-1")
    assert status == "status"
    assert answers == []


def test_postgres_errors_of_the_connection_or_server_are_transient() -> None:
    transient = [
        psycopg.errors.SerializationFailure("could not serialize access"),
        psycopg.errors.DeadlockDetected("deadlock detected"),
        psycopg.errors.AdminShutdown("terminating connection due to administrator command"),
        psycopg.OperationalError("consuming input failed: server closed the connection"),
    ]
    assert all(_transient(exc) for exc in transient)
    assert not _transient(psycopg.errors.UniqueViolation("duplicate key"))
    assert not _transient(psycopg.errors.UndefinedTable("no such table"))


@pytest.mark.postgres
async def test_a_deadlock_is_a_transient_error(postgres_url: str) -> None:
    connector = PostgresConnector(postgres_url)
    await connector.open()
    try:
        async with connector.transaction() as tx:
            await tx.execute_sql("CREATE TABLE pair (id int PRIMARY KEY)")
            await tx.execute_sql("INSERT INTO pair VALUES (1), (2)")
        both = asyncio.Barrier(2)

        async def lock(first: int, second: int) -> None:
            async with connector.transaction() as tx:
                await tx.execute_sql(f"SELECT * FROM pair WHERE id = {first} FOR UPDATE")
                await both.wait()
                await tx.execute_sql(f"SELECT * FROM pair WHERE id = {second} FOR UPDATE")

        results = await asyncio.gather(lock(1, 2), lock(2, 1), return_exceptions=True)
    finally:
        await connector.close()
    errors = [r for r in results if isinstance(r, BaseException)]
    assert len(errors) == 1, results
    assert isinstance(errors[0], DatabaseUnavailableError), errors
    assert "deadlock" in errors[0].message


def test_a_permanent_error_is_logged_every_time(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(outage_module, "_last_failure_s", -outage_module.QUIET_S)
    outage = Outage("worker w1")
    with caplog.at_level(logging.WARNING, logger="taskorch.store.outage"):
        for _ in range(3):
            outage.failed(StoreError("CHECK constraint failed: status"))
    messages = [r.getMessage() for r in caplog.records]
    assert (
        messages == ["worker w1: database error, will retry: CHECK constraint failed: status"] * 3
    )
