"""Tasks a crash left claimed with no workflow carrying them are set right (issue 14's first two
crash windows): killed between the claim and the workflow's creation, the task is taken up again;
killed between the workflow's merge and the task's end, the task ends done and is never run again.
"""

from __future__ import annotations

import pytest

from taskorch.domain.errors import InputError, StaleStateError
from taskorch.domain.models import NewTask, TaskStatus
from taskorch.domain.states import WorkflowState as W
from taskorch.engine.claims import claimable_tasks, recover_stranded
from taskorch.store import Store

TO_MERGED = [
    W.NLP_PARSING, W.TASK_DECOMPOSITION, W.DEPENDENCY_RESOLUTION, W.AGENT_ASSIGNMENT,
    W.PROCESSING, W.PR_CREATED, W.VALIDATION_RUNNING, W.VALIDATION_PASSED, W.MERGED,
]  # fmt: skip


async def merged_workflow(store: Store, task_id: int) -> str:
    workflow = await store.create_workflow(task_id)
    state = W.PENDING
    for target in TO_MERGED:
        await store.transition_workflow(workflow.id, state, target)
        state = target
    return workflow.id


async def test_a_claim_without_a_workflow_goes_back_to_pending(store: Store) -> None:
    task = await store.create_task(NewTask.create("Add login"))
    await store.set_task_status(task.id, TaskStatus.PENDING, TaskStatus.PROCESSING)  # then kill
    assert await recover_stranded(store, older_than_s=60) == []  # too fresh: may be starting
    [fixed] = await recover_stranded(store, older_than_s=0)
    assert fixed.status is TaskStatus.PENDING


async def test_a_task_whose_workflow_merged_ends_done_and_is_refused(store: Store) -> None:
    task = await store.create_task(NewTask.create("Add login"))
    await store.set_task_status(task.id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    workflow_id = await merged_workflow(store, task.id)  # killed before the task's end
    with pytest.raises(InputError, match=f"already done \\(workflow {workflow_id} merged\\)"):
        await claimable_tasks(store, [task.id])
    assert (await store.get_task(task.id)).status is TaskStatus.COMPLETED


async def test_recovery_ends_a_task_as_its_last_workflow_ended(store: Store) -> None:
    merged = await store.create_task(NewTask.create("Add login"))
    live = await store.create_task(NewTask.create("Add logout"))
    for task in (merged, live):
        await store.set_task_status(task.id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    await merged_workflow(store, merged.id)
    await store.create_workflow(live.id)  # still carried: left alone
    fixed = await recover_stranded(store, older_than_s=0)
    assert [(t.id, t.status) for t in fixed] == [(merged.id, TaskStatus.COMPLETED)]
    assert (await store.get_task(live.id)).status is TaskStatus.PROCESSING


async def test_the_claim_and_its_workflow_are_one_write(store: Store) -> None:
    """No moment exists where a task is claimed and no workflow carries it: the claim is checked
    and written in the transaction that creates the workflow, and a lost race writes neither."""
    task = await store.create_task(NewTask.create("Add login"))
    workflow = await store.create_workflow(task.id, claim_from=TaskStatus.PENDING)
    assert (await store.get_task(task.id)).status is TaskStatus.PROCESSING
    with pytest.raises(StaleStateError):  # a second process read it pending too
        await store.create_workflow(task.id, claim_from=TaskStatus.PENDING)
    assert [w.id for w in await store.list_workflows(task_id=task.id)] == [workflow.id]


async def test_a_workflow_that_ends_ends_its_task_in_the_same_write(store: Store) -> None:
    task = await store.create_task(NewTask.create("Add login"))
    workflow = await store.create_workflow(task.id, claim_from=TaskStatus.PENDING)
    state = W.PENDING
    for target in TO_MERGED:
        ended = TaskStatus.COMPLETED if target is W.MERGED else None
        await store.transition_workflow(workflow.id, state, target, task_status=ended)
        state = target
        expected = TaskStatus.COMPLETED if target is W.MERGED else TaskStatus.PROCESSING
        assert (await store.get_task(task.id)).status is expected
