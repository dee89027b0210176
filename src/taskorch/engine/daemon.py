"""The daemon behind ``taskorch serve``: pending tasks in the database become workflows (at most
``MAX_CONCURRENT_WORKFLOWS`` unfinished at once), an in-process worker runs their subtasks, and the
pipeline advances each workflow whenever the runtime reports news about it.

Stopping is graceful: no new task is taken, the worker claims nothing more and lets its running
attempts finish under their leases (their outcomes are stored), and every workflow stays in its
stored state. The next start picks up every unfinished workflow where it stands (each pipeline
step is idempotent), so nothing is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taskorch.agents.base import AgentAdapter
from taskorch.domain.errors import DatabaseUnavailableError, StaleStateError, TaskorchError
from taskorch.domain.limits import parse_duration
from taskorch.domain.models import JSONDict, Task, TaskStatus, Workflow
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine.claims import recover_stranded
from taskorch.engine.engine import OrchestrationEngine
from taskorch.engine.leftovers import clean_ended
from taskorch.engine.pipeline import Pipeline
from taskorch.engine.resuming import started_with
from taskorch.engine.retention import MAX_AGE_S, collect_garbage
from taskorch.engine.runner import AT_ONCE, news_in
from taskorch.engine.status import task_holds
from taskorch.runtime.worker import WorkerStats
from taskorch.store.outage import Outage

log = logging.getLogger(__name__)

POLL_S = 0.5
"""How often every unfinished workflow is looked at even without news (work done elsewhere)."""
RECOVER_EVERY_S = 15.0
GC_EVERY_S = 3600.0
"""How often tasks another process's crash left claimed without a workflow are looked for."""
STUCK_RETRY_S = 30.0
"""A workflow whose step failed with an error, or a task whose workflow could not start, is tried
again after this long, not every poll."""


@dataclass(slots=True)
class DaemonStats:
    started: list[str] = field(default_factory=list)
    """Workflows this daemon started from pending tasks."""
    resumed: list[str] = field(default_factory=list)
    """Unfinished workflows found at start and carried on."""
    finished: dict[str, str] = field(default_factory=dict)
    """Workflow id -> terminal state, for those that ended while the daemon ran."""
    awaiting_approval: list[str] = field(default_factory=list)
    """Workflows validated and held by the approve merge policy: left to whoever approves them
    (``taskorch approve``, the API), who merges them; no longer carried by this daemon."""
    left_alone: dict[str, str] = field(default_factory=dict)
    """Unfinished workflows started with other agents -> their ``--agent``: this daemon's
    workers would never claim their subtasks (``taskorch resume`` carries them on)."""
    worker: WorkerStats | None = None


class Daemon:
    def __init__(
        self,
        engine: OrchestrationEngine,
        agents: Mapping[str | None, AgentAdapter],
        *,
        options: JSONDict | None = None,
        max_workflows: int | None = None,
        worker_concurrency: int | None = None,
        poll_s: float = POLL_S,
        note: str = "",
    ) -> None:
        self.engine = engine
        self.note = note
        """Said once at start (e.g. that the simulated agent runs the subtasks)."""
        self.agents = agents  # an AgentPool keeps its limits and reassign hook for the worker
        self.options = dict(options or {})
        self.max_workflows = max_workflows or engine.settings.max_concurrent_workflows
        self.worker_concurrency = worker_concurrency
        self.poll_s = poll_s
        self.stats = DaemonStats()
        self._active: set[str] = set()
        self._stuck_until: dict[str, float] = {}
        self._not_before: dict[int, float] = {}
        """Task id -> when to try again to start a workflow for it, after a failed start (a
        repository that cannot be reached): not at every poll."""
        self._holds: dict[int, str] = {}
        """Task id -> why it waits, as last logged."""
        self._stopping = asyncio.Event()
        self._last_sweep = 0.0
        self._last_recovery = 0.0
        self._last_gc = float("-inf")
        self._gc: asyncio.Task[None] | None = None
        self._prepared = False
        self._outage = Outage("serve")

    @property
    def active(self) -> list[str]:
        """Unfinished workflows this daemon is carrying."""
        return sorted(self._active)

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def stop(self) -> None:
        """Take no new task; let running attempts finish; then :meth:`run` returns."""
        self._stopping.set()

    async def run(self) -> DaemonStats:
        pipeline = self.engine.pipeline()  # fails early without code delivery
        inbox = self.engine.events.subscribe()
        worker = self.engine.create_worker(self.agents, concurrency=self.worker_concurrency)
        worker_task = asyncio.create_task(worker.run(), name="serve-worker")
        try:
            if not self._prepared:
                await self.prepare()
            due = set(self._active)
            while not self.stopping:
                try:
                    due |= await self._admit(pipeline)
                    await self._advance(pipeline, due)
                    if self._outage.ongoing:
                        await self._adopt_unfinished()
                except DatabaseUnavailableError as exc:
                    # The database went away: nothing is lost (every step is idempotent and
                    # resumes from the stored state); wait for it, with backoff, and carry on.
                    await self._pause(self._outage.failed(exc))
                    due = set(self._active)
                    continue
                self._outage.recovered()
                due = await self._news(inbox, worker_task)
        finally:
            self.engine.events.unsubscribe(inbox)
            if self._gc is not None:
                self._gc.cancel()  # a pass cut short is redone whole by the next one
                with contextlib.suppress(asyncio.CancelledError):
                    await self._gc
            worker.stop()
            with contextlib.suppress(asyncio.CancelledError):
                self.stats.worker = await worker_task
        return self.stats

    async def prepare(self) -> list[str]:
        """Find the unfinished workflows to carry on (``run`` does this if it was not done),
        after setting right the tasks a crash left claimed with no workflow carrying them.
        Waits out a database outage (until stopped)."""
        while True:
            try:
                await self._recover()
                await self.engine.recover_git()
                self.stats.resumed = await self._unfinished()
                break
            except DatabaseUnavailableError as exc:
                if self.stopping:
                    raise
                await self._pause(self._outage.failed(exc))
        self._outage.recovered()
        self._active.update(self.stats.resumed)
        self._prepared = True
        return self.stats.resumed

    def _collect_garbage(self, now: float) -> None:
        """Hourly with ``TASKORCH_GC_OLDER_THAN``: retention in the background, one log line."""
        age = self.engine.settings.gc_older_than
        if age is None or now - self._last_gc < GC_EVERY_S:
            return
        if self._gc is not None and not self._gc.done():
            return
        self._last_gc = now
        self._gc = asyncio.create_task(self._gc_pass(age), name="serve-gc")

    async def _gc_pass(self, age: str) -> None:
        try:
            report = await collect_garbage(
                self.engine, parse_duration("TASKORCH_GC_OLDER_THAN", age, limit_s=MAX_AGE_S)
            )
        except TaskorchError as exc:
            log.warning("gc: %s", exc.message)
            return
        if report.workflows or report.problems:
            log.info(
                "gc: collected %d workflow(s) that ended before %s; %s",
                len(report.workflows),
                report.cutoff.isoformat(),
                "; ".join(report.problems) or "no problems",
            )

    async def _adopt_unfinished(self) -> None:
        """After an outage: carry on the unfinished workflows this daemon may have lost sight
        of (one whose start was stored, though the answer never came back)."""
        done = set(self.stats.finished) | set(self.stats.awaiting_approval)
        self._active.update(w for w in await self._unfinished() if w not in done)

    async def _pause(self, delay_s: float) -> None:
        """Sleep ``delay_s``, or less if the daemon is told to stop."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(delay_s):
                await self._stopping.wait()

    async def _recover(self) -> None:
        """Set right what a crash left half done: tasks claimed with no workflow carrying them,
        worktrees of workflows that ended."""
        await recover_stranded(self.engine.store)
        if self.engine.delivery is not None:
            await clean_ended(self.engine.store, self.engine.delivery)

    async def _unfinished(self) -> list[str]:
        workflows = await self.engine.list_workflows()
        unfinished = [w for w in workflows if w.status not in WORKFLOW_TERMINAL]
        mode = self.options.get("agent")
        if mode is not None:
            theirs = {w.id: started_with(w) for w in unfinished}
            self.stats.left_alone = {wf: m for wf, m in theirs.items() if m != mode}
        return [w.id for w in unfinished if w.id not in self.stats.left_alone]

    async def _admit(self, pipeline: Pipeline) -> set[str]:
        """Start workflows for pending tasks (highest priority first, dependencies completed)
        while fewer than ``max_workflows`` are unfinished."""
        loop = asyncio.get_running_loop()
        if loop.time() - self._last_recovery >= RECOVER_EVERY_S:
            self._last_recovery = loop.time()  # another process's crash, while we run
            await self._recover()
        self._collect_garbage(loop.time())
        room = self.max_workflows - len(self._active)
        if room <= 0:
            return set()
        pending = await self.engine.list_tasks(status=TaskStatus.PENDING)
        pending.sort(key=lambda t: (-t.priority.rank, t.id))
        started: set[str] = set()
        now = asyncio.get_running_loop().time()
        for task in pending:
            if len(started) >= room or self.stopping:
                break
            if self._not_before.get(task.id, 0.0) > now:
                continue
            if not await self._dependencies_done(task):
                continue
            try:
                workflow = await self._start(pipeline, task)
            except DatabaseUnavailableError:
                raise
            except TaskorchError as exc:
                log.warning("task %s not started: %s (retrying later)", task.ref, exc.message)
                self._not_before[task.id] = now + STUCK_RETRY_S
                continue
            self._not_before.pop(task.id, None)
            if workflow is None:
                continue  # another process took it first
            self.stats.started.append(workflow.id)
            started.add(workflow.id)
        self._active |= started
        return started

    async def _start(self, pipeline: Pipeline, task: Task) -> Workflow | None:
        """Claim the task (pending -> processing, checked in the store) in the transaction that
        creates its workflow, so that two processes never start two workflows for one task and a
        kill never leaves a claim without its workflow. Where its work goes is settled first (it
        may reach out to the repository)."""
        options = await pipeline.target(task, self.options)
        try:
            return await pipeline.create(task, options)
        except StaleStateError:
            return None  # another process took it first

    async def _dependencies_done(self, task: Task) -> bool:
        """Whether ``task``'s dependencies all completed; if not, say why it waits (in the log,
        once each time the reason changes): a task that cannot start is named, not left silent."""
        hold = (await task_holds([task], self.engine.get_task)).get(task.id)
        if hold is None:
            self._holds.pop(task.id, None)
            return True
        if self._holds.get(task.id) != hold.reason:
            said = hold.reason in self._holds.values()  # a ring: one line for all its tasks
            self._holds[task.id] = hold.reason
            if said:
                return False
            level = logging.WARNING if hold.blocked else logging.INFO
            log.log(level, "%s %s", task.ref, hold.reason)
        return False

    async def _advance(self, pipeline: Pipeline, due: set[str]) -> None:
        """Advance the ``due`` workflows, up to :data:`~taskorch.engine.runner.AT_ONCE` at the
        same time (while one step waits on git or the database, another runs); a database
        outage is raised once they have all stopped."""
        loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(AT_ONCE)
        chosen = [
            w for w in sorted(due & self._active) if self._stuck_until.get(w, 0.0) <= loop.time()
        ]

        async def one(workflow_id: str) -> None:
            async with gate:
                if not self.stopping:  # a stop leaves every workflow in its stored state
                    await self._advance_one(pipeline, workflow_id)

        ended = await asyncio.gather(*(one(w) for w in chosen), return_exceptions=True)
        for outcome in ended:
            if isinstance(outcome, BaseException):
                raise outcome  # (the database went away: the run loop waits for it)

    async def _advance_one(self, pipeline: Pipeline, workflow_id: str) -> None:
        loop = asyncio.get_running_loop()
        try:
            workflow = await pipeline.advance(workflow_id)
        except DatabaseUnavailableError:
            raise  # not this workflow's problem: the run loop waits for the database
        except TaskorchError as exc:
            if await self._ended_elsewhere(workflow_id):
                return
            if isinstance(exc, StaleStateError):
                return  # moved on by another process meanwhile: looked at again next pass
            log.warning("workflow %s: %s (retrying later)", workflow_id, exc.message)
            self._stuck_until[workflow_id] = loop.time() + STUCK_RETRY_S
            return
        except Exception:  # a bug in one workflow's step must not stop the others
            log.exception("workflow %s: step failed (retrying later)", workflow_id)
            self._stuck_until[workflow_id] = loop.time() + STUCK_RETRY_S
            return
        self._stuck_until.pop(workflow_id, None)
        if workflow.status in WORKFLOW_TERMINAL:
            self._active.discard(workflow_id)
            self.stats.finished[workflow_id] = workflow.status.value
        elif pipeline.waiting_for_approval(workflow):
            # The approval merges it where it is given; advancing it here as well would race
            # that merge. A restart carries on one approved but not merged (a crash between).
            self._active.discard(workflow_id)
            self.stats.awaiting_approval.append(workflow_id)

    async def _ended_elsewhere(self, workflow_id: str) -> bool:
        """Whether another process ended the workflow while this one's step failed (two daemons
        carrying it: the one that lost its landing finds the branch gone): then it is done
        here too, without a warning or a retry."""
        try:
            workflow = await self.engine.store.get_workflow(workflow_id)
        except DatabaseUnavailableError:
            raise  # (the run loop waits for the database)
        except TaskorchError:  # (gone: collected meanwhile) the usual retry says why
            return False
        if workflow.status not in WORKFLOW_TERMINAL:
            return False
        self._active.discard(workflow_id)
        self._stuck_until.pop(workflow_id, None)
        self.stats.finished[workflow_id] = workflow.status.value
        return True

    async def _news(
        self, inbox: asyncio.Queue[dict[str, Any]], worker_task: asyncio.Task[WorkerStats]
    ) -> set[str]:
        """Wait for events about our workflows, a stop, or the poll interval; return the workflows
        to advance (all of them when the interval passed without news)."""
        if worker_task.done():
            worker_task.result()  # a crashed worker must stop the daemon, not leave it idle
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.poll_s
        news: set[str] = set()
        while not news and (left := deadline - loop.time()) > 0:
            event = await next_event(inbox, self._stopping, left)
            if event is None:
                break
            news |= news_in(event, self._active)
            while not inbox.empty():  # take the whole burst at once
                news |= news_in(inbox.get_nowait(), self._active)
        if not news or loop.time() - self._last_sweep >= self.poll_s:
            self._last_sweep = loop.time()
            return set(self._active)
        return news


async def next_event(
    inbox: asyncio.Queue[dict[str, Any]], stopping: asyncio.Event, timeout_s: float
) -> dict[str, Any] | None:
    """The next event from ``inbox``; None when ``timeout_s`` passed or ``stopping`` is set."""
    if stopping.is_set():
        return None
    get = asyncio.ensure_future(inbox.get())
    stop = asyncio.ensure_future(stopping.wait())
    try:
        await asyncio.wait({get, stop}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED)
        return get.result() if get.done() else None
    finally:
        for waiter in (get, stop):
            waiter.cancel()
        await asyncio.gather(get, stop, return_exceptions=True)
