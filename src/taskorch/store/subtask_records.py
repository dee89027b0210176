"""A workflow's subtasks as its plan stored them, a subtask's state changed on its own (outside the
queue's batches), and attempts recorded one at a time.

The bodies of :class:`taskorch.store.store.Store`'s subtask and attempt methods, given its
connector; the runtime's batched writes are :mod:`taskorch.store.queue`'s.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskorch.domain.errors import NotFoundError, StaleStateError
from taskorch.domain.models import Attempt, AttemptOutcome, Subtask
from taskorch.domain.plan import PlanSubtask
from taskorch.domain.states import SubtaskState
from taskorch.store.connector import Connector
from taskorch.store.not_found import no_subtask
from taskorch.store.records import decode, decode_all, to_json


async def add_subtasks(
    connector: Connector,
    now: datetime,
    workflow_id: str,
    subtasks: Sequence[PlanSubtask],
    stage_of: dict[str, int],
    priority: int,
) -> list[Subtask]:
    """See :meth:`taskorch.store.store.Store.add_subtasks`."""
    async with connector.transaction() as tx:
        await tx.executemany(
            "insert_subtask",
            [
                {**_subtask_params(workflow_id, sub, stage_of, now), "priority": priority}
                for sub in subtasks
            ],
        )
        rows = await tx.fetchall("list_subtasks", {"workflow_id": workflow_id})
    return decode_all(Subtask, rows)


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


async def transition_subtask(
    connector: Connector,
    now: datetime,
    subtask_id: int,
    from_state: SubtaskState,
    to_state: SubtaskState,
) -> Subtask:
    async with connector.transaction() as tx:
        row = await tx.fetchone(
            "transition_subtask",
            {
                "id": subtask_id,
                "from_state": from_state.value,
                "to_state": to_state.value,
                "now": now,
            },
        )
        if row is None:
            current = await tx.fetchone("get_subtask", {"id": subtask_id})
            if current is None:
                raise NotFoundError(no_subtask(subtask_id))
            raise StaleStateError(f"subtask {subtask_id}", from_state, current["status"])
    return decode(Subtask, row)


async def start_attempt(
    connector: Connector,
    now: datetime,
    subtask_id: int,
    number: int,
    agent_id: str | None,
    worker_id: str | None,
) -> Attempt:
    async with connector.transaction() as tx:
        row = await tx.fetchone(
            "insert_attempt",
            {
                "subtask_id": subtask_id,
                "number": number,
                "agent_id": agent_id,
                "worker_id": worker_id,
                "now": now,
            },
        )
    assert row is not None
    return decode(Attempt, row)


async def finish_attempt(
    connector: Connector,
    now: datetime,
    attempt_id: int,
    outcome: AttemptOutcome,
    *,
    error_class: str | None,
    error_message: str | None,
    tokens_in: int | None,
    tokens_out: int | None,
    cost_usd: float | None,
) -> Attempt:
    async with connector.transaction() as tx:
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
                "now": now,
            },
        )
    if row is None:
        raise StaleStateError(f"attempt {attempt_id}", AttemptOutcome.RUNNING, "finished")
    return decode(Attempt, row)


async def workflow_attempts(connector: Connector, workflow_id: str) -> list[tuple[str, Attempt]]:
    """(subtask key, attempt) for every recorded attempt of the workflow, in plan order."""
    rows = await connector.read("workflow_attempts", {"workflow_id": workflow_id})
    found: list[tuple[str, Attempt]] = []
    for row in rows:
        fields = dict(row)
        key = str(fields.pop("subtask_key"))
        found.append((key, decode(Attempt, fields)))
    return found
