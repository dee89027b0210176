"""The MCP tools that start work: ``init_orchestration`` (the database, and the settings later
calls use), ``process_task_orchestration`` and ``process_batch_orchestration`` (workflows carried
through the pipeline in this server process, waited for up to ``timeout_s``, with progress
notifications meanwhile)."""

from __future__ import annotations

from typing import Annotated, Any, cast

from mcp.server.mcpserver import Context
from pydantic import Field

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TEXT_CHARS
from taskorch.engine.status import WorkflowStatus
from taskorch.mcp.aliases import pick
from taskorch.mcp.models import BatchOutcome, InitOutcome, ProcessOutcome
from taskorch.mcp.session import Orchestrator, ProgressReport
from taskorch.mcp.toolkit import (
    Agent,
    EnableNlp,
    EnableNlpSpec,
    MergePolicyArg,
    PriorityName,
    Register,
    Repo,
    SimDurationS,
    TaskRef,
    TimeoutS,
    Wait,
    tool_errors,
    workflow_out,
)
from taskorch.planning.providers import chosen_provider


def register(tool: Register, orchestrator: Orchestrator) -> None:
    """Register these tools with ``tool``, in the order clients list them; they share
    ``orchestrator``."""

    @tool
    async def init_orchestration(
        enable_nlp: EnableNlp = None,
        enableNLP: EnableNlpSpec = None,
        enable_agent_coordination: Annotated[
            bool | None,
            Field(
                description="Route each subtask to the best-scoring capable agent (true) or "
                "every subtask to the first usable agent by name (false); default: "
                "ENABLE_AGENT_COORDINATION."
            ),
        ] = None,
        enableAgentCoordination: Annotated[
            bool | None, Field(description="The specification's name of enable_agent_coordination.")
        ] = None,
        max_concurrent_workflows: Annotated[
            int | None,
            Field(
                ge=1,
                le=10_000,
                description="Workflows this server carries at once; a process call beyond it is "
                "refused. Default: MAX_CONCURRENT_WORKFLOWS.",
            ),
        ] = None,
        maxConcurrentWorkflows: Annotated[
            int | None,
            Field(
                ge=1, le=10_000, description="The specification's name of max_concurrent_workflows."
            ),
        ] = None,
    ) -> InitOutcome:
        """Open the database and bring its schema up to date (idempotent); say where the data
        lives, which planner is configured and which agents can run subtasks. The settings given
        hold for this server's later calls (`taskorch init --max-workflows N --enable-nlp
        --enable-agents` saves them for every command)."""
        with tool_errors():
            chosen = orchestrator.configure(
                enable_nlp=pick("enable_nlp", enable_nlp, "enableNLP", enableNLP),
                enable_agent_coordination=pick(
                    "enable_agent_coordination",
                    enable_agent_coordination,
                    "enableAgentCoordination",
                    enableAgentCoordination,
                ),
                max_concurrent_workflows=pick(
                    "max_concurrent_workflows",
                    max_concurrent_workflows,
                    "maxConcurrentWorkflows",
                    maxConcurrentWorkflows,
                ),
            )
            engine = await orchestrator.engine()
            report = orchestrator.migration
            return InitOutcome(
                database=engine.database_location,
                schema_version=report.to_version if report else 0,
                migrations_applied=list(report.applied) if report else [],
                data_folder=str(chosen.home.resolve()),
                planner=chosen_provider(chosen),
                enable_nlp=chosen.enable_nlp,
                enable_agent_coordination=chosen.enable_agent_coordination,
                max_concurrent_workflows=chosen.max_concurrent_workflows,
                agents=["auto", "sim", *[a.agent.id for a in await engine.list_agents()]],
            )

    @tool
    async def process_task_orchestration(
        task_id: Annotated[
            int | str | None, Field(description="A stored task: 42, '42' or 'task-42'.")
        ] = None,
        taskId: Annotated[
            int | str | None, Field(description="The specification's name of task_id.")
        ] = None,
        requirement: Annotated[
            str | None,
            Field(
                max_length=MAX_TEXT_CHARS,
                description="A requirement in plain words; stored as a new task first.",
            ),
        ] = None,
        wait: Wait = True,
        timeout_s: TimeoutS = 300.0,
        repo: Repo = None,
        merge_policy: MergePolicyArg = None,
        priority: PriorityName = None,
        agent: Agent = "auto",
        sim_duration_s: SimDurationS = 0.0,
        enable_nlp: EnableNlp = None,
        enableNLP: EnableNlpSpec = None,
        ctx: Context[None, Any] | None = None,
    ) -> ProcessOutcome:
        """Carry one task through the pipeline to merged code: plan, subtasks on agents in git
        worktrees, pull request, validation, merge. Give task_id (a stored task) or requirement
        (new text), not both."""
        with tool_errors():
            task = cast("int | str | None", pick("task_id", task_id, "taskId", taskId))
            prepared = await orchestrator.prepare(
                repo=repo,
                merge_policy=merge_policy,
                priority=priority,
                agent=agent,
                sim_duration_s=sim_duration_s,
                enable_nlp=pick("enable_nlp", enable_nlp, "enableNLP", enableNLP),
            )
            ids = await orchestrator.task_for(task, requirement)
            [workflow_id] = await orchestrator.start(ids, prepared)
            [status] = await orchestrator.wait(
                [workflow_id], timeout_s if wait else 0, _progress(ctx)
            )
            return ProcessOutcome(
                finished=Orchestrator.finished(status),
                workflow=workflow_out(status),
                note=prepared.note,
            )

    @tool
    async def process_batch_orchestration(
        task_ids: Annotated[
            list[TaskRef], Field(description="Stored tasks to carry through at once.")
        ] = [],  # noqa: B006  (the SDK reads the default for the schema; never mutated)
        taskIds: Annotated[
            list[TaskRef], Field(description="The specification's name of task_ids.")
        ] = [],  # noqa: B006
        requirements: Annotated[
            list[str], Field(description="Requirements in plain words, each stored as a task.")
        ] = [],  # noqa: B006
        wait: Wait = True,
        timeout_s: TimeoutS = 600.0,
        repo: Repo = None,
        merge_policy: MergePolicyArg = None,
        priority: PriorityName = None,
        agent: Agent = "auto",
        sim_duration_s: SimDurationS = 0.0,
        enable_nlp: EnableNlp = None,
        enableNLP: EnableNlpSpec = None,
        ctx: Context[None, Any] | None = None,
    ) -> BatchOutcome:
        """Carry several tasks through the pipeline at once (stored ones and/or new
        requirements); their subtasks share the in-process agents."""
        with tool_errors():
            refs = pick("task_ids", task_ids or None, "taskIds", taskIds or None) or []
            if not refs and not requirements:
                raise InputError("nothing to process: give task_ids and/or requirements")
            prepared = await orchestrator.prepare(
                repo=repo,
                merge_policy=merge_policy,
                priority=priority,
                agent=agent,
                sim_duration_s=sim_duration_s,
                enable_nlp=pick("enable_nlp", enable_nlp, "enableNLP", enableNLP),
            )
            ids = await orchestrator.task_ids(refs)
            if any(not text.strip() for text in requirements):
                raise InputError("a requirement is empty: describe the work to do")
            for text in requirements:
                ids += await orchestrator.task_for(None, text)
            workflow_ids = await orchestrator.start(ids, prepared)
            statuses = await orchestrator.wait(
                workflow_ids, timeout_s if wait else 0, _progress(ctx)
            )
            return BatchOutcome(
                finished=all(Orchestrator.finished(s) for s in statuses),
                workflows=[workflow_out(s) for s in statuses],
                note=prepared.note,
            )


def _progress(ctx: Context[None, Any] | None) -> ProgressReport | None:
    """MCP progress notifications while a process tool waits (clients that sent a progress
    token show them): the mean progress of the workflows and the state of each."""
    if ctx is None:
        return None

    async def report(statuses: list[WorkflowStatus]) -> None:
        mean = sum(s.progress_percent for s in statuses) / max(len(statuses), 1)
        states = ", ".join(f"{s.workflow.id} {s.state}" for s in statuses)
        await ctx.report_progress(round(mean, 1), 100.0, states)

    return report
