"""Driving workflows to the end: the pipeline advances each workflow whenever the runtime reports
progress on it (or every poll interval, for work done by workers in other processes), while an
optional in-process worker runs the subtasks."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

from taskorch.domain.errors import DatabaseUnavailableError, TaskorchError
from taskorch.domain.models import Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine.pipeline import Pipeline
from taskorch.runtime.events import EventBus
from taskorch.runtime.worker import Worker
from taskorch.store.outage import Outage

log = logging.getLogger(__name__)

POLL_S = 0.5
SWEEP_S = 5.0
"""While events keep coming, how often every workflow is advanced anyway (work that workers in
other processes did raises no event here); without events, every ``poll_s``."""
STEP_TRIES = 3
"""A workflow whose step fails this many times in a row is left where it stands (its reason
stored on it) while the others go on: one workflow never stops a batch."""

OUTAGE_GIVE_UP_S = 300.0
"""How long a run waits for a database that went away before it stops with the error (every
workflow stays where it stands; the same command carries them on)."""

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
    """Advance ``workflow_ids`` until each one is terminal, waits for approval (the ``approve``
    merge policy) or failed its step :data:`STEP_TRIES` times (it stays in its state, with the
    reason stored as ``stalled``; with a single workflow the error is raised); return them as
    they ended."""
    inbox = events.subscribe()
    worker_task = asyncio.create_task(worker.run()) if worker else None
    waiting = list(dict.fromkeys(workflow_ids))
    final: dict[str, Workflow] = {}
    failures: dict[str, int] = {}
    outage = Outage("run")
    due = set(waiting)
    sweep = _Sweep(max(poll_s, SWEEP_S))
    try:
        while waiting:
            pending = [w for w in waiting if w in due]
            while pending:
                # News first: a workflow whose subtask just finished is carried to its end
                # before the next one starts. In the order of the pass, a batch of N started
                # every workflow before it finished any, and the finished subtasks' worktrees
                # piled up (each git worktree command reads them all) until the last started.
                news = _taken(inbox, set(waiting)) if not inbox.empty() else set()
                if news:
                    pending = [w for w in waiting if w in news] + [
                        w for w in pending if w not in news
                    ]
                workflow_id = pending.pop(0)
                try:
                    workflow = await pipeline.advance(workflow_id)
                except DatabaseUnavailableError as exc:
                    # Not the workflow's failure: wait for the database (bounded), don't count it.
                    delay = outage.failed(exc)
                    if outage.lasted_s >= OUTAGE_GIVE_UP_S:
                        raise
                    await asyncio.sleep(delay)
                    continue
                except TaskorchError as exc:
                    failures[workflow_id] = failures.get(workflow_id, 0) + 1
                    if failures[workflow_id] < STEP_TRIES:
                        continue
                    if len(waiting) == 1 and len(final) == 0:
                        raise
                    final[workflow_id] = await _stalled(pipeline, workflow_id, exc)
                    waiting.remove(workflow_id)
                    continue
                outage.recovered()
                failures.pop(workflow_id, None)
                if on_progress:
                    on_progress(workflow)
                if workflow.status in WORKFLOW_TERMINAL or pipeline.waiting_for_approval(workflow):
                    final[workflow_id] = workflow
                    waiting.remove(workflow_id)
            if waiting:
                # Only the workflows an event named: advancing every one on every event made a
                # batch of N workflows cost N^2 steps. All of them after a quiet poll interval,
                # and every SWEEP_S (work done by workers in other processes).
                due = await _news(inbox, set(waiting), poll_s, worker_task)
                if not due or sweep.due():
                    due = set(waiting)
    finally:
        events.unsubscribe(inbox)
        if worker is not None and worker_task is not None:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
    return [final[w] for w in dict.fromkeys(workflow_ids)]


async def _stalled(pipeline: Pipeline, workflow_id: str, error: TaskorchError) -> Workflow:
    log.warning("workflow %s: left where it stands: %s", workflow_id, error.message)
    workflow = await pipeline.store.get_workflow(workflow_id)
    stalled = {"reason": error.message, "step": workflow.status.value}
    try:
        return await pipeline.store.annotate_workflow(
            workflow_id, workflow.status, {"stalled": stalled}
        )
    except TaskorchError:  # it moved meanwhile: as it is now
        return await pipeline.store.get_workflow(workflow_id)


class _Sweep:
    """Every ``every_s``: time to advance every workflow, news or not."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self.last = asyncio.get_running_loop().time()

    def due(self) -> bool:
        now = asyncio.get_running_loop().time()
        if now - self.last < self.every_s:
            return False
        self.last = now
        return True


async def _news(
    inbox: asyncio.Queue[dict[str, object]],
    watched: set[str],
    poll_s: float,
    worker_task: asyncio.Task[Any] | None,
) -> set[str]:
    """Wait until something happened to watched workflows, or the poll interval passed; the
    workflows named (empty: none within the interval)."""
    if worker_task is not None and worker_task.done():
        worker_task.result()  # a crashed worker must not leave us waiting forever
    loop = asyncio.get_running_loop()
    deadline = loop.time() + poll_s
    news: set[str] = set()
    while not news and (left := deadline - loop.time()) > 0:
        try:
            # Not wait_for: on Python 3.11 it returns an event that arrives as the task is
            # cancelled and drops the cancel (a Ctrl-C then went unheard, the run went on).
            async with asyncio.timeout(left):
                event = await inbox.get()
        except TimeoutError:
            break
        news |= _named(event, watched) | _taken(inbox, watched)  # (the whole burst at once)
    return news


def _taken(inbox: asyncio.Queue[dict[str, object]], watched: set[str]) -> set[str]:
    """The workflows named by the events already in the inbox (taken out), without waiting."""
    news: set[str] = set()
    while not inbox.empty():
        news |= _named(inbox.get_nowait(), watched)
    return news


def _named(event: dict[str, object], watched: set[str]) -> set[str]:
    workflow_id = event.get("workflow_id")
    if workflow_id in watched and event.get("event") != "task:started":
        return {str(workflow_id)}
    return set()
