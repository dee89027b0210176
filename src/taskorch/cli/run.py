"""``taskorch run``, ``process``, ``batch``, ``cancel``, ``monitor``: tasks to merged code."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.live import Live
from rich.text import Text

from taskorch.cli.app import app, console, err_console, print_json, run, settings
from taskorch.cli.workflows import show_workflow, styled
from taskorch.domain.errors import InputError
from taskorch.domain.models import NewTask, Priority, Workflow, parse_task_ref
from taskorch.domain.states import WORKFLOW_TERMINAL
from taskorch.engine import OrchestrationEngine
from taskorch.engine.agents import AgentPool
from taskorch.engine.resuming import agent_for_resume
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.engine.status import WorkflowStatus
from taskorch.runtime.workspace import check_repository

RepoOption = Annotated[
    Path | None,
    typer.Option("--repo", help="Target git repository (default: a scratch repository)."),
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
    pool = await agents_for_run(engine, agent, sim_duration_s)
    if pool.note:
        err_console.print(pool.note, highlight=False)
    return pool


async def _options(repo: Path | None, agent: str) -> dict[str, str]:
    options = {"agent": agent}
    if repo is not None:
        root, _ = await check_repository(repo, None, require_clean=True)
        options["repo"] = str(root)
    return options


def _finish(statuses: list[WorkflowStatus], as_json: bool) -> None:
    if as_json:
        print_json([s.to_dict() for s in statuses] if len(statuses) > 1 else statuses[0].to_dict())
    else:
        for status in statuses:
            show_workflow(status)
    if any(s.state != "merged" for s in statuses):
        raise typer.Exit(1)


def _process(
    body: Callable[
        [OrchestrationEngine, Callable[[Workflow], None]], Awaitable[list[WorkflowStatus]]
    ],
    as_json: bool,
) -> None:
    async def main() -> list[WorkflowStatus]:
        async with open_engine(settings()) as engine:
            line = Text("starting")
            # --json keeps stdout clean: the live line goes nowhere then.
            with Live(
                line, console=console if not as_json else Console(quiet=True), transient=True
            ) as live:

                def progress(workflow: Workflow) -> None:
                    live.update(Text.assemble(f"{workflow.id}  ", styled(workflow.status.value)))

                return await body(engine, progress)

    _finish(run(main), as_json)


@app.command("run")
def run_(
    text: Annotated[str | None, typer.Argument(help="The requirement.")] = None,
    file: Annotated[Path | None, typer.Option("--file", help="Read the requirement here.")] = None,
    repo: RepoOption = None,
    agent: AgentOption = "auto",
    sim_duration_s: SimDurationOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Add a requirement as a task and carry it to merged code, showing live progress."""

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        requirement = _requirement(text, file)
        pool = await _agents(engine, agent, sim_duration_s)
        options = await _options(repo, pool.mode)
        title = requirement.strip().splitlines()[0][:120]
        task = await engine.add_task(NewTask.create(title, requirement))
        return [
            await engine.process_task(
                task.id,
                agents=pool,
                options=options,
                on_progress=progress,
            )
        ]

    _process(body, as_json)


@app.command()
def process(
    task_id: Annotated[str, typer.Argument(metavar="TASK_ID")],
    repo: RepoOption = None,
    agent: AgentOption = "auto",
    priority: Annotated[
        str | None,
        typer.Option(
            help="Queue priority of its subtasks: low|medium|high|critical (default: the task's)."
        ),
    ] = None,
    timeout_s: Annotated[
        float | None,
        typer.Option("--timeout", min=1, help="Give up (and cancel it) after this many seconds."),
    ] = None,
    sim_duration_s: SimDurationOption = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Carry a stored task to merged code."""

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        task = await engine.get_task(parse_task_ref(task_id))
        pool = await _agents(engine, agent, sim_duration_s)
        options = await _options(repo, pool.mode)
        if priority is not None:
            options["priority"] = Priority.parse(priority).value
        started: list[str] = []

        def watch(workflow: Workflow) -> None:
            started[:] = [workflow.id]
            progress(workflow)

        try:
            async with asyncio.timeout(timeout_s):
                return [
                    await engine.process_task(
                        task.id,
                        agents=pool,
                        options=options,
                        on_progress=watch,
                    )
                ]
        except TimeoutError:
            if started:
                await engine.cancel_workflow(started[0])
            raise InputError(
                f"task {task.ref} did not finish within {timeout_s:g} s; its workflow was "
                "cancelled (unmerged work stays on its branches)"
            ) from None

    _process(body, as_json)


@app.command()
def batch(
    task_ids: Annotated[str, typer.Argument(metavar="ID,ID,...")],
    repo: RepoOption = None,
    agent: AgentOption = "auto",
    as_json: JsonOption = False,
) -> None:
    """Carry several stored tasks to merged code at once."""

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        ids = [parse_task_ref(part) for part in task_ids.split(",") if part.strip()]
        if not ids:
            raise InputError("no task ids given: use e.g. `taskorch batch 1,2,3`")
        for task_id in ids:
            await engine.get_task(task_id)
        pool = await _agents(engine, agent)
        return await engine.process_batch(
            ids,
            agents=pool,
            options=await _options(repo, pool.mode),
            on_progress=progress,
        )

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

    async def body(
        engine: OrchestrationEngine, progress: Callable[[Workflow], None]
    ) -> list[WorkflowStatus]:
        workflows = await engine.workflows_to_resume(workflow_ids or None)
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
        async with open_engine(settings()) as engine:
            return await engine.cancel_workflow(workflow_id)

    status = run(body)
    console.print(Text.assemble(f"{status.workflow.id}  ", styled(status.state)))


@app.command()
def monitor(workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")]) -> None:
    """Follow a workflow live until it ends."""

    async def body() -> WorkflowStatus:
        async with open_engine(settings()) as engine:
            status = await engine.get_workflow_status(workflow_id)
            while status.workflow.status not in WORKFLOW_TERMINAL:
                console.print(
                    Text.assemble(
                        f"{status.workflow.id}  ",
                        styled(status.state),
                        f"  {status.progress_percent:.0f}%  stage {status.current_stage or '-'}",
                    )
                )
                await asyncio.sleep(1.0)
                status = await engine.get_workflow_status(workflow_id)
            return status

    show_workflow(run(body))


def _requirement(text: str | None, file: Path | None) -> str:
    if (text is None) == (file is None):
        raise InputError("give the requirement as TEXT or with --file PATH (one of them)")
    if file is not None:
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as exc:
            raise InputError(f"cannot read {file}: {exc.strerror}") from None
    assert text is not None
    if not text.strip():
        raise InputError("the requirement is empty: describe the work to do")
    return text
