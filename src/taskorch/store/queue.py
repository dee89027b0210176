"""The runtime's persistence face: claiming ready subtasks under leases and settling attempts.

Everything here is batched: one claim takes many subtasks, one settle writes many outcomes, their
attempts, the dependents they release and the events they cause, in one transaction. Writes are
fenced by the lease: an outcome counts only while its worker still owns the subtask in state
``running``, so a worker that lost its lease (and whose subtask was requeued as a zombie) can never
complete it a second time.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any

from taskorch.domain.models import Subtask
from taskorch.domain.retry import MAX_INTERRUPTED_ATTEMPTS
from taskorch.domain.states import SubtaskState
from taskorch.store.completions import settle_completed
from taskorch.store.connector import Connector, Row, Transaction
from taskorch.store.gcpause import gc_paused
from taskorch.store.outcomes import (
    ROUTINE_EVENTS,
    Outcome,
    OutcomeKind,
    QueueEvent,
    started_events,
)
from taskorch.store.outcomes import outcome_event as _outcome_event
from taskorch.store.outcomes import row_event as _event
from taskorch.store.rows import subtask_from_row
from taskorch.store.store import Clock, utc_now

__all__ = ["ROUTINE_EVENTS", "Outcome", "OutcomeKind", "QueueEvent", "SubtaskQueue"]


def skip_params(workflow_ids: Iterable[str]) -> dict[str, Any]:
    """Workflows a claim passes over (their repository is out of this host's reach)."""
    skip_list = sorted(workflow_ids)
    return {"skip": json.dumps(skip_list), "skip_list": skip_list}


def _ids(ids: Iterable[int] | Iterable[str]) -> dict[str, Any]:
    """The id list in both shapes: JSON text for SQLite's json_each, a list for PostgreSQL."""
    id_list = list(ids)
    return {"ids": json.dumps(id_list), "id_list": id_list}


class SubtaskQueue:
    def __init__(self, connector: Connector, *, clock: Clock = utc_now) -> None:
        self.connector = connector
        self._clock = clock

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

    async def queue_ready(self, workflow_id: str) -> list[QueueEvent]:
        """Queue the workflow's pending subtasks that wait for nothing (idempotent).

        A large fan-out is queued in parts by id, each in its own transaction on its own
        connection where the backend writes in parallel (PostgreSQL), so the server's cores share
        it; each subtask's change is independent, and after a failure a second call queues the
        rest."""
        now = self.now
        parts = self.connector.parallel_writes
        with gc_paused():  # a fan-out's thousands of events
            queued = await asyncio.gather(
                *(self._queue_ready_part(workflow_id, now, part, parts) for part in range(parts))
            )
            return sorted((e for events in queued for e in events), key=lambda e: e.subtask_id or 0)

    async def _queue_ready_part(
        self, workflow_id: str, now: datetime, part: int, parts: int
    ) -> list[QueueEvent]:
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall(
                "queue_ready_in_workflow",
                {"workflow_id": workflow_id, "now": now, "part": part, "parts": parts},
            )
            events = [_event("task:enqueued", row) for row in rows]
            await self._record(tx, events)
            if events:
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
                room = await self._agent_room(tx, agent_id, agent_limit)
                limit = limit if room is None else min(limit, room)
                if limit <= 0:
                    return []
            claimed, events = await self._claim_in(tx, worker, limit, lease_s, agent_id, skip)
            await self._record(tx, events)
        return claimed

    async def _agent_room(
        self, tx: Transaction, agent_id: str, agent_limit: int | None
    ) -> int | None:
        """How many more the agent may run (None: it has no limit)."""
        params = {"agent_id": agent_id}
        await tx.fetchone("lock_agent_claims", params)
        row = await tx.fetchone("agent_claim_room", params)
        assert row is not None
        stored = row["max_concurrency"]
        limit = agent_limit if stored is None else int(stored)
        return None if limit is None else limit - int(row["active"])

    async def _claim_in(
        self,
        tx: Transaction,
        worker: str,
        limit: int,
        lease_s: float,
        agent_id: str | None,
        skip: Iterable[str] = (),
    ) -> tuple[list[Subtask], list[QueueEvent]]:
        now = self.now
        params = {
            "worker": worker,
            "limit": limit,
            "agent_id": agent_id,
            "now": now,
            "lease_until": now + timedelta(seconds=lease_s),
            **skip_params(skip),
        }
        rows = await tx.fetchall("claim_subtasks", params)
        if not rows:
            return [], []
        claimed = sorted(map(subtask_from_row, rows), key=lambda s: (-s.priority, s.id))
        return claimed, started_events(claimed, worker)

    async def warm_up(self) -> None:
        """Ready the hot path before the first batch: open its connections and run its
        statement once with nothing to settle or claim (catalog caches, prepared plan)."""
        now = self.now
        await self.connector.warm_up()
        await settle_completed(self.connector, "warm-up", [], now, 0, now)

    async def agents_with_work(self) -> set[str | None]:
        rows = await self.connector.read("queued_agents", {"now": self.now})
        return {row["agent_id"] for row in rows}

    async def agent_load(self) -> dict[str, int]:
        rows = await self.connector.read("agent_load")
        return {str(row["agent_id"]): int(row["active"]) for row in rows}

    async def renew(self, worker: str, ids: Iterable[int], lease_s: float) -> set[int]:
        """Extend the leases; return the ids this worker still owns (the others were taken)."""
        id_params = _ids(ids)
        if not id_params["id_list"]:
            return set()
        now = self.now
        params = {"worker": worker, "lease_until": now + timedelta(seconds=lease_s), **id_params}
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
        params = {"worker": worker, "now": now, **_ids(s.id for s, _ in attempts)}
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall("release_claims", params)
            released = {int(row["id"]) for row in rows}
            ended = [(s, started) for s, started in attempts if s.id in released]
            message = f"released: worker {worker} stopped before the attempt ended"
            await tx.bulk("record_attempt", _stopped_attempts(worker, ended, now, message))
            events = [
                QueueEvent(
                    "task:released",
                    s.workflow_id,
                    s.id,
                    {"key": s.key, "attempt": s.attempts, "worker": worker},
                )
                for s, _ in ended
            ]
            await self._record(tx, events)
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
                    "owned_running", {"worker": worker, **_ids(o.subtask.id for o in outcomes)}
                )
                owned = {int(row["id"]) for row in owned_rows}
                kept = [o for o in outcomes if o.subtask.id in owned]
                events = await self._settle_owned(tx, worker, kept, now)
                await tx.bulk("record_attempt", [_attempt_params(o, worker) for o in kept])
            if claim_limit > 0:
                claimed, started = await self._claim_in(
                    tx, worker, claim_limit, lease_s, None, skip
                )
                events += started
            await self._record(tx, events)
            if any(e.kind == "task:enqueued" for e in events):
                await tx.notify_ready()
        return events, claimed

    async def _settle_owned(
        self, tx: Transaction, worker: str, outcomes: list[Outcome], now: datetime
    ) -> list[QueueEvent]:
        by_kind: dict[str, list[Outcome]] = {}
        for outcome in outcomes:
            by_kind.setdefault(outcome.kind, []).append(outcome)
        events: list[QueueEvent] = []
        done = by_kind.get("completed", [])
        if done:
            await tx.bulk(
                "complete_subtask",
                [
                    {
                        "id": o.subtask.id,
                        "worker": worker,
                        "now": now,
                        "result": o.result or {},
                    }
                    for o in done
                ],
            )
            events += [_outcome_event("task:complete", o) for o in done]
            ids = _ids(o.subtask.id for o in done)
            touched = await tx.fetchall("release_dependents", {"now": now, **ids})
            released = [r for r in touched if r["pending_deps"] == 0 and r["status"] == "queued"]
            events += [_event("task:enqueued", row) for row in released]
        retries = by_kind.get("retry", [])
        if retries:
            await tx.bulk("retry_subtask", [_retry_params(o, worker, now) for o in retries])
            events += [_outcome_event("task:retry", o) for o in retries]
        failed = by_kind.get("failed", []) + by_kind.get("blocked", [])
        if failed:
            events += await self._fail(tx, worker, failed, now)
        return events

    async def _fail(
        self, tx: Transaction, worker: str, failed: list[Outcome], now: datetime
    ) -> list[QueueEvent]:
        await tx.bulk(
            "fail_subtask",
            [
                {
                    "id": o.subtask.id,
                    "worker": worker,
                    "now": now,
                    "error": o.error_message,
                    "result": o.result,
                }
                for o in failed
            ],
        )
        events = [_outcome_event("task:failed", o) for o in failed]
        for outcome in failed:
            reason = f"dependency {outcome.subtask.key} failed: {outcome.error_message}"
            blocked = await tx.fetchall(
                "block_dependents", {"now": now, "reason": reason, **_ids([outcome.subtask.id])}
            )
            events += [_event("task:blocked", row, reason=reason) for row in blocked]
            events.append(
                QueueEvent(
                    "workflow:escalated",
                    outcome.subtask.workflow_id,
                    outcome.subtask.id,
                    {
                        "blocking_subtask": outcome.subtask.key,
                        "reason": outcome.error_message,
                        "error_class": outcome.error_class,
                        "attempts": outcome.subtask.attempts,
                        "blocked_dependents": [row["key"] for row in blocked],
                    },
                )
            )
        return events

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
            await tx.bulk("record_attempt", [_zombie_attempt(row, now) for row in rows])
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
                    {"now": now, "reason": "dependency failed: lease expired", **_ids(failed)},
                )
                events += [_event("task:blocked", row) for row in blocked]
            await self._record(tx, events)
            await tx.notify_ready()
        return events

    async def cancel_workflow(self, workflow_id: str) -> list[QueueEvent]:
        async with self.connector.transaction() as tx:
            rows = await tx.fetchall(
                "cancel_workflow_subtasks", {"workflow_id": workflow_id, "now": self.now}
            )
            events = [_event("task:cancelled", row) for row in rows]
            await self._record(tx, events)
        return events

    async def record_cancelled(
        self, worker: str, attempts: Sequence[tuple[Subtask, datetime]]
    ) -> list[QueueEvent]:
        """Record attempts that a worker stopped because their workflow was cancelled."""
        rows = _stopped_attempts(worker, attempts, self.now, "workflow cancelled")
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
            await self._record(tx, events)
        return events

    async def cancelled_among(self, ids: Iterable[int]) -> set[int]:
        params = _ids(ids)
        if not params["id_list"]:
            return set()
        rows = await self.connector.read("cancelled_among", params)
        return {int(row["id"]) for row in rows}

    async def workflow_counts(self, workflow_ids: Iterable[str]) -> dict[str, dict[str, int]]:
        params = _ids(workflow_ids)
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

    async def _record(self, tx: Transaction, events: Sequence[QueueEvent]) -> None:
        now = self.now
        await tx.bulk(
            "record_event",
            [
                {
                    "kind": e.kind,
                    "workflow_id": e.workflow_id,
                    "subtask_id": e.subtask_id,
                    "payload": e.payload,
                    "now": now,
                }
                for e in events
                if e.kind not in ROUTINE_EVENTS
            ],
        )


def _retry_params(outcome: Outcome, worker: str, now: datetime) -> dict[str, Any]:
    return {
        "id": outcome.subtask.id,
        "worker": worker,
        "now": now,
        "run_after": outcome.run_after,
        "error": outcome.error_message,
        "agent_id": outcome.next_agent_id,
        "interrupted": int(outcome.interrupted),
    }


def _attempt_params(outcome: Outcome, worker: str) -> dict[str, Any]:
    return {
        "subtask_id": outcome.subtask.id,
        "number": outcome.subtask.attempts,
        "agent_id": outcome.agent_id,
        "worker_id": worker,
        "started_at": outcome.started_at,
        "ended_at": outcome.ended_at,
        "outcome": outcome.attempt_outcome,
        "error_class": outcome.error_class,
        "error_message": outcome.error_message,
        "tokens_in": outcome.tokens_in,
        "tokens_out": outcome.tokens_out,
        "cost_usd": outcome.cost_usd,
    }


def _zombie_attempt(row: Row, now: datetime) -> dict[str, Any]:
    return {
        "subtask_id": row["id"],
        "number": row["attempts"],
        "agent_id": row["agent_id"],
        "worker_id": None,
        "started_at": now,
        "ended_at": now,
        "outcome": "zombie",
        "error_class": "zombie",
        "error_message": row["error"],
        "tokens_in": None,
        "tokens_out": None,
        "cost_usd": None,
    }


def _stopped_attempts(
    worker: str, attempts: Sequence[tuple[Subtask, datetime]], now: datetime, why: str
) -> list[dict[str, Any]]:
    """Attempt rows for attempts a worker ended before they did (recorded as cancelled)."""
    return [
        {
            "subtask_id": s.id,
            "number": s.attempts,
            "agent_id": s.agent_id,
            "worker_id": worker,
            "started_at": started,
            "ended_at": now,
            "outcome": "cancelled",
            "error_class": None,
            "error_message": why,
            "tokens_in": None,
            "tokens_out": None,
            "cost_usd": None,
        }
        for s, started in attempts
    ]
