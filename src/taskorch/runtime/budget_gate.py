"""The worker's budget gate: starts the subtasks of budgeted workflows only within their caps
(:meth:`taskorch.store.budget.BudgetLedger.claim`) and says once when a workflow starts to wait
for its budget (a ``workflow:budget`` event with the figures)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping

from taskorch.domain.models import Subtask
from taskorch.runtime.events import EventBus
from taskorch.store.budget import BudgetLedger
from taskorch.store.queue import SubtaskQueue

log = logging.getLogger(__name__)

IDLE_RECHECK_S = 0.25
"""After a look that started nothing, how long the gate skips looking: the worker's hot path (a
chain's next step) pays no extra read, and budgeted work (or a raised budget) starts at most this
much later."""


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
        self._quiet_until = 0.0

    async def claim(self, free: int, skip: Iterable[str]) -> list[Subtask]:
        """Start up to ``free`` budgeted subtasks that fit their budgets (the caller publishes
        their start, as for its other claims)."""
        now = time.monotonic()
        if free <= 0 or now < self._quiet_until:
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
        if not claimed:  # nothing budgeted, or all of it held: look again a little later
            self._quiet_until = now + IDLE_RECHECK_S
        started = {s.workflow_id for s in claimed}
        new = [h for h in holds if h.workflow_id not in self.held]
        self.held = (self.held - started) | {h.workflow_id for h in holds}
        for hold in new:
            log.info("workflow %s: %s", hold.workflow_id, hold.figures.line())
        if new:
            await self.events.publish([h.event() for h in new])
        return claimed
