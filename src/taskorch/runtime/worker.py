"""The worker: claims ready subtasks in batches, runs them on agents under leases, settles them.

Shape (procrastinate's and Temporal's): a bounded number of attempts in flight; woken by a finished
attempt, a notification from another process, or the poll interval; outcomes buffered and written
in one transaction per batch, shielded from cancellation; a lease keeper that renews the leases of
attempts whose agents still heartbeat and cancels attempts this worker no longer owns (cancelled
workflow, lost lease); a zombie sweeper; graceful shutdown; ``once`` mode that drains and exits.

The loop is here. What a worker is given and what it counts live in
:mod:`taskorch.runtime.worker_config`, an attempt in flight and the outcome it ends with in
:mod:`taskorch.runtime.worker_attempts`, the lease keeper and zombie sweeper in
:mod:`taskorch.runtime.worker_leases`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from taskorch.agents.base import AgentAdapter, AgentTask
from taskorch.domain.errors import AgentError, StoreError
from taskorch.domain.models import Subtask
from taskorch.domain.retry import ErrorClass
from taskorch.runtime import tracing
from taskorch.runtime.budget_gate import BudgetGate
from taskorch.runtime.events import EventBus
from taskorch.runtime.faults import pause_point
from taskorch.runtime.rate_limits import RateLimits
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.subtask_events import assigned_events
from taskorch.runtime.worker_attempts import (
    Deadline,
    Failures,
    Reassign,
    Running,
    instructions_for,
    success,
)
from taskorch.runtime.worker_config import (
    SHUTDOWN_GRACE_S,
    WorkerConfig,
    WorkerStats,
    default_worker_id,
)
from taskorch.runtime.worker_leases import LeaseKeeper
from taskorch.store.gcpause import freeze_long_lived, young_generation
from taskorch.store.outage import Outage
from taskorch.store.outcomes import started_events
from taskorch.store.queue import Outcome, QueueEvent, SubtaskQueue

# Imported from here too, where they lived before worker_config and worker_attempts.
__all__ = [
    "SHUTDOWN_GRACE_S",
    "Worker",
    "WorkerConfig",
    "WorkerStats",
    "default_worker_id",
    "instructions_for",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Step:
    """A settle-and-claim on its way: the settle's task and what the rest of the step needs."""

    settling: asyncio.Future[tuple[list[QueueEvent], list[Subtask]]]
    batch: list[Outcome]
    free: int
    listened: bool


YOUNG_OBJECTS_PER_ATTEMPT = 20
"""Tracked objects an attempt in flight keeps alive, about (task, coroutine, subtask and its
lists, outcome, result): the collector's young generation is sized for a full worker."""

SHUTDOWN_SETTLE_TRIES = 5
"""Tries at storing the last outcomes before exiting (a database blip must not turn finished work
into zombies that run again)."""


class Worker:
    def __init__(
        self,
        queue: SubtaskQueue,
        agents: Mapping[str | None, AgentAdapter],
        *,
        config: WorkerConfig | None = None,
        recovery: ErrorRecoveryManager | None = None,
        events: EventBus | None = None,
        worker_id: str | None = None,
        agent_limits: Mapping[str, int] | None = None,
        reassign: Reassign | None = None,
    ) -> None:
        """``agents`` maps agent ids to adapters; the ``None`` key runs unassigned subtasks.
        ``reassign`` picks the agent of a retry (default: any other agent when the error's
        policy says to reassign, else the same one)."""
        self.queue = queue
        self.agents = dict(agents)
        self.config = config or WorkerConfig()
        self.events = events or EventBus()
        self.worker_id = worker_id or default_worker_id()
        self.agent_limits = dict(agent_limits or {})
        self.stats = WorkerStats()
        self._batch = min(self.config.claim_batch, (self.config.concurrency + 1) // 2)
        self._running: dict[int, Running] = {}
        self._settling: list[Outcome] = []
        self._unlaunched: list[Running] = []
        """Claimed and registered in ``_running``, their tasks not created yet (see _step)."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._outage = Outage(f"worker {self.worker_id}")
        """The database outage this worker is riding out, if any (logged once per outage)."""
        self.rate_limits = RateLimits(queue.connector)
        """Agents that answered with a limit: their work waits for the reset (rate windows)."""
        self._failures = Failures(
            queue,
            self.agents,
            recovery or ErrorRecoveryManager(),
            self.rate_limits,
            self.config,
            worker_id=self.worker_id,
            reassign=reassign,
        )
        self._leases = LeaseKeeper(
            queue,
            self.events,
            self.config,
            self.stats,
            self._running,
            worker_id=self.worker_id,
            outage=self._outage,
            wake=self._wake,
        )
        self.budget = BudgetGate(
            queue,
            self.events,
            worker_id=self.worker_id,
            agents=self.agents,
            lease_s=self.config.lease_s,
            agent_limits=self.agent_limits,
        )
        """Starts the subtasks of budgeted workflows (the other claims pass them over)."""

    # --- lifecycle ---------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; running attempts finish (up to the grace period), then the loop exits."""
        self._stopping = True
        self._wake.set()

    @property
    def recovery(self) -> ErrorRecoveryManager:
        """How a failed attempt is handled: held by the worker's :class:`Failures`, so that a
        manager set here is the one they use."""
        return self._failures.recovery

    @recovery.setter
    def recovery(self, manager: ErrorRecoveryManager) -> None:
        self._failures.recovery = manager

    @property
    def reassign(self) -> Reassign | None:
        """Picks the agent of a retry (held by the worker's :class:`Failures`, as above)."""
        return self._failures.reassign

    @reassign.setter
    def reassign(self, chooser: Reassign | None) -> None:
        self._failures.reassign = chooser

    async def run(self, *, once: bool = False) -> WorkerStats:
        """Work until :meth:`stop`; with ``once``, until nothing is ready or running."""
        freeze_long_lived()
        with contextlib.suppress(StoreError):  # else the first batch opens it, after an outage
            await self.queue.warm_up()
        keeper = asyncio.create_task(self._leases.run(), name=f"{self.worker_id}-leases")
        with young_generation(YOUNG_OBJECTS_PER_ATTEMPT * self.config.concurrency):
            try:
                await self._loop(once)
            finally:
                try:
                    await self._shutdown()  # leases are still kept while attempts finish
                finally:
                    keeper.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await keeper
        return self.stats

    async def _loop(self, once: bool) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed = await self._step()
            if claimed == self._batch and self._free > 0:
                continue  # a full batch: more may be ready, claim it while this one runs
            self._launch()
            idle = not (claimed or self._running or self._settling or self._leases.ending)
            if idle and once and not await self._work_pending_soon():
                return
            # A claim that took less than it could means nothing else is ready now: wait for a
            # finished attempt, a notification or the poll interval.
            await self._wait()

    async def _wait(self) -> None:
        await asyncio.sleep(0)  # attempts just started run first; quick ones are done after it
        if self._settling or self._stopping:
            return
        waker = asyncio.create_task(self._wake.wait())
        notified = asyncio.create_task(self.queue.wait_for_work(self.config.poll_s))
        _, pending = await asyncio.wait({waker, notified}, return_when=asyncio.FIRST_COMPLETED)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _work_pending_soon(self) -> bool:
        """In ``once`` mode: is anything queued (perhaps waiting for its retry time) or running
        elsewhere (its completion may release more work)?"""
        try:
            counts = await self.queue.counts()
        except StoreError as exc:
            await asyncio.sleep(self._outage.failed(exc))
            return True  # not known to be drained: ask again next round
        if counts.get("assigned") or counts.get("running"):
            return True
        # Queued work this worker leaves to other hosts is not its to wait for.
        return bool(counts.get("queued")) and not self._avoided()

    async def _shutdown(self) -> None:
        """Claim nothing more; store each running attempt's outcome as it finishes (the lease
        keeper still runs, so no other worker takes them over meanwhile) until none is left or
        the grace period is over; then end the late ones."""
        self._stopping = True
        self._launch()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.shutdown_grace_s
        while self._running and loop.time() < deadline:
            waiting = {r.task for r in self._running.values() if r.task is not None}
            if not waiting:
                break
            await asyncio.wait(
                waiting, timeout=deadline - loop.time(), return_when=asyncio.FIRST_COMPLETED
            )
            if self._settling:
                await self._step()
        late = list(self._running.values())
        for running in late:
            if running.task is not None:
                running.task.cancel()
        await asyncio.gather(*(r.task for r in late if r.task is not None), return_exceptions=True)
        for _ in range(SHUTDOWN_SETTLE_TRIES):
            await self._step()
            if not self._settling:
                break
        await self._release([(r.subtask, r.started_at) for r in late])

    async def _release(self, ended: list[tuple[Subtask, datetime]]) -> None:
        """Give the late attempts' subtasks back now, rather than when their leases lapse."""
        try:
            events = await self.queue.release(self.worker_id, ended)
        except StoreError as exc:  # their leases lapse instead: nothing is lost
            log.warning("worker %s: could not release its last claims: %s", self.worker_id, exc)
            return
        await self.events.publish(events)
        await self.events.write_task_events(events)

    # --- settling and claiming ------------------------------------------------------------

    async def _step(self) -> int:
        """Settle what finished and claim new work, in one transaction where possible; what
        is claimed starts at the next :meth:`_launch`."""
        step = self._begin_step()
        # The attempts of the last claim start only now, after the step's statement: it goes out
        # first, so the database settles and claims while they run.
        self._launch()
        return await self._finish_step(step)

    def _begin_step(self) -> _Step:
        """Send what finished and the claim on their way: the settle runs as its own task,
        shielded from the loop's cancellation (finished work is never dropped half-written)."""
        batch, self._settling = self._settling, []
        free = min(self._free, self._batch)
        # Unassigned subtasks are claimed only by a worker with a default adapter to run them.
        unassigned = free if None in self.agents else 0
        # Routine events (assigned, started, enqueued) are built only for someone to read them.
        listened = self.events.listened
        settling = asyncio.ensure_future(
            self.queue.settle(
                self.worker_id,
                batch,
                claim_limit=unassigned,
                lease_s=self.config.lease_s,
                skip=self._avoided(),
                quiet=not listened,
            )
        )
        return _Step(settling, batch, free, listened)

    async def _finish_step(self, step: _Step) -> int:
        """Take the step's outcome, claim for limited agents and budgets, and register what was
        claimed (its attempts start at the next :meth:`_launch`); return how many."""
        batch, free, listened = step.batch, step.free, step.listened
        try:
            events, claimed = await asyncio.shield(step.settling)
            free -= len(claimed)
            for_agents: list[Subtask] = []
            if free > 0 and self._limited_agents:
                for_agents = await self._claim_for_agents(free)
                claimed += for_agents
            budgeted = await self.budget.claim(free - len(for_agents), self._avoided())
            for_agents += budgeted
            claimed += budgeted
        except StoreError as exc:
            # The outcomes are kept and stored at the next try; the leases of running attempts
            # outlast a short outage (the keeper renews them once the database is back).
            self._settling = batch + self._settling
            await asyncio.sleep(self._outage.failed(exc))
            return 0
        self._outage.recovered()
        if any(o.kind == "completed" for o in batch):
            await pause_point("subtask:completed")
        self._start(claimed)
        if claimed and listened:  # the claim made them assigned (and running) in one write
            started = started_events(for_agents, self.worker_id)  # settle's own come with it
            events = assigned_events(claimed, self.worker_id) + events + started
        for event in events:
            self.stats.count(event)
        await self.events.publish(events)
        await self.events.write_task_logs(batch)
        await self.events.write_task_events([e for e in events if e.kind == "task:blocked"])
        return len(claimed)

    @property
    def _free(self) -> int:
        return 0 if self._stopping else self.config.concurrency - len(self._running)

    @property
    def _limited_agents(self) -> list[str]:
        return [a for a in self.agents if a is not None]

    async def _claim_for_agents(self, free: int) -> list[Subtask]:
        wanted = await self.queue.agents_with_work()
        wanted -= set(await self.rate_limits.limited(self.queue.now))  # in a rate window
        if not wanted - {None}:
            return []
        claimed: list[Subtask] = []
        for agent_id in self._limited_agents:
            if agent_id not in wanted or free <= 0:
                continue
            # The agent's limit is checked inside the claim's transaction: a count read
            # beforehand lets two workers both see room for the last slot.
            more = await self.queue.claim(
                self.worker_id,
                free,
                self.config.lease_s,
                agent_id=agent_id,
                skip=self._avoided(),
                agent_limit=self.agent_limits.get(agent_id),
            )
            claimed += more
            free -= len(more)
        return claimed

    def _avoided(self) -> list[str]:
        """Workflows left to other hosts for now (see :class:`Failures`)."""
        return self._failures.avoided()

    def _start(self, claimed: list[Subtask]) -> None:
        """Register the claimed attempts as running; :meth:`_launch` starts them."""
        if not claimed:
            return
        now = self.queue.now
        deadline = Deadline(len(claimed))
        batch = []
        for subtask in claimed:
            running = Running(subtask, subtask.agent_id, now, deadline=deadline)
            self._running[subtask.id] = running
            batch.append(running)
            if subtask.queued_at is not None:
                self.stats.dispatch_latency_s.append((now - subtask.queued_at).total_seconds())
        deadline.handle = asyncio.get_running_loop().call_later(
            self.config.timeout_s, self._time_out, batch
        )
        self.stats.claimed += len(claimed)
        self._unlaunched += batch

    def _launch(self) -> None:
        """Start the registered attempts not started yet (but those the lease keeper has taken
        back meanwhile)."""
        unlaunched, self._unlaunched = self._unlaunched, []
        for running in unlaunched:
            if self._running.get(running.subtask.id) is running:
                name = f"attempt-{running.subtask.id}"
                running.task = asyncio.create_task(self._attempt(running), name=name)

    def _time_out(self, batch: list[Running]) -> None:
        for running in batch:
            if self._running.get(running.subtask.id) is running and running.task is not None:
                running.timed_out = True
                running.task.cancel()

    # --- one attempt -------------------------------------------------------------------------

    async def _attempt(self, running: Running) -> None:
        subtask = running.subtask
        tracing.enter_workflow(subtask.workflow_id, subtask.id, subtask.attempts)  # own task
        adapter = self.agents.get(subtask.agent_id) or self.agents.get(None)
        try:
            if adapter is None:
                raise AgentError(
                    f"no adapter for agent {subtask.agent_id!r} on worker {self.worker_id}",
                    error_class=ErrorClass.AGENT.value,
                )
            task = AgentTask(subtask, instructions_for(subtask), timeout_s=self.config.timeout_s)

            def beat() -> None:
                running.last_beat = time.monotonic()

            result = await adapter.run(task, beat)  # under the batch's deadline (_time_out)
            if not result.success:
                error = AgentError(f"agent reported failure: {result.output[-500:]}")
                raise error.with_usage(result.tokens_in, result.tokens_out, result.cost_usd)
            outcome = success(running, result, self.queue.now)
        except asyncio.CancelledError:
            if not running.timed_out:
                self._running.pop(subtask.id, None)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # our own deadline, as asyncio.timeout does
            outcome = await self._failures.outcome(running, TimeoutError())
        except Exception as exc:
            outcome = await self._failures.outcome(running, exc)
        finally:
            if running.deadline is not None:
                running.deadline.finished_one()
        self._settling.append(outcome)
        self._running.pop(subtask.id, None)
        self._wake.set()
