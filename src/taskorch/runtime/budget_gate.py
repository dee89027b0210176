"""The worker's budget gate: starts the subtasks of budgeted workflows only within their caps
(:meth:`taskorch.store.budget.BudgetLedger.claim`) and says once when a workflow starts to wait
for its budget (a ``workflow:budget`` event with the figures)."""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping

from taskorch.domain.models import Subtask
from taskorch.runtime.events import EventBus
from taskorch.store.budget import BudgetLedger
from taskorch.store.queue import SubtaskQueue

log = logging.getLogger(__name__)


class BudgetGate:
    def __init__(
        self,
        queue: SubtaskQueue,
        events: EventBus,
        *,
        worker_id: str,
        agents: Iterable[str | None],
        lease_s: float,
        agent_limits: Mapping[str, int] | None = None,
    ) -> None:
        self.ledger = BudgetLedger(queue)
        self.events = events
        self.worker_id = worker_id
        keys = list(agents)
        self.agents = [a for a in keys if a is not None]
        self.unassigned = None in keys
        self.lease_s = lease_s
        self.agent_limits = dict(agent_limits or {})
        self.held: set[str] = set()
        """Workflows this worker last found waiting for their budget."""

    async def claim(self, free: int, skip: Iterable[str]) -> list[Subtask]:
        """Start up to ``free`` budgeted subtasks that fit their budgets (the caller publishes
        their start, as for its other claims)."""
        if free <= 0:
            return []
        claimed, _, holds = await self.ledger.claim(
            self.worker_id,
            free,
            self.lease_s,
            agents=self.agents,
            unassigned=self.unassigned,
            skip=skip,
            agent_limits=self.agent_limits,
        )
        started = {s.workflow_id for s in claimed}
        new = [h for h in holds if h.workflow_id not in self.held]
        self.held = (self.held - started) | {h.workflow_id for h in holds}
        for hold in new:
            log.info("workflow %s: %s", hold.workflow_id, hold.figures.line())
        if new:
            await self.events.publish([h.event() for h in new])
        return claimed
