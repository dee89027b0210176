"""``taskorch budget``: see or change a workflow's caps."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from taskorch.cli.app import app, console, print_json, run, settings, workflow_ref
from taskorch.cli.workflows import budget_summary
from taskorch.engine.setup import open_engine
from taskorch.engine.status import WorkflowStatus


@app.command("budget")
def budget(
    workflow_id: Annotated[str, typer.Argument(metavar="WORKFLOW_ID")],
    usd: Annotated[
        float | None,
        typer.Option("--usd", metavar="USD", help="The new USD cap.", show_default=False),
    ] = None,
    tokens: Annotated[
        int | None,
        typer.Option("--tokens", metavar="N", help="The new token cap.", show_default=False),
    ] = None,
    subtask_usd: Annotated[
        float | None,
        typer.Option(
            "--subtask-usd", metavar="USD", help="The new cap per subtask.", show_default=False
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the status as JSON.")] = False,
) -> None:
    """Show or change a workflow's budget; one waiting for its budget goes on when it fits.

    Without --usd, --tokens or --subtask-usd: show it (docs/budgets.md)."""

    async def body() -> WorkflowStatus:
        wanted = workflow_ref(workflow_id)
        async with open_engine(settings(), create=False) as engine:
            if usd is None and tokens is None and subtask_usd is None:
                return await engine.get_workflow_status(wanted)
            return await engine.set_budget(wanted, usd=usd, tokens=tokens, subtask_usd=subtask_usd)

    status = run(body)
    if as_json:
        print_json(status.to_dict())
        return
    line = Text(f"{status.workflow.id}  ")
    line.append(budget_summary(status.budget) if status.budget else "no budget")
    console.print(line)
    if status.budget_line:
        console.print(Text(status.budget_line, style="bold yellow"))
