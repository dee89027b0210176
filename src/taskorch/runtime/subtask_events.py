"""The subtask-level events of the specification's orchestrator with validation, beside the
workflow's transitions: each subtask is ``submitted``, ``validated``, ``routed`` (to an agent,
with its score), ``assigned`` (claimed by a worker for that agent), ``started``, then
``completed``, ``retry`` or ``failed``.

The queue already publishes ``task:started``, ``task:complete``, ``task:retry`` and
``task:failed`` (names kept: scripts and the dashboard read them); this module builds the ones
the pipeline and the worker add: ``task:submitted`` (the plan's subtask stored),
``task:validated`` (its dependencies exist and form no cycle: the resolver accepted the plan),
``task:routed`` and ``task:assigned``. ``assigned`` is not a stored state (a claim goes
queued -> running in one write, so the hot path pays one write per attempt); the event is how it
is seen.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from taskorch.agents.routing import Choice
from taskorch.domain.models import Subtask
from taskorch.store.queue import QueueEvent


def planned_events(subtasks: Sequence[Subtask]) -> list[QueueEvent]:
    """``task:submitted`` then ``task:validated`` for each subtask of a resolved plan."""
    submitted = [
        QueueEvent(
            "task:submitted",
            s.workflow_id,
            s.id,
            {
                "key": s.key,
                "title": s.title,
                "domain": s.assigned_to.value,
                "worker_type": s.worker_type.value,
                "dependencies": list(s.dependencies),
            },
        )
        for s in subtasks
    ]
    validated = [
        QueueEvent(
            "task:validated",
            s.workflow_id,
            s.id,
            {"key": s.key, "stage": s.stage + 1, "checks": ["dependencies exist", "no cycle"]},
        )
        for s in subtasks
    ]
    return submitted + validated


def routed_events(subtasks: Sequence[Subtask], choices: Mapping[int, Choice]) -> list[QueueEvent]:
    """``task:routed`` with the agent and its score (``agent`` None: it waits, and why)."""
    events = []
    for sub in subtasks:
        choice = choices.get(sub.id)
        if choice is None:
            continue
        events.append(
            QueueEvent(
                "task:routed",
                sub.workflow_id,
                sub.id,
                {
                    "key": sub.key,
                    "agent": choice.agent_id,
                    "score": choice.score,
                    "reason": choice.reason,
                },
            )
        )
    return events


def assigned_events(claimed: Sequence[Subtask], worker: str) -> list[QueueEvent]:
    """``task:assigned``: a worker claimed the subtask for its agent; the attempt starts."""
    return [
        QueueEvent(
            "task:assigned",
            s.workflow_id,
            s.id,
            {"key": s.key, "attempt": s.attempts, "agent": s.agent_id, "worker": worker},
        )
        for s in claimed
    ]
