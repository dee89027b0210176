"""The persistence face: the only code that names queries. Returns frozen value objects.

Every state change names the state it expects in the same UPDATE (``WHERE status = :from``) and
writes its history or event row in the same transaction; a writer that lost a race gets a
:class:`StaleStateError` naming the state it found, and nothing is half-written.

The larger bodies live by concept, given the store's connector and the time: workflows and their
history in :mod:`taskorch.store.workflow_records`, subtasks and attempts in
:mod:`taskorch.store.subtask_records`.
"""

from __future__ import annotations

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
    SubtaskState,
    WorkflowState,
    check_subtask_transition,
    check_workflow_transition,
)
from taskorch.store import subtask_records, workflow_records
from taskorch.store.connector import Connector, Params
from taskorch.store.migrate import MigrationReport, current_version, latest_version, migrate
from taskorch.store.not_found import no_agent, no_subtask, no_task, no_workflow
from taskorch.store.records import M, decode, decode_all, to_json

NO_LIMIT = 2**62
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


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
        return await self._one("get_task", {"id": task_id}, Task, no_task(task_id))

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
        return await workflow_records.create_workflow(
            self.connector, self._clock(), task_id, metadata, workflow_id, claim_from
        )

    async def get_workflow(self, workflow_id: str) -> Workflow:
        return await self._one(
            "get_workflow", {"id": workflow_id}, Workflow, no_workflow(workflow_id)
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
        return await workflow_records.write_state(
            self.connector,
            self._clock(),
            workflow_id,
            from_state,
            to_state,
            metadata,
            result,
            task_status,
        )

    async def annotate_workflow(
        self, workflow_id: str, state: WorkflowState, metadata: JSONDict
    ) -> Workflow:
        """Merge ``metadata`` into a workflow that is still in ``state`` (an approval, a
        decision taken while it waits), recorded in its history as ``state -> state``."""
        return await workflow_records.write_state(
            self.connector, self._clock(), workflow_id, state, state, metadata, None
        )

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
        return await self._one("get_agent", {"ref": ref}, Agent, no_agent(ref))

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
            raise NotFoundError(no_agent(agent_id))
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
        return await subtask_records.add_subtasks(
            self.connector, self._clock(), workflow_id, subtasks, stage_of, priority
        )

    async def list_subtasks(self, workflow_id: str) -> list[Subtask]:
        rows = await self.connector.read("list_subtasks", {"workflow_id": workflow_id})
        return decode_all(Subtask, rows)

    async def get_subtask(self, subtask_id: int) -> Subtask:
        return await self._one("get_subtask", {"id": subtask_id}, Subtask, no_subtask(subtask_id))

    async def transition_subtask(
        self, subtask_id: int, from_state: SubtaskState, to_state: SubtaskState
    ) -> Subtask:
        check_subtask_transition(from_state, to_state)
        return await subtask_records.transition_subtask(
            self.connector, self._clock(), subtask_id, from_state, to_state
        )

    async def start_attempt(
        self, subtask_id: int, number: int, *, agent_id: str | None, worker_id: str | None
    ) -> Attempt:
        return await subtask_records.start_attempt(
            self.connector, self._clock(), subtask_id, number, agent_id, worker_id
        )

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
        return await subtask_records.finish_attempt(
            self.connector,
            self._clock(),
            attempt_id,
            outcome,
            error_class=error_class,
            error_message=error_message,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost_usd,
        )

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
        return await subtask_records.workflow_attempts(self.connector, workflow_id)

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
