"""A task is carried by one workflow at a time.

``process``/``batch`` (and the MCP and HTTP faces) move each task to ``processing`` in the store,
checked against the status they read, before its workflow is created, as ``serve`` claims pending
tasks. So two processes never start two workflows for one task, and a task whose work is merged
is not done again by accident. A failed or cancelled task may be tried again.
"""

from __future__ import annotations

from collections.abc import Sequence

from taskorch.domain.errors import InputError, StaleStateError, TaskorchError
from taskorch.domain.models import Task, TaskStatus
from taskorch.domain.states import WORKFLOW_TERMINAL, WorkflowState
from taskorch.store import Store


async def claim_tasks(store: Store, task_ids: Sequence[int]) -> list[Task]:
    """Each task, now ``processing``; all or none (a refused one gives the others back)."""
    claimed: list[tuple[Task, TaskStatus]] = []
    try:
        for task_id in task_ids:
            task = await store.get_task(task_id)
            claimed.append((await _claim(store, task), task.status))
    except TaskorchError:
        for task, before in reversed(claimed):
            if before is not TaskStatus.PROCESSING:
                await store.set_task_status(task.id, TaskStatus.PROCESSING, before)
        raise
    return [task for task, _ in claimed]


async def _claim(store: Store, task: Task) -> Task:
    if task.status is TaskStatus.COMPLETED:
        merged = await store.list_workflows(task_id=task.id, status=WorkflowState.MERGED, limit=1)
        by = f" (workflow {merged[0].id} merged)" if merged else ""
        raise InputError(f"{task.ref} is already done{by}; add a new task for further work on it")
    if task.status is TaskStatus.PROCESSING:
        for workflow in await store.list_workflows(task_id=task.id):
            if workflow.status not in WORKFLOW_TERMINAL:
                raise InputError(
                    f"{task.ref} is being carried by workflow {workflow.id} "
                    f"({workflow.status.value}); follow it with `taskorch status {workflow.id}`, "
                    "or cancel it first"
                )
        return task  # claimed once, but no workflow carries it (a crash in between): take it on
    try:
        return await store.set_task_status(task.id, task.status, TaskStatus.PROCESSING)
    except StaleStateError:
        raise InputError(
            f"{task.ref} was taken up by another process just now; see `taskorch task show "
            f"{task.id}`"
        ) from None
