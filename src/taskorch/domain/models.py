"""Frozen value objects for what the store keeps: tasks, workflows, history, subtasks, attempts,
agents and events. The store returns these and nothing else; nobody mutates them in place.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TITLE_CHARS, check_id, check_text
from taskorch.domain.plan import Domain, WorkerType
from taskorch.domain.states import SubtaskState, WorkflowState

JSONDict = dict[str, Any]


class Priority(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"
    CRITICAL = "critical"

    @classmethod
    def parse(cls, value: str) -> Priority:
        try:
            return cls(value.strip().lower())
        except ValueError:
            choices = "|".join(p.value for p in cls)
            raise InputError(f"invalid priority {value!r}: use one of {choices}") from None

    @property
    def rank(self) -> int:
        """Higher runs first."""
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {Priority.LOW: 0, Priority.MEDIUM: 1, Priority.HIGH: 2, Priority.CRITICAL: 3}


class TaskStatus(StrEnum):
    PENDING = "pending"
    """Stored, not yet picked up by a workflow."""
    PROCESSING = "processing"
    """A workflow carries it."""
    COMPLETED = "completed"
    """Its workflow merged."""
    FAILED = "failed"
    CANCELLED = "cancelled"


class AgentStatus(StrEnum):
    AVAILABLE = "available"
    BUSY = "busy"
    OFFLINE = "offline"
    DISABLED = "disabled"


class AttemptOutcome(StrEnum):
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    TIMEOUT = "timeout"
    ZOMBIE = "zombie"
    CANCELLED = "cancelled"


class _Record(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Task(_Record):
    id: int
    title: str
    description: str = ""
    status: TaskStatus = TaskStatus.PENDING
    priority: Priority = Priority.MEDIUM
    dependencies: list[int] = Field(default_factory=list)
    metadata: JSONDict = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime

    @property
    def ref(self) -> str:
        """The id as it appears in plans: ``task-42``."""
        return task_ref(self.id)


def task_ref(task_id: int) -> str:
    return f"task-{task_id}"


def strip_task_prefix(value: str) -> str:
    """``"task-42"`` and the specification's ``"task_42"`` -> ``"42"`` (lower-cased, trimmed)."""
    text = value.strip().lower()
    return text[5:] if text.startswith(("task-", "task_")) else text


def parse_task_ref(value: str | int) -> int:
    """Accept ``42``, ``"42"``, ``"task-42"`` or the specification's ``"task_42"``."""
    if isinstance(value, int):
        return check_id("task id", value)
    text = strip_task_prefix(value)
    # isdigit() alone takes "²" and other digits int() refuses; 20 digits pass any int64 (leading
    # zeros aside: the API's id pattern allows a few).
    if not (text.isascii() and text.isdigit() and len(text) <= 40 and len(text.lstrip("0")) <= 20):
        shown = value if len(value) <= 40 else value[:39] + "…"
        raise InputError(f"invalid task id {shown!r}: use a number such as 42, task-42 or task_42")
    return check_id("task id", int(text))


class NewTask(BaseModel):
    """What a user supplies to create a task; validated before it reaches the store."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    title: str
    description: str = ""
    priority: Priority = Priority.MEDIUM
    dependencies: list[int] = Field(default_factory=list)
    metadata: JSONDict = Field(default_factory=dict)

    @classmethod
    def create(
        cls,
        title: str,
        description: str = "",
        priority: str | Priority = Priority.MEDIUM,
        dependencies: list[int] | None = None,
        metadata: JSONDict | None = None,
    ) -> NewTask:
        if not title.strip():
            raise InputError("task title is empty: give a short title such as 'Add login'")
        check_text("the task title", title, MAX_TITLE_CHARS, line=True)
        check_text("the task description", description)
        level = priority if isinstance(priority, Priority) else Priority.parse(priority)
        return cls(
            title=title.strip(),
            description=description,
            priority=level,
            dependencies=list(dict.fromkeys(dependencies or [])),
            metadata=metadata or {},
        )


class Workflow(_Record):
    id: str
    task_id: int
    status: WorkflowState
    start_time: datetime | None = None
    end_time: datetime | None = None
    result: JSONDict | None = None
    metadata: JSONDict = Field(default_factory=dict)
    created_at: datetime
    updated_at: datetime
    budget_usd: float | None = None
    budget_tokens: int | None = None
    subtask_budget_usd: float | None = None
    """Caps (None: none); see ``domain.budget``."""


class HistoryEntry(_Record):
    id: int
    workflow_id: str
    from_state: WorkflowState | None
    to_state: WorkflowState
    timestamp: datetime
    metadata: JSONDict = Field(default_factory=dict)


class Subtask(_Record):
    """One subtask of a workflow as the runtime tracks it; ``key`` is the plan's ``subtask_id``."""

    id: int
    workflow_id: str
    key: str
    title: str
    description: str = ""
    assigned_to: Domain
    worker_type: WorkerType
    dependencies: list[str] = Field(default_factory=list)
    files_affected: list[str] = Field(default_factory=list)
    success_criteria: str = ""
    estimated_duration_minutes: int = 0
    estimated_tokens: int = 0
    command: list[str] | None = None
    stage: int = 0
    status: SubtaskState = SubtaskState.PENDING
    agent_id: str | None = None
    attempts: int = 0
    interrupted: int = 0
    """Of ``attempts``, those ended by a kill, a lost lease, a stopping worker or the host: not
    the agent's tries (see ``domain.retry.MAX_INTERRUPTED_ATTEMPTS``)."""
    run_after: datetime | None = None
    lease_owner: str | None = None
    lease_expires_at: datetime | None = None
    result: JSONDict | None = None
    error: str | None = None
    pending_deps: int = 0
    """Dependencies not yet completed; the subtask is queued when this reaches 0."""
    priority: int = 0
    queued_at: datetime | None = None
    """When it last became ready; dispatch latency is measured from here."""
    created_at: datetime
    updated_at: datetime
    budgeted: bool = False
    """Its workflow has a budget: only the budget's claim (``store.budget``) takes it."""


class Attempt(_Record):
    id: int
    subtask_id: int
    number: int
    agent_id: str | None = None
    worker_id: str | None = None
    started_at: datetime
    ended_at: datetime | None = None
    outcome: AttemptOutcome = AttemptOutcome.RUNNING
    error_class: str | None = None
    error_message: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None


class Capabilities(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    domains: list[Domain] = Field(default_factory=list)
    worker_types: list[WorkerType] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    specialties: list[str] = Field(default_factory=list)


class Agent(_Record):
    id: str
    name: str
    type: str
    capabilities: Capabilities = Field(default_factory=Capabilities)
    status: AgentStatus = AgentStatus.AVAILABLE
    max_concurrency: int = 1
    metadata: JSONDict = Field(default_factory=dict)
    """Adapter settings (url, command template) and the track record live here."""
    created_at: datetime
    updated_at: datetime


class Event(_Record):
    id: int
    kind: str
    workflow_id: str | None = None
    subtask_id: int | None = None
    payload: JSONDict = Field(default_factory=dict)
    created_at: datetime
