"""Where runtime events go after the store has recorded them: subscribers in this process, the
``events.jsonl`` file, and one JSON log per subtask under ``logs/tasks``.

The task logs (each read, then rewritten) are written in a thread. A burst of events is appended
to ``events.jsonl`` in the event loop's thread: a few lines added to a local file (no fsync) cost
about a quarter of a hop to a thread and back, and a one-subtask workflow publishes a dozen such
bursts; a large burst still goes to a thread. They are a record for people, not state: one that
fails (a full disk) is logged, once until they work again, and never stops the worker or the
pipeline.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskorch.runtime import tracing
from taskorch.runtime.logs import events_log, log_events
from taskorch.store.queue import Outcome, QueueEvent

log = logging.getLogger(__name__)

INLINE_RECORDS = 32
"""Bursts of up to this many events are appended to ``events.jsonl`` without a thread."""


_WRITTEN_HERE = 8
"""Lines appended in the loop's thread up to this many (a hop to a thread cost more CPU than a
few small appends); a batch of a thousand outcomes goes to a thread."""


class EventBus:
    """Fan-out of events to in-process subscribers (the dashboard's SSE stream, monitors, tests)."""

    def __init__(self, *, jsonl_path: Path | None = None, task_log_dir: Path | None = None) -> None:
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self.jsonl_path = jsonl_path
        self.task_log_dir = task_log_dir
        self._write_failing = False

    @property
    def listened(self) -> bool:
        """Whether published events reach anyone (subscribers, the events file, the log,
        tracing): a worker builds the routine ones (assigned, started, enqueued) only then."""
        return bool(
            self._subscribers
            or self.jsonl_path is not None
            or events_log.isEnabledFor(logging.INFO)
            or tracing.enabled()
        )

    def subscribe(self, maxsize: int = 10_000) -> asyncio.Queue[dict[str, Any]]:
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        self._subscribers.discard(queue)

    async def publish(self, events: Sequence[QueueEvent]) -> None:
        if not events:
            return
        tracing.trace_events(events)  # returns at once when tracing is off
        if not (self._subscribers or self.jsonl_path or events_log.isEnabledFor(logging.INFO)):
            return  # nobody reads them: no records built
        records = _records(events, datetime.now(UTC).isoformat())
        log_events(records)
        for queue in list(self._subscribers):
            for record in records:
                if queue.full():
                    break  # a subscriber that falls far behind loses events, not the worker
                queue.put_nowait(record)
        if self.jsonl_path is None:
            return
        await self._write(_append_lines, self.jsonl_path, records, here_up_to=INLINE_RECORDS)

    async def write_task_logs(self, outcomes: Sequence[Outcome]) -> None:
        if self.task_log_dir is None or not outcomes:
            return
        await self._write(_write_task_logs, self.task_log_dir, list(outcomes))

    async def write_task_events(self, events: Sequence[QueueEvent]) -> None:
        """Add zombie, cancel and block events to the subtasks' logs."""
        if self.task_log_dir is None or not events:
            return
        await self._write(_write_task_events, self.task_log_dir, list(events))

    async def _write(
        self,
        write: Callable[[Path, list[Any]], None],
        path: Path,
        items: list[Any],
        *,
        here_up_to: int = _WRITTEN_HERE,
    ) -> None:
        """``write(path, items)``: in the loop's thread for up to ``here_up_to`` items, else in
        a thread; a failure is said once, until a write succeeds again."""
        try:
            if len(items) <= here_up_to:
                write(path, items)
            else:
                await asyncio.to_thread(write, path, items)
        except OSError as exc:
            self._failed(exc, path)
            return
        self._write_failing = False

    def _failed(self, exc: OSError, path: Path) -> None:
        if not self._write_failing:
            log.warning(
                "cannot write the event log under %s (%s); carrying on without it until "
                "it can be written again",
                path.parent,
                exc.strerror or exc,
            )
        self._write_failing = True


def _records(events: Sequence[QueueEvent], now: str) -> list[dict[str, Any]]:
    return [
        {
            "event": e.kind,
            "time": now,
            "workflow_id": e.workflow_id,
            "subtask_id": e.subtask_id,
            **e.payload,
        }
        for e in events
    ]


def _write_task_events(folder: Path, events: list[QueueEvent]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for event in events:
        key = event.payload.get("key")
        if key is None or event.workflow_id is None:
            continue
        path = folder / f"{event.workflow_id}-{key}.json"
        log = _read_log(path) or {"taskId": key, "workflowId": event.workflow_id}
        log.setdefault("events", []).append(
            {"event": event.kind, "time": datetime.now(UTC).isoformat(), **event.payload}
        )
        log["status"] = _EVENT_STATUS.get(event.kind, log.get("status"))
        path.write_text(json.dumps(log, indent=2, default=str))


_EVENT_STATUS = {
    "task:zombie": "requeued",
    "task:released": "requeued",
    "task:cancelled": "cancelled",
    "task:blocked": "blocked",
}


def _read_log(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _append_lines(path: Path, records: list[dict[str, Any]]) -> None:
    text = "".join(json.dumps(r, default=str) + "\n" for r in records)
    try:
        handle = path.open("a", encoding="utf-8")
    except FileNotFoundError:  # (its folder is made once, not looked at on every append)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle = path.open("a", encoding="utf-8")
    with handle:
        handle.write(text)


def _write_task_logs(folder: Path, outcomes: list[Outcome]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    for outcome in outcomes:
        sub = outcome.subtask
        path = folder / f"{sub.workflow_id}-{sub.key}.json"
        previous = _read_log(path) or {}
        attempts: list[dict[str, Any]] = previous.get("attempts", [])
        attempts.append(_attempt_entry(outcome))
        log = {
            **previous,
            "taskId": sub.key,
            "workflowId": sub.workflow_id,
            "type": sub.worker_type.value,
            "action": sub.title,
            "status": _status(outcome),
            "startTime": outcome.started_at.isoformat(),
            "endTime": outcome.ended_at.isoformat(),
            "dependencies": sub.dependencies,
            "result": {
                "success": outcome.kind == "completed",
                "output": (outcome.result or {}).get("output", outcome.error_message),
            },
            "attempts": attempts,
        }
        path.write_text(json.dumps(log, indent=2, default=str))


def _status(outcome: Outcome) -> str:
    return {
        "completed": "completed",
        "retry": "retrying",
        "failed": "failed",
        "blocked": "blocked",
    }[outcome.kind]


def _attempt_entry(outcome: Outcome) -> dict[str, Any]:
    return {
        "attempt": outcome.subtask.attempts,
        "agent": outcome.agent_id,
        "outcome": outcome.attempt_outcome,
        "errorClass": outcome.error_class,
        "error": outcome.error_message,
        "startTime": outcome.started_at.isoformat(),
        "endTime": outcome.ended_at.isoformat(),
        "runAfter": outcome.run_after.isoformat() if outcome.run_after else None,
        "quality": _quality(outcome),
    }


def _quality(outcome: Outcome) -> float:
    """The attempt's quality score (a retried attempt failed: 0)."""
    quality = (outcome.result or {}).get("quality") if outcome.kind != "retry" else None
    return float(quality["score"]) if isinstance(quality, dict) and "score" in quality else 0.0
