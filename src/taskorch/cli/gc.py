"""``taskorch gc``: remove what finished workflows left behind, once they are old enough."""

from __future__ import annotations

from typing import Annotated

import typer

from taskorch.cli.app import app, console, fail, print_json, run, settings
from taskorch.domain.errors import InputError
from taskorch.domain.limits import parse_duration
from taskorch.engine.retention import MAX_AGE_S, CollectReport, collect_garbage
from taskorch.engine.setup import open_engine


@app.command()
def gc(
    older_than: Annotated[
        str,
        typer.Option(
            "--older-than",
            metavar="AGE",
            help="Workflows that ended longer ago than this (e.g. 30d, 12h, 90m).",
        ),
    ] = "30d",
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say what would go; remove nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Remove finished workflows' task logs, events, workflow files, worktrees and merged
    branches (never a branch with unmerged work); the workflows and their history stay."""
    try:
        age_s = parse_duration("--older-than", older_than, limit_s=MAX_AGE_S)
    except InputError as exc:
        fail(exc.message)

    async def body() -> CollectReport:
        async with open_engine(settings(), create=False) as engine:
            return await collect_garbage(engine, age_s, dry_run=dry_run)

    report = run(body)
    if as_json:
        print_json(report.to_json())
        return
    verb = "would collect" if report.dry_run else "collected"
    console.print(
        f"{verb} {len(report.workflows)} workflow(s) that ended before "
        f"{report.cutoff:%Y-%m-%d %H:%M} UTC: {report.task_logs} task log(s), "
        f"{report.events} event(s), {report.event_lines} events.jsonl line(s), "
        f"{report.worktrees} worktree folder(s), {report.workflow_files} workflow file folder(s)",
        highlight=False,
    )
    for problem in report.problems:
        console.print(f"left alone: {problem}", highlight=False)
