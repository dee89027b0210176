"""The pipeline's planning stage: the steps that carry a new workflow to ``processing``.

``pending`` → ``nlp_parsing`` (the planner's plan) → ``task_decomposition`` (the working spec
checked, the delivery's preparation) → ``dependency_resolution`` (stages, the subtasks stored and
linked) → ``agent_assignment`` (an agent for each subtask) → ``processing``. Each step writes what
it decided into its transition's metadata; the plan stays there for the steps after it.
"""

from __future__ import annotations

from taskorch.domain.dag import DependencyResolver
from taskorch.domain.models import JSONDict, Priority, Subtask, Workflow, task_ref
from taskorch.domain.plan import Plan, PlanSubtask
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.domain.working_spec import check_working_spec
from taskorch.engine.pipeline_moves import WorkflowMoves
from taskorch.engine.pipeline_ports import Planner, Router
from taskorch.runtime import tracing
from taskorch.runtime.subtask_events import planned_events, routed_events
from taskorch.store import Store

W = WorkflowState

ROUTABLE = frozenset({SubtaskState.PENDING, SubtaskState.QUEUED})


class PlanningSteps:
    def __init__(
        self,
        moves: WorkflowMoves,
        planner: Planner,
        resolver: DependencyResolver,
        router: Router | None,
    ) -> None:
        self.moves = moves
        self.store = moves.store
        self.planner = planner
        self.resolver = resolver
        self.router = router

    async def pending(self, workflow: Workflow) -> Workflow:
        return await self.moves.move(workflow, W.NLP_PARSING, tracing.trace_metadata(workflow.id))

    async def parse(self, workflow: Workflow) -> Workflow:
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
        return await self.moves.move(workflow, W.TASK_DECOMPOSITION, details)

    async def decompose(self, workflow: Workflow) -> Workflow:
        check_working_spec(plan_of(workflow))  # nothing is dispatched for a plan that breaks it
        plan = await self.moves.delivery.prepare(workflow, plan_of(workflow))
        return await self.moves.move(
            workflow,
            W.DEPENDENCY_RESOLUTION,
            {"plan": plan.to_dict(), "subtasks": [s.subtask_id for s in plan.subtasks]},
        )

    async def resolve(self, workflow: Workflow) -> Workflow:
        plan = plan_of(workflow)
        resolution = self.resolver.resolve_plan(plan)
        priority = await subtask_priority(self.store, workflow)
        stored = await self.store.add_subtasks(
            workflow.id, plan.subtasks, resolution.stage_of, priority=priority
        )
        await self.moves.queue.link_workflow(workflow.id)
        await self.moves.publish(planned_events(stored))
        return await self.moves.move(
            workflow,
            W.AGENT_ASSIGNMENT,
            {
                "stages": resolution.execution_plan(),
                "critical_path": resolution.critical_path,
                "critical_path_minutes": resolution.critical_path_minutes,
            },
        )

    async def assign(self, workflow: Workflow) -> Workflow:
        agent = str(workflow.metadata.get("options", {}).get("agent") or "default")
        subtasks = await self.store.list_subtasks(workflow.id)
        mode = routing_mode(self.router, workflow)
        if mode is None or self.router is None:
            assignments = {s.key: s.agent_id or agent for s in subtasks}
            return await self.moves.move(workflow, W.PROCESSING, {"assignments": assignments})
        open_subtasks = [s for s in subtasks if s.status in ROUTABLE]
        choices = await self.router.route(mode, open_subtasks)
        await self.moves.publish(routed_events(open_subtasks, choices))
        routing = {s.key: choices[s.id].to_json() for s in open_subtasks}
        routed = {
            s.key: choices[s.id].agent_id if s.id in choices else s.agent_id for s in subtasks
        }
        return await self.moves.move(
            workflow, W.PROCESSING, {"assignments": routed, "routing": routing}
        )


def plan_of(workflow: Workflow) -> Plan:
    return Plan.model_validate(workflow.metadata["plan"])


def spec_of(subtask: Subtask, parent_task_id: str) -> PlanSubtask:
    """A stored subtask as an entry of a plan, for one its workflow's plan does not hold (a
    redo, a fix-up)."""
    return PlanSubtask(
        subtask_id=subtask.key,
        parent_task_id=parent_task_id,
        title=subtask.title,
        description=subtask.description,
        assigned_to=subtask.assigned_to,
        worker_type=subtask.worker_type,
        files_affected=subtask.files_affected,
        success_criteria=subtask.success_criteria,
    )


async def subtask_priority(store: Store, workflow: Workflow) -> int:
    """Queue rank of the workflow's subtasks: the ``priority`` option, else the task's."""
    chosen = workflow.metadata.get("options", {}).get("priority")
    if chosen:
        return Priority.parse(str(chosen)).rank
    return (await store.get_task(workflow.task_id)).priority.rank


def routing_mode(router: Router | None, workflow: Workflow) -> str | None:
    """``auto`` or an agent's name for a workflow whose subtasks are routed to registered
    agents; None for one that runs on the default adapter (``sim``, none) or without a router."""
    agent = workflow.metadata.get("options", {}).get("agent")
    if router is None or agent in (None, "", "sim", "default"):
        return None
    return str(agent)
