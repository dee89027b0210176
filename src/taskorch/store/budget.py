"""Budgets in the store: a workflow's caps, its figures, and the claim that starts the subtasks of
budgeted workflows only within their caps.

The subtasks of a workflow with a cap are ``budgeted``: the ordinary claims pass them over and
:meth:`BudgetLedger.claim` takes them, one claimer at a time (a lock held by the claiming
transaction), so that what one worker starts is counted by the next. The decision is
:mod:`taskorch.domain.budget`'s; this module reads the figures it needs and writes the claim.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from taskorch.domain.budget import (
    DEFAULT_ESTIMATE_TOKENS,
    NO_HISTORY,
    NOTHING,
    AgentRate,
    BudgetFigures,
    Caps,
    Charge,
    Ready,
    Usage,
    charge,
    crossed_cap,
    figures,
    measured_rate,
    predict,
)
from taskorch.domain.errors import NotFoundError
from taskorch.domain.models import Subtask
from taskorch.store.connector import Row, Statement, Transaction
from taskorch.store.outcomes import QueueEvent, record_events, started_events
from taskorch.store.queue import SubtaskQueue
from taskorch.store.records import id_params
from taskorch.store.rows import subtask_from_row
from taskorch.store.subtask_claims import agent_room, skip_params

CANDIDATES = 200
"""Ready budgeted subtasks looked at per claim beyond the room to fill: held ones are passed over
and a cheaper one behind them may still fit."""

_NOT_THE_AGENTS_TRY = ("host", "busy")


@dataclass(frozen=True, slots=True)
class BudgetHold:
    """A workflow whose next attempt would cross a cap: it waits, with these figures."""

    workflow_id: str
    figures: BudgetFigures

    def event(self) -> QueueEvent:
        payload = {**self.figures.to_dict(), "line": self.figures.line()}
        return QueueEvent("workflow:budget", self.workflow_id, None, payload)


@dataclass(slots=True)
class _Book:
    """One workflow's caps and what it has spent and has running."""

    caps: Caps
    state: str
    spent: Charge = NOTHING
    in_flight: Charge = NOTHING
    by_subtask: dict[int, float] = field(default_factory=dict)
    """Subtask id -> USD its finished attempts were charged."""


def caps_of(row: Mapping[str, Any]) -> Caps:
    usd, tokens, subtask = row["budget_usd"], row["budget_tokens"], row["subtask_budget_usd"]
    return Caps(
        usd=None if usd is None else float(usd),
        tokens=None if tokens is None else int(tokens),
        subtask_usd=None if subtask is None else float(subtask),
    )


class BudgetLedger:
    def __init__(self, queue: SubtaskQueue) -> None:
        self.queue = queue
        self.connector = queue.connector

    async def set_caps(self, workflow_id: str, caps: Caps) -> None:
        """Store the workflow's caps (None: no cap of that kind) and mark its subtasks; workers
        are told at once, so a raise lets a waiting workflow go on without a poll's delay."""
        params = {
            "id": workflow_id,
            "usd": caps.usd,
            "tokens": caps.tokens,
            "subtask_usd": caps.subtask_usd,
            "now": self.queue.now,
        }
        async with self.connector.transaction() as tx:
            if await tx.fetchone("set_workflow_budget", params) is None:
                raise NotFoundError(f"no workflow {workflow_id}")
            await tx.execute("mark_budgeted_subtasks", {"workflow_id": workflow_id})
            await tx.notify_ready()

    async def figures(self, workflow_id: str) -> BudgetFigures:
        """The workflow's budget as it stands: caps, spent, what runs, what starts next."""
        # Plain reads, not a read transaction: on SQLite they then share trips with the other
        # reads of a status (two trips in all where a transaction made five).
        ids = id_params([workflow_id])
        caps, running, attempts = await self.connector.reads(
            [
                Statement("budget_caps", ids),
                Statement("budget_in_flight", ids),
                Statement("budget_attempts", ids),
            ]
        )
        rates = await self._read_rates(_agents(running, attempts))
        book = _books_of(caps, running, attempts, rates).get(workflow_id)
        if book is None:
            raise NotFoundError(f"no workflow {workflow_id}")
        queued: list[Subtask] = []
        if book.state == "processing" and book.caps.any:
            rows = await self.connector.read("budget_queued", {"workflow_id": workflow_id})
            queued = [subtask_from_row(row) for row in rows]
        rates = await self._read_rates({s.agent_id for s in queued})
        ready = [
            Ready(
                s.key,
                predict(s.estimated_tokens, rates.get(s.agent_id, NO_HISTORY)),
                book.by_subtask.get(s.id, 0.0),
            )
            for s in queued
        ]
        return figures(book.caps, book.spent, book.in_flight, ready)

    async def candidate_room(self, subtask: Subtask) -> tuple[float | None, float]:
        """What a best-of-N race may spend on candidates: the workflow's USD cap less what it has
        spent and has running besides this attempt (None: no USD cap), and what one candidate is
        predicted to cost."""
        async with self.connector.transaction(write=False) as tx:
            books = await self._books(tx, [subtask.workflow_id])
            rates = await self._rates(tx, {subtask.agent_id})
        prediction = predict(subtask.estimated_tokens, rates.get(subtask.agent_id, NO_HISTORY))
        book = books.get(subtask.workflow_id)
        if book is None or book.caps.usd is None:
            return None, prediction.usd
        # The running attempt is in flight already: its own prediction is given back to it.
        return book.caps.usd - book.spent.usd - book.in_flight.usd + prediction.usd, prediction.usd

    async def claim(
        self,
        worker: str,
        limit: int,
        lease_s: float,
        *,
        agents: Sequence[str],
        unassigned: bool,
        skip: Iterable[str] = (),
        agent_limits: Mapping[str, int] | None = None,
    ) -> tuple[list[Subtask], list[QueueEvent], list[BudgetHold]]:
        """Start up to ``limit`` ready budgeted subtasks this worker can run (``agents``, and
        unassigned ones when ``unassigned``) whose predicted cost fits their workflow's caps;
        return them, their events and the workflows held by their budget."""
        if limit <= 0:
            return [], [], []
        now = self.queue.now
        params = {
            "now": now,
            "limit": limit + CANDIDATES,
            "unassigned": unassigned,
            "agents": json.dumps(list(agents)),
            "agent_list": list(agents),
            **skip_params(skip),
        }
        # Most steps find nothing budgeted: a read tells, without the write lock.
        async with self.connector.transaction(write=False) as tx:
            if not await tx.fetchall("budget_candidates", params):
                return [], [], []
        async with self.connector.transaction() as tx:
            await tx.fetchone("lock_budget_claims")
            rows = await tx.fetchall("budget_candidates", params)  # again, under the lock
            candidates = [subtask_from_row(row) for row in rows]
            books = await self._books(tx, sorted({s.workflow_id for s in candidates}))
            rates = await self._rates(tx, {s.agent_id for s in candidates})
            chosen, holds = await self._choose(
                tx, candidates, books, rates, limit, agent_limits or {}
            )
            if not chosen:
                return [], [], holds
            claimed_rows = await tx.fetchall(
                "claim_budgeted",
                {
                    "worker": worker,
                    "now": now,
                    "lease_until": now + timedelta(seconds=lease_s),
                    **id_params(s.id for s in chosen),
                },
            )
            claimed = sorted(map(subtask_from_row, claimed_rows), key=lambda s: (-s.priority, s.id))
            events = started_events(claimed, worker)
            await record_events(tx, events, self.queue.now)
        return claimed, events, holds

    async def _choose(
        self,
        tx: Transaction,
        candidates: list[Subtask],
        books: dict[str, _Book],
        rates: dict[str | None, AgentRate],
        limit: int,
        agent_limits: Mapping[str, int],
    ) -> tuple[list[Subtask], list[BudgetHold]]:
        chosen: list[Subtask] = []
        held: dict[str, BudgetHold] = {}
        room: dict[str, int | None] = {}
        for subtask in candidates:
            if len(chosen) >= limit:
                break
            agent = subtask.agent_id
            if agent is not None:
                if agent not in room:  # the agent's limit, counted in this transaction
                    room[agent] = await agent_room(tx, agent, agent_limits.get(agent))
                left = room[agent]
                if left is not None and left <= 0:
                    continue
            book = books[subtask.workflow_id]
            prediction = predict(subtask.estimated_tokens, rates.get(agent, NO_HISTORY))
            spent_here = book.by_subtask.get(subtask.id, 0.0)
            crossed = crossed_cap(book.caps, book.spent, book.in_flight, prediction, spent_here)
            if crossed is not None:
                ready = Ready(subtask.key, prediction, spent_here)
                figures_now = BudgetFigures(book.caps, book.spent, book.in_flight, ready, crossed)
                held.setdefault(subtask.workflow_id, BudgetHold(subtask.workflow_id, figures_now))
                continue
            chosen.append(subtask)
            book.in_flight = book.in_flight + prediction
            if agent is not None and room[agent] is not None:
                room[agent] = int(room[agent] or 0) - 1
        claimed_in = {s.workflow_id for s in chosen}
        return chosen, [h for w, h in held.items() if w not in claimed_in]

    async def _books(self, tx: Transaction, workflow_ids: Sequence[str]) -> dict[str, _Book]:
        ids = id_params(workflow_ids)
        caps = await tx.fetchall("budget_caps", ids)
        if not caps:
            return {}
        # What runs before what ended: an attempt that ends between the two reads (PostgreSQL
        # reads each statement afresh) is counted twice, never missed.
        running = await tx.fetchall("budget_in_flight", ids)
        attempts = await tx.fetchall("budget_attempts", ids)
        rates = await self._rates(tx, _agents(running, attempts))
        return _books_of(caps, running, attempts, rates)

    async def _rates(self, tx: Transaction, agents: set[str | None]) -> dict[str | None, AgentRate]:
        asked = _rates_statement(agents)
        if asked is None:
            return {}
        return {row["agent_id"]: _rate(row) for row in await tx.fetchall(asked.name, asked.params)}

    async def _read_rates(self, agents: set[str | None]) -> dict[str | None, AgentRate]:
        asked = _rates_statement(agents)
        if asked is None:
            return {}
        rows = await self.connector.read(asked.name, asked.params)
        return {row["agent_id"]: _rate(row) for row in rows}


def _rates_statement(agents: set[str | None]) -> Statement | None:
    """The read of these agents' measured rates; None for no agents."""
    if not agents:
        return None
    named = sorted(a for a in agents if a is not None)
    return Statement(
        "agent_budget_rates",
        {
            "agents": json.dumps(named),
            "agent_list": named,
            "unassigned": None in agents,
            "default_estimate": DEFAULT_ESTIMATE_TOKENS,
        },
    )


def _agents(running: Sequence[Row], attempts: Sequence[Row]) -> set[str | None]:
    return {r["agent_id"] for r in [*attempts, *running]}


def _books_of(
    caps: Sequence[Row],
    running: Sequence[Row],
    attempts: Sequence[Row],
    rates: Mapping[str | None, AgentRate],
) -> dict[str, _Book]:
    books = {str(row["id"]): _Book(caps_of(row), str(row["status"])) for row in caps}
    for row in attempts:
        book = books[str(row["workflow_id"])]
        one = charge(_usage(row), rates.get(row["agent_id"], NO_HISTORY))
        book.spent = book.spent + one
        subtask_id = int(row["subtask_id"])
        book.by_subtask[subtask_id] = book.by_subtask.get(subtask_id, 0.0) + one.usd
    for row in running:
        book = books[str(row["workflow_id"])]
        rate = rates.get(row["agent_id"], NO_HISTORY)
        book.in_flight = book.in_flight + predict(int(row["estimated_tokens"]), rate)
    return books


def _usage(row: Row) -> Usage:
    cost, tokens_in, tokens_out = row["cost_usd"], row["tokens_in"], row["tokens_out"]
    return Usage(
        cost_usd=None if cost is None else float(cost),
        tokens_in=None if tokens_in is None else int(tokens_in),
        tokens_out=None if tokens_out is None else int(tokens_out),
        estimated_tokens=int(row["estimated_tokens"]),
        counts=row["outcome"] != "cancelled" and row["error_class"] not in _NOT_THE_AGENTS_TRY,
    )


def _rate(row: Row) -> AgentRate:
    return measured_rate(
        float(row["cost_usd"] or 0),
        int(row["cost_estimate"] or 0),
        int(row["tokens"] or 0),
        int(row["tokens_estimate"] or 0),
        float(row["priced_cost_usd"] or 0),
        int(row["priced_tokens"] or 0),
    )
