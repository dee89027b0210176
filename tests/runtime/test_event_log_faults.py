"""The event log is a record for people, not state: when it cannot be written (a full disk, a
folder gone) the worker and the pipeline carry on, and the failure is said once."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from taskorch.runtime.events import EventBus
from taskorch.store.queue import QueueEvent


async def test_an_event_log_that_cannot_be_written_stops_nothing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the log folder should be")
    bus = EventBus(jsonl_path=blocked / "events.jsonl", task_log_dir=blocked / "tasks")
    inbox = bus.subscribe()
    event = QueueEvent("task:zombie", "wf-1", 1, {"key": "a"})
    with caplog.at_level(logging.WARNING, logger="taskorch.runtime.events"):
        for _ in range(3):
            await bus.publish([event])
            await bus.write_task_events([event])
    assert inbox.qsize() == 3  # subscribers still hear everything
    warnings = [r.getMessage() for r in caplog.records if r.name == "taskorch.runtime.events"]
    assert len(warnings) == 1, warnings
    assert "cannot write the event log" in warnings[0]
