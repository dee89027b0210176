"""Riding out a database outage: which errors are transient, bounded backoff, one log line.

A store error is **transient** when the same work may succeed if it is simply tried again: the
backends raise :class:`DatabaseUnavailableError` for those (a dropped or terminated connection, a
server restarting, a serialization failure or deadlock, SQLite busy for longer than its timeout,
a full disk). Every other :class:`StoreError` is permanent (a constraint, a bad query) and retrying
it only repeats it. :func:`is_transient` is the one place callers ask.

Loops that must outlive an outage (``serve``, ``worker``, the pipeline) keep an :class:`Outage`:
it says how long to wait before the next try (exponential, capped at :data:`MAX_DELAY_S`, with
jitter so many processes do not reconnect in step) and logs one line when an outage begins (one
per process, not one per loop or per retry); the end is logged at INFO.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

from taskorch.domain.errors import DatabaseUnavailableError, StoreError

log = logging.getLogger(__name__)

T = TypeVar("T")

FIRST_DELAY_S = 0.1
MAX_DELAY_S = 5.0
"""The longest wait between two tries: a database that comes back is used within this long."""


QUIET_S = 30.0
"""Failures this close together are one outage, logged once."""


_last_failure_s = -QUIET_S
"""When a loop of this process last met a database failure (a ``serve`` has several loops: the
daemon, its worker, the pipeline; one line per outage is enough for all of them)."""


def _new_outage(now: float) -> bool:
    """Note a failure; whether it is the first of an outage for this process."""
    global _last_failure_s
    quiet = now - _last_failure_s >= QUIET_S
    _last_failure_s = now
    return quiet


def is_transient(error: BaseException) -> bool:
    """Whether ``error`` is a database failure that a later try of the same work may not meet."""
    return isinstance(error, DatabaseUnavailableError)


@dataclass(slots=True)
class Outage:
    """The database outage one loop is living through, if any (``who`` names the loop)."""

    who: str
    first_delay_s: float = FIRST_DELAY_S
    max_delay_s: float = MAX_DELAY_S
    logger: logging.Logger = field(default=log)
    _since: float | None = None
    _tries: int = 0

    @property
    def ongoing(self) -> bool:
        return self._since is not None

    @property
    def lasted_s(self) -> float:
        """How long the current outage has lasted (0 when there is none)."""
        return 0.0 if self._since is None else time.monotonic() - self._since

    def failed(self, error: StoreError) -> float:
        """Note a failed try; return how long to wait before the next one. Only the first
        failure of an outage is logged, once for the whole process (failures less than
        :data:`QUIET_S` apart belong to one outage: each of a pool's dropped connections fails
        once, between successes). A permanent error (a loop that retries every store error,
        like the worker's) is not an outage: it is logged each time, as it is a fault to fix."""
        now = time.monotonic()
        if not is_transient(error):
            self.logger.warning("%s: database error, will retry: %s", self.who, error.message)
            new = False
        else:
            new = _new_outage(now)
        if self._since is None:
            self._since = now
            self._tries = 0
            if new:
                self.logger.warning(
                    "%s: database unavailable, retrying every %g s at most until it is back: %s",
                    self.who,
                    self.max_delay_s,
                    error.message,
                )
        self._tries += 1
        delay: float = min(self.first_delay_s * 2.0 ** (self._tries - 1), self.max_delay_s)
        return delay * random.uniform(0.5, 1.0)

    def recovered(self) -> None:
        """The database answered again: end the outage (logged at INFO)."""
        if self._since is not None:
            self.logger.info(
                "%s: database back after %.1f s (%d retries)", self.who, self.lasted_s, self._tries
            )
            self._since = None
            self._tries = 0


async def retry_transient(
    operation: Callable[[], Awaitable[T]], outage: Outage, *, give_up_after_s: float | None = None
) -> T:
    """``operation()``, tried again after each transient error with the outage's backoff; the
    error is raised once the outage has lasted ``give_up_after_s`` (never, when None)."""
    while True:
        try:
            result = await operation()
        except DatabaseUnavailableError as exc:
            delay = outage.failed(exc)
            if give_up_after_s is not None and outage.lasted_s >= give_up_after_s:
                raise
            await asyncio.sleep(delay)
            continue
        outage.recovered()
        return result
