"""The workers an engine builds (``run``, ``serve``, ``worker``, and a process that runs its own
subtasks): configured from the settings, with the engine's recovery manager (its plugins'
strategies, ``engine/recovery_plugins.py``).

Imported only where a worker is built: a command that reads must not load the worker.
"""

from __future__ import annotations

from collections.abc import Mapping

from taskorch.agents.base import AgentAdapter
from taskorch.engine.agents import AgentPool
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import SHUTDOWN_GRACE_S, Worker, WorkerConfig, default_worker_id
from taskorch.settings import Settings
from taskorch.store.queue import SubtaskQueue


def worker_for(
    queue: SubtaskQueue,
    agents: Mapping[str | None, AgentAdapter],
    settings: Settings,
    *,
    events: EventBus,
    recovery: ErrorRecoveryManager,
    concurrency: int | None = None,
    shutdown_grace_s: float | None = None,
) -> Worker:
    """A worker running ``agents`` (an :class:`AgentPool` also gives its limits per agent and
    the reassignment of retries); ``shutdown_grace_s`` None is the worker's default."""
    config = WorkerConfig(
        concurrency=concurrency or settings.worker_concurrency,
        lease_s=settings.lease_s,
        timeout_s=settings.attempt_timeout_s,
        shutdown_grace_s=SHUTDOWN_GRACE_S if shutdown_grace_s is None else shutdown_grace_s,
    )
    pool = agents if isinstance(agents, AgentPool) else None
    return Worker(
        queue,
        agents,
        worker_id=default_worker_id(settings.host_name),
        config=config,
        recovery=recovery,
        events=events,
        agent_limits=pool.limits if pool else None,
        reassign=pool.reassign if pool and pool.coordinator else None,
    )
