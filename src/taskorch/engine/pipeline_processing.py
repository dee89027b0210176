"""The pipeline's ``processing`` step: a workflow waiting on its subtasks, and what follows them.

While subtasks are open the step queues those that are ready (routing first those that still
have no agent) and waits for the runtime. Once every subtask is completed and git shows their
work, the delivery opens the pull request; work git does not show runs once more (then fails the
workflow); a failed or blocked subtask fails it, and subtasks all cancelled end it cancelled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from taskorch.domain.models import Subtask, TaskStatus, Workflow
from taskorch.domain.states import WorkflowState
from taskorch.engine.pipeline_moves import WorkflowMoves
from taskorch.engine.pipeline_planning import (
    ROUTABLE,
    plan_of,
    routing_mode,
    spec_of,
    subtask_priority,
)
from taskorch.engine.pipeline_ports import Delivery, Router
from taskorch.runtime.faults import pause_point
from taskorch.runtime.subtask_events import routed_events

# One name for the pipeline's records, whichever of its modules writes them.
log = logging.getLogger("taskorch.engine.pipeline")
W = WorkflowState

_OPEN = frozenset({"pending", "queued", "assigned", "running"})


class ProcessingStep:
    def __init__(self, moves: WorkflowMoves, router: Router | None) -> None:
        self.moves = moves
        self.store = moves.store
        self.queue = moves.queue
        self.router = router

    async def process(self, workflow: Workflow) -> Workflow | None:
        mode = routing_mode(self.router, workflow)
        if mode is not None:
            given_up = await self._route_waiting(workflow, mode)
            if given_up is not None:
                return given_up
        # While any subtask is open, counts say so: reading every subtask at each step made a
        # workflow of N subtasks cost N^2 row reads. Only a pending subtask can be queued: the
        # step that runs at each subtask's end took a write transaction for nothing.
        counts = (await self.queue.workflow_counts([workflow.id])).get(workflow.id, {})
        if "pending" in counts:
            quiet = not self.moves.listened  # a fan-out's events, built for nobody
            await self.moves.publish(await self.queue.queue_ready(workflow.id, quiet=quiet))
        if set(counts) & _OPEN:
            return None  # waiting for the runtime
        subtasks = await self.store.list_subtasks(workflow.id)
        states = {s.status.value for s in subtasks}
        if states <= {"completed"}:
            problems = await unproven(self.moves.delivery, workflow, subtasks)
            if problems:
                return await self._redo(workflow, problems)
            await pause_point("workflow:subtasks-done")
            record = await self.moves.delivery.open_pull_request(workflow, subtasks)
            return await self.moves.move(workflow, W.PR_CREATED, {"pull_request": record})
        if states & _OPEN:
            return None  # waiting for the runtime
        stuck = [s for s in subtasks if s.status.value in {"failed", "blocked", "cancelled"}]
        if all(s.status.value == "cancelled" for s in stuck):
            # A cancel is landing (its subtasks went first, the workflow is next): it ends
            # cancelled, whichever of the two moves it; failing it here made the cancel illegal.
            return await self.moves.move(
                workflow,
                W.CANCELLED,
                {"cancelled_subtasks": len(stuck)},
                task_status=TaskStatus.CANCELLED,
            )
        first = next((s for s in stuck if s.status.value == "failed"), stuck[0])
        return await self.moves.fail(
            workflow,
            {
                "escalation": {
                    "blocking_subtask": first.key,
                    "reason": first.error,
                    "blocked": [s.key for s in stuck if s.key != first.key],
                }
            },
        )

    async def _route_waiting(self, workflow: Workflow, mode: str) -> Workflow | None:
        """Route subtasks that have no agent yet (fix-ups, and those no agent could take:
        an agent may have been registered or come back online); fail the workflow when one
        has waited longer than the router allows."""
        assert self.router is not None
        waiting = [
            s
            for s in await self.store.list_subtasks(workflow.id)
            if s.status in ROUTABLE and s.agent_id in (None, self.router.waiting_agent)
        ]
        if not waiting:
            return None
        choices = await self.router.route(mode, waiting)
        # Those that found an agent: the others are routed again next step.
        await self.moves.publish(
            routed_events([s for s in waiting if choices[s.id].routed], choices)
        )
        now = self.queue.now
        for sub in waiting:
            choice = choices[sub.id]
            waited_s = (now - sub.created_at).total_seconds()
            if not choice.routed and waited_s > self.router.wait_timeout_s:
                await self.moves.cancel_subtasks(workflow.id)
                reason = (
                    f"no agent took {sub.key} within {self.router.wait_timeout_s:g} s: "
                    f"{choice.reason}"
                )
                return await self.moves.fail(
                    workflow,
                    {"escalation": {"blocking_subtask": sub.key, "reason": reason, "blocked": []}},
                )
        return None

    async def _redo(self, workflow: Workflow, problems: dict[str, str]) -> Workflow:
        """Run each unproven subtask once more under a new key; a redo that is unproven too
        fails the workflow with the reason (never ``merged`` with work missing)."""
        redone = dict(workflow.metadata.get("redone", {}))
        if any(key in redone.values() for key in problems):
            await self.moves.cancel_subtasks(workflow.id)
            key, why = next(iter(problems.items()))
            return await self.moves.fail(
                workflow,
                {
                    "reason": why,
                    "unproven": problems,
                    "escalation": {"blocking_subtask": key, "reason": why, "blocked": []},
                },
            )
        plan = {s.subtask_id: s for s in plan_of(workflow).subtasks}
        subtasks = {s.key: s for s in await self.store.list_subtasks(workflow.id)}
        again = []
        for key in problems:
            redo_key = f"{key[:90]}-redo"
            redone[key] = redo_key
            spec = plan.get(key) or spec_of(subtasks[key], plan_of(workflow).parent_task_id)
            again.append(spec.model_copy(update={"subtask_id": redo_key, "dependencies": []}))
        for problem in problems.values():
            log.warning("workflow %s: %s; running it again", workflow.id, problem)
        await self.store.add_subtasks(
            workflow.id,
            again,
            {s.subtask_id: 0 for s in again},
            priority=await subtask_priority(self.store, workflow),
        )
        await self.queue.link_workflow(workflow.id)
        return await self.store.annotate_workflow(
            workflow.id, W.PROCESSING, {"redone": redone, "unproven": problems}
        )


async def unproven(
    delivery: Delivery, workflow: Workflow, subtasks: Sequence[Subtask]
) -> dict[str, str]:
    """Completed subtasks whose work git does not show on the workflow branch, less those
    already redone (their redo stands for them)."""
    problems = await delivery.verify(workflow, subtasks)
    redone = workflow.metadata.get("redone", {})
    return {key: why for key, why in problems.items() if key not in redone}
