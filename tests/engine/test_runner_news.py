"""The run loop advances the workflows an event named, not every workflow on every event (that
made a batch of N workflows cost N^2 steps); a quiet interval still advances them all."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import cast

import pytest

from taskorch.domain.states import WorkflowState
from taskorch.engine.pipeline import Pipeline
from taskorch.engine.runner import _news, drive
from taskorch.runtime.events import EventBus


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


async def test_a_workflows_own_steps_are_not_news() -> None:
    """The events a step raises on the way to waiting (its moves, its subtasks made, routed,
    queued, claimed) advanced the workflow once more for nothing; a subtask's end is news, and
    so is a move that ends the workflow (a cancel from elsewhere in the process)."""
    inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()
    quiet: list[dict[str, object]] = [
        {"workflow_id": "wf-1", "event": "workflow:transition", "to": "nlp_parsing"},
        {"workflow_id": "wf-1", "event": "workflow:transition", "to": "processing"},
        {"workflow_id": "wf-1", "event": "task:submitted"},
        {"workflow_id": "wf-1", "event": "task:validated"},
        {"workflow_id": "wf-1", "event": "task:routed"},
        {"workflow_id": "wf-1", "event": "task:enqueued"},
        {"workflow_id": "wf-1", "event": "task:assigned"},
        {"workflow_id": "wf-1", "event": "task:started"},
    ]
    news: list[dict[str, object]] = [
        {"workflow_id": "wf-2", "event": "task:complete"},
        {"workflow_id": "wf-3", "event": "workflow:transition", "to": "cancelled"},
        {"workflow_id": "wf-4", "event": "task:failed"},
    ]
    for event in [*quiet, *news]:
        inbox.put_nowait(event)
    watched = {"wf-1", "wf-2", "wf-3", "wf-4"}
    assert await _news(inbox, watched, 0.01, None) == {"wf-2", "wf-3", "wf-4"}


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


class _Bus:
    """The run loop's side of the event bus: one subscriber's inbox."""

    def __init__(self) -> None:
        self.inbox: asyncio.Queue[dict[str, object]] = asyncio.Queue()

    def subscribe(self) -> asyncio.Queue[dict[str, object]]:
        return self.inbox

    def unsubscribe(self, queue: object) -> None:
        return None


class _Pipeline:
    """Advances by script: each workflow's first advance starts it (processing), its second
    ends it (merged). Starting ``wf-1`` finishes its subtask at once: an event names it."""

    def __init__(self, bus: _Bus) -> None:
        self.bus = bus
        self.calls: list[str] = []

    async def advance(self, workflow_id: str) -> SimpleNamespace:
        self.calls.append(workflow_id)
        first = self.calls.count(workflow_id) == 1
        if first and workflow_id == "wf-1":
            self.bus.inbox.put_nowait({"workflow_id": "wf-1", "event": "task:complete"})
        await asyncio.sleep(0)
        return SimpleNamespace(status=WorkflowState.PROCESSING if first else WorkflowState.MERGED)

    def waiting_for_approval(self, workflow: object) -> bool:
        return False


async def test_a_workflow_with_news_is_carried_on_before_the_next_one_starts() -> None:
    """A batch used to start every workflow before it finished any: the finished subtasks'
    worktrees piled up until the last had started."""
    bus = _Bus()
    pipeline = _Pipeline(bus)
    ids = ["wf-1", "wf-2", "wf-3"]
    ended = await drive(cast(Pipeline, pipeline), cast(EventBus, bus), ids, poll_s=0.01, at_once=1)
    assert pipeline.calls[:3] == ["wf-1", "wf-1", "wf-2"]
    assert [w.status for w in ended] == [WorkflowState.MERGED] * 3


class _SlowPipeline(_Pipeline):
    """:class:`_Pipeline` whose steps take a while, counting how many run at the same time; each
    step raises an event on its workflow, as a state change does (the last one included)."""

    def __init__(self, bus: _Bus) -> None:
        super().__init__(bus)
        self.now: list[str] = []
        self.started: list[str] = []
        self.most = 0

    async def advance(self, workflow_id: str) -> SimpleNamespace:
        assert workflow_id not in self.now, "one workflow advanced twice at the same time"
        self.now.append(workflow_id)
        self.started.append(workflow_id)
        self.most = max(self.most, len(self.now))
        try:
            self.bus.inbox.put_nowait({"workflow_id": workflow_id, "event": "workflow:moved"})
            await asyncio.sleep(0.003 * int(workflow_id.removeprefix("wf-")))
            return await super().advance(workflow_id)
        finally:
            self.now.remove(workflow_id)


async def test_steps_of_different_workflows_run_at_the_same_time_up_to_the_bound() -> None:
    """One step at a time left the run waiting on each git process and commit in turn."""
    bus = _Bus()
    pipeline = _SlowPipeline(bus)
    ids = [f"wf-{i}" for i in range(1, 8)]
    ended = await drive(cast(Pipeline, pipeline), cast(EventBus, bus), ids, poll_s=0.01, at_once=3)
    assert pipeline.most == 3
    assert [w.status for w in ended] == [WorkflowState.MERGED] * 7
    assert pipeline.started[:4] == ["wf-1", "wf-2", "wf-3", "wf-1"]  # (ended first, news first)
    assert sorted(pipeline.calls) == sorted(ids * 2)  # (none advanced once it had ended)


async def test_a_step_under_way_is_stopped_when_the_run_is_cancelled() -> None:
    bus = _Bus()
    pipeline = _SlowPipeline(bus)
    run = asyncio.create_task(
        drive(cast(Pipeline, pipeline), cast(EventBus, bus), ["wf-1", "wf-2"], poll_s=0.01)
    )
    await asyncio.sleep(0.005)
    assert sorted(pipeline.now) == ["wf-1", "wf-2"]
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    assert pipeline.now == []
