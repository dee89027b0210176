"""Tasks written as one batch from another tool's file (claude-task-master's tasks.json): created
or updated in one transaction, with dependencies between members of the batch.

Nothing is half-imported: a failure anywhere leaves the store as it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from taskorch.domain.errors import NotFoundError, StaleStateError
from taskorch.domain.models import JSONDict, Priority, Task, TaskStatus
from taskorch.store.connector import Transaction
from taskorch.store.records import decode, decode_all, to_json
from taskorch.store.store import Store, utc_now


@dataclass(frozen=True, slots=True)
class TaskWrite:
    """One task of a batch: created when ``task_id`` is None, else updated in place."""

    title: str
    description: str
    priority: Priority
    status: TaskStatus
    metadata: JSONDict
    depends_on: list[int] = field(default_factory=list)
    """Indexes of other writes of the same batch that this task waits for."""
    task_id: int | None = None
    keep_status_unless: TaskStatus | None = None
    """For an update: write ``status`` only if the stored status is still this one (taskorch has
    not moved the task on since); otherwise the stored status stays."""


async def list_imported_tasks(store: Store, tag: str | None = None) -> list[Task]:
    """Tasks imported from task-master, of ``tag`` or of every tag, oldest first."""
    rows = await store.connector.read("list_imported_tasks", {"tag": tag})
    return decode_all(Task, rows)


async def write_tasks(store: Store, writes: Sequence[TaskWrite]) -> list[Task]:
    """Create or update every task of ``writes`` in one transaction; the stored tasks in order."""
    now = utc_now()
    async with store.connector.transaction() as tx:
        ids = [w.task_id if w.task_id is not None else await _insert(tx, w, now) for w in writes]
        saved = []
        for write, task_id in zip(writes, ids, strict=True):
            saved.append(await _update(tx, write, task_id, [ids[i] for i in write.depends_on], now))
    return saved


async def _insert(tx: Transaction, write: TaskWrite, now: object) -> int:
    row = await tx.fetchone(
        "insert_task",
        {
            "title": write.title,
            "description": write.description,
            "priority": write.priority.value,
            "dependencies": to_json([]),
            "metadata": to_json(write.metadata),
            "now": now,
        },
    )
    assert row is not None
    return int(row["id"])


async def _update(
    tx: Transaction, write: TaskWrite, task_id: int, dependencies: list[int], now: object
) -> Task:
    current = await tx.fetchone("get_task", {"id": task_id})
    if current is None:
        raise NotFoundError(f"no task with id {task_id}: it was deleted during the import")
    stored = TaskStatus(current["status"])
    fresh = write.task_id is None or write.keep_status_unless in (None, stored)
    row = await tx.fetchone(
        "update_task",
        {
            "id": task_id,
            "from_status": stored.value,
            "title": write.title,
            "description": write.description,
            "priority": write.priority.value,
            "status": (write.status if fresh else stored).value,
            "dependencies": to_json(dependencies),
            "metadata": to_json(write.metadata),
            "now": now,
        },
    )
    if row is None:
        raise StaleStateError(f"task {task_id}", stored.value, None)
    return decode(Task, row)
