"""The persistence face: the only code that names queries. Returns frozen value objects.

Every state change names the state it expects in the same UPDATE (``WHERE status = :from``) and
writes its history or event row in the same transaction; a writer that lost a race gets a
:class:`StaleStateError` naming the state it found, and nothing is half-written.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from taskorch.domain.errors import InputError, NotFoundError, StaleStateError
from taskorch.domain.models import (
    Agent,
    AgentStatus,
    Attempt,
    AttemptOutcome,
    Capabilities,
    Event,
    HistoryEntry,
    JSONDict,
    NewTask,
    Subtask,
    Task,
    TaskStatus,
    Workflow,
)
from taskorch.domain.plan import PlanSubtask
from taskorch.domain.states import (
    WORKFLOW_TERMINAL,
    SubtaskState,
    WorkflowState,
    check_subtask_transition,
    check_workflow_transition,
)
from taskorch.store.connector import Connector, Params, Transaction
from taskorch.store.migrate import MigrationReport, current_version, latest_version, migrate
from taskorch.store.records import M, decode, decode_all, to_json

NO_LIMIT = 2**62
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


def new_workflow_id() -> str:
    return "wf-" + secrets.token_hex(5)


@dataclass(frozen=True, slots=True)
class StoreHealth:
    backend: str
    location: str
    schema_version: int
    latest_version: int

    @property
    def up_to_date(self) -> bool:
        return self.schema_version == self.latest_version


class Store:
    def __init__(self, connector: Connector, *, clock: Clock = utc_now) -> None:
        self.connector = connector
        self._clock = clock

    @property
    def backend(self) -> str:
        return self.connector.dialect

    async def open(self) -> None:
        await self.connector.open()

    async def close(self) -> None:
        await self.connector.close()

    async def __aenter__(self) -> Store:
        await self.open()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def migrate(self, *, target: int | None = None) -> MigrationReport:
        return await migrate(self.connector, target=target)

    async def health(self) -> StoreHealth:
        await self.connector.read_one("ping")
        return StoreHealth(
            backend=self.backend,
            location=self.connector.describe(),
            schema_version=await current_version(self.connector),
            latest_version=latest_version(self.backend),
        )

    async def _one(self, query: str, params: Params, model: type[M], missing: str) -> M:
        """The single row ``query`` reads, as ``model``; :class:`NotFoundError` if there is none."""
        row = await self.connector.read_one(query, params)
        if row is None:
            raise NotFoundError(missing)
        return decode(model, row)

    # --- tasks -------------------------------------------------------------------------------

    async def create_task(self, new: NewTask) -> Task:
        async with self.connector.transaction() as tx:
            if new.dependencies:
                found = await tx.fetchall("existing_task_ids", {"ids": to_json(new.dependencies)})
                missing = sorted(set(new.dependencies) - {int(r["id"]) for r in found})
                if missing:
                    raise NotFoundError(f"unknown task id {missing[0]} in --depends-on")
            row = await tx.fetchone(
                "insert_task",
                {
                    "title": new.title,
                    "description": new.description,
                    "priority": new.priority.value,
                    "dependencies": to_json(new.dependencies),
                    "metadata": to_json(new.metadata),
                    "now": self._clock(),
                },
            )
        assert row is not None
        return decode(Task, row)

    async def get_task(self, task_id: int) -> Task:
        return await self._one("get_task", {"id": task_id}, Task, _no_task(task_id))

    async def list_tasks(
        self, *, status: TaskStatus | None = None, limit: int | None = None
    ) -> list[Task]:
        params = {"status": status.value if status else None, "limit": limit or NO_LIMIT}
        rows = await self.connector.read("list_tasks", params)
        return decode_all(Task, rows)

    async def set_task_status(
        self, task_id: int, from_status: TaskStatus, to_status: TaskStatus
    ) -> Task:
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "update_task_status",
                {
                    "id": task_id,
                    "from_status": from_status.value,
                    "to_status": to_status.value,
                    "now": self._clock(),
                },
            )
            if row is None:
                current = await tx.fetchone("get_task", {"id": task_id})
                raise StaleStateError(
                    f"task {task_id}", from_status, current["status"] if current else None
                )
        return decode(Task, row)

    # --- workflows -----------------------------------------------------------------------------

    async def create_workflow(
        self,
        task_id: int,
        *,
        metadata: JSONDict | None = None,
        workflow_id: str | None = None,
        claim_from: TaskStatus | None = None,
    ) -> Workflow:
        """A new ``pending`` workflow for the task. With ``claim_from``, the task moves from that
        status to ``processing`` in the same transaction (``StaleStateError`` if it is no longer
        in it): a crash never leaves a claimed task without the workflow that carries it."""
        now = self._clock()
        wid = workflow_id or new_workflow_id()
        async with self.connector.transaction() as tx:
            task = await tx.fetchone("get_task", {"id": task_id})
            if task is None:
                raise NotFoundError(_no_task(task_id))
            if claim_from is not None:
                claim = {"id": task_id, "from_status": claim_from.value, "now": now}
                claim["to_status"] = TaskStatus.PROCESSING.value
                if await tx.fetchone("update_task_status", claim) is None:
                    raise StaleStateError(f"task {task_id}", claim_from, task["status"])
            row = await tx.fetchone(
                "insert_workflow",
                {"id": wid, "task_id": task_id, "metadata": to_json(metadata or {}), "now": now},
            )
            caps = ((metadata or {}).get("options") or {}).get("budget")
            if caps:  # the settled caps (engine.budgets), stored where the claims read them
                row = await tx.fetchone(
                    "set_workflow_budget",
                    {
                        "id": wid,
                        "usd": caps.get("usd"),
                        "tokens": caps.get("tokens"),
                        "subtask_usd": caps.get("subtask_usd"),
                        "now": now,
                    },
                )
            await tx.execute(
                "insert_history",
                {
                    "workflow_id": wid,
                    "from_state": None,
                    "to_state": WorkflowState.PENDING.value,
                    "now": now,
                    "metadata": to_json({}),
                },
            )
        assert row is not None
        return decode(Workflow, row)

    async def get_workflow(self, workflow_id: str) -> Workflow:
        return await self._one(
            "get_workflow", {"id": workflow_id}, Workflow, _no_workflow(workflow_id)
        )

    async def list_workflows(
        self,
        *,
        status: WorkflowState | None = None,
        task_id: int | None = None,
        limit: int | None = None,
    ) -> list[Workflow]:
        params = {
            "status": status.value if status else None,
            "task_id": task_id,
            "limit": limit or NO_LIMIT,
        }
        rows = await self.connector.read("list_workflows", params)
        return decode_all(Workflow, rows)

    async def transition_workflow(
        self,
        workflow_id: str,
        from_state: WorkflowState,
        to_state: WorkflowState,
        *,
        metadata: JSONDict | None = None,
        result: JSONDict | None = None,
        task_status: TaskStatus | None = None,
    ) -> Workflow:
        """Move a workflow from ``from_state`` to ``to_state`` and record it in its history.

        ``metadata`` is merged into the workflow's metadata and stored on the history row. With
        ``task_status``, the workflow's task (if still ``processing``) takes that status in the
        same transaction: a workflow that ended never leaves its task looking carried.
        """
        check_workflow_transition(from_state, to_state)
        return await self._write_state(
            workflow_id, from_state, to_state, metadata, result, task_status
        )

    async def annotate_workflow(
        self, workflow_id: str, state: WorkflowState, metadata: JSONDict
    ) -> Workflow:
        """Merge ``metadata`` into a workflow that is still in ``state`` (an approval, a
        decision taken while it waits), recorded in its history as ``state -> state``."""
        return await self._write_state(workflow_id, state, state, metadata, None)

    async def _write_state(
        self,
        workflow_id: str,
        from_state: WorkflowState,
        to_state: WorkflowState,
        metadata: JSONDict | None,
        result: JSONDict | None,
        task_status: TaskStatus | None = None,
    ) -> Workflow:
        """The state and metadata change, checked against ``from_state``, its history row and
        the task's end (``task_status``), in one transaction."""
        now = self._clock()
        states = {"from_state": from_state.value, "to_state": to_state.value}
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "transition_workflow",
                {
                    "id": workflow_id,
                    **states,
                    "terminal": to_state in WORKFLOW_TERMINAL,
                    "result": to_json(result),
                    "metadata": to_json(metadata or {}),
                    "now": now,
                },
            )
            if row is None:
                await self._raise_stale_workflow(tx, workflow_id, from_state)
            if to_state in WORKFLOW_TERMINAL and from_state != to_state:
                await tx.execute("count_workflow_duration", {"id": workflow_id})
            await tx.execute(
                "insert_history",
                {
                    "workflow_id": workflow_id,
                    **states,
                    "now": now,
                    "metadata": to_json(metadata or {}),
                },
            )
            if task_status is not None:
                ended = {"workflow_id": workflow_id, "to_status": task_status.value, "now": now}
                await tx.execute("end_workflow_task", ended)
        assert row is not None
        return decode(Workflow, row)

    async def _raise_stale_workflow(
        self, tx: Transaction, workflow_id: str, expected: WorkflowState
    ) -> None:
        current = await tx.fetchone("get_workflow", {"id": workflow_id})
        if current is None:
            raise NotFoundError(_no_workflow(workflow_id))
        raise StaleStateError(f"workflow {workflow_id}", expected, current["status"])

    async def workflow_history(self, workflow_id: str) -> list[HistoryEntry]:
        rows = await self.connector.read("list_history", {"workflow_id": workflow_id})
        return decode_all(HistoryEntry, rows)

    # --- agents --------------------------------------------------------------------------------

    async def upsert_agent(
        self,
        agent_id: str,
        *,
        name: str,
        type: str,
        capabilities: Capabilities | None = None,
        status: AgentStatus = AgentStatus.AVAILABLE,
        max_concurrency: int = 1,
        metadata: JSONDict | None = None,
    ) -> Agent:
        if max_concurrency < 1:
            raise InputError(f"agent concurrency must be at least 1, got {max_concurrency}")
        caps = (capabilities or Capabilities()).model_dump(mode="json")
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "upsert_agent",
                {
                    "id": agent_id,
                    "name": name,
                    "type": type,
                    "capabilities": to_json(caps),
                    "status": status.value,
                    "max_concurrency": max_concurrency,
                    "metadata": to_json(metadata or {}),
                    "now": self._clock(),
                },
            )
        assert row is not None
        return decode(Agent, row)

    async def get_agent(self, ref: str) -> Agent:
        """An agent by id or by name."""
        return await self._one("get_agent", {"ref": ref}, Agent, _no_agent(ref))

    async def list_agents(self) -> list[Agent]:
        rows = await self.connector.read("list_agents")
        return decode_all(Agent, rows)

    async def remove_agent(self, ref: str) -> Agent:
        agent = await self.get_agent(ref)
        async with self.connector.transaction() as tx:
            await tx.execute("delete_agent", {"id": agent.id})
        return agent

    async def set_agent_status(self, agent_id: str, status: AgentStatus) -> Agent:
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "update_agent_status",
                {"id": agent_id, "status": status.value, "now": self._clock()},
            )
        if row is None:
            raise NotFoundError(_no_agent(agent_id))
        return decode(Agent, row)

    # --- subtasks and attempts -----------------------------------------------------------------

    async def add_subtasks(
        self,
        workflow_id: str,
        subtasks: Sequence[PlanSubtask],
        stage_of: dict[str, int],
        *,
        priority: int = 0,
    ) -> list[Subtask]:
        """Store a plan's subtasks (idempotent: a re-run after a crash adds nothing twice)."""
        now = self._clock()
        async with self.connector.transaction() as tx:
            await tx.executemany(
                "insert_subtask",
                [
                    {**self._subtask_params(workflow_id, sub, stage_of, now), "priority": priority}
                    for sub in subtasks
                ],
            )
            rows = await tx.fetchall("list_subtasks", {"workflow_id": workflow_id})
        return decode_all(Subtask, rows)

    @staticmethod
    def _subtask_params(
        workflow_id: str, sub: PlanSubtask, stage_of: dict[str, int], now: datetime
    ) -> dict[str, Any]:
        return {
            "workflow_id": workflow_id,
            "key": sub.subtask_id,
            "title": sub.title,
            "description": sub.description,
            "assigned_to": sub.assigned_to.value,
            "worker_type": sub.worker_type.value,
            "dependencies": to_json(sub.dependencies),
            "files_affected": to_json(sub.files_affected),
            "success_criteria": sub.success_criteria,
            "estimated_duration_minutes": sub.estimated_duration_minutes,
            "estimated_tokens": sub.estimated_tokens,
            "command": to_json(sub.command),
            "stage": stage_of.get(sub.subtask_id, 0),
            "status": SubtaskState.PENDING.value,
            "now": now,
        }

    async def list_subtasks(self, workflow_id: str) -> list[Subtask]:
        rows = await self.connector.read("list_subtasks", {"workflow_id": workflow_id})
        return decode_all(Subtask, rows)

    async def get_subtask(self, subtask_id: int) -> Subtask:
        return await self._one("get_subtask", {"id": subtask_id}, Subtask, _no_subtask(subtask_id))

    async def transition_subtask(
        self, subtask_id: int, from_state: SubtaskState, to_state: SubtaskState
    ) -> Subtask:
        check_subtask_transition(from_state, to_state)
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "transition_subtask",
                {
                    "id": subtask_id,
                    "from_state": from_state.value,
                    "to_state": to_state.value,
                    "now": self._clock(),
                },
            )
            if row is None:
                current = await tx.fetchone("get_subtask", {"id": subtask_id})
                if current is None:
                    raise NotFoundError(_no_subtask(subtask_id))
                raise StaleStateError(f"subtask {subtask_id}", from_state, current["status"])
        return decode(Subtask, row)

    async def start_attempt(
        self, subtask_id: int, number: int, *, agent_id: str | None, worker_id: str | None
    ) -> Attempt:
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "insert_attempt",
                {
                    "subtask_id": subtask_id,
                    "number": number,
                    "agent_id": agent_id,
                    "worker_id": worker_id,
                    "now": self._clock(),
                },
            )
        assert row is not None
        return decode(Attempt, row)

    async def finish_attempt(
        self,
        attempt_id: int,
        outcome: AttemptOutcome,
        *,
        error_class: str | None = None,
        error_message: str | None = None,
        tokens_in: int | None = None,
        tokens_out: int | None = None,
        cost_usd: float | None = None,
    ) -> Attempt:
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "finish_attempt",
                {
                    "id": attempt_id,
                    "outcome": outcome.value,
                    "error_class": error_class,
                    "error_message": error_message,
                    "tokens_in": tokens_in,
                    "tokens_out": tokens_out,
                    "cost_usd": cost_usd,
                    "now": self._clock(),
                },
            )
        if row is None:
            raise StaleStateError(f"attempt {attempt_id}", AttemptOutcome.RUNNING, "finished")
        return decode(Attempt, row)

    async def list_attempts(self, subtask_id: int) -> list[Attempt]:
        rows = await self.connector.read("list_attempts", {"subtask_id": subtask_id})
        return decode_all(Attempt, rows)

    async def attempt_usage_by_agent(self) -> list[dict[str, Any]]:
        """Per agent id (None: unassigned) and reported ``model`` (None: not reported):
        ``attempts``, ``unreported``, ``tokens_in``, ``tokens_out``, ``cost_usd`` (None where no
        attempt reported that figure)."""
        rows = await self.connector.read("attempt_usage_by_agent")
        return [dict(row) for row in rows]

    async def workflow_attempts(self, workflow_id: str) -> list[tuple[str, Attempt]]:
        """(subtask key, attempt) for every recorded attempt of the workflow, in plan order."""
        rows = await self.connector.read("workflow_attempts", {"workflow_id": workflow_id})
        found: list[tuple[str, Attempt]] = []
        for row in rows:
            fields = dict(row)
            key = str(fields.pop("subtask_key"))
            found.append((key, decode(Attempt, fields)))
        return found

    # --- events --------------------------------------------------------------------------------

    async def append_event(
        self,
        kind: str,
        *,
        workflow_id: str | None = None,
        subtask_id: int | None = None,
        payload: JSONDict | None = None,
    ) -> Event:
        async with self.connector.transaction() as tx:
            row = await tx.fetchone(
                "insert_event",
                {
                    "kind": kind,
                    "workflow_id": workflow_id,
                    "subtask_id": subtask_id,
                    "payload": to_json(payload or {}),
                    "now": self._clock(),
                },
            )
        assert row is not None
        return decode(Event, row)

    async def list_events(
        self, *, after_id: int = 0, workflow_id: str | None = None, limit: int | None = None
    ) -> list[Event]:
        params = {"after_id": after_id, "limit": limit or NO_LIMIT}
        if workflow_id is None:
            rows = await self.connector.read("list_events", params)
        else:
            rows = await self.connector.read(
                "list_workflow_events", {**params, "workflow_id": workflow_id}
            )
        return decode_all(Event, rows)


def _no_task(task_id: int) -> str:
    return f"no task with id {task_id}: see `taskorch task list`"


def _no_workflow(workflow_id: str) -> str:
    return f"no workflow with id {workflow_id!r}: see `taskorch status`"


def _no_agent(ref: str) -> str:
    return f"no agent {ref!r}: see `taskorch agents list`"


def _no_subtask(subtask_id: int) -> str:
    return f"no subtask with id {subtask_id}"
