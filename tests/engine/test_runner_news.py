"""The run loop advances the workflows an event named, not every workflow on every event (that
made a batch of N workflows cost N^2 steps); a quiet interval still advances them all."""

from __future__ import annotations

import asyncio

import pytest

from taskorch.engine.runner import _news


async def test_news_names_the_workflows_of_a_burst_of_events() -> None:
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    events: list[dict[str, object]] = [
        {"workflow_id": "wf-1", "event": "subtask:completed"},
        {"workflow_id": "wf-2", "event": "task:started"},  # not news
        {"workflow_id": "wf-9", "event": "subtask:completed"},  # not watched
        {"workflow_id": "wf-3", "event": "subtask:failed"},
    ]
    for event in events:
        inbox.put_nowait(event)
    watched = {"wf-1", "wf-2", "wf-3", "wf-4"}
    assert await _news(inbox, watched, 5.0, None) == {"wf-1", "wf-3"}


async def test_a_quiet_interval_names_none() -> None:
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    assert await _news(inbox, {"wf-1"}, 0.01, None) == set()


async def test_a_cancel_that_comes_with_an_event_is_not_dropped() -> None:
    """Ctrl-C cancels the run's task; an event that arrives in the same moment must not swallow
    the cancel (``asyncio.wait_for`` on Python 3.11 returned the event instead, and the run went
    on to ``merged`` with exit code 0)."""
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    task = asyncio.create_task(_news(inbox, {"wf"}, 5.0, None))
    await asyncio.sleep(0)  # waiting for news
    inbox.put_nowait({"workflow_id": "wf", "event": "task:complete"})
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
