"""What a worker is given (:class:`WorkerConfig`, its id) and what it counts (:class:`WorkerStats`).

Imported from :mod:`taskorch.runtime.worker` too, with the worker.
"""

from __future__ import annotations

import os
import socket
from collections import deque
from dataclasses import dataclass, field

from taskorch.domain.retry import MAX_INTERRUPTED_ATTEMPTS
from taskorch.store.queue import QueueEvent

LATENCY_WINDOW = 10_000
SHUTDOWN_GRACE_S = 10.0
"""How long a stopping worker lets running attempts finish before it releases them."""


@dataclass(frozen=True, slots=True)
class WorkerConfig:
    concurrency: int = 5
    claim_batch: int = 1000
    """At most this many subtasks per claim, and at most half the concurrency (rounded up): a
    worker with room for more claims again at once, and the attempts of one batch run while the
    next batch is settled and claimed. A batch of the whole concurrency left nothing to run while
    the worker waited for its settle (W1 on PostgreSQL, 2 worker processes of 1,000: client and
    server took turns, and the fan-out's last batch went to one worker while the other idled)."""
    lease_s: float = 30.0
    timeout_s: float = 300.0
    poll_s: float = 0.5
    shutdown_grace_s: float = SHUTDOWN_GRACE_S
    max_interrupted: int = MAX_INTERRUPTED_ATTEMPTS
    """Interrupted attempts (lost leases, host errors) after which a subtask fails."""


@dataclass(slots=True)
class WorkerStats:
    claimed: int = 0
    completed: int = 0
    retried: int = 0
    failed: int = 0
    zombies: int = 0
    dispatch_latency_s: deque[float] = field(default_factory=lambda: deque(maxlen=LATENCY_WINDOW))
    """Ready -> running of the most recent claims (bounded: a worker may run for months)."""

    def count(self, event: QueueEvent) -> None:
        if event.kind == "task:complete":
            self.completed += 1
        elif event.kind == "task:retry":
            self.retried += 1
        elif event.kind == "task:failed":
            self.failed += 1
        elif event.kind == "task:zombie":
            self.zombies += 1


def default_worker_id(host: str | None = None) -> str:
    """``host:pid:random``: the host a worker advertises comes first."""
    return f"{host or socket.gethostname()}:{os.getpid()}:{os.urandom(2).hex()}"
