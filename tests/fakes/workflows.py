"""Stored workflows for runtime tests: a DAG given as ``key -> dependencies``, queued and ready."""

from __future__ import annotations

from taskorch.domain.models import NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.store import Store
from taskorch.store.queue import SubtaskQueue

Deps = dict[str, list[str]]


async def queued_workflow(store: Store, deps: Deps, *, title: str = "runtime test") -> str:
    """Store a workflow with these subtasks and queue the ready ones; return its id."""
    task = await store.create_task(NewTask.create(title))
    workflow = await store.create_workflow(task.id)
    subtasks = [
        PlanSubtask(
            subtask_id=key,
            parent_task_id=task.ref,
            title=f"do {key}",
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.IMPLEMENTATION,
            dependencies=after,
        )
        for key, after in deps.items()
    ]
    await store.add_subtasks(workflow.id, subtasks, {})
    await SubtaskQueue(store.connector).enqueue_workflow(workflow.id)
    return workflow.id
