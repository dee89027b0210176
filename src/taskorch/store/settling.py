"""The general path of settling a batch of ended attempts (one with retries or failures; a batch
of completions only takes :mod:`taskorch.store.completions`): each kind of outcome written in
bulk, the dependents of completed subtasks released and those of failed ones blocked, with the
events it all causes. Runs inside :meth:`taskorch.store.queue.SubtaskQueue.settle`'s transaction,
on the outcomes whose subtasks the worker still owns.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from taskorch.store.connector import Transaction
from taskorch.store.outcomes import Outcome, QueueEvent, outcome_event, row_event
from taskorch.store.records import id_params


async def settle_owned(
    tx: Transaction, worker: str, outcomes: list[Outcome], now: datetime
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
        events += [outcome_event("task:complete", o) for o in done]
        ids = id_params(o.subtask.id for o in done)
        touched = await tx.fetchall("release_dependents", {"now": now, **ids})
        released = [r for r in touched if r["pending_deps"] == 0 and r["status"] == "queued"]
        events += [row_event("task:enqueued", row) for row in released]
    retries = by_kind.get("retry", [])
    if retries:
        await tx.bulk("retry_subtask", [_retry_params(o, worker, now) for o in retries])
        events += [outcome_event("task:retry", o) for o in retries]
    failed = by_kind.get("failed", []) + by_kind.get("blocked", [])
    if failed:
        events += await _fail(tx, worker, failed, now)
    return events


async def _fail(
    tx: Transaction, worker: str, failed: list[Outcome], now: datetime
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
    events = [outcome_event("task:failed", o) for o in failed]
    for outcome in failed:
        reason = f"dependency {outcome.subtask.key} failed: {outcome.error_message}"
        blocked = await tx.fetchall(
            "block_dependents", {"now": now, "reason": reason, **id_params([outcome.subtask.id])}
        )
        events += [row_event("task:blocked", row, reason=reason) for row in blocked]
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
