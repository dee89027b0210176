"""``taskorch parse``: plan a requirement and show the plan, without storing anything.

``--json`` prints exactly the plan format (``Plan.to_json()``) on stdout; the human view is a tree
of stages with each subtask's owner, estimate and files, the resource estimate, and the planner
that made the plan. Which planner that was also goes to stderr in JSON mode when it was a fallback,
so scripts keep clean JSON on stdout and people still learn that the model was not used.
"""

from __future__ import annotations

import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Group
from rich.text import Text
from rich.tree import Tree

from taskorch.cli import inputs
from taskorch.cli.app import app, console, err_console, line, run
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.domain.limits import MAX_TEXT_CHARS, check_text
from taskorch.domain.plan import Plan, PlanSubtask
from taskorch.planning import PlanResult, TaskNLP
from taskorch.settings import load_settings


class ProviderChoice(StrEnum):
    AUTO = "auto"
    HEURISTIC = "heuristic"
    ANTHROPIC = "anthropic"
    OPENAI = "openai"
    OPENAI_COMPATIBLE = "openai-compatible"


@app.command("parse")
def parse(
    text: Annotated[
        str | None,
        typer.Argument(help="The requirement. Leave out to use --file.", show_default=False),
    ] = None,
    context: Annotated[
        str | None, typer.Option("--context", help="Background for the planner (repo, stack).")
    ] = None,
    provider: Annotated[
        ProviderChoice | None,
        typer.Option(
            "--provider",
            help="Planner: heuristic (offline), anthropic, openai, openai-compatible. "
            "Default: NLP_PROVIDER, else auto (by the API keys that are set).",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    model: Annotated[
        str | None, typer.Option("--model", help="Model name (NLP_MODEL).", show_default=False)
    ] = None,
    base_url: Annotated[
        str | None,
        typer.Option(
            "--base-url",
            help="API base URL, e.g. http://localhost:11434/v1 for Ollama (OPENAI_BASE_URL).",
            show_default=False,
        ),
    ] = None,
    file: Annotated[
        Path | None,
        typer.Option("--file", help="Read the requirement from a file ('-' for stdin)."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the plan format as JSON.")] = False,
) -> None:
    """Turn a requirement into a plan: subtasks, owners, stages and estimates."""
    requirement = inputs.requirement(text, file, work="to plan")
    background = check_text("--context", context, MAX_TEXT_CHARS) if context else None

    async def body() -> PlanResult:
        settings = load_settings(
            nlp_provider=provider.value if provider else None, nlp_model=line("--model", model)
        )
        url = line("--base-url", base_url, MAX_PATH_CHARS)
        async with TaskNLP.from_settings(settings, base_url=url) as nlp:
            return await nlp.plan(requirement, background)

    result = run(body)
    if as_json:
        sys.stdout.write(result.plan.to_json() + "\n")
        if result.used_fallback or result.warnings:
            err_console.print(Text(f"planner: {result.describe()}", style="yellow"))
        return
    console.print(render(result))


def render(result: PlanResult) -> Group:
    """The human view: stage tree, resource estimate, planner."""
    plan = result.plan
    header = Text.assemble(
        (plan.task_title, "bold"),
        f"  {plan.complexity.value} · {len(plan.subtasks)} subtask(s) · "
        f"{len(plan.execution_plan)} stage(s) · {plan.parent_task_id}",
    )
    tree = Tree(header)
    for stage, ids in plan.execution_plan.items():
        parallel = " (parallel)" if len(ids) > 1 else ""
        branch = tree.add(Text(stage.replace("_", " ") + parallel, style="cyan"))
        for subtask_id in ids:
            branch.add(_subtask_line(plan.subtask(subtask_id)))
    return Group(tree, Text(""), _estimate(plan), _planner_line(result))


def _subtask_line(subtask: PlanSubtask) -> Text:
    line = Text.assemble(
        (subtask.subtask_id, "bold"),
        "  ",
        subtask.title,
        "  ",
        (f"{subtask.assigned_to.value}/{subtask.worker_type.value}", "magenta"),
        f" · {subtask.estimated_duration_minutes} min · ~{subtask.estimated_tokens:,} tokens",
    )
    if subtask.files_affected:
        line.append(" · " + ", ".join(subtask.files_affected), style="green")
    if subtask.dependencies:
        line.append(" ← " + ", ".join(subtask.dependencies), style="dim")
    return line


def _estimate(plan: Plan) -> Text:
    estimate = plan.resource_estimate
    lines = Text()
    lines.append("estimate  ", style="bold")
    lines.append(
        f"{estimate.duration_estimate} · ~{estimate.token_estimate:,} tokens · "
        f"masters: {', '.join(estimate.masters)} · workers: {estimate.workers} · "
        f"parallel: {'yes' if estimate.parallelization_possible else 'no'}\n"
    )
    for bottleneck in estimate.bottlenecks:
        lines.append("bottleneck  ", style="bold")
        lines.append(bottleneck + "\n")
    return lines


def _planner_line(result: PlanResult) -> Text:
    style = "yellow" if result.used_fallback or result.warnings else "dim"
    return Text.assemble(("planner  ", "bold"), (result.describe(), style))
