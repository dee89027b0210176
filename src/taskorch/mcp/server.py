"""``taskorch mcp``: the orchestrator as an MCP server over stdio (the official ``mcp`` SDK).

Eight tools, each with a typed input schema and a typed result (``structuredContent`` matching
its output schema). A failure the user can cause (an unknown id, an empty requirement, a bad
priority, a database that is down) comes back as a tool error (``isError``) carrying the same one
line the CLI prints; anything unexpected is reported by the SDK as a tool error too, so the server
never dies of a tool call.

Long work: ``process_task_orchestration`` and ``process_batch_orchestration`` start the workflows
in this server process and wait for them to end, up to ``timeout_s``; with ``wait=false`` (or
once the timeout has passed) they answer at once with the workflow ids and state, and the
workflows go on in the server; ``get_workflow_status`` follows them, ``cancel_workflow`` stops
them.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Annotated, Any, Literal, TypeVar, cast

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import Field, ValidationError

from taskorch import __version__
from taskorch.domain.errors import InputError, TaskorchError
from taskorch.domain.limits import MAX_TEXT_CHARS, MAX_TITLE_CHARS
from taskorch.engine.status import WorkflowStatus
from taskorch.mcp.aliases import check_known, need, pick
from taskorch.mcp.guard import MAX_REPO_CHARS, check_arguments, one_line, sendable, validation_line
from taskorch.mcp.models import (
    BatchOutcome,
    ComponentOut,
    HealthOut,
    InitOutcome,
    OrchestrationStatus,
    ParseOutcome,
    ProcessOutcome,
    WorkflowBrief,
    WorkflowOut,
)
from taskorch.mcp.session import Orchestrator, ProgressReport
from taskorch.mcp.stdio import serve_stdio
from taskorch.planning.providers import chosen_provider
from taskorch.settings import Settings

TOOL_NAMES = (
    "init_orchestration",
    "process_task_orchestration",
    "process_batch_orchestration",
    "get_workflow_status",
    "cancel_workflow",
    "set_budget",
    "get_orchestration_status",
    "parse_requirements",
    "orchestration_health_check",
)

ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])

EnableNlp = Annotated[
    bool | None,
    Field(
        description="Plan with the configured model (true) or the built-in heuristic planner "
        "(false); default: ENABLE_NLP. Stored with the workflow, so a resumed one plans alike."
    ),
]
EnableNlpSpec = Annotated[bool | None, Field(description="The specification's name of enable_nlp.")]
TaskRef = Annotated[
    int | str,
    Field(description="A stored task: 42, '42' or 'task-42'."),
]
WorkflowId = Annotated[
    str, Field(min_length=1, max_length=200, description="A workflow id such as wf-1a2b3c4d5e.")
]
WorkflowIdSpec = Annotated[
    str | None,
    Field(min_length=1, max_length=200, description="The specification's name of workflow_id."),
]
Wait = Annotated[
    bool,
    Field(description="Wait for the end (up to timeout_s); false answers at once."),
]
TimeoutS = Annotated[
    float,
    Field(
        gt=0,
        le=3600,
        description="Seconds to wait before answering with the state so far; "
        "the workflow is not cancelled then, it goes on in the server.",
    ),
]
Repo = Annotated[
    str | None,
    Field(
        max_length=MAX_REPO_CHARS,
        description="The git repository to work in: a local path or a git URL (file://, ssh://, "
        "https://, host:path). Default: the task's, else TASKORCH_REPO, else a scratch "
        "repository.",
    ),
]
MergePolicyArg = Annotated[
    Literal["auto", "approve"] | None,
    Field(
        description="auto: merge once validated; approve: stop validated, waiting for a person "
        "to run `taskorch approve` (default: the task's, else TASKORCH_MERGE_POLICY, else auto)."
    ),
]
PriorityName = Annotated[
    Literal["low", "medium", "high", "critical"] | None,
    Field(description="Queue priority of the subtasks (default: the task's)."),
]
Agent = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TITLE_CHARS,
        description="auto: route each subtask to the best registered agent (the simulated agent "
        "when none is registered); sim: the simulated agent; or one registered agent's name.",
    ),
]
SimDurationS = Annotated[
    float, Field(ge=0, le=600, description="Seconds each simulated subtask takes.")
]


@contextmanager
def tool_errors() -> Iterator[None]:
    """taskorch's own errors become MCP tool errors with their one-line message."""
    try:
        yield
    except TaskorchError as exc:
        raise ToolError(exc.message) from None


class TaskorchServer(MCPServer[None]):
    """The SDK's server, with every call's arguments checked first (:mod:`taskorch.mcp.guard`),
    arguments that fail the input schema reported in one line, and answers that can always be
    sent."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[None, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            check_arguments(arguments)
            schema = self._tool_input_schema(name)
            if schema is not None:
                check_known(name, arguments, schema.get("properties", {}))
        except InputError as exc:
            raise ToolError(one_line(f"invalid arguments for {name}: {exc.message}")) from None
        try:
            return sendable(await super().call_tool(name, arguments, context))
        except UnexpectedToolError as exc:  # a bug: the SDK logs its traceback
            kind = type(exc.__cause__).__name__
            message = f"{exc} ({kind}); the server's log has the details"
            raise UnexpectedToolError(one_line(message)) from exc.__cause__
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                message = f"invalid arguments for {name}: {validation_line(exc.__cause__)}"
                raise ToolError(one_line(message)) from exc.__cause__
            raise ToolError(one_line(str(exc))) from exc.__cause__

    async def run_stdio_async(self) -> None:
        """Serve over stdio until stdin closes or SIGINT or SIGTERM comes (Claude Code stops its
        servers with signals, stdin left open): see :mod:`taskorch.mcp.stdio`."""
        lowlevel = self._lowlevel_server
        await serve_stdio(
            lambda read, write: lowlevel.run(read, write, lowlevel.create_initialization_options())
        )
        # The process ends next, its runs and engine closed. Collecting its objects at interpreter
        # exit takes ~0.35 s, past the 100 ms Claude Code waits after SIGINT before it sends
        # SIGTERM: leave them to the operating system.
        gc.freeze()


def workflow_out(status: WorkflowStatus) -> WorkflowOut:
    return WorkflowOut.model_validate(status.to_dict())


def build_server(settings: Settings) -> TaskorchServer:
    """The MCP server with the orchestration tools (and ``set_budget``), sharing one
    :class:`Orchestrator`."""
    orchestrator = Orchestrator(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            # shielded: a server stopped by a signal is cancelled, and its runs (with their
            # agents' processes) and the engine must still close
            with anyio.CancelScope(shield=True):
                await orchestrator.close()

    server = TaskorchServer(
        "taskorch",
        instructions=(
            "taskorch turns requirements into a plan of subtasks, runs them on coding agents in "
            "git worktrees and merges the result. Plan with parse_requirements, carry a "
            "requirement or a stored task to merged code with process_task_orchestration, "
            "follow it with get_workflow_status."
        ),
        lifespan=lifespan,
        log_level="WARNING",
        version=__version__,
    )

    def tool(function: ToolFunction) -> ToolFunction:
        """Register a tool, its docstring dedented for the description: Python 3.11 keeps the
        source's indentation, which clients pass on to their model as is."""
        return server.tool(description=inspect.cleandoc(function.__doc__ or ""))(function)

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

    @tool
    async def get_workflow_status(
        workflow_id: WorkflowId | None = None, workflowId: WorkflowIdSpec = None
    ) -> WorkflowOut:
        """A workflow's state, progress, current stage, subtasks (status, agent, attempts,
        error), pull request record, validation and history."""
        with tool_errors():
            chosen = need("workflow_id", workflow_id, "workflowId", workflowId)
            engine = await orchestrator.engine()
            return workflow_out(await engine.get_workflow_status(chosen))

    @tool
    async def cancel_workflow(
        workflow_id: WorkflowId | None = None, workflowId: WorkflowIdSpec = None
    ) -> WorkflowOut:
        """Cancel a workflow: running subtasks stop, worktrees are removed, unmerged work stays
        on its branches."""
        with tool_errors():
            chosen = need("workflow_id", workflow_id, "workflowId", workflowId)
            engine = await orchestrator.engine()
            return workflow_out(await engine.cancel_workflow(chosen))

    @tool
    async def set_budget(
        workflow_id: WorkflowId | None = None,
        workflowId: WorkflowIdSpec = None,
        usd: Annotated[float | None, Field(gt=0, description="The new USD cap.")] = None,
        tokens: Annotated[int | None, Field(gt=0, description="The new token cap.")] = None,
        subtask_usd: Annotated[
            float | None, Field(gt=0, description="The new cap per subtask, in USD.")
        ] = None,
        subtaskUsd: Annotated[
            float | None, Field(gt=0, description="The camelCase name of subtask_usd.")
        ] = None,
    ) -> WorkflowOut:
        """Set a workflow's budget (each cap given replaces that kind): one waiting for its
        budget goes on once its next attempt fits; its figures are in ``budget``."""
        with tool_errors():
            chosen = need("workflow_id", workflow_id, "workflowId", workflowId)
            per_subtask = pick("subtask_usd", subtask_usd, "subtaskUsd", subtaskUsd)
            engine = await orchestrator.engine()
            return workflow_out(
                await engine.set_budget(chosen, usd=usd, tokens=tokens, subtask_usd=per_subtask)
            )

    @tool
    async def get_orchestration_status(
        limit: Annotated[int, Field(ge=1, le=500, description="Recent workflows to list.")] = 20,
    ) -> OrchestrationStatus:
        """The orchestrator at a glance: workflows by state, subtasks by state, the most recent
        workflows and those this server is carrying on."""
        with tool_errors():
            engine = await orchestrator.engine()
            status: dict[str, Any] = await engine.get_status()
            recent = await engine.list_workflows(limit=limit)
            return OrchestrationStatus(
                workflows_by_state=status["workflows"],
                subtasks_by_state=status["subtasks"],
                database=str(status["database"]),
                recent_workflows=[
                    WorkflowBrief(
                        workflow_id=w.id,
                        task_id=w.task_id,
                        state=w.status.value,
                        created_at=w.created_at.isoformat(),
                    )
                    for w in recent
                ],
                running_in_server=orchestrator.running,
            )

    @tool
    async def parse_requirements(
        requirement: Annotated[
            str | None,
            Field(min_length=1, max_length=MAX_TEXT_CHARS, description="The requirement to plan."),
        ] = None,
        description: Annotated[
            str | None,
            Field(
                min_length=1,
                max_length=MAX_TEXT_CHARS,
                description="The specification's name of requirement.",
            ),
        ] = None,
        context: Annotated[
            str | None,
            Field(
                max_length=MAX_TEXT_CHARS,
                description="Background for the planner (repository, stack).",
            ),
        ] = None,
        priority: Annotated[
            Literal["low", "medium", "high", "critical"] | None,
            Field(
                description="The priority the plan is for: returned with the plan (and in it), "
                "for the process call that stores and queues it; parsing stores nothing."
            ),
        ] = None,
    ) -> ParseOutcome:
        """Plan a requirement without storing anything: subtasks with one owner each, stages
        that can run in parallel, estimates (the plan format)."""
        with tool_errors():
            text = need("requirement", requirement, "description", description)
            result = await orchestrator.plan(text, context)
            plan = result.plan.to_dict()
            if priority is not None:
                plan["priority"] = priority
            return ParseOutcome(planner=result.describe(), plan=plan, priority=priority)

    @tool
    async def orchestration_health_check() -> HealthOut:
        """Each component (database, ...) as ok, degraded or down, with the reason."""
        with tool_errors():
            engine = await orchestrator.engine()
            report = await engine.health_check()
            return HealthOut(
                status=report.status,
                components={
                    name: ComponentOut(status=c.status, detail=c.detail, info=c.info)
                    for name, c in report.components.items()
                },
            )

    return server


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
