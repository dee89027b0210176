"""What the MCP tools share for the life of the server process: one engine, opened on first use,
and the workflows this process carries on in the background.

The engine is opened lazily so that a database that is down when the client starts the server
turns into a tool error on the first call (and a retry on the next one), never a dead server.
Workflows run in this process with the agents ``agents_for_run`` picks (routing among the
registered agents, or the simulated one), exactly as ``taskorch process`` runs them; a tool that
returns before its workflow ends leaves the run going here. When the server stops, runs still
going are cancelled: their workflows keep their stored state and ``taskorch resume`` carries them
on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from taskorch.domain.errors import InputError
from taskorch.domain.limits import check_id
from taskorch.domain.models import JSONDict, NewTask, Priority, parse_task_ref
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import MigrationReport, OrchestrationEngine
from taskorch.engine.agents import AgentPool
from taskorch.engine.planner_choice import OPTION as PLANNER_OPTION
from taskorch.engine.setup import agents_for_run, delivering_engine
from taskorch.engine.status import WorkflowStatus
from taskorch.engine.targets import check_target
from taskorch.planning import PlanResult, TaskNLP
from taskorch.settings import Settings

log = logging.getLogger("taskorch.mcp")

Run = asyncio.Task[list[WorkflowStatus]]
ProgressReport = Callable[[list[WorkflowStatus]], Awaitable[None]]
PROGRESS_EVERY_S = 1.0
SHUTDOWN_GRACE_S = 0.2
"""An MCP client ends its server within about half a second (Claude Code: SIGINT, SIGTERM 0.1 s
later, SIGKILL 0.4 s after that): running attempts are released before that, not killed with
the process and left to run again only when their leases lapse."""


@dataclass(frozen=True, slots=True)
class Prepared:
    agents: AgentPool
    options: JSONDict

    @property
    def note(self) -> str | None:
        """Set when the agents are not what was asked for (none registered: simulated)."""
        return self.agents.note or None


class Orchestrator:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.migration: MigrationReport | None = None
        self._engine: OrchestrationEngine | None = None
        self._opening = asyncio.Lock()
        self._runs: dict[str, Run] = {}

    async def engine(self) -> OrchestrationEngine:
        """The engine, opened (and its schema brought up to date) on first use."""
        async with self._opening:
            if self._engine is None:
                engine = delivering_engine(self.settings)
                engine.shutdown_grace_s = SHUTDOWN_GRACE_S
                try:
                    self.migration = await engine.initialize()
                except BaseException:
                    await engine.shutdown()
                    raise
                self._engine = engine
            return self._engine

    @property
    def running(self) -> list[str]:
        """Workflows this process is carrying on right now."""
        return sorted(self._runs)

    async def task_ids(self, refs: Sequence[int | str]) -> list[int]:
        """The stored tasks ``refs`` name (42, "42" or "task-42"); an unknown one is an error."""
        engine = await self.engine()
        ids = [check_id("task_id", parse_task_ref(ref)) for ref in refs]
        for task_id in ids:
            await engine.get_task(task_id)
        return ids

    async def task_for(self, task_id: int | str | None, requirement: str | None) -> list[int]:
        """The task to process: a stored one, or the requirement stored as a new task."""
        if (task_id is None) == (requirement is None):
            raise InputError("give task_id (a stored task) or requirement (new text), one of them")
        if task_id is not None:
            return await self.task_ids([task_id])
        assert requirement is not None
        if not requirement.strip():
            raise InputError("the requirement is empty: describe the work to do")
        engine = await self.engine()
        title = requirement.strip().splitlines()[0][:120]
        return [(await engine.add_task(NewTask.create(title, requirement))).id]

    def configure(
        self,
        *,
        enable_nlp: bool | None = None,
        enable_agent_coordination: bool | None = None,
        max_concurrent_workflows: int | None = None,
    ) -> Settings:
        """Settings for this server's later calls (``init_orchestration``); the engine, if open,
        plans and routes by them from now on."""
        given = {
            "enable_nlp": enable_nlp,
            "enable_agent_coordination": enable_agent_coordination,
            "max_concurrent_workflows": max_concurrent_workflows,
        }
        changes = {key: value for key, value in given.items() if value is not None}
        if changes:
            self.settings = self.settings.model_copy(update=changes)
            if self._engine is not None:
                self._engine.settings = self.settings
        return self.settings

    async def prepare(
        self,
        *,
        repo: str | None,
        priority: str | None,
        agent: str,
        sim_duration_s: float,
        merge_policy: str | None = None,
        enable_nlp: bool | None = None,
    ) -> Prepared:
        """The agents and options of a run, checked before any task is stored or started."""
        engine = await self.engine()
        agents = await agents_for_run(engine, agent, sim_duration_s)
        options = await self._options(repo, merge_policy, priority, agents.mode)
        if enable_nlp is not None:
            options[PLANNER_OPTION] = enable_nlp
        return Prepared(agents, options)

    def check_room(self, count: int) -> None:
        """Refuse ``count`` more workflows beyond ``max_concurrent_workflows`` at once."""
        limit = self.settings.max_concurrent_workflows
        if len(self._runs) + count > limit:
            raise InputError(
                f"this server carries {len(self._runs)} workflow(s) and takes at most {limit} at "
                "once (maxConcurrentWorkflows): wait for one to end, cancel one, or raise it "
                "with init_orchestration"
            )

    async def start(self, task_ids: Sequence[int], prepared: Prepared) -> list[str]:
        """Start a workflow for each task and carry them on in the background; their ids."""
        self.check_room(len(task_ids))
        engine = await self.engine()
        agents, options = prepared.agents, prepared.options
        started = await engine.start_workflows(task_ids, options=options)
        workflow_ids = [workflow.id for workflow in started]
        run: Run = asyncio.create_task(engine.resume(workflow_ids, agents=agents))
        for workflow_id in workflow_ids:
            self._runs[workflow_id] = run
        run.add_done_callback(lambda done: self._finished(done, workflow_ids))
        return workflow_ids

    async def wait(
        self,
        workflow_ids: Sequence[str],
        timeout_s: float,
        on_progress: ProgressReport | None = None,
    ) -> list[WorkflowStatus]:
        """Wait up to ``timeout_s`` for the runs carrying ``workflow_ids``; their status then.
        ``on_progress`` hears their status at the start and every ``PROGRESS_EVERY_S`` after."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        runs = {self._runs[w] for w in workflow_ids if w in self._runs}
        while runs and (left := deadline - loop.time()) > 0:
            if on_progress is not None:
                await on_progress(await self._statuses(workflow_ids))
            # asyncio.wait never cancels: a run that outlasts the wait goes on in the background.
            _, runs = await asyncio.wait(runs, timeout=min(left, PROGRESS_EVERY_S))
        return await self._statuses(workflow_ids)

    async def _statuses(self, workflow_ids: Sequence[str]) -> list[WorkflowStatus]:
        engine = await self.engine()
        return [await engine.get_workflow_status(w) for w in workflow_ids]

    async def plan(self, text: str, context: str | None) -> PlanResult:
        if not text.strip():
            raise InputError("the requirement is empty: describe the work to do")
        async with TaskNLP.from_settings(self.settings) as nlp:
            return await nlp.plan(text, context)

    async def close(self) -> None:
        runs = set(self._runs.values())
        for run in runs:
            run.cancel()
        for run in runs:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await run
        if self._engine is not None:
            await self._engine.shutdown()
            self._engine = None

    @staticmethod
    def finished(status: WorkflowStatus) -> bool:
        """Ended, or waiting for an approval (nothing runs for it until someone decides)."""
        return status.workflow.status in WORKFLOW_TERMINAL or status.waiting_for is not None

    async def _options(
        self, repo: str | None, merge_policy: str | None, priority: str | None, agent: str
    ) -> JSONDict:
        options: JSONDict = {"agent": agent}
        options |= await check_target(repo, None, merge_policy, require_clean=True, reach=True)
        if priority is not None:
            options["priority"] = Priority.parse(priority).value
        return options

    def _finished(self, run: Run, workflow_ids: Sequence[str]) -> None:
        for workflow_id in workflow_ids:
            if self._runs.get(workflow_id) is run:
                del self._runs[workflow_id]
        if not run.cancelled() and (error := run.exception()) is not None:
            # The workflow's stored state says where it stopped; the server keeps serving.
            log.error("background run of %s ended with an error: %s", workflow_ids, error)
