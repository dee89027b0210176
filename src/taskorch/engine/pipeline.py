"""The workflow pipeline: a task carried from ``pending`` to ``merged`` (or failed, cancelled).

Each state has one step; :meth:`Pipeline.advance` runs steps until the workflow waits on its
subtasks (``processing``) or ends. Every step is idempotent and writes what it decided into the
transition's metadata (and so into ``workflow_history``) in the same transaction as the state
change; a crash mid-step leaves the workflow in the state before it, and the step runs again.

What happens to the code (branches, pull request, validation, merge) is the :class:`Delivery`'s
business; the pipeline only decides when.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from taskorch.domain.budget import Caps
from taskorch.domain.dag import DependencyResolver
from taskorch.domain.errors import (
    DatabaseUnavailableError,
    HostError,
    MergeConflictError,
    PlanError,
    StaleStateError,
    StateError,
    TaskorchError,
)
from taskorch.domain.models import (
    JSONDict,
    Priority,
    Subtask,
    Task,
    TaskStatus,
    Workflow,
    task_ref,
)
from taskorch.domain.plan import Domain, Plan, PlanSubtask, WorkerType
from taskorch.domain.states import (
    WORKFLOW_PRE_PR,
    WORKFLOW_TERMINAL,
    SubtaskState,
    WorkflowState,
)
from taskorch.domain.working_spec import check_working_spec
from taskorch.engine.budgets import with_budget
from taskorch.engine.pipeline_ports import Delivery, Planner, Router, ValidationOutcome
from taskorch.engine.status import waiting_for
from taskorch.runtime import tracing
from taskorch.runtime.faults import pause_point
from taskorch.runtime.subtask_events import planned_events, routed_events
from taskorch.store import Store
from taskorch.store.outage import Outage
from taskorch.store.queue import QueueEvent, SubtaskQueue

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

MAX_FIX_ROUNDS = 2
STEP_OUTAGE_S = 60.0
"""How long :meth:`Pipeline.advance` retries a step through a database outage before it leaves
the workflow where it stands and raises (its caller tries again later)."""
# A cancel racing the steps of a workflow takes at most this many tries (each sees a new state).
_CANCEL_ATTEMPTS = 20


ROUTABLE = frozenset({SubtaskState.PENDING, SubtaskState.QUEUED})
_OPEN = frozenset({"pending", "queued", "assigned", "running"})


class Pipeline:
    def __init__(
        self,
        store: Store,
        planner: Planner,
        delivery: Delivery,
        *,
        resolver: DependencyResolver | None = None,
        publish: Callable[[Sequence[QueueEvent]], Awaitable[None]] | None = None,
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
        self._publish = publish
        self.default_budget = default_budget or Caps()

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
        await self._emit(workflow, None, W.PENDING)
        await pause_point("workflow:created")
        return workflow

    async def advance(self, workflow_id: str) -> Workflow:
        """Run steps until the workflow waits on running subtasks or reaches a terminal state.

        A transient database error (a dropped connection, a deadlock, a busy database) never
        ends the workflow: the step runs again from the stored state, with backoff, for up to
        :data:`STEP_OUTAGE_S`; then the error is raised and the workflow stays where it is."""
        outage = Outage(f"workflow {workflow_id}")
        while True:
            try:
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
                continue
            except TaskorchError as exc:
                moved = await self._give_up(workflow, exc)
            outage.recovered()
            if moved is None:
                return workflow

    def waiting_for_approval(self, workflow: Workflow) -> bool:
        """Validated, held by the ``approve`` merge policy until someone approves or rejects."""
        return waiting_for(workflow) == "approval"

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
        return await self._fail(workflow, {"reason": f"rejected: {reason}", "rejection": rejection})

    async def cancel(self, workflow_id: str) -> Workflow:
        """Cancel from whatever state the workflow is in when the write lands: a worker moving it
        on at the same moment (planning takes a step in milliseconds) makes the write stale, and
        the cancel is taken again from the new state rather than refused."""
        cancelled = 0
        for _ in range(_CANCEL_ATTEMPTS):
            workflow = await self.store.get_workflow(workflow_id)
            if workflow.status is W.CANCELLED and cancelled:
                # The run loop saw its subtasks cancelled and ended it first.
                await self._clean(workflow, cancelled=True)
                return workflow
            events = await self.queue.cancel_workflow(workflow_id)
            cancelled += len(events)
            if self._publish:
                await self._publish(events)
            try:
                moved = await self._move(
                    workflow,
                    W.CANCELLED,
                    {"cancelled_subtasks": cancelled},
                    task_status=TaskStatus.CANCELLED,
                )
            except StaleStateError:
                continue
            await self._clean(moved, cancelled=True)
            return moved
        raise StaleStateError(f"workflow {workflow_id}", workflow.status.value, None)

    # --- steps ---------------------------------------------------------------------------------

    async def _step(self, workflow: Workflow) -> Workflow | None:
        step = _STEPS[workflow.status]
        with tracing.for_workflow(workflow.id):  # git and planner spans join its trace
            return await step(self, workflow)

    async def _pending(self, workflow: Workflow) -> Workflow:
        return await self._move(workflow, W.NLP_PARSING, tracing.trace_metadata(workflow.id))

    async def _parse(self, workflow: Workflow) -> Workflow:
        task = await self.store.get_task(workflow.task_id)
        text = task.description.strip() or task.title
        context = str(workflow.metadata.get("options", {}).get("context") or "") or None
        plan, made_by = await self.planner(text, context, task_ref(task.id))
        from taskorch.planning.orchestration import full_plan, orchestration_required

        required = orchestration_required(task.metadata)
        if required:  # a simple plan in stages all the same (planning/orchestration.py)
            plan = full_plan(plan)
        plan = plan.model_copy(update={"orchestration_id": f"orch-{workflow.id}"})
        details: JSONDict = {
            "plan": plan.to_dict(),
            "planner": made_by,
            "complexity": plan.complexity.value,
        }
        if required:
            details["orchestration_required"] = True
        return await self._move(workflow, W.TASK_DECOMPOSITION, details)

    async def _decompose(self, workflow: Workflow) -> Workflow:
        check_working_spec(_plan_of(workflow))  # nothing is dispatched for a plan that breaks it
        plan = await self.delivery.prepare(workflow, _plan_of(workflow))
        return await self._move(
            workflow,
            W.DEPENDENCY_RESOLUTION,
            {"plan": plan.to_dict(), "subtasks": [s.subtask_id for s in plan.subtasks]},
        )

    async def _resolve(self, workflow: Workflow) -> Workflow:
        plan = _plan_of(workflow)
        resolution = self.resolver.resolve_plan(plan)
        priority = await self._priority(workflow)
        stored = await self.store.add_subtasks(
            workflow.id, plan.subtasks, resolution.stage_of, priority=priority
        )
        await self.queue.link_workflow(workflow.id)
        if self._publish:
            await self._publish(planned_events(stored))
        return await self._move(
            workflow,
            W.AGENT_ASSIGNMENT,
            {
                "stages": resolution.execution_plan(),
                "critical_path": resolution.critical_path,
                "critical_path_minutes": resolution.critical_path_minutes,
            },
        )

    async def _priority(self, workflow: Workflow) -> int:
        """Queue rank of the workflow's subtasks: the ``priority`` option, else the task's."""
        chosen = workflow.metadata.get("options", {}).get("priority")
        if chosen:
            return Priority.parse(str(chosen)).rank
        return (await self.store.get_task(workflow.task_id)).priority.rank

    async def _assign(self, workflow: Workflow) -> Workflow:
        agent = str(workflow.metadata.get("options", {}).get("agent") or "default")
        subtasks = await self.store.list_subtasks(workflow.id)
        mode = self._routing_mode(workflow)
        if mode is None or self.router is None:
            assignments = {s.key: s.agent_id or agent for s in subtasks}
            return await self._move(workflow, W.PROCESSING, {"assignments": assignments})
        open_subtasks = [s for s in subtasks if s.status in ROUTABLE]
        choices = await self.router.route(mode, open_subtasks)
        if self._publish:
            await self._publish(routed_events(open_subtasks, choices))
        routing = {s.key: choices[s.id].to_json() for s in open_subtasks}
        routed = {
            s.key: choices[s.id].agent_id if s.id in choices else s.agent_id for s in subtasks
        }
        return await self._move(workflow, W.PROCESSING, {"assignments": routed, "routing": routing})

    def _routing_mode(self, workflow: Workflow) -> str | None:
        agent = workflow.metadata.get("options", {}).get("agent")
        if self.router is None or agent in (None, "", "sim", "default"):
            return None
        return str(agent)

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
        if self._publish:  # those that found an agent: the others are routed again next step
            await self._publish(
                routed_events([s for s in waiting if choices[s.id].routed], choices)
            )
        now = self.queue.now
        for sub in waiting:
            choice = choices[sub.id]
            waited_s = (now - sub.created_at).total_seconds()
            if not choice.routed and waited_s > self.router.wait_timeout_s:
                events = await self.queue.cancel_workflow(workflow.id)
                if self._publish:
                    await self._publish(events)
                reason = (
                    f"no agent took {sub.key} within {self.router.wait_timeout_s:g} s: "
                    f"{choice.reason}"
                )
                return await self._fail(
                    workflow,
                    {"escalation": {"blocking_subtask": sub.key, "reason": reason, "blocked": []}},
                )
        return None

    async def _process(self, workflow: Workflow) -> Workflow | None:
        mode = self._routing_mode(workflow)
        if mode is not None:
            given_up = await self._route_waiting(workflow, mode)
            if given_up is not None:
                return given_up
        events = await self.queue.queue_ready(workflow.id)
        if self._publish:
            await self._publish(events)
        # While any subtask is open, counts say so: reading every subtask at each step made a
        # workflow of N subtasks cost N^2 row reads.
        counts = (await self.queue.workflow_counts([workflow.id])).get(workflow.id, {})
        if set(counts) & _OPEN:
            return None  # waiting for the runtime
        subtasks = await self.store.list_subtasks(workflow.id)
        states = {s.status.value for s in subtasks}
        if states <= {"completed"}:
            problems = await self._unproven(workflow, subtasks)
            if problems:
                return await self._redo(workflow, problems)
            await pause_point("workflow:subtasks-done")
            record = await self.delivery.open_pull_request(workflow, subtasks)
            return await self._move(workflow, W.PR_CREATED, {"pull_request": record})
        if states & _OPEN:
            return None  # waiting for the runtime
        stuck = [s for s in subtasks if s.status.value in {"failed", "blocked", "cancelled"}]
        if all(s.status.value == "cancelled" for s in stuck):
            # A cancel is landing (its subtasks went first, the workflow is next): it ends
            # cancelled, whichever of the two moves it; failing it here made the cancel illegal.
            return await self._move(
                workflow,
                W.CANCELLED,
                {"cancelled_subtasks": len(stuck)},
                task_status=TaskStatus.CANCELLED,
            )
        first = next((s for s in stuck if s.status.value == "failed"), stuck[0])
        return await self._fail(
            workflow,
            {
                "escalation": {
                    "blocking_subtask": first.key,
                    "reason": first.error,
                    "blocked": [s.key for s in stuck if s.key != first.key],
                }
            },
        )

    async def _unproven(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        """Completed subtasks whose work git does not show on the workflow branch, less those
        already redone (their redo stands for them)."""
        problems = await self.delivery.verify(workflow, subtasks)
        redone = workflow.metadata.get("redone", {})
        return {key: why for key, why in problems.items() if key not in redone}

    async def _redo(self, workflow: Workflow, problems: dict[str, str]) -> Workflow:
        """Run each unproven subtask once more under a new key; a redo that is unproven too
        fails the workflow with the reason (never ``merged`` with work missing)."""
        redone = dict(workflow.metadata.get("redone", {}))
        if any(key in redone.values() for key in problems):
            events = await self.queue.cancel_workflow(workflow.id)
            if self._publish:
                await self._publish(events)
            key, why = next(iter(problems.items()))
            return await self._fail(
                workflow,
                {
                    "reason": why,
                    "unproven": problems,
                    "escalation": {"blocking_subtask": key, "reason": why, "blocked": []},
                },
            )
        plan = {s.subtask_id: s for s in _plan_of(workflow).subtasks}
        subtasks = {s.key: s for s in await self.store.list_subtasks(workflow.id)}
        again = []
        for key in problems:
            redo_key = f"{key[:90]}-redo"
            redone[key] = redo_key
            spec = plan.get(key) or _spec_of(subtasks[key], _plan_of(workflow).parent_task_id)
            again.append(spec.model_copy(update={"subtask_id": redo_key, "dependencies": []}))
        for problem in problems.values():
            log.warning("workflow %s: %s; running it again", workflow.id, problem)
        await self.store.add_subtasks(
            workflow.id,
            again,
            {s.subtask_id: 0 for s in again},
            priority=await self._priority(workflow),
        )
        await self.queue.link_workflow(workflow.id)
        return await self.store.annotate_workflow(
            workflow.id, W.PROCESSING, {"redone": redone, "unproven": problems}
        )

    async def _pr_created(self, workflow: Workflow) -> Workflow:
        return await self._move(workflow, W.VALIDATION_RUNNING)

    async def _validate(self, workflow: Workflow) -> Workflow:
        subtasks = await self.store.list_subtasks(workflow.id)
        outcome = await self.delivery.validate(workflow, subtasks)
        report = {
            "passed": outcome.passed,
            "summary": outcome.summary,
            "findings": outcome.findings,
            "log_tail": outcome.log[-4000:],
            "base_conflicts": outcome.base_conflicts,
        }
        target = W.VALIDATION_PASSED if outcome.passed else W.VALIDATION_FAILED
        rounds = list(workflow.metadata.get("validations", []))
        return await self._move(
            workflow, target, {"validation": report, "validations": [*rounds, report]}
        )

    async def _fix(self, workflow: Workflow) -> Workflow:
        rounds = int(workflow.metadata.get("fix_rounds", 0))
        report = workflow.metadata.get("validation", {})
        if rounds >= MAX_FIX_ROUNDS:
            moved = await self._move(workflow, W.PROCESSING, {"fix_rounds": rounds})
            return await self._fail(
                moved,
                {
                    "reason": f"validation still failing after {rounds} fix-up round(s)",
                    "validation": report,
                },
            )
        key = f"fix-{rounds + 1}"
        conflicts = [str(f) for f in report.get("base_conflicts") or []]
        fixup = (
            _merge_fixup(workflow, key, conflicts) if conflicts else _fixup(workflow, key, report)
        )
        await self.store.add_subtasks(
            workflow.id, [fixup], {key: 0}, priority=await self._priority(workflow)
        )
        await self.queue.link_workflow(workflow.id)
        merge_base = list(workflow.metadata.get("merge_base_fixups", []))
        return await self._move(
            workflow,
            W.PROCESSING,
            {
                "fix_rounds": rounds + 1,
                "fixup_subtask": key,
                "merge_base_fixups": [*merge_base, key] if conflicts else merge_base,
            },
        )

    async def _merge(self, workflow: Workflow) -> Workflow | None:
        if self.waiting_for_approval(workflow):
            return None  # waits for `taskorch approve` (or reject, or cancel)
        subtasks = await self.store.list_subtasks(workflow.id)
        problems = await self._unproven(workflow, subtasks)
        if problems:
            moved = await self._move(workflow, W.VALIDATION_FAILED, {"unproven": problems})
            return await self._fail(moved, {"reason": next(iter(problems.values()))})
        await pause_point("workflow:validated")
        try:
            result = await self.delivery.merge(workflow)
        except MergeConflictError as exc:
            report = {
                "passed": False,
                "summary": exc.message,
                "findings": [f"conflict with the base branch: {f}" for f in exc.files],
                "log_tail": "",
                "base_conflicts": exc.files,
            }
            rounds = list(workflow.metadata.get("validations", []))
            return await self._move(
                workflow,
                W.VALIDATION_FAILED,
                {"validation": report, "validations": [*rounds, report]},
            )
        await pause_point("workflow:base-merged")
        # The task ends with its workflow, in one transaction: no kill leaves it carried.
        moved = await self._move(
            workflow,
            W.MERGED,
            {"merge": result},
            result={"merged": True, **result},
            task_status=TaskStatus.COMPLETED,
        )
        await pause_point("workflow:merged")
        await self._clean(moved, cancelled=False)
        return moved

    # --- helpers -------------------------------------------------------------------------------

    async def _fail(self, workflow: Workflow, details: JSONDict) -> Workflow:
        moved = await self._move(
            workflow,
            W.FAILED,
            details,
            result={"merged": False, **details},
            task_status=TaskStatus.FAILED,
        )
        await self._clean(moved, cancelled=False)
        return moved

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
            return await self._fail(workflow, reason)
        if workflow.status not in WORKFLOW_PRE_PR or isinstance(error, HostError):
            # This host could not reach the repository, or git failed after the pull request
            # (a dirty checkout of the base branch): stay in place, say why; a later try, or
            # another host, carries on (cancel works meanwhile).
            raise error
        ended = TaskStatus.FAILED if isinstance(error, PlanError) else TaskStatus.CANCELLED
        return await self._move(workflow, W.CANCELLED, reason, task_status=ended)

    async def _move(
        self,
        workflow: Workflow,
        target: WorkflowState,
        metadata: JSONDict | None = None,
        *,
        result: JSONDict | None = None,
        task_status: TaskStatus | None = None,
    ) -> Workflow:
        moved = await self.store.transition_workflow(
            workflow.id,
            workflow.status,
            target,
            metadata=metadata,
            result=result,
            task_status=task_status,
        )
        await self._emit(moved, workflow.status, target)
        return moved

    async def _clean(self, workflow: Workflow, *, cancelled: bool) -> None:
        """Remove the workflow's worktrees; a failure here is logged, never undoes the state."""
        try:
            with tracing.for_workflow(workflow.id):  # also after cancel and give-up (no step)
                await self.delivery.cleanup(workflow, cancelled=cancelled)
        except TaskorchError as exc:
            log.warning("workflow %s: cleanup failed: %s", workflow.id, exc.message)

    async def _emit(
        self, workflow: Workflow, source: WorkflowState | None, target: WorkflowState
    ) -> None:
        started = workflow.start_time
        if self._publish:
            await self._publish(
                [
                    QueueEvent(
                        "workflow:transition",
                        workflow.id,
                        None,
                        {
                            "from": source.value if source else None,
                            "to": target.value,
                            "started_at": started.isoformat() if started else None,
                        },
                    )
                ]
            )

    async def _finish_ended(self, workflow: Workflow) -> None:
        """What follows a workflow's end (its worktrees removed), done again where an error may
        have cut it short (the task ended in the transaction that ended the workflow)."""
        await self._clean(workflow, cancelled=workflow.status is W.CANCELLED)


def _plan_of(workflow: Workflow) -> Plan:
    return Plan.model_validate(workflow.metadata["plan"])


def _require_validated(workflow: Workflow, what: str) -> None:
    if workflow.status is not W.VALIDATION_PASSED:
        raise StateError(
            f"workflow {workflow.id} is {workflow.status.value}: only a validated workflow "
            f"(validation_passed) can be {what}"
        )


def _spec_of(subtask: Subtask, parent: str) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=subtask.key,
        parent_task_id=parent,
        title=subtask.title,
        description=subtask.description,
        assigned_to=subtask.assigned_to,
        worker_type=subtask.worker_type,
        files_affected=subtask.files_affected,
        success_criteria=subtask.success_criteria,
    )


def _merge_fixup(workflow: Workflow, key: str, conflicts: list[str]) -> PlanSubtask:
    base = workflow.metadata.get("options", {}).get("base_branch") or "the base branch"
    return PlanSubtask(
        subtask_id=key,
        parent_task_id=_plan_of(workflow).parent_task_id,
        title=f"Resolve the conflicts with {base} ({key})",
        description=(
            f"{base} changed since this work began and now conflicts with it. It has been merged "
            "into your working copy; the conflicting files hold git's conflict markers "
            "(<<<<<<<, =======, >>>>>>>). Edit each so that both changes are kept as they "
            "should be, and remove every marker. Conflicting files: " + ", ".join(conflicts)
        ),
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        files_affected=conflicts,
        success_criteria=f"no conflict markers remain and the branch merges cleanly into {base}",
    )


def _fixup(workflow: Workflow, key: str, report: dict[str, Any]) -> PlanSubtask:
    log_tail = str(report.get("log_tail", ""))[-2000:]
    findings = "; ".join(str(f) for f in report.get("findings", []))
    return PlanSubtask(
        subtask_id=key,
        parent_task_id=_plan_of(workflow).parent_task_id,
        title=f"Fix validation failures ({key})",
        description=f"Validation failed: {report.get('summary', '')}\n{findings}\n\n{log_tail}",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        success_criteria="the validation that failed passes",
    )


_Step = Callable[[Pipeline, Workflow], Awaitable[Workflow | None]]
_STEPS: dict[WorkflowState, _Step] = {
    W.PENDING: Pipeline._pending,
    W.NLP_PARSING: Pipeline._parse,
    W.TASK_DECOMPOSITION: Pipeline._decompose,
    W.DEPENDENCY_RESOLUTION: Pipeline._resolve,
    W.AGENT_ASSIGNMENT: Pipeline._assign,
    W.PROCESSING: Pipeline._process,
    W.PR_CREATED: Pipeline._pr_created,
    W.VALIDATION_RUNNING: Pipeline._validate,
    W.VALIDATION_FAILED: Pipeline._fix,
    W.VALIDATION_PASSED: Pipeline._merge,
}


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
