"""The MCP tools on one workflow: its status, cancelling it, setting its budget."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from taskorch.mcp.aliases import need, pick
from taskorch.mcp.models import WorkflowOut
from taskorch.mcp.session import Orchestrator
from taskorch.mcp.toolkit import Register, WorkflowId, WorkflowIdSpec, tool_errors, workflow_out


def register(tool: Register, orchestrator: Orchestrator) -> None:
    """Register these tools with ``tool``, in the order clients list them; they share
    ``orchestrator``."""

    @tool
    async def get_workflow_status(
        workflow_id: WorkflowId | None = None, workflowId: WorkflowIdSpec = None
    ) -> WorkflowOut:
        """A workflow's state, progress, current stage, subtasks (status, agent, attempts,
        error), pull request record, validation and history."""
        with tool_errors():
            chosen = need("workflow_id", workflow_id, "workflowId", workflowId)
            engine = await orchestrator.engine()
            return workflow_out(await engine.get_workflow_status(chosen))

    @tool
    async def cancel_workflow(
        workflow_id: WorkflowId | None = None, workflowId: WorkflowIdSpec = None
    ) -> WorkflowOut:
        """Cancel a workflow: running subtasks stop, worktrees are removed, unmerged work stays
        on its branches."""
        with tool_errors():
            chosen = need("workflow_id", workflow_id, "workflowId", workflowId)
            engine = await orchestrator.engine()
            return workflow_out(await engine.cancel_workflow(chosen))

    @tool
    async def set_budget(
        workflow_id: WorkflowId | None = None,
        workflowId: WorkflowIdSpec = None,
        usd: Annotated[float | None, Field(gt=0, description="The new USD cap.")] = None,
        tokens: Annotated[int | None, Field(gt=0, description="The new token cap.")] = None,
        subtask_usd: Annotated[
            float | None, Field(gt=0, description="The new cap per subtask, in USD.")
        ] = None,
        subtaskUsd: Annotated[
            float | None, Field(gt=0, description="The camelCase name of subtask_usd.")
        ] = None,
    ) -> WorkflowOut:
        """Set a workflow's budget (each cap given replaces that kind): one waiting for its
        budget goes on once its next attempt fits; its figures are in ``budget``."""
        with tool_errors():
            chosen = need("workflow_id", workflow_id, "workflowId", workflowId)
            per_subtask = pick("subtask_usd", subtask_usd, "subtaskUsd", subtaskUsd)
            engine = await orchestrator.engine()
            return workflow_out(
                await engine.set_budget(chosen, usd=usd, tokens=tokens, subtask_usd=per_subtask)
            )
