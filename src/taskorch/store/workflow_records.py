"""Workflows and their history: a workflow created with its first history row (its task claimed
and its caps stored in the same transaction), and every later change of its state checked against
the state it expects and written with its history row.

The bodies of :class:`taskorch.store.store.Store`'s workflow methods, given its connector.
"""

from __future__ import annotations

import secrets
from datetime import datetime

from taskorch.domain.errors import NotFoundError, StaleStateError
from taskorch.domain.models import JSONDict, TaskStatus, Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL, WorkflowState
from taskorch.store.connector import Connector, Statement
from taskorch.store.not_found import no_task, no_workflow
from taskorch.store.records import decode, to_json


def new_workflow_id() -> str:
    return "wf-" + secrets.token_hex(5)


async def create_workflow(
    connector: Connector,
    now: datetime,
    task_id: int,
    metadata: JSONDict | None,
    workflow_id: str | None,
    claim_from: TaskStatus | None,
) -> Workflow:
    """See :meth:`taskorch.store.store.Store.create_workflow`."""
    wid = workflow_id or new_workflow_id()
    async with connector.transaction() as tx:
        task = await tx.fetchone("get_task", {"id": task_id})
        if task is None:
            raise NotFoundError(no_task(task_id))
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


async def write_state(
    connector: Connector,
    now: datetime,
    workflow_id: str,
    from_state: WorkflowState,
    to_state: WorkflowState,
    metadata: JSONDict | None,
    result: JSONDict | None,
    task_status: TaskStatus | None = None,
) -> Workflow:
    """The state and metadata change, checked against ``from_state``, its history row and
    the task's end (``task_status``), in one transaction."""
    states = {"from_state": from_state.value, "to_state": to_state.value}
    then: list[Statement] = []
    if to_state in WORKFLOW_TERMINAL and from_state != to_state:
        then.append(Statement("count_workflow_duration", {"id": workflow_id}))
    history = {"now": now, "metadata": to_json(metadata or {})}
    then.append(Statement("insert_history", {"workflow_id": workflow_id, **states, **history}))
    if task_status is not None:
        ended = {"to_status": task_status.value, "now": now}
        then.append(Statement("end_workflow_task", {"workflow_id": workflow_id, **ended}))
    # The checked change and what follows it, written only if it matched: one trip on SQLite.
    row = await connector.guarded(
        "transition_workflow",
        {
            "id": workflow_id,
            **states,
            "terminal": to_state in WORKFLOW_TERMINAL,
            "result": to_json(result),
            "metadata": to_json(metadata or {}),
            "now": now,
        },
        then,
    )
    if row is None:
        await _raise_stale_workflow(connector, workflow_id, from_state)
    assert row is not None
    return decode(Workflow, row)


async def _raise_stale_workflow(
    connector: Connector, workflow_id: str, expected: WorkflowState
) -> None:
    current = await connector.read_one("get_workflow", {"id": workflow_id})
    if current is None:
        raise NotFoundError(no_workflow(workflow_id))
    raise StaleStateError(f"workflow {workflow_id}", expected, current["status"])
