"""``taskorch run``, ``process``, ``batch``, ``cancel``, ``approve``, ``reject``, ``monitor``:
tasks to merged code."""

from __future__ import annotations

import asyncio
import getpass
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from taskorch.cli import inputs
from taskorch.cli.app import (
    app,
    console,
    duration,
    err_console,
    line,
    print_json,
    run,
    settings,
    workflow_ref,
)
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.cli.workflows import show_workflow, styled
from taskorch.domain.errors import DatabaseUnavailableError, InputError
from taskorch.domain.limits import MAX_TEXT_CHARS, check_text, parse_duration
from taskorch.domain.models import JSONDict, NewTask, Priority, Task, Workflow, parse_task_ref
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import OrchestrationEngine
from taskorch.engine.agents import AgentPool
from taskorch.engine.resuming import agent_for_resume
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.engine.status import WorkflowStatus
from taskorch.engine.targets import check_target, describe_target

RepoOption = Annotated[
    str | None,
    typer.Option(
        "--repo",
        metavar="PATH|URL",
        help="Target git repository: a local path or a git URL (file://, ssh://, https://, "
        "host:path). Default: the task's, else TASKORCH_REPO, else a scratch repository.",
        show_default=False,
    ),
]
BaseBranchOption = Annotated[
    str | None,
    typer.Option(
        "--base-branch",
        metavar="NAME",
        help="Branch to merge into (default: the one checked out, or the remote's HEAD).",
        show_default=False,
    ),
]
MergeOption = Annotated[
    str | None,
    typer.Option(
        "--merge",
        metavar="auto|approve",
        help="auto: merge once validated; approve: wait for `taskorch approve` "
        "(default: the task's, else TASKORCH_MERGE_POLICY, else auto).",
        show_default=False,
    ),
]
AgentOption = Annotated[
    str,
    typer.Option(
        "--agent",
        help="auto: route each subtask to the best registered agent (the simulated agent when "
        "none is registered); sim: the simulated agent; or one registered agent's name.",
    ),
]
SimDurationOption = Annotated[
    float, typer.Option("--sim-duration", min=0, help="Seconds each simulated subtask takes.")
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print the final status as JSON.")]


async def _agents(
    engine: OrchestrationEngine, agent: str, sim_duration_s: float = 0.0
) -> AgentPool:
    pool = await agents_for_run(engine, line("--agent", agent) or "auto", sim_duration_s)
    if pool.note:
        err_console.print(pool.note, highlight=False)
    return pool


async def _target(
    repo: str | None,
    base_branch: str | None,
    merge: str | None,
    tasks: Sequence[Task] = (),
) -> JSONDict:
    """The workflow options of ``--repo``, ``--base-branch`` and ``--merge``, checked before
    anything starts: the repository (the one given, else each task's own) is reached, and a
    local one must not have uncommitted changes on its base branch."""
    path = line("--repo", repo, MAX_PATH_CHARS)
    branch = line("--base-branch", base_branch)
    options = await check_target(path, branch, merge, require_clean=True, reach=True)
    if repo is None:
        for task in tasks:
            if task.metadata.get("repo"):
                base = base_branch or task.metadata.get("base_branch")
                await check_target(str(task.metadata["repo"]), base, require_clean=True, reach=True)
    return options


async def _carry(
    engine: OrchestrationEngine,
    task_ids: Sequence[int],
    pool: AgentPool,
    options: JSONDict,
    progress: Callable[[Workflow], None],
    *,
    quiet: bool,
    started: Callable[[list[Workflow]], None] | None = None,
) -> list[WorkflowStatus]:
    """Start a workflow for each task, say where each will merge (unless ``quiet``), and carry
    them on until each ends or waits for approval."""
    workflows = await engine.start_workflows(task_ids, options=options)
    if started is not None:
        started(workflows)
    if not quiet:
        for workflow in workflows:
            target = describe_target(workflow.metadata.get("options", {}))
            err_console.print(f"{workflow.id}: merging into {target}", highlight=False)
    return await engine.resume([w.id for w in workflows], agents=pool, on_progress=progress)


def _finish(statuses: list[WorkflowStatus], as_json: bool) -> None:
    """Print the outcome; exit 1 unless every workflow merged or waits for approval."""
    if as_json:
        print_json([s.to_dict() for s in statuses] if len(statuses) > 1 else statuses[0].to_dict())
    else:
        for status in statuses:
            show_workflow(status)
    if any(s.state != "merged" and s.waiting_for is None for s in statuses):
        raise typer.Exit(1)


def _process(
    body: Callable[
        [OrchestrationEngine, Callable[[Workflow], None]], Awaitable[list[WorkflowStatus]]
    ],
    as_json: bool,
) -> None:
    seen: dict[str, str] = {}

    async def main() -> list[WorkflowStatus]:
        async with open_engine(settings()) as engine:
            line = Text("starting")
            # --json keeps stdout clean: the live line goes nowhere then.
            with Live(
                line, console=console if not as_json else Console(quiet=True), transient=True
            ) as live:

                def progress(workflow: Workflow) -> None:
                    seen[workflow.id] = workflow.status.value
                    live.update(Text.assemble(f"{workflow.id}  ", styled(workflow.status.value)))

                return await body(engine, progress)

    try:
        statuses = run(main)
    except typer.Exit as stopped:
        if stopped.exit_code == EXIT_INTERRUPTED:
            _resumable(seen)
        raise
    _finish(statuses, as_json)


EXIT_INTERRUPTED = 130


def _timeout(text: str | None) -> float | None:
    if text is None:
        return None
    seconds = parse_duration("--timeout", text, bare="ms")
    if seconds <= 0:
        raise InputError(f"--timeout {text!r} must be more than 0")
    return seconds


def _resumable(seen: Mapping[str, str]) -> None:
    """After Ctrl-C: the workflows stay where they stood, and how to carry on or stop them."""
    for workflow_id, state in seen.items():
        if state in {s.value for s in WORKFLOW_TERMINAL}:
            continue
        err_console.print(
            f"{workflow_id} stays {state} and resumable: taskorch resume {workflow_id} "
            f"(or stop it: taskorch cancel {workflow_id})",
            highlight=False,
        )


@app.command("run")
def run_(
    text: Annotated[str | None, typer.Argument(help="The requirement.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the requirement here.")] = None,
    repo: RepoOption = None,
    base_branch: BaseBranchOption = None,
    merge: MergeOption = None,
    agent: AgentOption = "auto",
    sim_duration_s: SimDurationOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Add a requirement as a task and carry it to merged code, showing live progress."""
    duration("--sim-duration", sim_duration_s)

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        requirement = inputs.requirement(text, file)
        target = await _target(repo, base_branch, merge)
        pool = await _agents(engine, agent, sim_duration_s)
        options = {"agent": pool.mode, **target}
        title = requirement.strip().splitlines()[0][:120]
        task = await engine.add_task(NewTask.create(title, requirement))
        return await _carry(engine, [task.id], pool, options, progress, quiet=as_json)

    _process(body, as_json)


@app.command()
def process(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID")],
    repo: RepoOption = None,
    base_branch: BaseBranchOption = None,
    merge: MergeOption = None,
    agent: AgentOption = "auto",
    priority: Annotated[
        str | None,
        typer.Option(
            help="Queue priority of its subtasks: low|medium|high|critical (default: the task's)."
        ),
    ] = None,
    timeout: Annotated[
        str | None,
        typer.Option(
            "--timeout",
            metavar="DURATION",
            help="Give up (and cancel it) after this long: 10m, 600s, 2h; a bare number is "
            "milliseconds, as in the specification (600000 = 10 minutes).",
            show_default=False,
        ),
    ] = None,
    sim_duration_s: SimDurationOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Carry a stored task to merged code."""
    duration("--sim-duration", sim_duration_s)
    limit_s = _timeout(timeout)

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        task = await engine.get_task(parse_task_ref(task_id))
        target = await _target(repo, base_branch, merge, [task])
        pool = await _agents(engine, agent, sim_duration_s)
        options = {"agent": pool.mode, **target}
        if priority is not None:
            options["priority"] = Priority.parse(priority).value
        if limit_s is not None:  # stored: a resume or a server gives up at the same moment
            options["deadline"] = (datetime.now(UTC) + timedelta(seconds=limit_s)).isoformat()
        started: list[str] = []

        def remember(workflows: list[Workflow]) -> None:
            started[:] = [w.id for w in workflows]

        def too_late() -> InputError:
            return InputError(
                f"task {task.ref} did not finish within {limit_s or 0:g} s; its workflow was "
                "cancelled (unmerged work stays on its branches)"
            )

        try:
            async with asyncio.timeout(limit_s):
                statuses = await _carry(
                    engine, [task.id], pool, options, progress, quiet=as_json, started=remember
                )
        except TimeoutError:
            if started:
                await engine.cancel_workflow(started[0])
            raise too_late() from None
        if limit_s is not None and statuses[0].state == "cancelled":
            raise too_late()  # the pipeline gave up on the stored deadline first
        return statuses

    _process(body, as_json)


@app.command()
def batch(
    task_ids: Annotated[str, typer.Argument(metavar="ID,ID,...")],
    repo: RepoOption = None,
    base_branch: BaseBranchOption = None,
    merge: MergeOption = None,
    agent: AgentOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Carry several stored tasks to merged code at once."""

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        listed = check_text("the task ids", task_ids, MAX_TEXT_CHARS, line=True)
        ids = list(dict.fromkeys(parse_task_ref(p) for p in listed.split(",") if p.strip()))
        if not ids:
            raise InputError("no task ids given: use e.g. `taskorch batch 1,2,3`")
        tasks = [await engine.get_task(task_id) for task_id in ids]
        target = await _target(repo, base_branch, merge, tasks)
        pool = await _agents(engine, agent)
        options = {"agent": pool.mode, **target}
        return await _carry(engine, ids, pool, options, progress, quiet=as_json)

    _process(body, as_json)


@app.command()
def resume(
    workflow_ids: Annotated[list[str] | None, typer.Argument(metavar="[WORKFLOW_ID]...")] = None,
    agent: Annotated[
        str | None,
        typer.Option(
            "--agent", help="The agents the workflows started with (the default): auto|sim|NAME."
        ),
    ] = None,
    sim_duration_s: SimDurationOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Carry on with workflows stopped mid-way (a crash, a kill); default: all unfinished."""
    duration("--sim-duration", sim_duration_s)

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        wanted = [workflow_ref(each) for each in workflow_ids or []]
        workflows = await engine.workflows_to_resume(wanted or None)
        if not workflows:
            raise InputError("no unfinished workflows to resume")
        mode = agent_for_resume(workflows, agent)
        return await engine.resume(
            [w.id for w in workflows],
            agents=await _agents(engine, mode, sim_duration_s),
            on_progress=progress,
        )

    _process(body, as_json)


@app.command()
def cancel(workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")]) -> None:
    """Cancel a workflow: its running subtasks stop, its worktrees are removed."""

    async def body() -> WorkflowStatus:
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
def monitor(workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")]) -> None:
    """Follow a workflow live until it ends."""

    async def body() -> WorkflowStatus:
        wanted = workflow_ref(workflow_id)
        async with open_engine(settings(), create=False) as engine:
            status = await engine.get_workflow_status(wanted)
            while status.workflow.status not in WORKFLOW_TERMINAL:
                console.print(
                    Text.assemble(
                        f"{status.workflow.id}  ",
                        styled(status.state),
                        f"  {status.progress_percent:.0f}%  stage {status.current_stage or '-'}",
                    )
                )
                await asyncio.sleep(MONITOR_POLL_S)
                status = await _status_through_outage(engine, wanted)
            return status

    show_workflow(run(body))


MONITOR_OUTAGE_S = 300.0
"""How long ``monitor`` keeps watching through a database outage before it gives up."""
MONITOR_POLL_S = 1.0


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
