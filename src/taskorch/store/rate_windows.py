"""The ``agent_windows`` table: rate windows every worker on every host reads before claiming."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from taskorch.domain.rate_window import RateWindow
from taskorch.store.connector import Connector


class RateWindowStore:
    def __init__(self, connector: Connector) -> None:
        self.connector = connector

    async def open_at(self, now: datetime) -> dict[str, RateWindow]:
        """The windows not yet over at ``now``, by agent id."""
        rows = await self.connector.read("rate_windows_open", {"now": now})
        return {str(row["agent_id"]): _window(row) for row in rows}

    async def get(self, agent_id: str) -> RateWindow | None:
        """The agent's last window, over or not (its strikes count the limits in a row)."""
        row = await self.connector.read_one("rate_window_get", {"agent_id": agent_id})
        return _window(row) if row is not None else None

    async def put(self, window: RateWindow, now: datetime) -> None:
        params = {
            "agent_id": window.agent_id,
            "until": window.until,
            "strikes": window.strikes,
            "source": window.source,
            "now": now,
        }
        async with self.connector.transaction() as tx:
            await tx.execute("rate_window_set", params)


def _window(row: Mapping[str, Any]) -> RateWindow:
    return RateWindow(
        str(row["agent_id"]), to_datetime(row["until"]), int(row["strikes"]), str(row["source"])
    )


def to_datetime(value: Any) -> datetime:
    """A stored time as an aware UTC datetime (SQLite keeps ISO text, PostgreSQL a timestamp)."""
    if isinstance(value, datetime):
        return value.astimezone(UTC)
    return datetime.fromisoformat(str(value)).astimezone(UTC)
