"""What a :class:`~taskorch.domain.errors.NotFoundError` from the store says: one line naming the
record, and the command that lists those that exist."""

from __future__ import annotations


def no_task(task_id: int) -> str:
    return f"no task with id {task_id}: see `taskorch task list`"


def no_workflow(workflow_id: str) -> str:
    return f"no workflow with id {workflow_id!r}: see `taskorch status`"


def no_agent(ref: str) -> str:
    return f"no agent {ref!r}: see `taskorch agents list`"


def no_subtask(subtask_id: int) -> str:
    return f"no subtask with id {subtask_id}"
