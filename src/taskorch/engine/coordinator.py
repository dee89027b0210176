"""``AgentCoordinator``, the specification's face: routing (:mod:`taskorch.agents.routing`) plus
running one assignment on its agent, watching it, cancelling it, and the agents' statistics.

::

    coordinator = AgentCoordinator()
    await coordinator.initialize()                      # the registry, track records and load
    session = await coordinator.execute_task(assignment, {"workdir": "/src/app"})
    state = await coordinator.monitor_execution(session.session_id)
    await coordinator.cancel_execution(session.session_id)   # ends the agent's process tree
    stats = await coordinator.get_statistics()

An execution runs outside any workflow: the agent works in the context's ``workdir`` (default: a
new empty folder) and nothing is merged; a workflow's subtasks go through the pipeline instead.
The statistics are the store's (every attempt workers made), beside this coordinator's own runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import tempfile
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask
from taskorch.agents.registry import KNOWN_TYPES, build_adapter, capabilities_for
from taskorch.agents.routing import AgentCoordinator as Router
from taskorch.domain.errors import AgentError, InputError, NotFoundError
from taskorch.domain.models import Agent, Subtask
from taskorch.domain.plan import PlanSubtask
from taskorch.engine.engine import OrchestrationEngine
from taskorch.engine.execution import (
    AgentCapabilityInfo,
    AgentStatistics,
    Assignment,
    ExecutionContext,
    ExecutionSession,
    ExecutionState,
    ExecutionStatus,
    as_subtask,
    read_context,
)
from taskorch.planning.completion import instructions_for as plan_instructions
from taskorch.runtime.worker_attempts import instructions_for
from taskorch.settings import Settings
from taskorch.store.agent_stats import TrackRecord, Usage


@dataclass(slots=True)
class _Run:
    session: ExecutionSession
    started: float
    task: asyncio.Task[AgentResult] | None = None
    heartbeats: int = 0
    last_beat: float | None = None
    ended: float | None = None
    cancelled: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


class AgentCoordinator(Router):
    """Routing over a snapshot of the registry (the routing module's coordinator) and, once
    initialised against an engine, the running of assignments on agents."""

    def __init__(
        self,
        agents: Iterable[Agent] = (),
        records: Mapping[str, TrackRecord] | None = None,
        load: Mapping[str, int] | None = None,
        *,
        only: str | None = None,
        scoring: bool = True,
        engine: OrchestrationEngine | None = None,
        settings: Settings | None = None,
    ) -> None:
        super().__init__(agents, records, load, only=only, scoring=scoring)
        self._engine = engine
        self._settings = settings
        self._owns_engine = False
        self._ready = False
        self._runs: dict[str, _Run] = {}
        self._numbers = itertools.count(1)

    # --- lifecycle ---------------------------------------------------------------------------

    async def initialize(self) -> None:
        """Open the engine (the settings' database) unless one was given, and take a fresh
        snapshot of the registered agents, their track records, load and rate windows."""
        if self._engine is None:
            self._engine = OrchestrationEngine(self._settings)
            await self._engine.initialize()
            self._owns_engine = True
        directory = self._engine.agent_directory
        await directory.sync_default()
        self.agents = sorted(await self._engine.store.list_agents(), key=lambda a: a.name)
        self.records = dict(await directory.stats.track_records())
        self.load = dict(await directory.stats.load())
        self.scoring = self._engine.settings.enable_agent_coordination
        self.windows = await directory.rate_windows()
        self.cost_weight = self._engine.settings.routing_cost_weight
        self._ready = True

    async def shutdown(self) -> None:
        """Cancel running executions; close the engine if this coordinator opened it."""
        for session_id, run in list(self._runs.items()):
            if run.ended is None:
                await self.cancel_execution(session_id)
        if self._owns_engine and self._engine is not None:
            await self._engine.shutdown()
            self._engine, self._owns_engine = None, False
        self._ready = False

    async def __aenter__(self) -> AgentCoordinator:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @property
    def engine(self) -> OrchestrationEngine:
        if self._engine is None or not self._ready:
            raise InputError("the coordinator is not initialised: `await coordinator.initialize()`")
        return self._engine

    # --- executing ---------------------------------------------------------------------------

    async def execute_task(
        self,
        assignment: Assignment | PlanSubtask | Subtask,
        context: ExecutionContext | Mapping[str, Any] | str | None = None,
    ) -> ExecutionSession:
        """Start the assignment's subtask on its agent (routed now when it names none) and
        return at once; :meth:`monitor_execution`, :meth:`wait_for_execution` and
        :meth:`cancel_execution` take the session id."""
        engine = self.engine
        if not isinstance(assignment, Assignment):
            assignment = Assignment(assignment)
        given = read_context(context)
        number = next(self._numbers)
        session_id = f"session-{number}-{int(time.time() * 1000) % 1_000_000:06d}"
        subtask = as_subtask(assignment.subtask, -number, session_id)
        agent, reason = self._agent_for(assignment, subtask)
        workdir = given.workdir or Path(tempfile.mkdtemp(prefix=f"taskorch-{session_id}-"))
        if not workdir.is_dir():
            raise InputError(f"workdir {workdir} is not a folder: give an existing one")
        adapter = build_adapter(agent, engine.agent_directory.secrets())
        if isinstance(assignment.subtask, PlanSubtask):
            text = plan_instructions(assignment.subtask, given.text or None)
        else:
            text = instructions_for(subtask) + (f"\n\nContext: {given.text}" if given.text else "")
        timeout_s = given.timeout_s or engine.settings.subtask_timeout_s
        session = ExecutionSession(
            session_id, agent.id, agent.name, subtask.key, workdir, reason, datetime.now(UTC)
        )
        run = _Run(session, time.monotonic())
        self._runs[session_id] = run
        task = AgentTask(replace_agent(subtask, agent.id), text, workdir, timeout_s)
        run.task = asyncio.create_task(_run(adapter, task, run), name=session_id)
        return session

    async def monitor_execution(self, session_id: str) -> ExecutionState:
        """The execution's state now: running (elapsed, heartbeats) or how it ended."""
        return _state(self._run_of(session_id))

    async def wait_for_execution(
        self, session_id: str, timeout_s: float | None = None
    ) -> ExecutionState:
        """Wait until the execution ends (or ``timeout_s`` passes: then as it stands)."""
        run = self._run_of(session_id)
        if run.task is not None:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait({run.task}, timeout=timeout_s)
        return _state(run)

    async def cancel_execution(self, session_id: str) -> ExecutionState:
        """Stop the execution: the agent's process tree is ended (as a workflow cancel does)."""
        run = self._run_of(session_id)
        if run.task is not None and not run.task.done():
            run.cancelled = True
            run.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({run.task})
        return _state(run)

    def _run_of(self, session_id: str) -> _Run:
        run = self._runs.get(session_id)
        if run is None:
            raise NotFoundError(f"no execution {session_id!r} in this coordinator")
        return run

    def _agent_for(self, assignment: Assignment, subtask: Subtask) -> tuple[Agent, str]:
        if assignment.agent is not None:
            for agent in self.agents:
                if assignment.agent in (agent.id, agent.name):
                    return agent, f"{agent.name}: as assigned"
            raise NotFoundError(
                f"no registered agent {assignment.agent!r}: see `taskorch agents list`"
            )
        choice = self.find_best_agent(subtask)
        found = next((a for a in self.agents if a.id == choice.agent_id), None)
        if found is None:
            raise InputError(f"no agent for subtask {subtask.key}: {choice.reason}")
        return found, choice.reason

    # --- what agents can do and did ---------------------------------------------------------

    async def get_agent_capabilities(self, agent_type: str) -> AgentCapabilityInfo:
        """The built-in capabilities of ``agent_type`` (a custom type: anything), and which
        registered agents are of that type (by name)."""
        caps = capabilities_for(agent_type)
        return AgentCapabilityInfo(
            agent_type,
            tuple(d.value for d in caps.domains),
            tuple(w.value for w in caps.worker_types),
            tuple(caps.languages),
            tuple(a.name for a in self.agents if a.type == agent_type),
            agent_type in KNOWN_TYPES,
        )

    async def get_statistics(self) -> dict[str, AgentStatistics]:
        """Per registered agent (by name): attempts, successes, failures, tokens, cost and
        durations from the store, and this coordinator's executions."""
        stats = self.engine.agent_directory.stats
        records, usage = await stats.track_records(), await stats.usage()
        executions: dict[str, int] = {}
        for run in self._runs.values():
            executions[run.session.agent_id] = executions.get(run.session.agent_id, 0) + 1
        found: dict[str, AgentStatistics] = {}
        for agent in await self.engine.store.list_agents():
            record, spent = records.get(agent.id, TrackRecord()), usage.get(agent.id, Usage())
            found[agent.name] = AgentStatistics(
                agent.id,
                agent.name,
                agent.type,
                record.attempts,
                record.successes,
                record.failures,
                record.success_rate,
                spent.tokens_in,
                spent.tokens_out,
                spent.cost_usd,
                spent.total_s,
                record.mean_s,
                record.p95_s,
                record.last_error,
                executions.get(agent.id, 0),
            )
        return found


def replace_agent(subtask: Subtask, agent_id: str) -> Subtask:
    return subtask.model_copy(update={"agent_id": agent_id})


async def _run(adapter: AgentAdapter, task: AgentTask, run: _Run) -> AgentResult:
    def beat() -> None:
        run.heartbeats += 1
        run.last_beat = time.monotonic()

    try:
        async with asyncio.timeout(task.timeout_s):
            return await adapter.run(task, beat)
    finally:
        run.ended = time.monotonic()


def _state(run: _Run) -> ExecutionState:
    now = time.monotonic()
    base = ExecutionState(
        run.session,
        ExecutionStatus.RUNNING,
        (run.ended or now) - run.started,
        run.heartbeats,
        now - run.last_beat if run.last_beat is not None else None,
    )
    task = run.task
    if task is None or not task.done():
        return base
    if task.cancelled():
        return replace(base, status=ExecutionStatus.CANCELLED, error="cancelled")
    error = task.exception()
    if error is not None:
        if isinstance(error, TimeoutError):
            error = AgentError(
                f"timed out after {(run.ended or now) - run.started:.0f} s", error_class="timeout"
            )
        agent_error = error if isinstance(error, AgentError) else None
        return replace(
            base,
            status=ExecutionStatus.FAILED,
            error=agent_error.message if agent_error else f"{type(error).__name__}: {error}",
            error_class=agent_error.error_class if agent_error else "agent",
            tokens_in=agent_error.tokens_in if agent_error else None,
            tokens_out=agent_error.tokens_out if agent_error else None,
            cost_usd=agent_error.cost_usd if agent_error else None,
        )
    result = task.result()
    return replace(
        base,
        status=ExecutionStatus.COMPLETED if result.success else ExecutionStatus.FAILED,
        output=result.output,
        error=None if result.success else "the agent reported failure",
        tokens_in=result.tokens_in,
        tokens_out=result.tokens_out,
        cost_usd=result.cost_usd,
    )


__all__ = [
    "AgentCapabilityInfo",
    "AgentCoordinator",
    "AgentStatistics",
    "Assignment",
    "ExecutionContext",
    "ExecutionSession",
    "ExecutionState",
    "ExecutionStatus",
]
