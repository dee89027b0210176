"""The rows ``record_attempt`` stores, one per ended attempt: as its worker reported it, as a lost
lease ended it (a zombie), or as a worker stopped it before it ended (cancelled)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from taskorch.domain.models import Subtask
from taskorch.store.connector import Row
from taskorch.store.outcomes import Outcome


def attempt_params(outcome: Outcome, worker: str) -> dict[str, Any]:
    return {
        "subtask_id": outcome.subtask.id,
        "number": outcome.subtask.attempts,
        "agent_id": outcome.agent_id,
        "worker_id": worker,
        "started_at": outcome.started_at,
        "ended_at": outcome.ended_at,
        "outcome": outcome.attempt_outcome,
        "error_class": outcome.error_class,
        "error_message": outcome.error_message,
        "tokens_in": outcome.tokens_in,
        "tokens_out": outcome.tokens_out,
        "cost_usd": outcome.cost_usd,
    }


def zombie_attempt(row: Row, now: datetime) -> dict[str, Any]:
    return {
        "subtask_id": row["id"],
        "number": row["attempts"],
        "agent_id": row["agent_id"],
        "worker_id": None,
        "started_at": now,
        "ended_at": now,
        "outcome": "zombie",
        "error_class": "zombie",
        "error_message": row["error"],
        "tokens_in": None,
        "tokens_out": None,
        "cost_usd": None,
    }


def stopped_attempts(
    worker: str, attempts: Sequence[tuple[Subtask, datetime]], now: datetime, why: str
) -> list[dict[str, Any]]:
    """Attempt rows for attempts a worker ended before they did (recorded as cancelled)."""
    return [
        {
            "subtask_id": s.id,
            "number": s.attempts,
            "agent_id": s.agent_id,
            "worker_id": worker,
            "started_at": started,
            "ended_at": now,
            "outcome": "cancelled",
            "error_class": None,
            "error_message": why,
            "tokens_in": None,
            "tokens_out": None,
            "cost_usd": None,
        }
        for s, started in attempts
    ]
