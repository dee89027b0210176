"""A task is carried by one workflow at a time.

``process``/``batch`` (and the MCP and HTTP faces) check each task, then move it to
``processing`` in the store, checked against the status they read, in the transaction that
creates its workflow, as ``serve`` claims pending tasks. So two processes never start two
workflows for one task, a task whose work is merged is not done again by accident, and a kill
never leaves a claim without its workflow. A failed or cancelled task may be tried again.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from taskorch.domain.errors import InputError, NotFoundError, StaleStateError
from taskorch.domain.models import JSONDict, Task, TaskStatus, Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL, WorkflowState
from taskorch.store import Store

if TYPE_CHECKING:
    from taskorch.engine.pipeline import Pipeline


async def claim_and_start(
    pipeline: Pipeline, store: Store, task_ids: Sequence[int], options: JSONDict | None
) -> list[Workflow]:
    """A new workflow for each task, each task claimed with it (all or none refused, see
    :func:`claimable_tasks`); nothing runs yet."""
    found = [await store.get_task(task_id) for task_id in task_ids]
    # Where each goes is settled (the repository reached) before any task is claimed.
    targets = {task.id: await pipeline.target(task, options) for task in found}
    started: list[Workflow] = []
    for task in await claimable_tasks(store, task_ids):
        try:
            # The claim and the workflow are one transaction: no kill leaves one alone.
            started.append(await pipeline.create(task, targets[task.id]))
        except StaleStateError:
            raise taken_meanwhile(task) from None
    return started


async def claimable_tasks(store: Store, task_ids: Sequence[int]) -> list[Task]:
    """Each task, checked that a new workflow may carry it (all or none: a refused one is an
    ``InputError`` naming why). Nothing is claimed here: the claim is written with the workflow
    that carries it, in one transaction (:meth:`Store.create_workflow`), so a crash never leaves
    a claimed task with no workflow."""
    return [await _claimable(store, await store.get_task(task_id)) for task_id in task_ids]


def taken_meanwhile(task: Task) -> InputError:
    """The claim of ``task`` lost a race with another process."""
    return InputError(
        f"{task.ref} was taken up by another process just now; see `taskorch task show {task.id}`"
    )


STRANDED_AFTER_S = 60.0
"""A task ``processing`` with no live workflow for this long was stranded by a crash."""

_ENDED_AS = {
    WorkflowState.MERGED: TaskStatus.COMPLETED,
    WorkflowState.FAILED: TaskStatus.FAILED,
    WorkflowState.CANCELLED: TaskStatus.CANCELLED,
}


async def recover_stranded(store: Store, *, older_than_s: float = STRANDED_AFTER_S) -> list[Task]:
    """Tasks a crash left ``processing`` with no workflow carrying them: killed between the
    claim and the workflow's creation (the task goes back to ``pending``, to be taken up again),
    or between the workflow's end and the task's (the task ends as its workflow did). Tasks
    claimed less than ``older_than_s`` ago are left alone: their workflow may be starting."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    fixed = []
    for task in await store.list_tasks(status=TaskStatus.PROCESSING):
        if task.updated_at > cutoff:
            continue
        workflows = await store.list_workflows(task_id=task.id)
        if any(w.status not in WORKFLOW_TERMINAL for w in workflows):
            continue
        latest = max(workflows, key=lambda w: w.created_at, default=None)
        target = _ENDED_AS.get(latest.status, TaskStatus.PENDING) if latest else TaskStatus.PENDING
        if any(w.status is WorkflowState.MERGED for w in workflows):
            target = TaskStatus.COMPLETED  # its work is merged: never run it again
        try:
            fixed.append(await store.set_task_status(task.id, TaskStatus.PROCESSING, target))
        except StaleStateError:
            continue  # taken up meanwhile
    return fixed


async def _claimable(store: Store, task: Task) -> Task:
    if task.status is TaskStatus.PROCESSING:
        merged = await store.list_workflows(task_id=task.id, status=WorkflowState.MERGED, limit=1)
        if merged:  # a crash came between the merge and the task's end: it is done
            task = await store.set_task_status(task.id, TaskStatus.PROCESSING, TaskStatus.COMPLETED)
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
    await _dependencies_completed(store, task)
    return task  # pending, failed or cancelled; or processing with no workflow carrying it


async def _dependencies_completed(store: Store, task: Task) -> None:
    """A task runs after the tasks it depends on completed (``serve`` waits for them; a task
    taken up by hand is refused, naming the first that has not)."""
    for task_id in task.dependencies:
        try:
            dependency = await store.get_task(task_id)
        except NotFoundError:
            raise InputError(
                f"{task.ref} depends on task-{task_id}, which does not exist"
            ) from None
        if dependency.status is not TaskStatus.COMPLETED:
            raise InputError(
                f"{task.ref} depends on {dependency.ref}, which is {dependency.status.value}: "
                f"process {dependency.ref} first (`taskorch serve` starts {task.ref} once it "
                "completes)"
            )
