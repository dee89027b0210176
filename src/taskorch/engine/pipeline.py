"""The workflow pipeline: a task carried from ``pending`` to ``merged`` (or failed, cancelled).

Each state has one step; :meth:`Pipeline.advance` runs steps until the workflow waits on its
subtasks (``processing``) or ends. Every step is idempotent and writes what it decided into the
transition's metadata (and so into ``workflow_history``) in the same transaction as the state
change; a crash mid-step leaves the workflow in the state before it, and the step runs again.

:class:`Pipeline` is the face: it starts workflows, runs their steps, gives up on a step that
failed for good, and takes cancels, approvals and rejections. The steps live by stage:
``pipeline_planning`` (to ``processing``), ``pipeline_processing`` (waiting on the subtasks, the
pull request), ``pipeline_delivery`` (validation, fix-ups, merge); every state change goes through
``pipeline_moves``. What happens to the code (branches, pull request, validation, merge) is the
:class:`Delivery`'s business; the pipeline only decides when.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from taskorch.domain.budget import Caps
from taskorch.domain.dag import DependencyResolver
from taskorch.domain.errors import (
    DatabaseUnavailableError,
    HostError,
    PlanError,
    StaleStateError,
    StateError,
    TaskorchError,
)
from taskorch.domain.models import JSONDict, Task, TaskStatus, Workflow
from taskorch.domain.states import WORKFLOW_PRE_PR, WORKFLOW_TERMINAL, WorkflowState
from taskorch.engine.budgets import with_budget
from taskorch.engine.pipeline_delivery import MAX_FIX_ROUNDS, DeliverySteps, waiting_for_approval
from taskorch.engine.pipeline_moves import Listened, Publish, WorkflowMoves
from taskorch.engine.pipeline_planning import ROUTABLE, PlanningSteps
from taskorch.engine.pipeline_ports import Delivery, Planner, Router, ValidationOutcome
from taskorch.engine.pipeline_processing import ProcessingStep
from taskorch.runtime import tracing
from taskorch.runtime.faults import pause_point
from taskorch.store import Store
from taskorch.store.outage import Outage
from taskorch.store.queue import SubtaskQueue

# What the engine, the delivery and tests import from here, wherever it now lives.
__all__ = [
    "MAX_FIX_ROUNDS",
    "ROUTABLE",
    "STEP_OUTAGE_S",
    "Delivery",
    "Pipeline",
    "Planner",
    "Router",
    "ValidationOutcome",
]

log = logging.getLogger(__name__)
W = WorkflowState

STEP_OUTAGE_S = 60.0
"""How long :meth:`Pipeline.advance` retries a step through a database outage before it leaves
the workflow where it stands and raises (its caller tries again later)."""
# A cancel racing the steps of a workflow takes at most this many tries (each sees a new state).
_CANCEL_ATTEMPTS = 20

_Step = Callable[[Workflow], Awaitable[Workflow | None]]


class Pipeline:
    def __init__(
        self,
        store: Store,
        planner: Planner,
        delivery: Delivery,
        *,
        resolver: DependencyResolver | None = None,
        publish: Publish | None = None,
        listened: Listened | None = None,
        router: Router | None = None,
        default_budget: Caps | None = None,
    ) -> None:
        """With a ``router``, workflows whose ``agent`` option names routing (``auto`` or an
        agent) get an agent per subtask; others (``sim``, none) run on the default adapter."""
        self.store = store
        self.router = router
        self.queue = SubtaskQueue(store.connector)
        self.planner = planner
        self.delivery = delivery
        self.resolver = resolver or DependencyResolver()
        self.default_budget = default_budget or Caps()
        self._moves = WorkflowMoves(store, self.queue, delivery, publish, listened)
        planning = PlanningSteps(self._moves, planner, self.resolver, router)
        processing = ProcessingStep(self._moves, router)
        delivering = DeliverySteps(self._moves)
        self._steps: dict[WorkflowState, _Step] = {
            W.PENDING: planning.pending,
            W.NLP_PARSING: planning.parse,
            W.TASK_DECOMPOSITION: planning.decompose,
            W.DEPENDENCY_RESOLUTION: planning.resolve,
            W.AGENT_ASSIGNMENT: planning.assign,
            W.PROCESSING: processing.process,
            W.PR_CREATED: delivering.pr_created,
            W.VALIDATION_RUNNING: delivering.validate,
            W.VALIDATION_FAILED: delivering.fix,
            W.VALIDATION_PASSED: delivering.merge,
        }

    async def start(self, task: Task, *, options: JSONDict | None = None) -> Workflow:
        """A new workflow for ``task`` (which moves to ``processing``)."""
        return await self.create(task, await self.target(task, options))

    async def target(self, task: Task, options: JSONDict | None = None) -> JSONDict:
        """The options of a workflow for ``task``, with where its work goes settled (this may
        reach out to the repository: do it before claiming the task)."""
        settled = await self.delivery.target(task, dict(options or {}))
        return with_budget(settled, task, self.default_budget)

    async def create(self, task: Task, options: JSONDict) -> Workflow:
        """A new workflow for ``task`` with settled ``options`` (see :meth:`target`); the task,
        unless already ``processing``, is claimed from the status it has in the same transaction
        (``StaleStateError`` if another process changed it meanwhile)."""
        await pause_point("task:claim")
        claim_from = None if task.status is TaskStatus.PROCESSING else task.status
        workflow = await self.store.create_workflow(
            task.id, metadata={"options": options}, claim_from=claim_from
        )
        await self._moves.emit(workflow, None, W.PENDING)
        await pause_point("workflow:created")
        return workflow

    async def advance(self, workflow_id: str) -> Workflow:
        """Run steps until the workflow waits on running subtasks or reaches a terminal state.

        A transient database error (a dropped connection, a deadlock, a busy database) never
        ends the workflow: the step runs again from the stored state, with backoff, for up to
        :data:`STEP_OUTAGE_S`; then the error is raised and the workflow stays where it is."""
        outage = Outage(f"workflow {workflow_id}")
        workflow: Workflow | None = None
        while True:
            try:
                # A step's move returns the row as it committed it, so the next step starts
                # from that; read again only at the start and after an outage (every move checks
                # the state it starts from where it writes, so a change by another process is
                # caught there as it was by a read here).
                if workflow is None:
                    workflow = await self.store.get_workflow(workflow_id)
                if workflow.status in WORKFLOW_TERMINAL:
                    if outage.ongoing:  # the error may have cut its ending short
                        await self._finish_ended(workflow)
                    return workflow
                if _past_deadline(workflow):
                    return await self.cancel(workflow_id)
                moved = await self._step(workflow)
            except DatabaseUnavailableError as exc:
                delay = outage.failed(exc)
                if outage.lasted_s >= STEP_OUTAGE_S:
                    raise
                await asyncio.sleep(delay)
                workflow = None
                continue
            except TaskorchError as exc:
                if workflow is None:  # (it could not be read: nothing to give up)
                    raise
                moved = await self._give_up(workflow, exc)
            outage.recovered()
            if moved is None:
                return workflow
            workflow = moved

    def waiting_for_approval(self, workflow: Workflow) -> bool:
        """Validated, held by the ``approve`` merge policy until someone approves or rejects."""
        return waiting_for_approval(workflow)

    async def approve(self, workflow_id: str, by: str = "") -> Workflow:
        """Record the approval of a validated workflow, then merge it."""
        workflow = await self.store.get_workflow(workflow_id)
        _require_validated(workflow, "approved")
        approval = {"by": by or "user", "at": self.queue.now.isoformat()}
        await self.store.annotate_workflow(workflow_id, W.VALIDATION_PASSED, {"approval": approval})
        return await self.advance(workflow_id)

    async def reject(self, workflow_id: str, reason: str, by: str = "") -> Workflow:
        """End a validated workflow ``failed`` on review; its branch is kept, the base branch
        is not touched."""
        workflow = await self.store.get_workflow(workflow_id)
        _require_validated(workflow, "rejected")
        rejection = {"by": by or "user", "reason": reason}
        return await self._moves.fail(
            workflow, {"reason": f"rejected: {reason}", "rejection": rejection}
        )

    async def cancel(self, workflow_id: str) -> Workflow:
        """Cancel from whatever state the workflow is in when the write lands: a worker moving it
        on at the same moment (planning takes a step in milliseconds) makes the write stale, and
        the cancel is taken again from the new state rather than refused."""
        cancelled = 0
        for _ in range(_CANCEL_ATTEMPTS):
            workflow = await self.store.get_workflow(workflow_id)
            if workflow.status is W.CANCELLED and cancelled:
                # The run loop saw its subtasks cancelled and ended it first.
                await self._moves.clean(workflow, cancelled=True)
                return workflow
            cancelled += len(await self._moves.cancel_subtasks(workflow_id))
            try:
                moved = await self._moves.move(
                    workflow,
                    W.CANCELLED,
                    {"cancelled_subtasks": cancelled},
                    task_status=TaskStatus.CANCELLED,
                )
            except StaleStateError:
                continue
            await self._moves.clean(moved, cancelled=True)
            return moved
        raise StaleStateError(f"workflow {workflow_id}", workflow.status.value, None)

    # --- steps ---------------------------------------------------------------------------------

    async def _step(self, workflow: Workflow) -> Workflow | None:
        step = self._steps[workflow.status]
        with tracing.for_workflow(workflow.id):  # git and planner spans join its trace
            return await step(workflow)

    async def _give_up(self, workflow: Workflow, error: TaskorchError) -> Workflow:
        """A step failed for good (a plan error, a planner that gave up): end the workflow with
        the reason. Before processing the only way out the state machine allows is cancelled."""
        log.warning("workflow %s: %s failed: %s", workflow.id, workflow.status, error.message)
        reason = {
            "reason": error.message,
            "step": workflow.status.value,
            "error": type(error).__name__,
        }
        if workflow.status is W.PROCESSING and not isinstance(error, HostError):
            return await self._moves.fail(workflow, reason)
        if workflow.status not in WORKFLOW_PRE_PR or isinstance(error, HostError):
            # This host could not reach the repository, or git failed after the pull request
            # (a dirty checkout of the base branch): stay in place, say why; a later try, or
            # another host, carries on (cancel works meanwhile).
            raise error
        ended = TaskStatus.FAILED if isinstance(error, PlanError) else TaskStatus.CANCELLED
        return await self._moves.move(workflow, W.CANCELLED, reason, task_status=ended)

    async def _finish_ended(self, workflow: Workflow) -> None:
        """What follows a workflow's end (its worktrees removed), done again where an error may
        have cut it short (the task ended in the transaction that ended the workflow)."""
        await self._moves.clean(workflow, cancelled=workflow.status is W.CANCELLED)


def _require_validated(workflow: Workflow, what: str) -> None:
    if workflow.status is not W.VALIDATION_PASSED:
        raise StateError(
            f"workflow {workflow.id} is {workflow.status.value}: only a validated workflow "
            f"(validation_passed) can be {what}"
        )


def _past_deadline(workflow: Workflow) -> bool:
    """Whether the deadline its starter gave (``process --timeout``, stored with its options)
    has passed: whoever carries it on then gives up as the starter would have."""
    deadline = workflow.metadata.get("options", {}).get("deadline")
    if not isinstance(deadline, str):
        return False
    try:
        return datetime.fromisoformat(deadline) <= datetime.now(UTC)
    except ValueError:
        return False
