"""``taskorch run``, ``process``, ``batch``, ``cancel``, ``approve``, ``reject``, ``monitor``:
tasks to merged code."""

from __future__ import annotations

import asyncio
import getpass
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from taskorch.cli import inputs
from taskorch.cli.app import (
    app,
    console,
    duration,
    err_console,
    print_json,
    run,
    settings,
    workflow_ref,
)
from taskorch.cli.app import engine as reading_engine
from taskorch.cli.carry import (
    AgentOption,
    BaseBranchOption,
    BestOfOption,
    BestOfRetryOption,
    BudgetSubtaskOption,
    BudgetTokensOption,
    BudgetUsdOption,
    JsonOption,
    MergeOption,
    PriorityOption,
    Progress,
    QuietOption,
    RepoOption,
    SimDurationOption,
    TimeoutOption,
    agents,
    carry,
    carry_on,
    result_line,
    start_options,
    target,
    timeout_s,
    within,
)
from taskorch.cli.progress import STORED_POLL_S, ProgressView, mode_for
from taskorch.cli.workflows import show_workflow, styled
from taskorch.domain.errors import DatabaseUnavailableError, InputError
from taskorch.domain.limits import MAX_TEXT_CHARS, check_text
from taskorch.domain.models import NewTask, Priority, parse_task_ref
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import OrchestrationEngine
from taskorch.engine.resuming import agent_for_resume
from taskorch.engine.status import WorkflowStatus
from taskorch.engine.targets import describe_target

# engine.setup (git delivery, agent adapters) loads where a command acts on a workflow's code.


@app.command("run")
def run_(
    text: Annotated[str | None, typer.Argument(help="The requirement.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the requirement here.")] = None,
    repo: RepoOption = None,
    base_branch: BaseBranchOption = None,
    merge: MergeOption = None,
    agent: AgentOption = "auto",
    priority: PriorityOption = None,
    timeout: TimeoutOption = None,
    best_of: BestOfOption = None,
    best_of_retry: BestOfRetryOption = None,
    sim_duration_s: SimDurationOption = 0.0,
    budget_usd: BudgetUsdOption = None,
    budget_tokens: BudgetTokensOption = None,
    budget_subtask_usd: BudgetSubtaskOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Add a requirement as a task and carry it to merged code, showing live progress."""
    duration("--sim-duration", sim_duration_s)
    limit_s = timeout_s(timeout)
    level = Priority.parse(priority) if priority is not None else Priority.MEDIUM

    async def body(engine: OrchestrationEngine, progress: Progress) -> list[WorkflowStatus]:
        requirement = inputs.requirement(text, file)
        where = await target(repo, base_branch, merge)
        pool = await agents(engine, agent, sim_duration_s)
        budget = {"usd": budget_usd, "tokens": budget_tokens, "subtask_usd": budget_subtask_usd}
        options = start_options(
            pool,
            where,
            priority,
            limit_s,
            best_of=best_of,
            best_of_retry=best_of_retry,
            budget=budget,
        )
        title = requirement.strip().splitlines()[0][:120]
        task = await engine.add_task(NewTask.create(title, requirement, priority=level))
        quiet_ = as_json or quiet
        return await carry(
            engine, [task.id], pool, options, progress, quiet=quiet_, limit_s=limit_s
        )

    carry_on(body, as_json=as_json, quiet=quiet)


@app.command()
def process(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID")],
    repo: RepoOption = None,
    base_branch: BaseBranchOption = None,
    merge: MergeOption = None,
    agent: AgentOption = "auto",
    priority: PriorityOption = None,
    timeout: TimeoutOption = None,
    best_of: BestOfOption = None,
    best_of_retry: BestOfRetryOption = None,
    sim_duration_s: SimDurationOption = 0.0,
    budget_usd: BudgetUsdOption = None,
    budget_tokens: BudgetTokensOption = None,
    budget_subtask_usd: BudgetSubtaskOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Carry a stored task to merged code, showing live progress."""
    duration("--sim-duration", sim_duration_s)
    limit_s = timeout_s(timeout)

    async def body(engine: OrchestrationEngine, progress: Progress) -> list[WorkflowStatus]:
        task = await engine.get_task(parse_task_ref(task_id))
        where = await target(repo, base_branch, merge, [task])
        pool = await agents(engine, agent, sim_duration_s)
        budget = {"usd": budget_usd, "tokens": budget_tokens, "subtask_usd": budget_subtask_usd}
        options = start_options(
            pool,
            where,
            priority,
            limit_s,
            best_of=best_of,
            best_of_retry=best_of_retry,
            budget=budget,
        )
        quiet_ = as_json or quiet
        return await carry(
            engine, [task.id], pool, options, progress, quiet=quiet_, limit_s=limit_s
        )

    carry_on(body, as_json=as_json, quiet=quiet)


@app.command()
def batch(
    task_ids: Annotated[
        list[str],
        typer.Argument(
            metavar="ID[,ID...]...", help="Task ids, comma- or space-separated: 1,2,3 or 1 2 3."
        ),
    ],
    repo: RepoOption = None,
    base_branch: BaseBranchOption = None,
    merge: MergeOption = None,
    agent: AgentOption = "auto",
    priority: PriorityOption = None,
    timeout: TimeoutOption = None,
    best_of: BestOfOption = None,
    best_of_retry: BestOfRetryOption = None,
    sim_duration_s: SimDurationOption = 0.0,
    budget_usd: BudgetUsdOption = None,
    budget_tokens: BudgetTokensOption = None,
    budget_subtask_usd: BudgetSubtaskOption = None,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Carry several stored tasks to merged code at once, showing live progress."""
    duration("--sim-duration", sim_duration_s)
    limit_s = timeout_s(timeout)

    async def body(engine: OrchestrationEngine, progress: Progress) -> list[WorkflowStatus]:
        listed = [check_text("the task ids", each, MAX_TEXT_CHARS, line=True) for each in task_ids]
        parts = [p for each in listed for p in each.split(",") if p.strip()]
        ids = list(dict.fromkeys(parse_task_ref(p) for p in parts))
        if not ids:
            raise InputError("no task ids given: use e.g. `taskorch batch 1,2,3`")
        tasks = [await engine.get_task(task_id) for task_id in ids]
        where = await target(repo, base_branch, merge, tasks)
        pool = await agents(engine, agent, sim_duration_s)
        budget = {"usd": budget_usd, "tokens": budget_tokens, "subtask_usd": budget_subtask_usd}
        options = start_options(
            pool,
            where,
            priority,
            limit_s,
            best_of=best_of,
            best_of_retry=best_of_retry,
            budget=budget,
        )
        quiet_ = as_json or quiet
        return await carry(engine, ids, pool, options, progress, quiet=quiet_, limit_s=limit_s)

    carry_on(body, as_json=as_json, quiet=quiet)


@app.command()
def resume(
    workflow_ids: Annotated[list[str] | None, typer.Argument(metavar="[WORKFLOW_ID]...")] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", help="The agents the workflows started with (the default): auto|sim|NAME."
        ),
    ] = None,
    timeout: TimeoutOption = None,
    sim_duration_s: SimDurationOption = 0.0,
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Carry on with workflows stopped mid-way (a crash, a kill); default: all unfinished.
    Where they merge and their priority were settled when they started."""
    duration("--sim-duration", sim_duration_s)
    limit_s = timeout_s(timeout)

    async def body(engine: OrchestrationEngine, progress: Progress) -> list[WorkflowStatus]:
        wanted = [workflow_ref(each) for each in workflow_ids or []]
        workflows = await engine.workflows_to_resume(wanted or None)
        if not workflows:
            raise InputError("no unfinished workflows to resume" + await _never_started(engine))
        pool = await agents(engine, agent_for_resume(workflows, agent), sim_duration_s)
        ids = [w.id for w in workflows]
        return await within(
            engine, limit_s, ids, engine.resume(ids, agents=pool, on_progress=progress)
        )

    carry_on(body, as_json=as_json, quiet=quiet)


async def _never_started(engine: OrchestrationEngine) -> str:
    """A hint naming stored tasks no workflow has taken yet (a ``batch`` killed before it
    started them leaves them so): ``resume`` carries workflows, not tasks."""
    from taskorch.domain.models import TaskStatus

    pending = await engine.store.list_tasks(status=TaskStatus.PENDING, limit=NEVER_STARTED_SHOWN)
    if not pending:
        return ""
    ids = ",".join(str(t.id) for t in pending)
    more = " and more" if len(pending) == NEVER_STARTED_SHOWN else ""
    return f"; tasks {ids}{more} were never started: `taskorch batch {ids}` carries them"


@app.command()
def cancel(workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")]) -> None:
    """Cancel a workflow: its running subtasks stop, its worktrees are removed."""

    async def body() -> WorkflowStatus:
        from taskorch.engine.setup import open_engine

        async with open_engine(settings(), create=False) as engine:
            return await engine.cancel_workflow(workflow_ref(workflow_id))

    status = run(body)
    console.print(Text.assemble(f"{status.workflow.id}  ", styled(status.state)))


@app.command()
def approve(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")],
    as_json: JsonOption = False,
) -> None:
    """Merge a validated workflow that waits for approval (the approve merge policy) into its
    base branch now."""

    async def body() -> WorkflowStatus:
        from taskorch.engine.setup import open_engine

        async with open_engine(settings(), create=False) as engine:
            return await engine.approve_workflow(workflow_ref(workflow_id), by=_reviewer())

    status = run(body)
    _reviewed(status, as_json)
    if status.state != "merged":
        raise typer.Exit(1)


@app.command()
def reject(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")],
    reason: Annotated[
        str, typer.Option("--reason", help="Why: stored with the workflow and shown.")
    ],
    as_json: JsonOption = False,
) -> None:
    """End a validated workflow that waits for approval as failed; its branch is kept, its base
    branch is not touched."""

    async def body() -> WorkflowStatus:
        if not reason.strip():
            raise InputError("the reason is empty: say why the workflow is rejected")
        why = check_text("the reason", reason.strip(), MAX_TEXT_CHARS)
        from taskorch.engine.setup import open_engine

        async with open_engine(settings(), create=False) as engine:
            return await engine.reject_workflow(workflow_ref(workflow_id), why, by=_reviewer())

    _reviewed(run(body), as_json)


def _reviewed(status: WorkflowStatus, as_json: bool) -> None:
    if as_json:
        print_json(status.to_dict())
        return
    line = Text.assemble(f"{status.workflow.id}  ", styled(status.state))
    if status.state == "merged" and status.target:
        line.append(f"  into {describe_target(status.target)}")
    console.print(line)


def _reviewer() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in the environment or the password database
        return "cli"


@app.command()
def monitor(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")],
    as_json: JsonOption = False,
    quiet: QuietOption = False,
) -> None:
    """Follow a workflow live until it ends (also one another process carries on), with the
    same progress view as `run`."""

    async def body() -> WorkflowStatus:
        wanted = workflow_ref(workflow_id)
        # It reads what the workers store: no git delivery, no agents.
        async with reading_engine(create=False) as engine:
            status = await engine.get_workflow_status(wanted)
            mode = mode_for(err_console, quiet=quiet or as_json)
            # The worker publishes its events in its own process: read what it stored.
            async with ProgressView(engine, err_console, mode, follow_events=False) as view:
                view.watch([status.workflow.id])
                view.show(status)
                while status.workflow.status not in WORKFLOW_TERMINAL:
                    await view.next_news(MONITOR_POLL_S)
                    status = await _status_through_outage(engine, wanted)
                    view.show(status)
            return status

    status = run(body)
    if as_json:
        print_json(status.to_dict())
    else:
        (result_line if quiet else show_workflow)(status)


MONITOR_OUTAGE_S = 300.0
"""How long ``monitor`` keeps watching through a database outage before it gives up."""
MONITOR_POLL_S = STORED_POLL_S
NEVER_STARTED_SHOWN = 20
"""Pending tasks ``resume`` names when it finds no workflow to carry on with."""


async def _status_through_outage(engine: OrchestrationEngine, workflow_id: str) -> WorkflowStatus:
    """The workflow's status; a database that went away is waited for (said once), up to
    :data:`MONITOR_OUTAGE_S`."""
    loop = asyncio.get_running_loop()
    since: float | None = None
    while True:
        try:
            return await engine.get_workflow_status(workflow_id)
        except DatabaseUnavailableError as exc:
            if since is None:
                since = loop.time()
                err_console.print(f"database unavailable, still watching: {exc.message}")
            elif loop.time() - since > MONITOR_OUTAGE_S:
                raise
            await asyncio.sleep(MONITOR_POLL_S)
