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
AT_ONCE = 4
"""Workflows advanced at the same time by one run: while one waits on a git process or a commit,
another's step runs (one at a time left the second core idle through most of a batch)."""
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
    at_once: int = AT_ONCE,
) -> list[Workflow]:
    """Advance ``workflow_ids`` until each one is terminal, waits for approval (the ``approve``
    merge policy) or failed its step :data:`STEP_TRIES` times (it stays in its state, with the
    reason stored as ``stalled``; with a single workflow the error is raised); return them as
    they ended. Up to ``at_once`` different workflows are advanced at the same time."""
    inbox = events.subscribe()
    worker_task = asyncio.create_task(worker.run()) if worker else None
    run = _Run(pipeline, list(dict.fromkeys(workflow_ids)), on_progress)
    steps = _Steps(pipeline, at_once)
    pending = list(run.waiting)
    sweep = _Sweep(max(poll_s, SWEEP_S))
    try:
        while run.waiting:
            if not inbox.empty():
                pending = _news_first(pending, _taken(inbox, set(run.waiting)), run.waiting)
            pending = steps.start(pending)
            if steps.running:
                for workflow_id, outcome in await steps.finished():
                    await run.settle(workflow_id, outcome)
                still = set(run.waiting)  # (a set: a list's look-up made N workflows cost N^2)
                pending = [w for w in pending if w in still]
                continue
            # Only the workflows an event named: advancing every one on every event made a batch
            # of N workflows cost N^2 steps. All of them after a quiet poll interval, and every
            # SWEEP_S (work done by workers in other processes).
            due = await _news(inbox, set(run.waiting), poll_s, worker_task)
            if not due or sweep.due():
                due = set(run.waiting)
            pending = [w for w in run.waiting if w in due]
    finally:
        await steps.cancel()
        events.unsubscribe(inbox)
        if worker is not None and worker_task is not None:
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                await worker_task
    return [run.final[w] for w in dict.fromkeys(workflow_ids)]


def _news_first(pending: list[str], news: set[str], waiting: list[str]) -> list[str]:
    """News first: a workflow whose subtask just finished is carried to its end before the next
    one starts. In the order of the pass, a batch of N started every workflow before it finished
    any, and the finished subtasks' worktrees piled up (each git worktree command reads them
    all) until the last started."""
    if not news:
        return pending
    return [w for w in waiting if w in news] + [w for w in pending if w not in news]


class _Steps:
    """The workflows being advanced, at most ``at_once``, never one twice at the same time: a
    step waits on git and the database most of its time, and another workflow's step runs
    meanwhile."""

    def __init__(self, pipeline: Pipeline, at_once: int) -> None:
        self.pipeline = pipeline
        self.at_once = max(at_once, 1)
        self.running: dict[asyncio.Task[Workflow], str] = {}

    def start(self, pending: list[str]) -> list[str]:
        """Start the first of ``pending`` there is room for; the rest, still pending (a workflow
        already being advanced waits its turn, in its place)."""
        busy = set(self.running.values())
        left = []
        for workflow_id in pending:
            if workflow_id in busy or len(self.running) >= self.at_once:
                left.append(workflow_id)
                continue
            task = asyncio.create_task(self.pipeline.advance(workflow_id))
            self.running[task] = workflow_id
            busy.add(workflow_id)
        return left

    async def finished(self) -> list[tuple[str, asyncio.Task[Workflow]]]:
        """The steps that ended (at least one), in the order they were started."""
        done, _ = await asyncio.wait(self.running, return_when=asyncio.FIRST_COMPLETED)
        ended = [(self.running[t], t) for t in self.running if t in done]
        for _, task in ended:
            del self.running[task]
        return ended

    async def cancel(self) -> None:
        """Stop the steps under way (a run that ends early, or a Ctrl-C): each workflow stays in
        its stored state, as after a kill."""
        for task in self.running:
            task.cancel()
        for task in self.running:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self.running.clear()


class _Run:
    """What a run knows of its workflows: those still waiting, how each ended, failed tries."""

    def __init__(self, pipeline: Pipeline, waiting: list[str], on_progress: Progress | None):
        self.pipeline = pipeline
        self.waiting = waiting
        self.on_progress = on_progress
        self.final: dict[str, Workflow] = {}
        self.failures: dict[str, int] = {}
        self.outage = Outage("run")

    async def settle(self, workflow_id: str, outcome: asyncio.Task[Workflow]) -> None:
        """Take in the end of one step of ``workflow_id``."""
        try:
            workflow = outcome.result()
        except DatabaseUnavailableError as exc:
            # Not the workflow's failure: wait for the database (bounded), don't count it.
            delay = self.outage.failed(exc)
            if self.outage.lasted_s >= OUTAGE_GIVE_UP_S:
                raise
            await asyncio.sleep(delay)
            return
        except TaskorchError as exc:
            self.failures[workflow_id] = self.failures.get(workflow_id, 0) + 1
            if self.failures[workflow_id] < STEP_TRIES:
                return
            if len(self.waiting) == 1 and len(self.final) == 0:
                raise
            self.final[workflow_id] = await _stalled(self.pipeline, workflow_id, exc)
            self.waiting.remove(workflow_id)
            return
        self.outage.recovered()
        self.failures.pop(workflow_id, None)
        if self.on_progress:
            self.on_progress(workflow)
        if workflow.status in WORKFLOW_TERMINAL or self.pipeline.waiting_for_approval(workflow):
            self.final[workflow_id] = workflow
            self.waiting.remove(workflow_id)


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
        news |= news_in(event, watched) | _taken(inbox, watched)  # (the whole burst at once)
    return news


def _taken(inbox: asyncio.Queue[dict[str, object]], watched: set[str]) -> set[str]:
    """The workflows named by the events already in the inbox (taken out), without waiting."""
    news: set[str] = set()
    while not inbox.empty():
        news |= news_in(inbox.get_nowait(), watched)
    return news


_NOT_NEWS = frozenset(
    {"task:submitted", "task:validated", "task:routed", "task:enqueued", "task:assigned"}
    | {"task:started"}
)
"""Events that never let a workflow take a step: its subtasks made, routed and on their way to
running (the step that waits on them moves on only when one ends). The pipeline's own steps
raise most of them: taken as news, each advanced the workflow once more for nothing."""
_ENDED = frozenset(state.value for state in WORKFLOW_TERMINAL)


def news_in(event: dict[str, object], watched: set[str]) -> set[str]:
    """The workflow ``event`` is news of, among ``watched`` (empty: none), for a run and for
    ``serve``'s daemon alike."""
    workflow_id = event.get("workflow_id")
    if workflow_id not in watched or event.get("event") in _NOT_NEWS:
        return set()
    if event.get("event") == "workflow:transition" and event.get("to") not in _ENDED:
        # Moves are the pipeline's, made by an advance that went on from them; one that ends
        # the workflow elsewhere in this process (a cancel) is news: the run reports it.
        return set()
    return {str(workflow_id)}
