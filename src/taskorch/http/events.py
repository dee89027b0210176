"""The server-sent events stream: every workflow and subtask event the engine publishes in this
process (``workflow:transition``, ``task:started``, ``task:complete``, ...), as it happens.

Each message is ``event: <kind>`` with the event as JSON in ``data:``; a comment line every
``KEEPALIVE_S`` keeps proxies from closing an idle stream. The stream ends when the server stops.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

from taskorch.engine.daemon import next_event
from taskorch.runtime.events import EventBus

KEEPALIVE_S = 15.0
RETRY_MS = 2000


async def event_stream(
    bus: EventBus,
    stopping: asyncio.Event,
    *,
    workflow_id: str | None = None,
    max_events: int | None = None,
    keepalive_s: float = KEEPALIVE_S,
) -> AsyncIterator[str]:
    inbox = bus.subscribe(maxsize=1000)
    sent = 0
    try:
        yield f"retry: {RETRY_MS}\n: taskorch events\n\n"
        while not stopping.is_set() and (max_events is None or sent < max_events):
            event = await next_event(inbox, stopping, keepalive_s)
            if event is None:
                if not stopping.is_set():
                    yield ": keepalive\n\n"
                continue
            if workflow_id is not None and event.get("workflow_id") != workflow_id:
                continue
            sent += 1
            yield format_event(event, sent)
    finally:
        bus.unsubscribe(inbox)


def format_event(event: dict[str, Any], number: int) -> str:
    kind = str(event.get("event", "message")).replace("\n", " ")
    data = json.dumps(event, default=str, separators=(",", ":"))
    return f"id: {number}\nevent: {kind}\ndata: {data}\n\n"
