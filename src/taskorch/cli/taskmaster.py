"""``taskorch task import|export``: claude-task-master's tasks.json in and out."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from taskorch.cli.app import console, engine, err_console, line, print_json, run
from taskorch.cli.tasks import task_app
from taskorch.engine.taskmaster import InteropReport, export_taskmaster, import_taskmaster

PathArgument = Annotated[
    Path,
    typer.Argument(
        metavar="PATH",
        help="A tasks.json, or a project folder (its .taskmaster/tasks/tasks.json).",
    ),
]
TagOption = Annotated[
    str | None,
    typer.Option("--tag", help="Only this tag (default: every tag).", show_default=False),
]
JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@task_app.command("import")
def import_(path: PathArgument, tag: TagOption = None, as_json: JsonOption = False) -> None:
    """Import claude-task-master tasks (tagged or flat tasks.json); importing again updates."""

    async def body() -> InteropReport:
        async with engine() as running:
            return await import_taskmaster(running, path, line("--tag", tag))

    report = run(body)
    if as_json:
        print_json(report.to_dict())
        return
    for item in report.tags:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(item.statuses.items()))
        console.print(
            Text.assemble(
                "imported tag ",
                (item.tag, "bold"),
                f": {item.created} new, {item.updated} updated ({statuses or 'no tasks'})",
            )
        )
        if item.unknown_dependencies:
            err_console.print(
                Text(
                    f"warning: tag {item.tag}: dependencies on tasks the tag does not have were "
                    f"left out: {', '.join(item.unknown_dependencies)}",
                    style="yellow",
                )
            )
    console.print(Text(f"from {report.path}"))


@task_app.command("export")
def export(path: PathArgument, tag: TagOption = None, as_json: JsonOption = False) -> None:
    """Write imported tasks with their taskorch status back into a task-master tasks.json
    (tagged layout; other tags and tasks in the file are left as they are)."""

    async def body() -> InteropReport:
        async with engine(create=False) as running:
            return await export_taskmaster(running, path, line("--tag", tag))

    report = run(body)
    if as_json:
        print_json(report.to_dict())
        return
    for item in report.tags:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(item.statuses.items()))
        console.print(
            Text.assemble("exported tag ", (item.tag, "bold"), f": {item.updated} ({statuses})")
        )
    console.print(Text(f"to {report.path}"))
