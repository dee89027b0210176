"""What the MCP tools return: typed models, so every result carries ``structuredContent`` that
matches the tool's published output schema.

They are read from the engine's own JSON forms (``WorkflowStatus.to_dict``,
``HealthReport.components``, ``Plan.to_json``); unknown keys are ignored so a field added to the
engine's status does not break the server.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from taskorch.domain.limits import encodable


class _Out(BaseModel):
    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        return encodable(data)


class TaskBrief(_Out):
    id: int
    ref: str = Field(description="The task id as plans show it: task-42.")
    title: str


class SubtaskOut(_Out):
    key: str
    title: str
    stage: int = Field(description="1-based stage of the plan.")
    status: str
    agent: str | None = None
    attempts: int = 0
    files: list[str] = Field(default_factory=list)
    error: str | None = None


class HistoryOut(_Out):
    from_state: str | None = Field(default=None, alias="from")
    to: str
    time: str
    metadata: dict[str, Any] = Field(default_factory=dict)


class TargetOut(_Out):
    repo: str = Field(description="A local path or a git URL.")
    base_branch: str | None = None
    merge_policy: str = Field(description="auto or approve.")


class WorkflowOut(_Out):
    """One workflow: its state in the pipeline, progress, subtasks and history."""

    workflow_id: str
    task: TaskBrief
    state: str = Field(description="pending, nlp_parsing, ..., merged, failed or cancelled.")
    waiting_for: str | None = Field(
        default=None,
        description="'approval': validated and held by the approve merge policy; a person "
        "merges it with `taskorch approve WORKFLOW_ID` (or rejects it); 'budget': its next "
        "attempt would cross a cap (set_budget raises it).",
    )
    budget: dict[str, Any] | None = Field(
        default=None,
        description="cap_usd, spent_usd, predicted_usd (the next attempt), waiting, cap_tokens, "
        "spent_tokens, counted_by (cost, tokens, or estimate for agents that report no usage).",
    )
    target: TargetOut | None = Field(
        default=None, description="Where it merges: repository, base branch, merge policy."
    )
    progress_percent: float
    current_stage: int | None = None
    active_subtasks: list[str] = Field(default_factory=list)
    completed_subtasks: list[str] = Field(default_factory=list)
    failed_subtasks: list[str] = Field(default_factory=list)
    blocked_subtasks: list[str] = Field(default_factory=list)
    planner: str | None = None
    pull_request: dict[str, Any] | None = None
    validation: dict[str, Any] | None = None
    escalation: Any = None
    start_time: str | None = None
    end_time: str | None = None
    subtasks: list[SubtaskOut] = Field(default_factory=list)
    history: list[HistoryOut] = Field(default_factory=list)


class ProcessOutcome(_Out):
    finished: bool = Field(
        description="True when the workflow reached an end state (merged, failed, cancelled) "
        "or waits for approval (workflow.waiting_for); False when it still runs in the server "
        "(wait=false or the timeout passed)."
    )
    workflow: WorkflowOut
    note: str | None = Field(
        default=None, description="Set when no registered agent could be used (simulated)."
    )


class BatchOutcome(_Out):
    finished: bool = Field(
        description="True when every workflow reached an end state or waits for approval."
    )
    workflows: list[WorkflowOut]
    note: str | None = Field(
        default=None, description="Set when no registered agent could be used (simulated)."
    )


class InitOutcome(_Out):
    database: str = Field(description="Where the data lives (passwords redacted).")
    schema_version: int
    migrations_applied: list[str]
    data_folder: str
    planner: str = Field(
        description="The planner plans are made with: heuristic, anthropic, openai, ..."
    )
    enable_nlp: bool = Field(description="ENABLE_NLP for this server's calls.")
    enable_agent_coordination: bool = Field(
        description="ENABLE_AGENT_COORDINATION for this server's calls."
    )
    max_concurrent_workflows: int = Field(
        description="Workflows this server carries at once (MAX_CONCURRENT_WORKFLOWS)."
    )
    agents: list[str] = Field(
        description="What the process tools' agent argument takes: auto, sim and the registered "
        "agents."
    )


class WorkflowBrief(_Out):
    workflow_id: str
    task_id: int
    state: str
    created_at: str


class OrchestrationStatus(_Out):
    workflows_by_state: dict[str, int]
    subtasks_by_state: dict[str, int]
    database: str
    recent_workflows: list[WorkflowBrief]
    running_in_server: list[str] = Field(
        description="Workflows this server process is carrying on in the background."
    )


class ComponentOut(_Out):
    status: str = Field(description="ok, degraded or down.")
    detail: str
    info: dict[str, Any] = Field(default_factory=dict)


class HealthOut(_Out):
    status: str = Field(description="ok, degraded or down: the worst of the components.")
    components: dict[str, ComponentOut]


class ParseOutcome(_Out):
    planner: str = Field(description="Which planner made the plan (and any fallback).")
    plan: dict[str, Any] = Field(description="The plan format: subtasks, execution_plan, ...")
    priority: str | None = Field(default=None, description="The priority the call gave.")
