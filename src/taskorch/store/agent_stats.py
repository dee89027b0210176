"""What the registry needs from the runtime's records: each agent's track record and load, and
the routing decision written onto a subtask.

The track record is derived from the ``attempts`` table with one aggregate query, never kept as
counters: the worker's hot path already records every attempt (agent, start, end, outcome, error
class) and writes nothing more for the registry.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from taskorch.store.connector import Connector
from taskorch.store.store import Clock, utc_now

LAST_ERROR_CHARS = 300


@dataclass(frozen=True, slots=True)
class TrackRecord:
    """An agent's finished attempts (cancelled ones left out)."""

    attempts: int = 0
    successes: int = 0
    mean_s: float | None = None
    p95_s: float | None = None
    last_error: str | None = None
    cost_usd: float = 0.0
    """What the attempts that reported a cost spent, in all."""
    costed: int = 0
    """How many attempts reported a cost."""

    @property
    def cost_per_success(self) -> float | None:
        """Spent per successful attempt (failures' cost included); None: no cost reported."""
        if not self.costed:
            return None
        return self.cost_usd / max(self.successes, 1)

    @property
    def failures(self) -> int:
        return self.attempts - self.successes

    @property
    def success_rate(self) -> float | None:
        return self.successes / self.attempts if self.attempts else None

    def to_json(self) -> dict[str, Any]:
        return {
            "attempts": self.attempts,
            "successes": self.successes,
            "success_rate": self.success_rate,
            "mean_s": self.mean_s,
            "p95_s": self.p95_s,
            "last_error": self.last_error,
            "cost_usd": round(self.cost_usd, 6),
            "cost_per_success_usd": (
                round(self.cost_per_success, 6) if self.cost_per_success is not None else None
            ),
        }


@dataclass(frozen=True, slots=True)
class Usage:
    """What an agent's finished attempts spent (as reported) and took, in all."""

    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    total_s: float = 0.0


@dataclass(frozen=True, slots=True)
class RoutingWrite:
    """Where a subtask goes (``agent_id``; None while it waits) and why it waits (``note``)."""

    subtask_id: int
    agent_id: str | None
    note: str | None = None


class AgentStats:
    def __init__(self, connector: Connector, *, clock: Clock = utc_now) -> None:
        self.connector = connector
        self._clock = clock

    async def track_records(self) -> dict[str, TrackRecord]:
        rows = await self.connector.read("agent_track_records")
        return {str(row["agent_id"]): _record(row) for row in rows}

    async def usage(self) -> dict[str, Usage]:
        rows = await self.connector.read("agent_usage")
        return {
            str(row["agent_id"]): Usage(
                int(row["tokens_in"]),
                int(row["tokens_out"]),
                round(float(row["cost_usd"]), 6),
                round(float(row["total_s"]), 3),
            )
            for row in rows
        }

    async def model_usage(self) -> dict[str | None, Usage]:
        """Tokens and cost of every finished attempt by agent (None: unassigned subtasks)."""
        rows = await self.connector.read("agent_model_usage")
        return {
            (str(row["agent_id"]) if row["agent_id"] is not None else None): Usage(
                int(row["tokens_in"]), int(row["tokens_out"]), round(float(row["cost_usd"]), 6)
            )
            for row in rows
        }

    async def load(self) -> dict[str, int]:
        """Attempts running now, by agent."""
        rows = await self.connector.read("agent_load")
        return {str(row["agent_id"]): int(row["active"]) for row in rows}

    async def route(self, writes: Iterable[RoutingWrite]) -> None:
        """Store routing decisions; subtasks already running are left alone."""
        params = [
            {"id": w.subtask_id, "agent_id": w.agent_id, "note": w.note, "now": self._clock()}
            for w in writes
        ]
        if not params:
            return
        async with self.connector.transaction() as tx:
            await tx.executemany("route_subtask", params)


def _record(row: Any) -> TrackRecord:
    last_error = row["last_error"]
    return TrackRecord(
        attempts=int(row["attempts"]),
        successes=int(row["successes"] or 0),
        mean_s=_seconds(row["mean_s"]),
        p95_s=_seconds(row["p95_s"]),
        last_error=str(last_error)[:LAST_ERROR_CHARS] if last_error else None,
        cost_usd=float(row["cost_usd"] or 0.0),
        costed=int(row["costed"] or 0),
    )


def _seconds(value: Any) -> float | None:
    return round(float(value), 3) if value is not None else None
