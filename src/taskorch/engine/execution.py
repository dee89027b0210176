"""The values of :class:`taskorch.engine.coordinator.AgentCoordinator`'s executions: what is
assigned, the context it runs in, the session it starts, its state, and each agent's capabilities
and statistics; and how the specification's context dict and plan subtasks are read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from taskorch.domain.errors import InputError
from taskorch.domain.models import Subtask
from taskorch.domain.plan import PlanSubtask


@dataclass(frozen=True, slots=True)
class Assignment:
    """A subtask and the agent to run it (``None``: the coordinator chooses)."""

    subtask: PlanSubtask | Subtask
    agent: str | None = None
    """An agent's id or name."""


@dataclass(frozen=True, slots=True)
class ExecutionContext:
    """Where and how an execution runs; a dict with these keys works too (``cwd``, ``context``,
    and ``timeout`` in the specification's milliseconds, as well)."""

    workdir: Path | None = None
    text: str = ""
    """More for the agent to know, added to its instructions."""
    timeout_s: float | None = None
    """Default: ``TASKORCH_SUBTASK_TIMEOUT_S``."""


class ExecutionStatus(StrEnum):
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"


@dataclass(frozen=True, slots=True)
class ExecutionSession:
    """What :meth:`AgentCoordinator.execute_task` started."""

    session_id: str
    agent_id: str
    agent_name: str
    subtask_key: str
    workdir: Path
    reason: str
    started_at: datetime


@dataclass(frozen=True, slots=True)
class ExecutionState:
    """An execution as it stands: running (with its heartbeats) or how it ended."""

    session: ExecutionSession
    status: ExecutionStatus
    elapsed_s: float
    heartbeats: int = 0
    last_heartbeat_s_ago: float | None = None
    output: str = ""
    error: str | None = None
    error_class: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None

    @property
    def done(self) -> bool:
        return self.status != ExecutionStatus.RUNNING

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session.session_id,
            "agent": self.session.agent_name,
            "subtask": self.session.subtask_key,
            "workdir": str(self.session.workdir),
            "status": self.status.value,
            "elapsed_s": round(self.elapsed_s, 3),
            "heartbeats": self.heartbeats,
            "output": self.output,
            "error": self.error,
            "error_class": self.error_class,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
        }


@dataclass(frozen=True, slots=True)
class AgentCapabilityInfo:
    """What agents of a type can do, and the registered agents of that type."""

    agent_type: str
    domains: tuple[str, ...]
    worker_types: tuple[str, ...]
    languages: tuple[str, ...]
    registered: tuple[str, ...]
    known_type: bool


@dataclass(frozen=True, slots=True)
class AgentStatistics:
    """One agent's record: the store's attempts (workers') and this coordinator's executions."""

    agent_id: str
    name: str
    type: str
    attempts: int
    successes: int
    failures: int
    success_rate: float | None
    tokens_in: int
    tokens_out: int
    cost_usd: float
    total_s: float
    mean_s: float | None
    p95_s: float | None
    last_error: str | None
    executions: int = 0
    """Runs by :meth:`AgentCoordinator.execute_task` in this process (not in the store)."""


def read_context(given: ExecutionContext | Mapping[str, Any] | str | None) -> ExecutionContext:
    if given is None:
        return ExecutionContext()
    if isinstance(given, ExecutionContext):
        return given
    if isinstance(given, str):
        return ExecutionContext(text=given)
    values: dict[str, Any] = {}
    extra: list[str] = []
    for key, value in given.items():
        if key in ("timeout_s", "timeout"):
            if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
                raise InputError(f"context {key} must be a positive number, got {value!r}")
            # the specification's ``timeout`` is in milliseconds, taskorch's ``timeout_s`` not
            values["timeout_s"] = float(value) / (1000 if key == "timeout" else 1)
        elif key in ("workdir", "cwd"):
            values["workdir"] = Path(value)
        elif key in ("text", "context"):
            values["text"] = str(value)
        else:  # the specification's context carries more (project, history): for the agent
            extra.append(f"{key}: {value}")
    if extra:
        values["text"] = "; ".join(filter(None, [values.get("text", ""), *extra]))
    return ExecutionContext(**values)


def as_subtask(subtask: PlanSubtask | Subtask, number: int, session_id: str) -> Subtask:
    if isinstance(subtask, Subtask):
        return subtask
    now = datetime.now(UTC)
    return Subtask(
        id=number,
        workflow_id=session_id,
        key=subtask.subtask_id,
        title=subtask.title,
        description=subtask.description,
        assigned_to=subtask.assigned_to,
        worker_type=subtask.worker_type,
        dependencies=list(subtask.dependencies),
        files_affected=list(subtask.files_affected),
        success_criteria=subtask.success_criteria,
        command=subtask.command,
        created_at=now,
        updated_at=now,
    )
