"""The MCP tools on the orchestrator as a whole: its status at a glance, planning a requirement
without storing anything, and the health of its components."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Field

from taskorch.domain.limits import MAX_TEXT_CHARS
from taskorch.mcp.aliases import need
from taskorch.mcp.models import (
    ComponentOut,
    HealthOut,
    OrchestrationStatus,
    ParseOutcome,
    WorkflowBrief,
)
from taskorch.mcp.session import Orchestrator
from taskorch.mcp.toolkit import Register, tool_errors


def register(tool: Register, orchestrator: Orchestrator) -> None:
    """Register these tools with ``tool``, in the order clients list them; they share
    ``orchestrator``."""

    @tool
    async def get_orchestration_status(
        limit: Annotated[int, Field(ge=1, le=500, description="Recent workflows to list.")] = 20,
    ) -> OrchestrationStatus:
        """The orchestrator at a glance: workflows by state, subtasks by state, the most recent
        workflows and those this server is carrying on."""
        with tool_errors():
            engine = await orchestrator.engine()
            status: dict[str, Any] = await engine.get_status()
            recent = await engine.list_workflows(limit=limit)
            return OrchestrationStatus(
                workflows_by_state=status["workflows"],
                subtasks_by_state=status["subtasks"],
                database=str(status["database"]),
                recent_workflows=[
                    WorkflowBrief(
                        workflow_id=w.id,
                        task_id=w.task_id,
                        state=w.status.value,
                        created_at=w.created_at.isoformat(),
                    )
                    for w in recent
                ],
                running_in_server=orchestrator.running,
            )

    @tool
    async def parse_requirements(
        requirement: Annotated[
            str | None,
            Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The requirement to plan."),
        ] = None,
        description: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=MAX_TEXT_CHARS,
                description="The specification's name of requirement.",
            ),
        ] = None,
        context: Annotated[
            str | None,
            Field(
                max_length=MAX_TEXT_CHARS,
                description="Background for the planner (repository, stack).",
            ),
        ] = None,
        priority: Annotated[
            Literal["low", "medium", "high", "critical"] | None,
            Field(
                description="The priority the plan is for: returned with the plan (and in it), "
                "for the process call that stores and queues it; parsing stores nothing."
            ),
        ] = None,
    ) -> ParseOutcome:
        """Plan a requirement without storing anything: subtasks with one owner each, stages
        that can run in parallel, estimates (the plan format)."""
        with tool_errors():
            text = need("requirement", requirement, "description", description)
            result = await orchestrator.plan(text, context)
            plan = result.plan.to_dict()
            if priority is not None:
                plan["priority"] = priority
            return ParseOutcome(planner=result.describe(), plan=plan, priority=priority)

    @tool
    async def orchestration_health_check() -> HealthOut:
        """Each component (database, ...) as ok, degraded or down, with the reason."""
        with tool_errors():
            engine = await orchestrator.engine()
            report = await engine.health_check()
            return HealthOut(
                status=report.status,
                components={
                    name: ComponentOut(status=c.status, detail=c.detail, info=c.info)
                    for name, c in report.components.items()
                },
            )
