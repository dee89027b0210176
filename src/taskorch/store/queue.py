"""The runtime's persistence face: claiming ready subtasks under leases and settling attempts.

Everything here is batched: one claim takes many subtasks, one settle writes many outcomes, their
attempts, the dependents they release and the events they cause, in one transaction. Writes are
fenced by the lease: an outcome counts only while its worker still owns the subtask in state
``running``, so a worker that lost its lease (and whose subtask was requeued as a zombie) can never
complete it a second time.

The queue's methods keep the transactions; what they write lives by concept: claims
(:mod:`taskorch.store.subtask_claims`), the general path of settling
(:mod:`taskorch.store.settling`; completions only: :mod:`taskorch.store.completions`), attempt
rows (:mod:`taskorch.store.attempt_rows`) and events (:mod:`taskorch.store.outcomes`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta

from taskorch.domain.models import Subtask
from taskorch.domain.retry import MAX_INTERRUPTED_ATTEMPTS
from taskorch.domain.states import SubtaskState
from taskorch.store.attempt_rows import attempt_params, stopped_attempts, zombie_attempt
from taskorch.store.completions import settle_completed
from taskorch.store.connector import Connector, Row
from taskorch.store.gcpause import gc_paused
from taskorch.store.outcomes import (
    ROUTINE_EVENTS,
    Outcome,
    OutcomeKind,
    QueueEvent,
    record_events,
)
from taskorch.store.outcomes import row_event as _event
from taskorch.store.records import id_params
from taskorch.store.settling import settle_owned
from taskorch.store.store import Clock, utc_now
from taskorch.store.subtask_claims import agent_room, claim_in

__all__ = ["ROUTINE_EVENTS", "Outcome", "OutcomeKind", "QueueEvent", "SubtaskQueue"]


class SubtaskQueue:
    def __init__(self, connector: Connector, *, clock: Clock = utc_now) -> None:
        self.connector = connector
        self._clock = clock
        self._warm = False

    @property
    def now(self) -> datetime:
        return self._clock()

    async def enqueue_workflow(self, workflow_id: str) -> list[QueueEvent]:
        """:meth:`link_workflow` then :meth:`queue_ready`."""
        await self.link_workflow(workflow_id)
        return await self.queue_ready(workflow_id)

    async def link_workflow(self, workflow_id: str) -> None:
        """Link a workflow's stored subtasks by their dependencies and count what each waits for.
        Idempotent: after a crash it may run again and changes nothing already done."""
        params = {"workflow_id": workflow_id}
        async with self.connector.transaction() as tx:
            await tx.execute("link_subtasks", params)
            await tx.execute("count_pending_deps", params)
            await tx.execute("mark_budgeted_subtasks", params)  # before any is queued

    async def queue_ready(self, workflow_id: str, *, quiet: bool = False) -> list[QueueEvent]:
        """Queue the workflow's pending subtasks that wait for nothing (idempotent).

        A large fan-out is queued in parts by id, each in its own transaction on its own
        connection where the backend writes in parallel (PostgreSQL), so the server's cores share
        it; each subtask's change is independent, and after a failure a second call queues the
        rest. ``quiet``: no ``task:enqueued`` events are built (nobody would read them; they are
        routine, never stored) and none is returned: a fan-out's thousands of them were built
        and sorted while its workers waited for the work."""
        now = self.now
        parts = self.connector.parallel_writes
        with gc_paused():  # a fan-out's thousands of events
            queued = await asyncio.gather(
                *(
                    self._queue_ready_part(workflow_id, now, part, parts, quiet)
                    for part in range(parts)
                )
            )
            return sorted((e for events in queued for e in events), key=lambda e: e.subtask_id or 0)

    async def _queue_ready_part(
        self, workflow_id: str, now: datetime, part: int, parts: int, quiet: bool
    ) -> list[QueueEvent]:
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall(
                "queue_ready_in_workflow",
                {"workflow_id": workflow_id, "now": now, "part": part, "parts": parts},
            )
            events = [] if quiet else [_event("task:enqueued", row) for row in rows]
            await record_events(tx, events, self.now)  # (routine events: none is stored)
            if rows:
                await tx.notify_ready()
        return events

    async def claim(
        self,
        worker: str,
        limit: int,
        lease_s: float,
        *,
        agent_id: str | None = None,
        skip: Iterable[str] = (),
        agent_limit: int | None = None,
    ) -> list[Subtask]:
        """Take up to ``limit`` ready subtasks meant for ``agent_id`` (None: any agent), not of
        the workflows in ``skip``, and mark them running under this worker's lease.

        For an agent, its concurrency limit holds at every moment: the subtasks it runs are
        counted and claimed in one transaction, one claimer per agent at a time. The limit is
        the agent's stored ``max_concurrency``, else ``agent_limit`` (None: no limit)."""
        if limit <= 0:
            return []
        async with self.connector.transaction() as tx:
            if agent_id is not None:
                room = await agent_room(tx, agent_id, agent_limit)
                limit = limit if room is None else min(limit, room)
                if limit <= 0:
                    return []
            claimed, events = await claim_in(tx, self.now, worker, limit, lease_s, agent_id, skip)
            await record_events(tx, events, self.now)
        return claimed

    async def warm_up(self) -> None:
        """Ready the hot path before the first batch: open its connections and run its
        statement once with nothing to settle or claim (catalog caches, prepared plan). Once per
        queue: a process that warmed up before its clock (the bench's worker) and then starts
        :meth:`Worker.run`, which warms up too, pays no second round trip when its work starts."""
        if self._warm:
            return
        now = self.now
        await self.connector.warm_up()
        await settle_completed(self.connector, "warm-up", [], now, 0, now)
        self._warm = True

    async def agents_with_work(self) -> set[str | None]:
        rows = await self.connector.read("queued_agents", {"now": self.now})
        return {row["agent_id"] for row in rows}

    async def agent_load(self) -> dict[str, int]:
        rows = await self.connector.read("agent_load")
        return {str(row["agent_id"]): int(row["active"]) for row in rows}

    async def renew(self, worker: str, ids: Iterable[int], lease_s: float) -> set[int]:
        """Extend the leases; return the ids this worker still owns (the others were taken)."""
        asked = id_params(ids)
        if not asked["id_list"]:
            return set()
        now = self.now
        params = {"worker": worker, "lease_until": now + timedelta(seconds=lease_s), **asked}
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall("renew_leases", params)
        return {int(row["id"]) for row in rows}

    async def release(
        self, worker: str, attempts: Sequence[tuple[Subtask, datetime]]
    ) -> list[QueueEvent]:
        """Give back the subtasks of attempts a stopping worker ended (after its grace period):
        queued again at once, each ended attempt recorded as cancelled."""
        if not attempts:
            return []
        now = self.now
        params = {"worker": worker, "now": now, **id_params(s.id for s, _ in attempts)}
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall("release_claims", params)
            released = {int(row["id"]) for row in rows}
            ended = [(s, started) for s, started in attempts if s.id in released]
            message = f"released: worker {worker} stopped before the attempt ended"
            await tx.bulk("record_attempt", stopped_attempts(worker, ended, now, message))
            events = [
                QueueEvent(
                    "task:released",
                    s.workflow_id,
                    s.id,
                    {"key": s.key, "attempt": s.attempts, "worker": worker},
                )
                for s, _ in ended
            ]
            await record_events(tx, events, self.now)
        return events

    async def settle(
        self,
        worker: str,
        outcomes: Sequence[Outcome],
        *,
        claim_limit: int = 0,
        lease_s: float = 30.0,
        skip: Iterable[str] = (),
        quiet: bool = False,
    ) -> tuple[list[QueueEvent], list[Subtask]]:
        """Write a batch of finished attempts and, in the same transaction, claim up to
        ``claim_limit`` unassigned ready subtasks (none of the workflows in ``skip``); return the
        events and the claimed subtasks. ``quiet``: a batch of completions may leave out the
        routine events of the subtasks it released and started (nobody reads them)."""
        if not outcomes and claim_limit <= 0:
            return [], []
        now = self.now
        if all(o.kind == "completed" for o in outcomes):
            lease_until = now + timedelta(seconds=lease_s)
            return await settle_completed(
                self.connector,
                worker,
                outcomes,
                now,
                max(claim_limit, 0),
                lease_until,
                skip,
                quiet=quiet,
            )
        events: list[QueueEvent] = []
        claimed: list[Subtask] = []
        async with self.connector.transaction() as tx:
            if outcomes:
                owned_rows = await tx.fetchall(
                    "owned_running", {"worker": worker, **id_params(o.subtask.id for o in outcomes)}
                )
                owned = {int(row["id"]) for row in owned_rows}
                kept = [o for o in outcomes if o.subtask.id in owned]
                events = await settle_owned(tx, worker, kept, now)
                await tx.bulk("record_attempt", [attempt_params(o, worker) for o in kept])
            if claim_limit > 0:
                claimed, started = await claim_in(
                    tx, self.now, worker, claim_limit, lease_s, None, skip
                )
                events += started
            await record_events(tx, events, self.now)
            if any(e.kind == "task:enqueued" for e in events):
                await tx.notify_ready()
        return events, claimed

    async def expire_leases(
        self, *, max_interrupted: int = MAX_INTERRUPTED_ATTEMPTS
    ) -> list[QueueEvent]:
        """Requeue subtasks whose lease ran out (zombies): an interrupted attempt, not the
        agent's try; fail those that reach ``max_interrupted`` interrupted attempts."""
        now = self.now
        params = {"now": now, "max_interrupted": max_interrupted}
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall("expire_leases", params)
            if not rows:
                return []
            await tx.bulk("record_attempt", [zombie_attempt(row, now) for row in rows])
            events = [
                _event(
                    "task:zombie",
                    row,
                    error=row["error"],
                    attempt=row["attempts"],
                    requeued=row["status"] == SubtaskState.QUEUED,
                )
                for row in rows
            ]
            failed = [int(row["id"]) for row in rows if row["status"] == SubtaskState.FAILED]
            if failed:
                blocked = await tx.fetchall(
                    "block_dependents",
                    {"now": now, "reason": "dependency failed: lease expired", **id_params(failed)},
                )
                events += [_event("task:blocked", row) for row in blocked]
            await record_events(tx, events, self.now)
            await tx.notify_ready()
        return events

    async def cancel_workflow(self, workflow_id: str) -> list[QueueEvent]:
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall(
                "cancel_workflow_subtasks", {"workflow_id": workflow_id, "now": self.now}
            )
            events = [_event("task:cancelled", row) for row in rows]
            await record_events(tx, events, self.now)
        return events

    async def record_cancelled(
        self, worker: str, attempts: Sequence[tuple[Subtask, datetime]]
    ) -> list[QueueEvent]:
        """Record attempts that a worker stopped because their workflow was cancelled."""
        rows = stopped_attempts(worker, attempts, self.now, "workflow cancelled")
        events = [
            QueueEvent(
                "task:cancelled",
                s.workflow_id,
                s.id,
                {
                    "key": s.key,
                    "attempt": s.attempts,
                    "worker": worker,
                    "stopped_running_attempt": True,
                },
            )
            for s, _ in attempts
        ]
        async with self.connector.transaction() as tx:
            await tx.bulk("record_attempt", rows)
            await record_events(tx, events, self.now)
        return events

    async def cancelled_among(self, ids: Iterable[int]) -> set[int]:
        params = id_params(ids)
        if not params["id_list"]:
            return set()
        rows = await self.connector.read("cancelled_among", params)
        return {int(row["id"]) for row in rows}

    async def workflow_counts(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        params = id_params(workflow_ids)
        counts: dict[str, dict[str, int]] = {w: {} for w in params["id_list"]}
        rows = await self.connector.read("workflow_counts", params)
        for row in rows:
            counts[str(row["workflow_id"])][str(row["status"])] = int(row["n"])
        return counts

    async def counts(self) -> dict[str, int]:
        rows = await self.connector.read("queue_counts")
        return {str(row["status"]): int(row["n"]) for row in rows}

    async def attempt_stats(self, since: datetime) -> list[Row]:
        """Attempts grouped by agent, outcome and error class: count, mean seconds, and how many
        ended after ``since``."""
        return await self.connector.read("attempt_stats", {"since": since})

    async def wait_for_work(self, timeout_s: float) -> bool:
        return await self.connector.wait_for_notification(timeout_s)
