"""What the engine reads back about the work, gathered from the store in one place: a workflow's
full status (the value: :class:`~taskorch.engine.status.WorkflowStatus`) and the orchestrator at
a glance (workflows, subtasks and agents by state)."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from taskorch.engine.agents import AgentDirectory
from taskorch.engine.status import WorkflowStatus
from taskorch.engine.usage import configured_models
from taskorch.store import Store
from taskorch.store.budget import BudgetLedger
from taskorch.store.queue import SubtaskQueue


async def workflow_status(
    store: Store, queue: SubtaskQueue, directory: AgentDirectory, workflow_id: str
) -> WorkflowStatus:
    # Asked for together, the reads that do not wait on another go to SQLite in one trip
    # (``store.gathered_reads``): a status is two trips where one read after another made
    # fourteen, and it is read at every write of a workflow's ``state.json``.
    workflow, subtasks, history, events, budget, (windows, attempts, agents) = await asyncio.gather(
        store.get_workflow(workflow_id),
        store.list_subtasks(workflow_id),
        store.workflow_history(workflow_id),
        store.list_events(workflow_id=workflow_id),
        BudgetLedger(queue).figures(workflow_id),
        asyncio.gather(
            directory.rate_windows(), store.workflow_attempts(workflow_id), store.list_agents()
        ),
    )
    return WorkflowStatus(
        workflow=workflow,
        task=await store.get_task(workflow.task_id),
        subtasks=subtasks,
        history=history,
        events=events,
        budget=budget,
        windows=windows,
        attempts=attempts,
        agent_models=configured_models(agents),
    )


STATUSES_AT_ONCE = 50
"""Statuses read at the same time by :func:`workflow_statuses` (their reads share trips)."""


async def workflow_statuses(
    store: Store, queue: SubtaskQueue, directory: AgentDirectory, workflow_ids: Sequence[str]
) -> list[WorkflowStatus]:
    """The statuses of these workflows, in this order, read some at a time: on SQLite a group's
    reads share two trips where each status made two (the end of a batch of N workflows)."""
    statuses: list[WorkflowStatus] = []
    for at in range(0, len(workflow_ids), STATUSES_AT_ONCE):
        group = workflow_ids[at : at + STATUSES_AT_ONCE]
        statuses += await asyncio.gather(
            *(workflow_status(store, queue, directory, w) for w in group)
        )
    return statuses


async def at_a_glance(
    store: Store, queue: SubtaskQueue, directory: AgentDirectory, database: str
) -> dict[str, Any]:
    """Workflows by state and subtasks by state: the orchestrator at a glance."""
    workflows = await store.list_workflows()
    by_state: dict[str, int] = {}
    for workflow in workflows:
        by_state[workflow.status.value] = by_state.get(workflow.status.value, 0) + 1
    return {
        "workflows": by_state,
        "subtasks": await queue.counts(),
        "agents": {
            info.agent.name: {
                "status": info.status.value,
                "active": info.active,
                "max_concurrency": info.agent.max_concurrency,
                "utilisation": info.utilisation,
                "success_rate": info.record.success_rate,
                "mean_s": info.record.mean_s,
                "p95_s": info.record.p95_s,
            }
            for info in await directory.list()
        },
        "database": database,
    }
