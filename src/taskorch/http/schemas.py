"""What the HTTP API accepts and answers, as pydantic models: they validate requests (a bad field
is a 422 that names it) and make the OpenAPI document that clients and the schemathesis test read.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationInfo,
    model_validator,
)
from pydantic_core import PydanticCustomError

from taskorch.domain.errors import InputError
from taskorch.domain.limits import (
    MAX_ID,
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    check_text,
    encodable,
)
from taskorch.domain.models import Priority, Task, TaskStatus, Workflow
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.engine.status import WorkflowStatus, waiting_for

TASK_ID_PATTERN = r"^(task[-_])?0{0,11}[1-9][0-9]{0,11}$"
WORKFLOW_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,100}$"
MAX_LINE = 2000
"""A repository path or URL, a reason (characters)."""
MAX_BRANCH = 200
MergePolicy = Literal["auto", "approve"]
SUBTASK_KEY_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"


def _checked(limit: int, *, line: bool, blank: bool = True) -> BeforeValidator:
    """:func:`check_text` on a string field before anything else reads it (a regex cannot read a
    lone surrogate), and unless ``blank`` something other than blanks in it: a 422 that names
    the field in words."""

    def check(value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, str):
            field = info.field_name or "text"
            try:
                check_text(field, value, limit, line=line)
            except InputError as exc:
                reason = {"reason": exc.message}
                raise PydanticCustomError("text_invalid", "{reason}", reason) from None
            if not blank and not value.strip():
                reason = {"reason": f"{field} is empty: write something in it"}
                raise PydanticCustomError("text_blank", "{reason}", reason)
        return value

    return BeforeValidator(check)


_TEXT_CONTROLS = r"\x00-\x08\x0b-\x1f\x7f-\x9f"
_LINE_CONTROLS = r"\x00-\x08\x0a-\x1f\x7f-\x9f"


def _pattern(controls: str, *, blank: bool) -> str:
    """What :func:`check_text` lets through, for the OpenAPI document (clients and the fuzz test
    read it): no control characters, and something other than blanks unless ``blank``."""
    if blank:
        return f"^[^{controls}]*$"
    return f"^[^{controls}]*[^\\s{controls}][^{controls}]*$"


def _text(limit: int, *, line: bool, blank: bool = True) -> Any:
    controls = _LINE_CONTROLS if line else _TEXT_CONTROLS
    return Field(max_length=limit, pattern=_pattern(controls, blank=blank))


# The check after the constraints: it runs first (a regex cannot read a lone surrogate).
Title = Annotated[
    str,
    _text(MAX_TITLE_CHARS, line=True, blank=False),
    _checked(MAX_TITLE_CHARS, line=True, blank=False),
]
Text = Annotated[str, _text(MAX_TEXT_CHARS, line=False), _checked(MAX_TEXT_CHARS, line=False)]
Requirement = Annotated[
    str,
    _text(MAX_TEXT_CHARS, line=False, blank=False),
    _checked(MAX_TEXT_CHARS, line=False, blank=False),
]
Reason = Annotated[
    str, _text(MAX_LINE, line=False, blank=False), _checked(MAX_LINE, line=False, blank=False)
]
# on the whole optional field: a validator inside the union would name its branch, not the field
OptionalLine = Annotated[str | None, _text(MAX_LINE, line=True), _checked(MAX_LINE, line=True)]
OptionalBranch = Annotated[
    str | None, _text(MAX_BRANCH, line=True), _checked(MAX_BRANCH, line=True)
]
OptionalText = Annotated[
    str | None, _text(MAX_TEXT_CHARS, line=False), _checked(MAX_TEXT_CHARS, line=False)
]
TaskIdPath = Annotated[str, Field(pattern=TASK_ID_PATTERN, examples=["task-1", "1"])]
WorkflowIdPath = Annotated[str, Field(pattern=WORKFLOW_ID_PATTERN, examples=["wf-0a1b2c3d4e"])]


def _json_number(value: Any) -> Any:
    """A JSON number as the schema says one is: pydantic would also take ``true`` as 1 and
    ``"1"`` as 1, which the OpenAPI document does not allow (``5.0`` stays an integer, as JSON
    Schema has it)."""
    if isinstance(value, bool | str):
        raise PydanticCustomError("number_type", "a JSON number is needed here")
    return value


JsonNumber = BeforeValidator(_json_number)
TaskId = Annotated[int, Field(ge=1, le=MAX_ID), JsonNumber]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _Out(BaseModel):
    """An answer: its text can always be encoded (a path with a byte that is not UTF-8 is
    written with an escape, rather than failing the response)."""

    @model_validator(mode="before")
    @classmethod
    def _encodable(cls, data: Any) -> Any:
        return encodable(data)


class TaskIn(_In):
    title: Title = Field(min_length=1, examples=["Add login"])
    description: Text = ""
    priority: Priority = Priority.MEDIUM
    dependencies: list[TaskId] = Field(default_factory=list, max_length=50)
    repo: OptionalLine = Field(
        default=None,
        min_length=1,
        description="Its git repository: a path on the server or a git URL (default: the "
        "server's, TASKORCH_REPO or `serve --repo`).",
        examples=["/srv/app", "https://git.example.com/team/app.git"],
    )
    base_branch: OptionalBranch = Field(
        default=None, min_length=1, description="Branch to merge into."
    )
    merge_policy: MergePolicy | None = Field(
        default=None,
        description="auto: merge once validated; approve: wait for an approval "
        "(default: the server's TASKORCH_MERGE_POLICY).",
    )


class TaskOut(_Out):
    id: int
    ref: str
    title: str
    description: str
    status: TaskStatus
    priority: Priority
    dependencies: list[int]
    repo: str | None = None
    base_branch: str | None = None
    merge_policy: MergePolicy | None = None
    created_at: str
    updated_at: str

    @classmethod
    def of(cls, task: Task) -> TaskOut:
        return cls(
            id=task.id,
            ref=task.ref,
            title=task.title,
            description=task.description,
            status=task.status,
            priority=task.priority,
            dependencies=task.dependencies,
            repo=task.metadata.get("repo"),
            base_branch=task.metadata.get("base_branch"),
            merge_policy=task.metadata.get("merge_policy"),
            created_at=task.created_at.isoformat(),
            updated_at=task.updated_at.isoformat(),
        )


class WorkflowSummary(_Out):
    workflow_id: str
    task_id: int
    state: WorkflowState
    start_time: str | None
    end_time: str | None
    title: str | None = None
    progress_percent: float | None = None
    waiting_for: Literal["approval"] | None = None
    """``approval``: validated and held by the approve merge policy (approve or reject it)."""

    @classmethod
    def of(cls, workflow: Workflow) -> WorkflowSummary:
        return cls(
            workflow_id=workflow.id,
            task_id=workflow.task_id,
            state=workflow.status,
            waiting_for=waiting_for(workflow),
            start_time=workflow.start_time.isoformat() if workflow.start_time else None,
            end_time=workflow.end_time.isoformat() if workflow.end_time else None,
        )


class SubtaskOut(_Out):
    key: str
    title: str
    stage: int
    """1-based."""
    status: SubtaskState
    agent: str | None
    attempts: int
    dependencies: list[str]
    files: list[str]
    assigned_to: str
    worker_type: str
    error: str | None
    waiting: str | None = None
    """Why a queued subtask has not started: ``waiting: <agent> rate-limited until ... UTC``."""
    tokens_in: int | None = None
    """Summed over its recorded attempts (None: no attempt reported any)."""
    tokens_out: int | None = None
    cost_usd: float | None = None


class HistoryOut(_Out):
    from_state: WorkflowState | None = Field(alias="from")
    to: WorkflowState
    time: str

    model_config = ConfigDict(populate_by_name=True)


class TargetOut(_Out):
    """Where a workflow merges, as settled at its start."""

    repo: str
    """A path on the server's host or a git URL."""
    base_branch: str | None
    merge_policy: MergePolicy


class BudgetOut(_Out):
    """A workflow's budget (docs/budgets.md): caps (None: no cap), what it spent, what its next
    attempt is predicted to cost, whether it waits for its budget, and how the spend is known
    (``cost``, ``tokens``, or ``estimate`` for agents that report no usage)."""

    cap_usd: float | None
    spent_usd: float
    predicted_usd: float | None
    waiting: bool
    cap_tokens: int | None
    spent_tokens: int
    counted_by: Literal["cost", "tokens", "estimate"]


class BudgetIn(_In):
    """New caps: each one given replaces that kind, the others stay (at least one)."""

    usd: Annotated[float | None, JsonNumber] = Field(None, gt=0, examples=[5.0])
    tokens: Annotated[int | None, JsonNumber] = Field(None, gt=0, examples=[500000])
    subtask_usd: Annotated[float | None, JsonNumber] = Field(None, gt=0)


class WorkflowDetail(_Out):
    workflow_id: str
    task: dict[str, Any]
    state: WorkflowState
    waiting_for: Literal["approval", "budget"] | None
    """``approval``: validated and held by the approve merge policy; ``POST .../approve``
    merges it, ``POST .../reject`` ends it failed. ``budget``: its next attempt would cross a
    cap; ``POST .../budget`` raises it."""
    budget: BudgetOut | None = None
    target: TargetOut | None
    progress_percent: float
    current_stage: int | None
    stages: list[list[str]]
    """Subtask keys by stage, in stage order: the DAG as drawn."""
    subtasks: list[SubtaskOut]
    history: list[HistoryOut]
    active_subtasks: list[str]
    completed_subtasks: list[str]
    failed_subtasks: list[str]
    blocked_subtasks: list[str]
    zombie_subtasks: list[str]
    planner: str | None
    pull_request: dict[str, Any] | None
    validation: dict[str, Any] | None
    escalation: dict[str, Any] | None
    result: dict[str, Any] | None
    start_time: str | None
    end_time: str | None
    cost: CostOut | None = None
    """Tokens and cost of its recorded attempts: in all, by subtask, agent and model."""

    @classmethod
    def of(cls, status: WorkflowStatus) -> WorkflowDetail:
        data = status.to_dict()
        assigned = status.assignments()
        usage = status.cost().by_subtask
        stages: dict[int, list[str]] = {}
        for subtask in status.subtasks:
            stages.setdefault(subtask.stage, []).append(subtask.key)
        return cls(
            **{k: data[k] for k in _DETAIL_COPIED},
            stages=[stages[s] for s in sorted(stages)],
            subtasks=[
                SubtaskOut(
                    key=s.key,
                    title=s.title,
                    stage=s.stage + 1,
                    status=s.status,
                    agent=s.agent_id or assigned.get(s.key),
                    attempts=s.attempts,
                    dependencies=s.dependencies,
                    files=s.files_affected,
                    assigned_to=s.assigned_to.value,
                    worker_type=s.worker_type.value,
                    error=s.error,
                    waiting=status.waiting_reason(s),
                    tokens_in=usage[s.key].tokens_in if s.key in usage else None,
                    tokens_out=usage[s.key].tokens_out if s.key in usage else None,
                    cost_usd=usage[s.key].cost_usd if s.key in usage else None,
                )
                for s in status.subtasks
            ],
            history=[HistoryOut.model_validate(h) for h in data["history"]],
            cost=CostOut.model_validate(data["cost"]),
        )


class UsageOut(_Out):
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    attempts: int
    unreported_attempts: int
    """Attempts whose agent reported neither tokens nor cost."""


class CostOut(UsageOut):
    by_subtask: dict[str, UsageOut]
    by_agent: dict[str, UsageOut]
    by_model: dict[str, UsageOut]
    """``unknown`` for attempts whose model neither the agent nor its registration named."""


class AttemptOut(_Out):
    number: int
    agent: str | None
    model: str | None
    started_at: str | None
    ended_at: str | None
    outcome: str
    """``running`` while the agent works; else succeeded, failed, cancelled, zombie, ..."""
    error_class: str | None
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    running: bool
    output_tail: str
    """The end of what the agent printed (up to 8000 characters)."""
    output_source: Literal["live", "result", "error", "none"]
    output_bytes: int
    """Size of the captured output so far: ``.../output?offset=`` this for what comes next."""
    commit: str | None
    """The merge commit its work landed as on the workflow branch."""
    diff: str | None
    """``git diff commit^1 commit``, cut at 200 kB (``diff_truncated``)."""
    diff_truncated: bool


class OutputOut(_Out):
    text: str
    offset: int
    next_offset: int
    """Ask from here next time."""
    running: bool
    """The attempt still runs: more may come."""
    available: bool
    """False when this server's host holds no captured output for the attempt."""


_DETAIL_COPIED = (
    "workflow_id",
    "task",
    "state",
    "waiting_for",
    "budget",
    "target",
    "progress_percent",
    "current_stage",
    "active_subtasks",
    "completed_subtasks",
    "failed_subtasks",
    "blocked_subtasks",
    "zombie_subtasks",
    "planner",
    "pull_request",
    "validation",
    "escalation",
    "result",
    "start_time",
    "end_time",
)


class RejectIn(_In):
    reason: Reason = Field(min_length=1, examples=["the login page lost its styles"])


class ActionIn(_In):
    """The body of a state change that needs no fields (cancel, approve): ``{}``. A JSON body is
    what tells a program's request from a form another site's page sends."""


class ParseIn(_In):
    text: Requirement = Field(min_length=1)
    context: OptionalText = None


class ParseOut(_Out):
    planner: str
    plan: dict[str, Any]


class AgentOut(_Out):
    id: str
    name: str
    type: str
    adapter: str
    status: str
    simulated: bool
    """True for the in-process simulated agent: its results are not real work."""
    max_concurrency: int | None
    active: int
    utilisation: float | None
    """Running attempts over its concurrency limit."""
    attempts: int
    successes: int
    success_rate: float | None
    mean_s: float | None
    p95_s: float | None = None
    last_error: str | None = None
    capabilities: dict[str, Any] = Field(default_factory=dict)
    cost_usd: float | None = None
    """What its finished attempts reported they cost, in all."""
    rate_limited_until: str | None = None
    """When its rate window ends (it answered with a rate limit or usage limit); None: none."""


class ComponentOut(_Out):
    status: Literal["ok", "degraded", "down"]
    detail: str
    info: dict[str, Any] = Field(default_factory=dict)


class HealthOut(_Out):
    status: Literal["ok", "degraded", "down"]
    components: dict[str, ComponentOut]


class MetricsOut(_Out):
    workflows_by_state: dict[str, int]
    subtasks_by_state: dict[str, int]
    attempts: int
    successes: int
    failures: int
    success_rate: float
    zombies: int
    queue_depth: int
    mean_execution_s: float
    throughput_per_s: float
    errors_by_class: dict[str, int]


class ErrorOut(_Out):
    detail: str
