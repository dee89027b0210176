"""The two state machines: a workflow (one task carried through the pipeline) and a subtask.

The enum values are the stored strings. ``WORKFLOW_TRANSITIONS`` is the pipeline drawn in DESIGN.md
and nothing else; every writer goes through :func:`check_workflow_transition` or
:func:`check_subtask_transition` before it touches the store.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import TypeVar

from taskorch.domain.errors import InvalidTransitionError

_E = TypeVar("_E", bound=StrEnum)


class WorkflowState(StrEnum):
    PENDING = "pending"
    """Created from a task row; nothing has run yet."""
    NLP_PARSING = "nlp_parsing"
    """The planner reads the requirement into actionable items."""
    TASK_DECOMPOSITION = "task_decomposition"
    """The items become subtasks (one for a simple task)."""
    DEPENDENCY_RESOLUTION = "dependency_resolution"
    """The subtasks' DAG is validated and cut into stages."""
    AGENT_ASSIGNMENT = "agent_assignment"
    """Every subtask gets an agent."""
    PROCESSING = "processing"
    """The runtime executes the DAG."""
    PR_CREATED = "pr_created"
    """Subtask branches are merged into the workflow branch and a pull request exists."""
    VALIDATION_RUNNING = "validation_running"
    """Tests and working-spec checks run on the workflow branch."""
    VALIDATION_FAILED = "validation_failed"
    """Validation failed; a fix-up round goes back to processing."""
    VALIDATION_PASSED = "validation_passed"
    """Validation passed; the workflow branch may be merged."""
    MERGED = "merged"
    """The workflow branch landed on the base branch. Terminal."""
    FAILED = "failed"
    """The workflow gave up. Terminal."""
    CANCELLED = "cancelled"
    """A user cancelled the workflow. Terminal."""


class SubtaskState(StrEnum):
    PENDING = "pending"
    """Waiting for its dependencies."""
    QUEUED = "queued"
    """Ready to run (possibly not before ``run_after``)."""
    ASSIGNED = "assigned"
    """Claimed by a worker for an agent; the attempt is about to start."""
    RUNNING = "running"
    """An attempt runs under a lease."""
    COMPLETED = "completed"
    """Done (for code-changing subtasks: merged into the workflow branch). Terminal."""
    FAILED = "failed"
    """The last attempt failed and no automatic retry is left (a user or fix-up may requeue it)."""
    CANCELLED = "cancelled"
    """Its workflow was cancelled. Terminal."""
    BLOCKED = "blocked"
    """Cannot proceed without a decision: a dependency failed, or the agent needs human input."""


_W = WorkflowState
_PRE_PR = (
    _W.PENDING,
    _W.NLP_PARSING,
    _W.TASK_DECOMPOSITION,
    _W.DEPENDENCY_RESOLUTION,
    _W.AGENT_ASSIGNMENT,
    _W.PROCESSING,
)

WORKFLOW_TRANSITIONS: Mapping[WorkflowState, frozenset[WorkflowState]] = {
    _W.PENDING: frozenset({_W.NLP_PARSING, _W.CANCELLED}),
    _W.NLP_PARSING: frozenset({_W.TASK_DECOMPOSITION, _W.CANCELLED}),
    _W.TASK_DECOMPOSITION: frozenset({_W.DEPENDENCY_RESOLUTION, _W.CANCELLED}),
    _W.DEPENDENCY_RESOLUTION: frozenset({_W.AGENT_ASSIGNMENT, _W.CANCELLED}),
    _W.AGENT_ASSIGNMENT: frozenset({_W.PROCESSING, _W.CANCELLED}),
    _W.PROCESSING: frozenset({_W.PR_CREATED, _W.FAILED, _W.CANCELLED}),
    _W.PR_CREATED: frozenset({_W.VALIDATION_RUNNING, _W.CANCELLED}),
    _W.VALIDATION_RUNNING: frozenset({_W.VALIDATION_PASSED, _W.VALIDATION_FAILED, _W.CANCELLED}),
    _W.VALIDATION_FAILED: frozenset({_W.PROCESSING, _W.CANCELLED}),
    # validation_failed: the final merge conflicted (the base moved); failed: rejected on review.
    _W.VALIDATION_PASSED: frozenset({_W.MERGED, _W.VALIDATION_FAILED, _W.FAILED, _W.CANCELLED}),
    _W.MERGED: frozenset(),
    _W.FAILED: frozenset(),
    _W.CANCELLED: frozenset(),
}
"""DESIGN.md's pipeline: the happy path, validation_failed -> processing, processing -> failed;
and, so that no workflow is left in a dead end, cancelled from every non-terminal state,
validation_passed -> validation_failed (the final merge conflicted: a fix-up round follows) and
validation_passed -> failed (rejected on review)."""

WORKFLOW_TERMINAL: frozenset[WorkflowState] = frozenset(
    s for s, targets in WORKFLOW_TRANSITIONS.items() if not targets
)
WORKFLOW_CANCELLABLE: frozenset[WorkflowState] = frozenset(
    s for s, targets in WORKFLOW_TRANSITIONS.items() if _W.CANCELLED in targets
)
WORKFLOW_PRE_PR: frozenset[WorkflowState] = frozenset(_PRE_PR)

_S = SubtaskState
SUBTASK_TRANSITIONS: Mapping[SubtaskState, frozenset[SubtaskState]] = {
    _S.PENDING: frozenset({_S.QUEUED, _S.BLOCKED, _S.CANCELLED}),
    _S.QUEUED: frozenset({_S.ASSIGNED, _S.BLOCKED, _S.CANCELLED}),
    # assigned -> queued: the worker released its claim (shutdown) before the attempt started.
    _S.ASSIGNED: frozenset({_S.RUNNING, _S.QUEUED, _S.BLOCKED, _S.CANCELLED}),
    # running -> queued: a retry (with run_after) or a zombie requeue; running -> blocked: the
    # agent waits for human input, or its merge conflicted and needs a decision.
    _S.RUNNING: frozenset({_S.COMPLETED, _S.QUEUED, _S.FAILED, _S.BLOCKED, _S.CANCELLED}),
    # failed -> blocked: escalated once its retries ran out; -> queued: a fix-up or manual retry.
    _S.FAILED: frozenset({_S.BLOCKED, _S.QUEUED, _S.CANCELLED}),
    # blocked -> queued: the failed dependency was retried and completed.
    _S.BLOCKED: frozenset({_S.QUEUED, _S.CANCELLED}),
    _S.COMPLETED: frozenset(),
    _S.CANCELLED: frozenset(),
}

SUBTASK_TERMINAL: frozenset[SubtaskState] = frozenset(
    s for s, targets in SUBTASK_TRANSITIONS.items() if not targets
)
SUBTASK_ACTIVE: frozenset[SubtaskState] = frozenset({_S.ASSIGNED, _S.RUNNING})


def can_transition_workflow(from_state: WorkflowState, to_state: WorkflowState) -> bool:
    return to_state in WORKFLOW_TRANSITIONS[from_state]


def check_workflow_transition(
    from_state: str, to_state: str
) -> tuple[WorkflowState, WorkflowState]:
    """Return both states as enums, or raise :class:`InvalidTransitionError` naming them."""
    source, target = _parse(WorkflowState, from_state, to_state, "workflow")
    if not can_transition_workflow(source, target):
        raise InvalidTransitionError("workflow", source, target)
    return source, target


def can_transition_subtask(from_state: SubtaskState, to_state: SubtaskState) -> bool:
    return to_state in SUBTASK_TRANSITIONS[from_state]


def check_subtask_transition(from_state: str, to_state: str) -> tuple[SubtaskState, SubtaskState]:
    source, target = _parse(SubtaskState, from_state, to_state, "subtask")
    if not can_transition_subtask(source, target):
        raise InvalidTransitionError("subtask", source, target)
    return source, target


def _parse(enum: type[_E], from_state: str, to_state: str, kind: str) -> tuple[_E, _E]:
    try:
        return enum(from_state), enum(to_state)
    except ValueError:
        raise InvalidTransitionError(kind, from_state, to_state) from None
