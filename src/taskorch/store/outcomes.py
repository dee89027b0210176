"""What the queue reports and is told: events about subtasks and the outcomes of attempts, and
the storing of the events that need attention.

Shared by :mod:`taskorch.store.queue` (the general path) and :mod:`taskorch.store.completions`
(the hot path for batches of completed attempts).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from taskorch.domain.models import JSONDict, Subtask
from taskorch.store.connector import Row, Transaction

ROUTINE_EVENTS = frozenset({"task:enqueued", "task:started", "task:complete"})
"""Per-subtask lifecycle events that the subtask rows and attempts already record; they are
published (in-process, events.jsonl, task logs) but not stored again in the events table, which
keeps what needs attention: retries, failures, zombies, blocks, cancellations, escalations."""

OutcomeKind = Literal["completed", "retry", "failed", "blocked"]


@dataclass(frozen=True, slots=True)
class QueueEvent:
    """Something that happened to a subtask or workflow; stored and then published."""

    kind: str
    workflow_id: str | None
    subtask_id: int | None
    payload: JSONDict = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one attempt ended, as the worker reports it to :meth:`SubtaskQueue.settle`."""

    subtask: Subtask
    kind: OutcomeKind
    started_at: datetime
    ended_at: datetime
    agent_id: str | None = None
    result: JSONDict | None = None
    error_class: str | None = None
    error_message: str | None = None
    run_after: datetime | None = None
    next_agent_id: str | None = None
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    interrupted: bool = False
    """Ended by the host, not the agent: the retry does not use up the agent's tries."""

    @property
    def attempt_outcome(self) -> str:
        if self.kind == "completed":
            return "succeeded"
        return "timeout" if self.error_class == "timeout" else "failed"


def row_event(kind: str, row: Row, **payload: Any) -> QueueEvent:
    return QueueEvent(kind, row["workflow_id"], int(row["id"]), {"key": row["key"], **payload})


def outcome_event(kind: str, outcome: Outcome) -> QueueEvent:
    sub = outcome.subtask
    payload: JSONDict = {"key": sub.key, "attempt": sub.attempts, "agent": outcome.agent_id}
    if outcome.error_class:
        payload |= {"error_class": outcome.error_class, "error": outcome.error_message}
    for usage in ("tokens_in", "tokens_out", "cost_usd"):
        if (value := getattr(outcome, usage)) is not None:
            payload[usage] = value
    quality = (outcome.result or {}).get("quality")
    if isinstance(quality, dict) and "score" in quality:
        payload["quality"] = quality["score"]
    if outcome.run_after:
        payload["run_after"] = outcome.run_after.isoformat()
    if outcome.next_agent_id != sub.agent_id and outcome.kind == "retry":
        payload["reassigned_to"] = outcome.next_agent_id
    return QueueEvent(kind, sub.workflow_id, sub.id, payload)


def started_events(claimed: list[Subtask], worker: str) -> list[QueueEvent]:
    return [
        QueueEvent(
            "task:started",
            s.workflow_id,
            s.id,
            {"key": s.key, "attempt": s.attempts, "worker": worker},
        )
        for s in claimed
    ]


async def record_events(tx: Transaction, events: Sequence[QueueEvent], now: datetime) -> None:
    """Store ``events`` in the events table, less the routine ones (:data:`ROUTINE_EVENTS`)."""
    await tx.bulk(
        "record_event",
        [
            {
                "kind": e.kind,
                "workflow_id": e.workflow_id,
                "subtask_id": e.subtask_id,
                "payload": e.payload,
                "now": now,
            }
            for e in events
            if e.kind not in ROUTINE_EVENTS
        ],
    )
