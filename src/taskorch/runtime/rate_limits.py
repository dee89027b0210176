"""The worker's side of rate windows: open one when an agent answers with a limit, and know which
agents are in one before claiming their work.

A window is stored (``agent_windows``) so every worker on every host leaves the agent alone until
its reset; each worker reads the open windows at most every :data:`REFRESH_S` (a window another
host opened is seen that late at worst) and knows its own at once. A database that cannot be
written keeps the window in this worker only, rather than failing the attempt's settlement.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from taskorch.domain.errors import AgentError, StoreError
from taskorch.domain.rate_window import RateWindow, open_window
from taskorch.domain.retry import ErrorClass, RetryPolicy
from taskorch.store.connector import Connector
from taskorch.store.rate_windows import RateWindowStore

log = logging.getLogger(__name__)

REFRESH_S = 2.0
"""How often a worker re-reads the stored windows (they change only when an agent is limited)."""


def is_limit(error: AgentError, agent_id: str | None) -> bool:
    """Whether ``error`` opens a rate window: a rate limit or usage limit of a registered agent
    (unassigned subtasks run on the default adapter, which has no row to keep a window in)."""
    return error.error_class == ErrorClass.RATE_LIMIT and agent_id is not None


class RateLimits:
    def __init__(self, connector: Connector) -> None:
        self.store = RateWindowStore(connector)
        self._open: dict[str, RateWindow] = {}
        self._read_at = float("-inf")

    async def limited(self, now: datetime) -> dict[str, RateWindow]:
        """The agents in a window at ``now`` (stored ones re-read at most every REFRESH_S)."""
        if time.monotonic() - self._read_at >= REFRESH_S:
            try:
                stored = await self.store.open_at(now)
            except StoreError as exc:  # the claim that follows meets the same outage
                log.debug("rate windows not read: %s", exc)
            else:
                self._read_at = time.monotonic()
                # stored ones, and this worker's own that the store may not have got
                mine = {a: w for a, w in self._open.items() if a not in stored}
                self._open = {**mine, **stored}
        self._open = {a: w for a, w in self._open.items() if w.open_at(now)}
        return dict(self._open)

    async def hit(
        self, agent_id: str, error: AgentError, policy: RetryPolicy, now: datetime
    ) -> RateWindow:
        """Open (and store) the window of ``agent_id``, which answered ``error`` at ``now``."""
        strikes = 1
        try:
            last = await self.store.get(agent_id)
        except StoreError:
            last = self._open.get(agent_id)
        # Limits in a row: the last window ended no longer ago than the longest backoff.
        if last is not None and now - last.until <= timedelta(seconds=policy.max_delay_s):
            strikes = last.strikes + 1
        window = open_window(
            agent_id,
            now,
            retry_after_s=error.retry_after_s,
            text=error.message,
            strikes=strikes,
            policy=policy,
        )
        self._open[agent_id] = window
        try:
            await self.store.put(window, now)
        except StoreError as exc:
            log.warning("%s: kept in this worker only (%s)", window.describe(), exc)
        log.info("%s (%s)", window.describe(), window.source)
        return window

    def wait_s(self, agent_id: str | None, now: datetime) -> float:
        """How long work for ``agent_id`` must wait for its window to end (0: none open)."""
        window = self._open.get(agent_id) if agent_id is not None else None
        if window is None or not window.open_at(now):
            return 0.0
        return (window.until - now).total_seconds()
