"""Driving workflows to the end: the pipeline advances each workflow whenever the runtime reports
progress on it (or every poll interval, for work done by workers in other processes), while an
optional in-process worker runs the subtasks."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

from taskorch.domain.models import Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine.pipeline import Pipeline
from taskorch.runtime.events import EventBus
from taskorch.runtime.worker import Worker

POLL_S = 0.5

Progress = Callable[[Workflow], None]


async def drive(
    pipeline: Pipeline,
    events: EventBus,
    workflow_ids: Sequence[str],
    *,
    worker: Worker | None = None,
    on_progress: Progress | None = None,
    poll_s: float = POLL_S,
) -> list[Workflow]:
    """Advance ``workflow_ids`` until every one is terminal; return them in their final state."""
    inbox = events.subscribe()
    worker_task = asyncio.create_task(worker.run()) if worker else None
    waiting = list(dict.fromkeys(workflow_ids))
    final: dict[str, Workflow] = {}
    try:
        while waiting:
            for workflow_id in list(waiting):
                workflow = await pipeline.advance(workflow_id)
                if on_progress:
                    on_progress(workflow)
                if workflow.status in WORKFLOW_TERMINAL:
                    final[workflow_id] = workflow
                    waiting.remove(workflow_id)
            if waiting:
                await _news(inbox, set(waiting), poll_s, worker_task)
    finally:
        events.unsubscribe(inbox)
        if worker is not None and worker_task is not None:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
    return [final[w] for w in dict.fromkeys(workflow_ids)]


async def _news(
    inbox: asyncio.Queue[dict[str, object]],
    watched: set[str],
    poll_s: float,
    worker_task: asyncio.Task[Any] | None,
) -> None:
    """Wait until something happened to a watched workflow, or the poll interval passed."""
    if worker_task is not None and worker_task.done():
        worker_task.result()  # a crashed worker must not leave us waiting forever
    loop = asyncio.get_running_loop()
    deadline = loop.time() + poll_s
    while (left := deadline - loop.time()) > 0:
        try:
            event = await asyncio.wait_for(inbox.get(), left)
        except TimeoutError:
            return
        if event.get("workflow_id") in watched and event.get("event") != "task:started":
            while not inbox.empty():  # take the whole burst at once
                inbox.get_nowait()
            return
