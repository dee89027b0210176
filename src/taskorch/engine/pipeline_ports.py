"""What the pipeline is handed and calls out to: a planner, a code delivery and a router.

The pipeline decides when; these do the work (``engine/delivery.py`` is the delivery in git,
``engine/agents.py`` the router). Their shapes live here, apart from the pipeline's steps, so that
each step module can name them without importing the pipeline.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from taskorch.agents.routing import Choice
from taskorch.domain.models import JSONDict, Subtask, Task, Workflow
from taskorch.domain.plan import Plan

Planner = Callable[[str, str | None, str], Awaitable[tuple[Plan, str]]]
"""(requirement, context, task ref) -> (plan, which planner made it)."""


@dataclass(frozen=True, slots=True)
class ValidationOutcome:
    passed: bool
    summary: str
    log: str = ""
    findings: list[str] = field(default_factory=list)
    fix_instructions: str = ""
    base_conflicts: list[str] = field(default_factory=list)
    """Files where the workflow branch conflicts with the base branch: the fix-up merges it in."""


class Delivery(Protocol):
    """Branches, pull request, validation and merge for one workflow."""

    async def target(self, task: Task, options: JSONDict) -> JSONDict:
        """``options`` with where the work goes settled (repository, base branch, merge policy)
        before the workflow starts; a one-line error when it cannot be reached."""
        ...

    async def verify(self, workflow: Workflow, subtasks: Sequence[Subtask]) -> dict[str, str]:
        """Subtask key -> reason, for completed subtasks whose work git does not show."""
        ...

    async def prepare(self, workflow: Workflow, plan: Plan) -> Plan:
        """Before subtasks are stored: e.g. serialise subtasks whose files overlap."""
        ...

    async def open_pull_request(
        self, workflow: Workflow, subtasks: Sequence[Subtask]
    ) -> JSONDict: ...

    async def validate(
        self, workflow: Workflow, subtasks: Sequence[Subtask]
    ) -> ValidationOutcome: ...

    async def merge(self, workflow: Workflow) -> JSONDict: ...

    async def cleanup(self, workflow: Workflow, *, cancelled: bool) -> None: ...


class Router(Protocol):
    """Routing of a workflow's subtasks to registered agents (see ``engine/agents.py``)."""

    waiting_agent: str
    """``agent_id`` of a subtask that no agent can take yet (no worker claims it)."""
    wait_timeout_s: float
    """How long a subtask may wait for a capable agent before its workflow fails."""

    async def route(self, mode: str, subtasks: Sequence[Subtask]) -> dict[int, Choice]:
        """Choose and store an agent for each subtask (by subtask id); ``mode`` is ``auto``
        (any registered agent) or one agent's name."""
        ...
