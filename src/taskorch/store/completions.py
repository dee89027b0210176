"""The queue's hot path: a batch of completed attempts settled, and more work claimed, at once.

One named script (``settle_completed``) does it all in one transaction: on PostgreSQL one
statement, so one round trip and one commit; on SQLite a few statements in one write transaction.
It stores the attempts and completions this worker's leases still cover, counts down the
dependents, claims ready subtasks, and (PostgreSQL) hands dependents that just became ready
straight to the worker that released them, so a chain advances without a notification or a second
claim. Batches with retries or failures take the general path of
:meth:`taskorch.store.queue.SubtaskQueue.settle`.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime

from taskorch.domain.models import Subtask
from taskorch.store.connector import Connector
from taskorch.store.outcomes import Outcome, QueueEvent, outcome_event, row_event, started_events
from taskorch.store.rows import subtask_from_row


async def settle_completed(
    connector: Connector,
    worker: str,
    outcomes: Sequence[Outcome],
    now: datetime,
    claim_limit: int,
    lease_until: datetime,
    skip: Iterable[str] = (),
    *,
    quiet: bool = False,
) -> tuple[list[QueueEvent], list[Subtask]]:
    """Settle ``outcomes`` (all ``completed``) and claim up to ``claim_limit`` subtasks for any
    agent; return the events (all routine: nothing to store in the events table) and the claimed
    subtasks, highest priority first. ``quiet``: only the completions' events (the caller counts
    them), none for the subtasks released or started (nobody would read them)."""
    rows = await connector.script(
        "settle_completed",
        {
            "worker": worker,
            "now": now,
            "lease_until": lease_until,
            "limit": claim_limit,
            "skip": json.dumps(sorted(skip)),
            "skip_list": sorted(skip),
            "rows": _rows_json(outcomes),
            "ids": _id_array(outcomes),
            "results": _json({str(o.subtask.id): o.result or {} for o in outcomes}),
        },
    )
    done: set[int] = set()
    released = []
    claimed_rows = []
    for row in rows:
        what = row["what"]
        if what == "done":  # PostgreSQL: one row with all ids; SQLite: a row per id
            done.update((row["done_ids"] or ()) if "done_ids" in row else (row["done_id"],))
        elif what == "claimed":
            claimed_rows.append(row)
        elif what == "released":
            released.append(row)
            claimed_rows.append(row)
        elif what == "queued" and row["pending_deps"] == 0 and row["status"] == "queued":
            released.append(row)
    events = [outcome_event("task:complete", o) for o in outcomes if o.subtask.id in done]
    claimed = sorted(map(subtask_from_row, claimed_rows), key=lambda s: (-s.priority, s.id))
    if not quiet:
        events += [row_event("task:enqueued", row) for row in released]
        events += started_events(claimed, worker)
    return events, claimed


def _rows_json(outcomes: Sequence[Outcome]) -> str:
    """One array per attempt, in the order the ``settle_completed`` scripts read them."""
    # The attempts of one claim share their start time (one object): each is formatted once.
    started: dict[int, str] = {}

    def started_text(value: datetime) -> str:
        text = started.get(id(value))
        if text is None:
            text = started[id(value)] = _time(value)
        return text

    return _json(
        [
            [
                o.subtask.id,
                o.subtask.attempts,
                o.agent_id,
                started_text(o.started_at),
                _time(o.ended_at),
                o.tokens_in,
                o.tokens_out,
                o.cost_usd,
            ]
            for o in outcomes
        ]
    )


def _id_array(outcomes: Sequence[Outcome]) -> str:
    """The ids as a PostgreSQL array literal, text whatever they are. A list of ints would be
    sent as int2[], int4[] or int8[] by its largest id (and an empty one untyped): each new
    parameter type prepares and plans the statement again on the connection (4-12 ms of
    server time, in the first batch after the warm-up)."""
    return "{" + ",".join([str(o.subtask.id) for o in outcomes]) + "}"


def _json(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _time(value: datetime) -> str:
    # The form SQLite stores (see sqlite.py); PostgreSQL reads it as the same instant.
    if value.tzinfo is not UTC:
        value = value.astimezone(UTC)
    return value.isoformat(timespec="microseconds")
