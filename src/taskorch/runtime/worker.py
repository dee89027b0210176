"""The worker: claims ready subtasks in batches, runs them on agents under leases, settles them.

Shape (procrastinate's and Temporal's): a bounded number of attempts in flight; woken by a finished
attempt, a notification from another process, or the poll interval; outcomes buffered and written
in one transaction per batch, shielded from cancellation; a lease keeper that renews the leases of
attempts whose agents still heartbeat and cancels attempts this worker no longer owns (cancelled
workflow, lost lease); a zombie sweeper; graceful shutdown; ``once`` mode that drains and exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask
from taskorch.domain.errors import AgentError, StoreError
from taskorch.domain.models import Subtask
from taskorch.domain.retry import (
    MAX_INTERRUPTED_ATTEMPTS,
    ErrorClass,
    RetryDecision,
    agent_tries,
)
from taskorch.runtime import tracing
from taskorch.runtime.budget_gate import BudgetGate
from taskorch.runtime.events import EventBus
from taskorch.runtime.faults import pause_point
from taskorch.runtime.quality import FAILED, attempt_quality
from taskorch.runtime.rate_limits import RateLimits, is_limit
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.subtask_events import assigned_events
from taskorch.store.gcpause import freeze_long_lived
from taskorch.store.outage import Outage
from taskorch.store.outcomes import started_events
from taskorch.store.queue import Outcome, QueueEvent, SubtaskQueue

log = logging.getLogger(__name__)

SHUTDOWN_SETTLE_TRIES = 5
"""Tries at storing the last outcomes before exiting (a database blip must not turn finished work
into zombies that run again)."""


LATENCY_WINDOW = 10_000
HOST_AVOID_S = 60.0
"""How long a worker leaves alone a workflow it could not work on (its repository out of this
host's reach): other hosts take its subtasks meanwhile."""
SHUTDOWN_GRACE_S = 10.0
"""How long a stopping worker lets running attempts finish before it releases them."""

Reassign = Callable[[Subtask, str, bool], str | None]
"""(subtask, error class, the policy says reassign) -> agent id for the retry."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int = 5
    claim_batch: int = 1000
    """At most this many subtasks per claim, and at most half the concurrency (rounded up): a
    worker with room for more claims again at once, and the attempts of one batch run while the
    next batch is settled and claimed. A batch of the whole concurrency left nothing to run while
    the worker waited for its settle (W1 on PostgreSQL, 2 worker processes of 1,000: client and
    server took turns, and the fan-out's last batch went to one worker while the other idled)."""
    lease_s: float = 30.0
    timeout_s: float = 300.0
    poll_s: float = 0.5
    shutdown_grace_s: float = SHUTDOWN_GRACE_S
    max_interrupted: int = MAX_INTERRUPTED_ATTEMPTS
    """Interrupted attempts (lost leases, host errors) after which a subtask fails."""


@dataclass(slots=True)
class WorkerStats:
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    zombies: int = 0
    dispatch_latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    """Ready -> running of the most recent claims (bounded: a worker may run for months)."""


@dataclass(slots=True)
class _Deadline:
    """One timer for the attempts of one claim, which start together: a timeout context per
    attempt costs about a third of what the worker spends on a quick attempt."""

    left: int
    handle: asyncio.TimerHandle | None = None

    def finished_one(self) -> None:
        self.left -= 1
        if self.left == 0 and self.handle is not None:
            self.handle.cancel()  # and with it the timer's references to the batch


@dataclass(slots=True)
class _Running:
    subtask: Subtask
    agent_id: str | None
    started_at: datetime
    task: asyncio.Task[None] | None = None
    last_beat: float = field(default_factory=time.monotonic)
    deadline: _Deadline | None = None
    timed_out: bool = False


def default_worker_id(host: str | None = None) -> str:
    """``host:pid:random``: the host a worker advertises comes first."""
    return f"{host or socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"


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
        self.recovery = recovery or ErrorRecoveryManager()
        self.events = events or EventBus()
        self.worker_id = worker_id or default_worker_id()
        self.agent_limits = dict(agent_limits or {})
        self.reassign = reassign
        self.stats = WorkerStats()
        self._batch = min(self.config.claim_batch, (self.config.concurrency + 1) // 2)
        self._running: dict[int, _Running] = {}
        self._settling: list[Outcome] = []
        self._ending = 0
        """Lost attempts being recorded as cancelled: the loop must not end under that write."""
        self._wake = asyncio.Event()
        self._stopping = False
        self._outage = Outage(f"worker {self.worker_id}")
        """The database outage this worker is riding out, if any (logged once per outage)."""
        self._avoid: dict[str, float] = {}
        """Workflow id -> until when (monotonic) this worker claims none of its subtasks."""
        self.rate_limits = RateLimits(queue.connector)
        """Agents that answered with a limit: their work waits for the reset (rate windows)."""
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

    async def run(self, *, once: bool = False) -> WorkerStats:
        """Work until :meth:`stop`; with ``once``, until nothing is ready or running."""
        freeze_long_lived()
        with contextlib.suppress(StoreError):  # else the first batch opens it, after an outage
            await self.queue.warm_up()
        keeper = asyncio.create_task(self._keep_leases(), name=f"{self.worker_id}-leases")
        try:
            await self._loop(once)
        finally:
            try:
                await self._shutdown()  # leases are still kept while running attempts finish
            finally:
                keeper.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await keeper
        return self.stats

    async def _loop(self, once: bool) -> None:
        while not self._stopping:
            self._wake.clear()
            claimed = await self._step()
            idle = not (claimed or self._running or self._settling or self._ending)
            if idle and once and not await self._work_pending_soon():
                return
            if claimed == self._batch and self._free > 0:
                continue  # a full batch: more may be ready, claim it while this one runs
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
        """Settle what finished and claim new work, in one transaction where possible."""
        batch, self._settling = self._settling, []
        free = min(self._free, self._batch)
        # Unassigned subtasks are claimed only by a worker with a default adapter to run them.
        unassigned = free if None in self.agents else 0
        # Routine events (assigned, started, enqueued) are built only for someone to read them.
        listened = self.events.listened
        try:
            events, claimed = await asyncio.shield(
                self.queue.settle(
                    self.worker_id,
                    batch,
                    claim_limit=unassigned,
                    lease_s=self.config.lease_s,
                    skip=self._avoided(),
                    quiet=not listened,
                )
            )
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
            self._count(event)
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
        now = time.monotonic()
        for workflow_id in [w for w, until in self._avoid.items() if until <= now]:
            del self._avoid[workflow_id]
        return list(self._avoid)

    def _start(self, claimed: list[Subtask]) -> None:
        if not claimed:
            return
        now = self.queue.now
        deadline = _Deadline(len(claimed))
        batch = []
        for subtask in claimed:
            running = _Running(subtask, subtask.agent_id, now, deadline=deadline)
            self._running[subtask.id] = running
            running.task = asyncio.create_task(self._attempt(running), name=f"attempt-{subtask.id}")
            batch.append(running)
            if subtask.queued_at is not None:
                self.stats.dispatch_latency_s.append((now - subtask.queued_at).total_seconds())
        deadline.handle = asyncio.get_running_loop().call_later(
            self.config.timeout_s, self._time_out, batch
        )
        self.stats.claimed += len(claimed)

    def _time_out(self, batch: list[_Running]) -> None:
        for running in batch:
            if self._running.get(running.subtask.id) is running and running.task is not None:
                running.timed_out = True
                running.task.cancel()

    # --- one attempt -------------------------------------------------------------------------

    async def _attempt(self, running: _Running) -> None:
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
            outcome = self._success(running, result)
        except asyncio.CancelledError:
            if not running.timed_out:
                self._running.pop(subtask.id, None)
                raise
            current = asyncio.current_task()
            if current is not None:
                current.uncancel()  # our own deadline, as asyncio.timeout does
            outcome = await self._failure(running, TimeoutError())
        except Exception as exc:
            outcome = await self._failure(running, exc)
        finally:
            if running.deadline is not None:
                running.deadline.finished_one()
        self._settling.append(outcome)
        self._running.pop(subtask.id, None)
        self._wake.set()

    def _success(self, running: _Running, result: AgentResult) -> Outcome:
        body = result.to_json()
        quality = attempt_quality(running.subtask, True, result.output, result.data)
        body["quality"] = quality.to_json()
        return Outcome(
            running.subtask,
            "completed",
            running.started_at,
            self.queue.now,
            agent_id=running.agent_id,
            result=body,
            tokens_in=result.tokens_in,
            tokens_out=result.tokens_out,
            cost_usd=result.cost_usd,
        )

    async def _failure(self, running: _Running, exc: Exception) -> Outcome:
        subtask = running.subtask
        error = self.recovery.classify(exc)
        if isinstance(exc, TimeoutError):
            error = AgentError(
                f"attempt timed out after {self.config.timeout_s:g} s", error_class="timeout"
            )
        if error.error_class == ErrorClass.HOST:
            log.warning(
                "worker %s: leaving workflow %s to other hosts for %g s: %s",
                self.worker_id,
                subtask.workflow_id,
                HOST_AVOID_S,
                error.message,
            )
            self._avoid[subtask.workflow_id] = time.monotonic() + HOST_AVOID_S
        window = None
        if is_limit(error, running.agent_id):
            policy = self.recovery.policy_for(error.error_class)
            agent = str(running.agent_id)
            window = await self.rate_limits.hit(agent, error, policy, self.queue.now)
        # Not the agent's try (the host failed, the agent was busy and got nothing, or it is in
        # a rate window): counted apart, against the cap on interrupted attempts.
        interrupted = error.error_class in (ErrorClass.HOST, ErrorClass.BUSY) or window is not None
        if interrupted:
            decision = (
                self.recovery.decide(error, subtask.interrupted + 1)
                if window is None
                else RetryDecision(True, 0.0, True, window.describe())
            )
            if subtask.interrupted + 1 >= self.config.max_interrupted:
                decision = RetryDecision(False, reason="too many interrupted attempts")
        else:
            tries = agent_tries(subtask.attempts, subtask.interrupted)
            decision = await self.recovery.recover(error, tries, subtask)
        now = self.queue.now
        common = {
            "agent_id": running.agent_id,
            "error_class": error.error_class,
            "error_message": error.message,
            "tokens_in": error.tokens_in,
            "tokens_out": error.tokens_out,
            "cost_usd": error.cost_usd,
        }
        if decision.retry:
            if self.reassign is not None:
                next_agent = self.reassign(subtask, error.error_class, decision.reassign)
            else:
                next_agent = (
                    self._other_agent(subtask.agent_id) if decision.reassign else subtask.agent_id
                )
            delay_s = decision.delay_s
            if error.error_class == ErrorClass.BUSY and next_agent != subtask.agent_id:
                # another capable agent takes it now, unless agents have been busy before
                delay_s = 0.0 if subtask.interrupted == 0 else delay_s
            if window is not None:  # another agent takes it now, or it waits for the reset
                delay_s = self.rate_limits.wait_s(next_agent, now)
            return Outcome(
                subtask,
                "retry",
                running.started_at,
                now,
                run_after=now + timedelta(seconds=delay_s),
                next_agent_id=next_agent,
                interrupted=interrupted,
                **common,  # type: ignore[arg-type]
            )
        return Outcome(
            subtask,
            "failed",
            running.started_at,
            now,
            result={
                "success": False,
                "output": error.message,
                "reason": decision.reason,
                "quality": FAILED.to_json(),
            },
            **common,  # type: ignore[arg-type]
        )

    def _other_agent(self, current: str | None) -> str | None:
        others = [a for a in self.agents if a is not None and a != current]
        return others[0] if others else current

    # --- counting -------------------------------------------------------------------------

    def _count(self, event: QueueEvent) -> None:
        if event.kind == "task:complete":
            self.stats.completed += 1
        elif event.kind == "task:retry":
            self.stats.retried += 1
        elif event.kind == "task:failed":
            self.stats.failed += 1
        elif event.kind == "task:zombie":
            self.stats.zombies += 1

    # --- leases ------------------------------------------------------------------------------

    async def _keep_leases(self) -> None:
        interval = max(self.config.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew()
                events = await self.queue.expire_leases(max_interrupted=self.config.max_interrupted)
            except StoreError as exc:
                self._outage.failed(exc)  # the loop's backoff; this one keeps its interval
                continue
            self._outage.recovered()
            for event in events:
                self._count(event)
            await self.events.publish(events)
            if events:
                await self.events.write_task_events(events)
                self._wake.set()

    async def _renew(self) -> None:
        now = time.monotonic()
        # Judge only the attempts asked about: the loop claims more while the renewal is in flight,
        # and those were not renewed because they were not asked about, not because they are lost.
        asked = list(self._running.values())
        alive = [r.subtask.id for r in asked if now - r.last_beat < self.config.lease_s]
        owned = await self.queue.renew(self.worker_id, alive, self.config.lease_s)
        lost = [
            r for r in asked if r.subtask.id not in owned and self._running.get(r.subtask.id) is r
        ]
        if not lost:
            return
        # Not renewed: the workflow was cancelled, the lease was taken over, or the agent stopped
        # heartbeating. End the attempt; the store already says what happens to the subtask.
        cancelled = await self.queue.cancelled_among(r.subtask.id for r in lost)
        self._ending += 1
        try:
            for running in lost:
                self._running.pop(running.subtask.id, None)
                if running.task is not None:
                    running.task.cancel()
            stopped = [(r.subtask, r.started_at) for r in lost if r.subtask.id in cancelled]
            if stopped:
                events = await self.queue.record_cancelled(self.worker_id, stopped)
                await self.events.publish(events)
                await self.events.write_task_events(events)
        finally:
            self._ending -= 1
            self._wake.set()


def instructions_for(subtask: Subtask) -> str:
    """What an agent is told: the title, the description when it adds to it, files, criteria."""
    parts = [subtask.title]
    if subtask.description and subtask.description.strip() != subtask.title.strip():
        parts.append(subtask.description)
    if subtask.files_affected:
        parts.append("Files: " + ", ".join(subtask.files_affected))
    if subtask.success_criteria:
        parts.append("Done when: " + subtask.success_criteria)
    return "\n\n".join(parts)
