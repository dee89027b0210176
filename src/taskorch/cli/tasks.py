"""``taskorch task add|list|show``."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.table import Table
from rich.text import Text

from taskorch.cli.app import app, console, engine, line, print_json, run
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.cli.terminal import shown
from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_ID
from taskorch.domain.models import NewTask, Task, TaskStatus, parse_task_ref
from taskorch.engine.status import TaskHold, task_holds

task_app = typer.Typer(help="Add, list and show tasks (requirements).", no_args_is_help=True)
app.add_typer(task_app, name="task")

_PRIORITY_STYLE = {"low": "dim", "medium": "", "high": "yellow", "critical": "bold red"}


def task_json(task: Task, hold: TaskHold | None = None) -> dict[str, Any]:
    """A task as JSON; ``hold`` (why it has not started) is given by the commands that know it."""
    return {
        "ref": task.ref,
        **task.model_dump(mode="json"),
        "hold": hold.to_dict() if hold else None,
    }


@task_app.command("add")
def add(
    title: Annotated[str, typer.Argument(help="Short title of the requirement.")],
    description: Annotated[str, typer.Option("--description", "-d", help="The requirement.")] = "",
    priority: Annotated[str, typer.Option(help="low|medium|high|critical")] = "medium",
    depends_on: Annotated[
        list[str] | None,
        typer.Option("--depends-on", help="Id of a task this one waits for (repeatable)."),
    ] = None,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            metavar="PATH|URL",
            help="Its git repository: a local path or a git URL (default: TASKORCH_REPO, else a "
            "scratch repository).",
            show_default=False,
        ),
    ] = None,
    base_branch: Annotated[
        str | None,
        typer.Option(
            "--base-branch", metavar="NAME", help="Branch to merge into.", show_default=False
        ),
    ] = None,
    merge: Annotated[
        str | None,
        typer.Option(
            "--merge",
            metavar="auto|approve",
            help="approve: wait for `taskorch approve` before merging "
            "(default: TASKORCH_MERGE_POLICY).",
            show_default=False,
        ),
    ] = None,
    budget_usd: Annotated[
        float | None,
        typer.Option(
            "--budget-usd",
            metavar="USD",
            help="Cap what each workflow of the task may cost (docs/budgets.md).",
            show_default=False,
        ),
    ] = None,
    budget_tokens: Annotated[
        int | None,
        typer.Option(
            "--budget-tokens",
            metavar="N",
            help="Cap the tokens each workflow of the task may use.",
            show_default=False,
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the task as JSON.")] = False,
) -> None:
    """Store a new task (the options of --repo, --base-branch and --merge go with it: every
    workflow of the task uses them unless it is started with others)."""

    async def body() -> Task:
        from taskorch.engine.targets import check_target

        dependencies = [parse_task_ref(ref) for ref in depends_on or []]
        new = NewTask.create(title, description, priority, dependencies)  # checked before the
        path = line("--repo", repo, MAX_PATH_CHARS)  # repository is reached, which takes time
        target = await check_target(path, line("--base-branch", base_branch), merge, reach=True)
        from taskorch.engine.budgets import caps_from, caps_json

        caps = caps_from({"usd": budget_usd, "tokens": budget_tokens})
        metadata = {**target, "budget": caps_json(caps)} if caps.any else target
        async with engine() as running:
            return await running.add_task(new.model_copy(update={"metadata": metadata}))

    task = run(body)
    if as_json:
        print_json(task_json(task))
    else:
        console.print(
            Text.assemble("added ", (task.ref, "bold"), f" {task.title} (priority {task.priority})")
        )


@task_app.command("list")
def list_(
    status: Annotated[
        str | None, typer.Option(help="Only tasks in this status.", show_default=False)
    ] = None,
    limit: Annotated[int | None, typer.Option(min=1, max=MAX_ID, help="At most this many.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List tasks, oldest first; a pending task that cannot start yet says why."""

    async def body() -> tuple[list[Task], dict[int, TaskHold]]:
        wanted = _parse_status(status) if status else None
        async with engine(create=False) as running:
            tasks = await running.list_tasks(status=wanted, limit=limit)
            return tasks, await task_holds(tasks, running.get_task)

    tasks, holds = run(body)
    if as_json:
        print_json([task_json(task, holds.get(task.id)) for task in tasks])
        return
    if not tasks:
        console.print("no tasks yet: add one with `taskorch task add TITLE`")
        return
    table = Table("id", "title", "status", "priority", "depends on", box=None)
    for task in tasks:
        deps = ", ".join(f"task-{d}" for d in task.dependencies)
        priority = Text(task.priority.value, style=_PRIORITY_STYLE[task.priority.value])
        table.add_row(task.ref, Text(task.title), _status(task, holds), priority, deps)
    console.print(table)
    print_holds(tasks, holds)


def print_holds(tasks: list[Task], holds: dict[int, TaskHold]) -> None:
    """A line for each task that cannot start, with the reason (``task list``, ``status``)."""
    for task in tasks:
        hold = holds.get(task.id)
        if hold is not None and hold.blocked:
            console.print(Text(f"{task.ref} {hold.reason}", style="red"))


def _status(task: Task, holds: dict[int, TaskHold]) -> Text:
    hold = holds.get(task.id)
    if hold is None:
        return Text(task.status.value)
    note = " (blocked)" if hold.blocked else " (waiting)"
    return Text.assemble(task.status.value, (note, "red" if hold.blocked else "dim"))


@task_app.command("show")
def show(
    task_id: Annotated[str, typer.Argument(metavar="ID", help="42 or task-42")],
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Show one task."""

    async def body() -> tuple[Task, TaskHold | None]:
        async with engine(create=False) as running:
            task = await running.get_task(parse_task_ref(task_id))
            return task, (await task_holds([task], running.get_task)).get(task.id)

    task, hold = run(body)
    if as_json:
        print_json(task_json(task, hold))
        return
    console.print(Text.assemble((task.ref, "bold"), " ", task.title))
    for label, value in (
        ("status", f"{task.status.value}{f' ({hold.reason})' if hold else ''}"),
        ("priority", task.priority),
        ("depends on", ", ".join(f"task-{d}" for d in task.dependencies) or "-"),
        *_target_rows(task),
        *_state_rows(task),
        ("created", task.created_at.isoformat(timespec="seconds")),
        ("updated", task.updated_at.isoformat(timespec="seconds")),
    ):
        console.print(Text(f"  {label:<11} {value}"))
    if task.description:
        console.print(f"\n{task.description}")


def _target_rows(task: Task) -> list[tuple[str, object]]:
    names = (("repo", "repository"), ("base_branch", "base branch"), ("merge_policy", "merge"))
    return [(label, task.metadata[key]) for key, label in names if task.metadata.get(key)]


def _state_rows(task: Task) -> list[tuple[str, object]]:
    """The state last reported by ``TaskOrchestrator.update_task_state``, if any."""
    state = task.metadata.get("state")
    if not isinstance(state, dict):
        return []
    progress = state.get("progress")
    shown_progress = f"{progress:g} %" if isinstance(progress, int | float) else "-"
    reported = f"{state.get('status', '-')}, {shown_progress}"
    rows: list[tuple[str, object]] = [("reported", f"{reported} at {state.get('at', '?')}")]
    if state.get("message"):
        rows.append(("message", state["message"]))
    return rows


def _parse_status(value: str) -> TaskStatus:
    try:
        return TaskStatus(value.strip().lower())
    except ValueError:
        choices = "|".join(s.value for s in TaskStatus)
        raise InputError(f"invalid status {shown(value)}: use one of {choices}") from None
