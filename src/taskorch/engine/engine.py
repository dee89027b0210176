"""``OrchestrationEngine``: the one face the CLI, HTTP API and MCP server talk to.

It owns the store's lifecycle (open, migrate, close) and exposes what users do with tasks,
workflows, agents and workers. The work behind its methods lives with each concept, given what it
needs as arguments: the pipeline (``pipeline``), claiming tasks (``claims``), resuming
(``resuming``), planning (``planner_choice``), workers (``workers``, ``recovery_plugins``),
budgets (``budgets``), what is read back (``overview``) and health (``health``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from taskorch.agents.process import protect_from_agents
from taskorch.domain.budget import Caps
from taskorch.domain.errors import ConfigError, NotFoundError
from taskorch.domain.models import JSONDict, NewTask, Task, TaskStatus, Workflow
from taskorch.domain.states import WorkflowState
from taskorch.engine.agents import AgentDirectory, AgentInfo, ModelUsage
from taskorch.engine.budgets import caps_json, set_caps
from taskorch.engine.evidence import AttemptEvidence, OutputChunk, attempt_output, subtask_attempts
from taskorch.engine.health import (
    SPEC_COMPONENTS,
    ComponentHealth,
    HealthReport,
    HealthStatus,
    agent_health,
    health_report,
    missing_sqlite_file,
    no_database,
)
from taskorch.engine.overview import at_a_glance, workflow_status, workflow_statuses
from taskorch.engine.status import WorkflowStatus
from taskorch.engine.usage import CostSummary, usage_report
from taskorch.engine.workflow_files import WorkflowFiles
from taskorch.runtime import ref_sessions, spare_pools
from taskorch.runtime.events import EventBus
from taskorch.settings import Settings, config_file_path, load_settings, secure_home
from taskorch.store import Store, connector_for_url
from taskorch.store.migrate import MigrationReport, current_version
from taskorch.store.queue import QueueEvent, SubtaskQueue
from taskorch.store.stats import WorkflowStats, workflow_stats

# What only processing, workers, planning or health use is imported where it is used: a command
# that reads (`taskorch status`) must not pay for the planner, git, agent adapters or the worker.
if TYPE_CHECKING:
    from taskorch.agents.base import AgentAdapter
    from taskorch.agents.registry import AgentSpec
    from taskorch.domain.plan import Plan
    from taskorch.engine.pipeline import Delivery, Pipeline
    from taskorch.engine.runner import Progress
    from taskorch.runtime.metrics import RuntimeMetrics
    from taskorch.runtime.recovery import ErrorRecoveryManager
    from taskorch.runtime.worker import Worker

# The health report's names are imported from here too (the public API, ``cli/system.py``).
__all__ = [
    "SPEC_COMPONENTS",
    "ComponentHealth",
    "HealthReport",
    "HealthStatus",
    "OrchestrationEngine",
]


class OrchestrationEngine:
    def __init__(
        self,
        settings: Settings | None = None,
        *,
        store: Store | None = None,
        delivery: Delivery | None = None,
    ) -> None:
        self.settings = settings or load_settings()
        self.store = store or Store(connector_for_url(self.settings.effective_database_url))
        self.delivery = delivery
        protect_from_agents(self.settings.home, config_file_path(self.settings.home))
        if self.settings.effective_database_url.startswith("sqlite"):
            protect_from_agents(self.settings.sqlite_path)
        self.events = EventBus(
            jsonl_path=self.settings.home / "events.jsonl",
            task_log_dir=self.settings.task_logs_path,
        )
        self.files = WorkflowFiles(self)
        self._migration: MigrationReport | None = None
        self._recovery: ErrorRecoveryManager | None = None
        self.shutdown_grace_s: float | None = None
        """How long this engine's workers let running attempts finish when they stop, before
        they release them (queued again for any worker); None: the worker's default
        (``runtime.worker.SHUTDOWN_GRACE_S``, not imported here: a read must not load the
        worker)."""

    @property
    def database_location(self) -> str:
        return self.store.connector.describe()

    async def initialize(self, *, create: bool = True) -> MigrationReport:
        """Open the database and bring its schema up to date (idempotent). With ``create=False``
        (what read-only commands use) a database that does not exist yet, or was never
        initialised, is a :class:`NotFoundError` naming where it was looked for: nothing is
        created."""
        if self.settings.recovery_strategies:
            _ = self.recovery  # a bad plugin setting stops the start, as any bad setting does
        connector = self.store.connector
        missing = missing_sqlite_file(connector)
        if not create and missing is not None:
            raise NotFoundError(no_database(missing))
        if create or self.settings.home.exists():
            await asyncio.to_thread(secure_home, self.settings.home)
        try:
            await self.store.open()
            if not create and await current_version(connector) == 0:
                raise NotFoundError(no_database(connector.describe()))
            if self._migration is None:
                self._migration = await self.store.migrate()
            self.files.start()
        except BaseException:
            # Closed here, as ``async with`` does not: an open connection left behind by a
            # failed start (a locked or full database) would keep the process from exiting.
            await self.store.close()
            raise
        return self._migration

    async def shutdown(self) -> None:
        try:
            await self.files.stop()  # writes what is still queued: it reads the store
        finally:
            try:
                await self.store.close()
            finally:
                try:
                    await spare_pools.empty_all()  # (an idle host keeps no worktree of taskorch's)
                finally:
                    await ref_sessions.close_all()  # (update-ref --stdin, one per repository)

    async def __aenter__(self) -> OrchestrationEngine:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    # --- tasks -------------------------------------------------------------------------------

    async def add_task(self, new: NewTask) -> Task:
        return await self.store.create_task(new)

    async def get_task(self, task_id: int) -> Task:
        return await self.store.get_task(task_id)

    async def list_tasks(
        self, *, status: TaskStatus | None = None, limit: int | None = None
    ) -> list[Task]:
        return await self.store.list_tasks(status=status, limit=limit)

    # --- processing ----------------------------------------------------------------------------

    def pipeline(self) -> Pipeline:
        from taskorch.engine.pipeline import Pipeline

        if self.delivery is None:
            raise ConfigError("no code delivery configured: the engine needs one to process tasks")
        return Pipeline(
            self.store,
            self._plan,
            self.delivery,
            publish=self.events.publish,
            listened=lambda: self.events.listened,
            router=self.agent_directory,
            default_budget=Caps(usd=self.settings.budget_usd, tokens=self.settings.budget_tokens),
        )

    async def _plan(self, text: str, context: str | None, ref: str) -> tuple[Plan, str]:
        from taskorch.engine.planner_choice import plan_with

        return await plan_with(self.store, self.settings, text, context, ref)

    async def process_task(
        self,
        task_id: int,
        *,
        agents: Mapping[str | None, AgentAdapter] | None = None,
        options: JSONDict | None = None,
        on_progress: Progress | None = None,
    ) -> WorkflowStatus:
        """Carry a stored task through the pipeline to its end; with ``agents``, run its subtasks
        in this process (else workers elsewhere do)."""
        [status] = await self.process_batch(
            [task_id], agents=agents, options=options, on_progress=on_progress
        )
        return status

    async def process_batch(
        self,
        task_ids: Sequence[int],
        *,
        agents: Mapping[str | None, AgentAdapter] | None = None,
        options: JSONDict | None = None,
        on_progress: Progress | None = None,
    ) -> list[WorkflowStatus]:
        pipeline = self.pipeline()
        workflows = await self.start_workflows(task_ids, options=options)
        return await self._drive([w.id for w in workflows], agents, on_progress, pipeline)

    async def start_workflows(
        self, task_ids: Sequence[int], *, options: JSONDict | None = None
    ) -> list[Workflow]:
        """A new workflow for each task, each task claimed first (``engine.claims``: one
        workflow at a time, a done task is refused); nothing runs yet."""
        from taskorch.engine.claims import claim_and_start

        return await claim_and_start(self.pipeline(), self.store, task_ids, options)

    async def resume(
        self,
        workflow_ids: Sequence[str] | None = None,
        *,
        agents: Mapping[str | None, AgentAdapter] | None = None,
        on_progress: Progress | None = None,
    ) -> list[WorkflowStatus]:
        """Carry on with workflows found mid-way (after a crash or a kill): each resumes from its
        stored state; by default every workflow that has not ended."""
        await self.recover_git()
        workflows = await self.workflows_to_resume(workflow_ids)
        return await self._drive([w.id for w in workflows], agents, on_progress)

    async def _drive(
        self,
        workflow_ids: list[str],
        agents: Mapping[str | None, AgentAdapter] | None,
        on_progress: Progress | None,
        pipeline: Pipeline | None = None,
    ) -> list[WorkflowStatus]:
        """Drive the workflows to their end (``engine.runner``), their subtasks run in this
        process when ``agents`` are given; their statuses as they ended."""
        from taskorch.engine.runner import drive

        worker = self.create_worker(agents) if agents else None
        pipeline = pipeline or self.pipeline()
        final = await drive(
            pipeline, self.events, workflow_ids, worker=worker, on_progress=on_progress
        )
        ids = [w.id for w in final]
        return await workflow_statuses(self.store, self.queue, self.agent_directory, ids)

    async def recover_git(self) -> None:
        """Set right what a killed process left in git (stale lock files, a base branch moved
        half-way) before carrying on: at the start of a worker, ``serve`` and ``resume``."""
        recover = getattr(self.delivery, "recover_git", None)
        if recover is not None:
            await recover()

    async def workflows_to_resume(self, workflow_ids: Sequence[str] | None) -> list[Workflow]:
        """These workflows (an unknown id is an error), or by default every unfinished one (and
        tasks a crash left claimed with no workflow carrying them are set right first)."""
        from taskorch.engine.resuming import unfinished_workflows

        return await unfinished_workflows(self.store, self.delivery, workflow_ids)

    async def cancel_workflow(self, workflow_id: str) -> WorkflowStatus:
        await self.pipeline().cancel(workflow_id)
        return await self.get_workflow_status(workflow_id)

    async def approve_workflow(self, workflow_id: str, *, by: str = "") -> WorkflowStatus:
        """Approve a validated workflow held by the ``approve`` merge policy, and merge it into
        its base branch now (``StateError`` unless it is ``validation_passed``)."""
        await self.pipeline().approve(workflow_id, by)
        return await self.get_workflow_status(workflow_id)

    async def reject_workflow(
        self, workflow_id: str, reason: str, *, by: str = ""
    ) -> WorkflowStatus:
        """Reject a validated workflow: it ends ``failed`` with the reason, its branch is kept
        and its base branch is not touched."""
        await self.pipeline().reject(workflow_id, reason, by)
        return await self.get_workflow_status(workflow_id)

    # --- workflows ---------------------------------------------------------------------------

    async def get_workflow_status(self, workflow_id: str) -> WorkflowStatus:
        return await workflow_status(self.store, self.queue, self.agent_directory, workflow_id)

    async def usage(self) -> CostSummary:
        """Tokens and cost of every finished attempt, in all, by agent and by model."""
        return await usage_report(self.store)

    async def subtask_attempts(self, workflow_id: str, key: str) -> list[AttemptEvidence]:
        """Every attempt of a workflow's subtask, the running one too: agent, model, times,
        outcome, error class, tokens, cost, the tail of its output and the diff it merged."""
        return await subtask_attempts(self.store, self.settings.home, workflow_id, key)

    async def attempt_output(
        self, workflow_id: str, key: str, number: int | None = None, offset: int = 0
    ) -> OutputChunk:
        """What an attempt (default: the latest) printed from byte ``offset`` on, for polling
        while it runs (see :mod:`taskorch.engine.evidence`)."""
        return await attempt_output(
            self.store, self.settings.home, workflow_id, key, number, offset
        )

    async def set_budget(
        self,
        workflow_id: str,
        *,
        usd: float | None = None,
        tokens: int | None = None,
        subtask_usd: float | None = None,
    ) -> WorkflowStatus:
        """Set the workflow's caps (each one given replaces that kind; the others stay): a
        workflow waiting for its budget goes on once its next attempt fits. ``InputError`` for
        none given or a value that is not positive, ``StateError`` for a workflow that has
        ended."""
        given = {"usd": usd, "tokens": tokens, "subtask_usd": subtask_usd}
        caps = await set_caps(self.store, self.queue, workflow_id, given)
        status = await self.get_workflow_status(workflow_id)
        body = {"caps": caps_json(caps), **(status.budget.to_dict() if status.budget else {})}
        await self.events.publish([QueueEvent("workflow:budget_set", workflow_id, None, body)])
        return status

    async def list_workflows(
        self, *, status: WorkflowState | None = None, limit: int | None = None
    ) -> list[Workflow]:
        return await self.store.list_workflows(status=status, limit=limit)

    async def subtask_counts(self, workflow_ids: Sequence[str]) -> dict[str, dict[str, int]]:
        """Subtasks by state for each of ``workflow_ids`` (one query, for lists of workflows)."""
        return await self.queue.workflow_counts(workflow_ids)

    async def get_status(self) -> dict[str, Any]:
        """Workflows by state and subtasks by state: the orchestrator at a glance."""
        return await at_a_glance(
            self.store, self.queue, self.agent_directory, self.database_location
        )

    # --- agents ------------------------------------------------------------------------------

    @property
    def agent_directory(self) -> AgentDirectory:
        return AgentDirectory(self.store, self.settings)

    async def list_agents(self) -> list[AgentInfo]:
        """Registered agents with their track record (attempts, successes, mean and p95
        latency, last error) and current load; ``AgentInfo.to_json()`` is the API shape."""
        return await self.agent_directory.list()

    async def get_agent(self, ref: str) -> AgentInfo:
        """One agent by name or id (``NotFoundError`` if none)."""
        return await self.agent_directory.get(ref)

    async def add_agent(self, spec: AgentSpec) -> AgentInfo:
        """Register an agent, or replace the one with the same name."""
        return await self.agent_directory.add(spec)

    async def remove_agent(self, ref: str) -> AgentInfo:
        """Unregister an agent; returns it as it was (its attempts stay in the history)."""
        info = await self.agent_directory.get(ref)
        await self.agent_directory.remove(info.agent.id)
        return info

    async def set_agent_enabled(self, ref: str, enabled: bool) -> AgentInfo:
        return await self.agent_directory.set_enabled(ref, enabled)

    async def agent_health(self) -> dict[str, ComponentHealth]:
        """Probe every agent that is not disabled (agentapi ``GET /status``, CLI program on
        PATH); an unreachable agent is marked offline, a reachable offline one available."""
        return await agent_health(self.agent_directory)

    # --- runtime -----------------------------------------------------------------------------

    @property
    def queue(self) -> SubtaskQueue:
        return SubtaskQueue(self.store.connector)

    @property
    def recovery(self) -> ErrorRecoveryManager:
        """The recovery manager every worker of this engine uses, with the strategies of the
        recovery plugins (``engine.recovery_plugins``); register more on it before running."""
        from taskorch.engine.recovery_plugins import recovery_for

        if self._recovery is None:
            self._recovery = recovery_for(self.settings)
        return self._recovery

    def create_worker(
        self,
        agents: Mapping[str | None, AgentAdapter],
        *,
        concurrency: int | None = None,
        recovery: ErrorRecoveryManager | None = None,
    ) -> Worker:
        from taskorch.engine.workers import worker_for

        return worker_for(
            self.queue,
            agents,
            self.settings,
            events=self.events,
            recovery=recovery or self.recovery,
            concurrency=concurrency,
            shutdown_grace_s=self.shutdown_grace_s,
        )

    async def get_metrics(self) -> RuntimeMetrics:
        from taskorch.runtime.metrics import collect_metrics

        return await collect_metrics(self.queue)

    async def workflow_stats(self) -> WorkflowStats:
        """Workflows by state and finished ones' durations, aggregated by the database."""
        return await workflow_stats(self.store.connector)

    async def attempt_breakdown(self) -> list[dict[str, Any]]:
        """Finished attempts counted by agent, outcome and error class (for Prometheus)."""
        from taskorch.runtime.metrics import attempt_breakdown

        return await attempt_breakdown(self.queue)

    async def usage_breakdown(self) -> Sequence[ModelUsage]:
        """Tokens and cost of finished attempts by agent and model (for Prometheus)."""
        from taskorch.runtime.metrics import UNASSIGNED_AGENT

        return await self.agent_directory.usage_by_model(UNASSIGNED_AGENT)

    # --- health ------------------------------------------------------------------------------

    async def health_check(self) -> HealthReport:
        return await health_report(self.store, self.settings, self.agent_directory)
