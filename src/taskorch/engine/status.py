"""What ``get_workflow_status`` answers: state, progress, current stage, subtasks by condition,
history and the pull request record, as one value with a JSON form; and why a pending task has
not started (:func:`task_holds`)."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from taskorch.domain.budget import BudgetFigures
from taskorch.domain.errors import NotFoundError
from taskorch.domain.models import (
    Attempt,
    Event,
    HistoryEntry,
    Subtask,
    Task,
    TaskStatus,
    Workflow,
    task_ref,
)
from taskorch.domain.rate_window import RateWindow
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.engine.usage import CostSummary, Usage, cost_summary, model_of

_ACTIVE = {SubtaskState.QUEUED, SubtaskState.ASSIGNED, SubtaskState.RUNNING}


@dataclass(frozen=True, slots=True)
class WorkflowStatus:
    workflow: Workflow
    task: Task
    subtasks: list[Subtask]
    history: list[HistoryEntry]
    events: list[Event]
    windows: Mapping[str, RateWindow] = field(default_factory=dict)
    """Agents in a rate window now: their queued subtasks wait for the reset."""
    attempts: list[tuple[str, Attempt]] = field(default_factory=list)
    """(subtask key, attempt) of every recorded attempt: the usage figures."""
    agent_models: dict[str, str] = field(default_factory=dict)
    """Agent id -> the model its registration names."""

    def cost(self) -> CostSummary:
        """Tokens and cost in all, per subtask, per agent and per model (recorded attempts)."""
        return cost_summary(self.attempts, self.subtasks, self.agent_models)

    budget: BudgetFigures | None = None
    """Caps, spent and what starts next (``domain.budget``); None where not read."""

    @property
    def state(self) -> str:
        return self.workflow.status.value

    @property
    def progress_percent(self) -> float:
        if not self.subtasks:
            return 100.0 if self.state == "merged" else 0.0
        done = sum(s.status is SubtaskState.COMPLETED for s in self.subtasks)
        return round(100.0 * done / len(self.subtasks), 1)

    @property
    def current_stage(self) -> int | None:
        """1-based stage of the earliest subtask not yet completed; None when all are."""
        open_stages = [s.stage for s in self.subtasks if s.status is not SubtaskState.COMPLETED]
        return min(open_stages) + 1 if open_stages else None

    @property
    def target(self) -> dict[str, Any] | None:
        """Where the workflow merges, as settled at its start: ``repo`` (a path or a URL),
        ``base_branch`` and ``merge_policy``; None for a workflow that recorded no repository."""
        options = self.workflow.metadata.get("options") or {}
        if not options.get("repo"):
            return None
        return {
            "repo": options["repo"],
            "base_branch": options.get("base_branch"),
            "merge_policy": options.get("merge_policy") or "auto",
        }

    @property
    def waiting_for(self) -> str | None:
        """``approval`` (see :func:`waiting_for`), ``budget`` (its next attempt would cross a
        cap: ``taskorch budget`` raises it), else None."""
        if self.budget is not None and self.budget.waiting and self.state == "processing":
            return "budget"
        return waiting_for(self.workflow)

    @property
    def budget_line(self) -> str | None:
        """``waiting: budget (spent $X of $Y, next attempt ~$Z)`` while it waits for its budget."""
        return self.budget.line() if self.waiting_for == "budget" and self.budget else None

    @property
    def end_reason(self) -> str | None:
        """Why a failed or cancelled workflow ended (its result's reason, else the reason of the
        step that gave up, else the escalation's); None for any other state."""
        if self.state not in ("failed", "cancelled"):
            return None
        metadata = self.workflow.metadata
        escalation = metadata.get("escalation") or {}
        why = (self.workflow.result or {}).get("reason") or metadata.get("reason")
        return str(why or escalation.get("reason") or "") or None

    def keys(self, *states: SubtaskState) -> list[str]:
        return [s.key for s in self.subtasks if s.status in states]

    @property
    def zombie_subtasks(self) -> list[str]:
        return sorted({str(e.payload.get("key")) for e in self.events if e.kind == "task:zombie"})

    def assignments(self) -> dict[str, str]:
        """The agent chosen for each subtask at ``agent_assignment`` (the last round wins)."""
        chosen: dict[str, str] = {}
        for entry in self.history:
            picked = entry.metadata.get("assignments", {})
            chosen.update({str(key): str(agent) for key, agent in picked.items()})
        return chosen

    def _attempt(self, key: str, attempt: Attempt) -> dict[str, Any]:
        """One recorded attempt with its usage (``status --json``'s ``attempts``)."""
        subtask = next((s for s in self.subtasks if s.key == key), None)
        return {
            "subtask": key,
            "number": attempt.number,
            "agent": attempt.agent_id,
            "model": model_of(attempt, subtask, self.agent_models),
            "outcome": attempt.outcome.value,
            "error_class": attempt.error_class,
            "started_at": _iso(attempt.started_at),
            "ended_at": _iso(attempt.ended_at),
            "tokens_in": attempt.tokens_in,
            "tokens_out": attempt.tokens_out,
            "cost_usd": attempt.cost_usd,
        }

    def to_dict(self) -> dict[str, Any]:
        metadata = self.workflow.metadata
        assigned = self.assignments()
        cost = self.cost()
        return {
            "workflow_id": self.workflow.id,
            "task": {"id": self.task.id, "ref": self.task.ref, "title": self.task.title},
            "state": self.state,
            "waiting_for": self.waiting_for,
            "budget": self.budget.to_dict() if self.budget is not None else None,
            "target": self.target,
            "progress_percent": self.progress_percent,
            "current_stage": self.current_stage,
            "active_subtasks": [s.key for s in self.subtasks if s.status in _ACTIVE],
            "completed_subtasks": self.keys(SubtaskState.COMPLETED),
            "failed_subtasks": self.keys(SubtaskState.FAILED),
            "blocked_subtasks": self.keys(SubtaskState.BLOCKED),
            "zombie_subtasks": self.zombie_subtasks,
            "planner": metadata.get("planner"),
            "stages": metadata.get("stages"),
            "pull_request": metadata.get("pull_request"),
            "validation": metadata.get("validation"),
            "escalation": metadata.get("escalation"),
            "result": self.workflow.result,
            "start_time": _iso(self.workflow.start_time),
            "end_time": _iso(self.workflow.end_time),
            "cost": cost.to_dict(),
            "attempts": [self._attempt(key, a) for key, a in self.attempts],
            "subtasks": [
                {
                    "key": s.key,
                    "title": s.title,
                    "stage": s.stage + 1,
                    "status": s.status.value,
                    "agent": s.agent_id or assigned.get(s.key),
                    "attempts": s.attempts,
                    "quality": _quality(s),
                    "files": s.files_affected,
                    "error": s.error,
                    "waiting": self.waiting_reason(s),
                    "best_of": (s.result or {}).get("best_of"),
                    **_usage(cost.by_subtask.get(s.key)),
                }
                for s in self.subtasks
            ],
            "history": [
                {
                    "from": h.from_state.value if h.from_state else None,
                    "to": h.to_state.value,
                    "time": h.timestamp.isoformat(),
                    "metadata": _brief(h.metadata),
                }
                for h in self.history
            ],
        }

    def waiting_reason(self, subtask: Subtask) -> str | None:
        """Why a queued subtask has not started although it could: its agent's rate window."""
        window = self.windows.get(subtask.agent_id or "")
        if subtask.status is SubtaskState.QUEUED and window is not None:
            return f"waiting: {window.describe()}"
        return None


def waiting_for(workflow: Workflow) -> str | None:
    """``"approval"`` for a validated workflow held by the ``approve`` merge policy until someone
    approves or rejects it (the pipeline's merge step waits on this); else None."""
    options = workflow.metadata.get("options") or {}
    if (
        workflow.status is WorkflowState.VALIDATION_PASSED
        and options.get("merge_policy") == "approve"
        and not workflow.metadata.get("approval")
    ):
        return "approval"
    return None


def _usage(usage: Usage | None) -> dict[str, Any]:
    """A subtask's tokens and cost, summed over its recorded attempts."""
    figures = (usage or Usage()).to_dict()
    return {k: figures[k] for k in ("tokens_in", "tokens_out", "cost_usd")}


def _quality(subtask: Subtask) -> float | None:
    """The quality score of the subtask's last finished attempt (None before it has one)."""
    quality = (subtask.result or {}).get("quality")
    score = quality.get("score") if isinstance(quality, dict) else None
    return float(score) if isinstance(score, int | float) else None


def _iso(value: Any) -> str | None:
    return value.isoformat() if value is not None else None


def _brief(metadata: dict[str, Any]) -> dict[str, Any]:
    """History metadata without the bulky plan (it is in the workflow's metadata once)."""
    return {k: v for k, v in metadata.items() if k != "plan"}


_DEAD = {TaskStatus.FAILED: "failed", TaskStatus.CANCELLED: "was cancelled"}


@dataclass(frozen=True, slots=True)
class TaskHold:
    """Why a pending task has not started: dependencies that have not completed."""

    task_id: int
    blocked: bool
    """True when it cannot start as things stand: a dependency failed, was cancelled or does not
    exist (it starts once that dependency completes after all); False while it only waits for
    dependencies still pending or in progress."""
    reason: str
    """One line: ``cannot start: it depends on task-3, which failed`` or ``waits for task-2
    (processing)``."""

    def to_dict(self) -> dict[str, Any]:
        return {"blocked": self.blocked, "reason": self.reason}


def task_hold(task: Task, dependencies: Mapping[int, Task]) -> TaskHold | None:
    """Why the pending ``task`` cannot start yet, or None when it can (or is not pending);
    ``dependencies`` holds those of its dependencies that exist."""
    if task.status is not TaskStatus.PENDING:
        return None
    dead: list[str] = []
    waiting: list[str] = []
    for task_id in task.dependencies:
        found = dependencies.get(task_id)
        if found is None:
            dead.append(f"task-{task_id}, which does not exist")
        elif found.status in _DEAD:
            dead.append(f"{found.ref}, which {_DEAD[found.status]}")
        elif found.status is not TaskStatus.COMPLETED:
            waiting.append(f"{found.ref} ({found.status.value})")
    if dead:
        return TaskHold(task.id, True, "cannot start: it depends on " + " and ".join(dead))
    if waiting:
        return TaskHold(task.id, False, "waits for " + ", ".join(waiting))
    return None


async def task_holds(
    tasks: Iterable[Task], get_task: Callable[[int], Awaitable[Task]]
) -> dict[int, TaskHold]:
    """Task id -> why it has not started, for the pending ``tasks`` that cannot start yet;
    ``get_task`` looks up a dependency that is not among ``tasks``."""
    listed = list(tasks)
    known = {task.id: task for task in listed}
    holds: dict[int, TaskHold] = {}
    for task in listed:
        if task.status is not TaskStatus.PENDING:
            continue
        for task_id in task.dependencies:
            if task_id not in known:
                with contextlib.suppress(NotFoundError):
                    known[task_id] = await get_task(task_id)
        hold = task_hold(task, known)
        if hold is not None and not hold.blocked:
            hold = await _cycle_hold(task, known, get_task) or hold
        if hold is not None:
            holds[task.id] = hold
    return holds


async def _cycle_hold(
    task: Task, known: dict[int, Task], get_task: Callable[[int], Awaitable[Task]]
) -> TaskHold | None:
    """A pending task that waits, through pending tasks, for itself (rows written by SQL, or
    dependencies changed after the import checked them) would wait for ever: say so. The ring is
    named from its lowest id, so every task on it gives the same line (logged once)."""
    ring = await find_cycle(task.id, known, get_task)
    if ring is None:
        return None
    start = ring.index(min(ring))
    ordered = [*ring[start:], *ring[:start]]
    line = "dependency cycle: " + " -> ".join(task_ref(i) for i in [*ordered, ordered[0]])
    if task.id in ring:
        return TaskHold(task.id, True, line)
    return TaskHold(task.id, True, f"cannot start: it waits on a {line}")


async def find_cycle(
    start: int, known: dict[int, Task], get_task: Callable[[int], Awaitable[Task]]
) -> list[int] | None:
    """The first ring of pending tasks reachable from ``start`` through their dependencies, as
    the ids on it in order (without repeating the first); None when there is none. ``known``
    is filled with the tasks looked up on the way."""
    path: list[int] = []
    on_path: set[int] = set()
    done: set[int] = set()
    stack: list[tuple[int, Iterator[int]]] = []

    async def enter(task_id: int) -> bool:
        if task_id not in known:
            try:
                known[task_id] = await get_task(task_id)
            except NotFoundError:
                return False
        if known[task_id].status is not TaskStatus.PENDING:
            return False
        stack.append((task_id, iter(known[task_id].dependencies)))
        path.append(task_id)
        on_path.add(task_id)
        return True

    await enter(start)
    while stack:
        node, rest = stack[-1]
        following = next(rest, None)
        if following is None:
            stack.pop()
            path.pop()
            on_path.discard(node)
            done.add(node)
        elif following in on_path:
            return path[path.index(following) :]
        elif following not in done:
            await enter(following)
    return None
