"""The worker's lease keeper: it renews the leases of attempts whose agents still heartbeat,
ends the attempts this worker no longer owns (cancelled workflow, lost lease), and sweeps zombies
(subtasks whose lease ran out, on any worker) back into the queue.

It runs as its own task beside the worker's loop, for the worker's whole life, shutdown included:
running attempts that finish during the grace period keep their leases meanwhile.
"""

from __future__ import annotations

import asyncio
import time

from taskorch.domain.errors import StoreError
from taskorch.runtime.events import EventBus
from taskorch.runtime.worker_attempts import Running
from taskorch.runtime.worker_config import WorkerConfig, WorkerStats
from taskorch.store.outage import Outage
from taskorch.store.queue import SubtaskQueue


class LeaseKeeper:
    def __init__(
        self,
        queue: SubtaskQueue,
        events: EventBus,
        config: WorkerConfig,
        stats: WorkerStats,
        running: dict[int, Running],
        *,
        worker_id: str,
        outage: Outage,
        wake: asyncio.Event,
    ) -> None:
        """The worker's: ``running``, its attempts in flight (the keeper drops the lost ones);
        ``outage``, the database outage it rides out; ``wake``, set when it has something to
        settle or claim."""
        self.queue = queue
        self.events = events
        self.stats = stats
        self.running = running
        self.worker_id = worker_id
        self.lease_s = config.lease_s
        self.max_interrupted = config.max_interrupted
        self.outage = outage
        self.wake = wake
        self.ending = 0
        """Lost attempts being recorded as cancelled: the loop must not end under that write."""

    async def run(self) -> None:
        interval = max(self.lease_s / 3, 0.05)
        while True:
            await asyncio.sleep(interval)
            try:
                await self._renew()
                events = await self.queue.expire_leases(max_interrupted=self.max_interrupted)
            except StoreError as exc:
                self.outage.failed(exc)  # the loop's backoff; this one keeps its interval
                continue
            self.outage.recovered()
            for event in events:
                self.stats.count(event)
            await self.events.publish(events)
            if events:
                await self.events.write_task_events(events)
                self.wake.set()

    async def _renew(self) -> None:
        now = time.monotonic()
        # Judge only the attempts asked about: the loop claims more while the renewal is in flight,
        # and those were not renewed because they were not asked about, not because they are lost.
        asked = list(self.running.values())
        alive = [r.subtask.id for r in asked if now - r.last_beat < self.lease_s]
        owned = await self.queue.renew(self.worker_id, alive, self.lease_s)
        lost = [
            r for r in asked if r.subtask.id not in owned and self.running.get(r.subtask.id) is r
        ]
        if not lost:
            return
        # Not renewed: the workflow was cancelled, the lease was taken over, or the agent stopped
        # heartbeating. End the attempt; the store already says what happens to the subtask.
        cancelled = await self.queue.cancelled_among(r.subtask.id for r in lost)
        self.ending += 1
        try:
            for running in lost:
                self.running.pop(running.subtask.id, None)
                if running.task is not None:
                    running.task.cancel()
            stopped = [(r.subtask, r.started_at) for r in lost if r.subtask.id in cancelled]
            if stopped:
                events = await self.queue.record_cancelled(self.worker_id, stopped)
                await self.events.publish(events)
                await self.events.write_task_events(events)
        finally:
            self.ending -= 1
            self.wake.set()
