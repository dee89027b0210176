"""Claiming ready subtasks under a lease, inside the caller's transaction: the workflows a claim
passes over, an agent's room under its concurrency limit, and the claim itself.

Used by :class:`taskorch.store.queue.SubtaskQueue` (a claim on its own, or with a settle) and by
:class:`taskorch.store.budget.BudgetLedger` (the claim of budgeted subtasks).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from taskorch.domain.models import Subtask
from taskorch.store.connector import Transaction
from taskorch.store.outcomes import QueueEvent, started_events
from taskorch.store.rows import subtask_from_row


def skip_params(workflow_ids: Iterable[str]) -> dict[str, Any]:
    """Workflows a claim passes over (their repository is out of this host's reach)."""
    skip_list = sorted(workflow_ids)
    return {"skip": json.dumps(skip_list), "skip_list": skip_list}


async def agent_room(tx: Transaction, agent_id: str, agent_limit: int | None) -> int | None:
    """How many more the agent may run (None: it has no limit)."""
    params = {"agent_id": agent_id}
    await tx.fetchone("lock_agent_claims", params)
    row = await tx.fetchone("agent_claim_room", params)
    assert row is not None
    stored = row["max_concurrency"]
    limit = agent_limit if stored is None else int(stored)
    return None if limit is None else limit - int(row["active"])


async def claim_in(
    tx: Transaction,
    now: datetime,
    worker: str,
    limit: int,
    lease_s: float,
    agent_id: str | None,
    skip: Iterable[str] = (),
) -> tuple[list[Subtask], list[QueueEvent]]:
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
