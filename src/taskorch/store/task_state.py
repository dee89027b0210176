"""A task's reported state (the specification's ``update_task_state``): status, progress and a
message, kept in the task's ``metadata["state"]`` with a bounded history, written in one
transaction checked against the status it read (no migration: the tasks table already has a
JSON ``metadata`` column that ``task show --json`` prints)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskorch.domain.errors import NotFoundError, StaleStateError
from taskorch.domain.models import JSONDict, Task, TaskStatus
from taskorch.store.not_found import no_task
from taskorch.store.records import decode, to_json
from taskorch.store.store import Store, utc_now

STATE_KEY = "state"
HISTORY_LIMIT = 100
"""Reported states kept per task (the oldest go first): a task reporting progress every second
for a day must not grow its row without bound."""


async def record_task_state(
    store: Store,
    task_id: int,
    reported: JSONDict,
    *,
    status: TaskStatus | None = None,
    unless: tuple[TaskStatus, ...] = (),
) -> Task:
    """Store ``reported`` (status, progress, message) as the task's state, appended to its
    history; with ``status``, the task's stored status too, unless it is one of ``unless``
    (then :class:`StaleStateError`, naming the stored status)."""
    now: datetime = utc_now()
    async with store.connector.transaction() as tx:
        row = await tx.fetchone("get_task", {"id": task_id})
        if row is None:
            raise NotFoundError(no_task(task_id))
        task = decode(Task, row)
        if status is not None and status != task.status and task.status in unless:
            raise StaleStateError(f"task {task_id}", status.value, task.status.value)
        entry = {**reported, "at": now.isoformat()}
        previous: dict[str, Any] = dict(task.metadata.get(STATE_KEY) or {})
        history = [*previous.get("history", []), entry][-HISTORY_LIMIT:]
        metadata = {**task.metadata, STATE_KEY: {**entry, "history": history}}
        updated = await tx.fetchone(
            "update_task",
            {
                "id": task_id,
                "from_status": task.status.value,
                "title": task.title,
                "description": task.description,
                "priority": task.priority.value,
                "status": (status or task.status).value,
                "dependencies": to_json(task.dependencies),
                "metadata": to_json(metadata),
                "now": now,
            },
        )
        if updated is None:
            raise StaleStateError(f"task {task_id}", task.status.value, None)
    return decode(Task, updated)


def reported_state(task: Task) -> JSONDict:
    """The task's last reported state (``{}`` when none was reported), without its history."""
    state = task.metadata.get(STATE_KEY)
    if not isinstance(state, dict):
        return {}
    return {k: v for k, v in state.items() if k != "history"}
