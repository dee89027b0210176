"""``taskorch status``: workflows at a glance, or one workflow in detail."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.table import Table
from rich.text import Text
from rich.tree import Tree

from taskorch.cli.agent_views import print_agents
from taskorch.cli.app import app, console, engine, print_json, run, workflow_ref
from taskorch.cli.tasks import print_holds
from taskorch.domain.budget import BudgetFigures
from taskorch.domain.models import Task, TaskStatus
from taskorch.engine.status import TaskHold, WorkflowStatus, task_holds
from taskorch.engine.targets import describe_target

if TYPE_CHECKING:
    from taskorch.engine.agents import AgentInfo

STATE_STYLE = {
    "merged": "bold green",
    "completed": "green",
    "failed": "bold red",
    "cancelled": "dim",
    "blocked": "red",
    "running": "cyan",
    "queued": "yellow",
    "pending": "dim",
    "validation_failed": "red",
    "validation_passed": "green",
    "processing": "cyan",
}


@app.command()
def status(
    workflow_id: Annotated[str | None, typer.Argument(metavar="[WORKFLOW_ID]")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """All workflows, or one workflow: state, progress, stages, subtasks, history, PR record.
    Pending tasks that cannot start (a dependency failed, was cancelled or does not exist) are
    named with the reason."""

    agents: list[AgentInfo] = []
    pending: list[Task] = []
    holds: dict[int, TaskHold] = {}

    async def body() -> Any:
        wanted = workflow_ref(workflow_id) if workflow_id else None  # checked before opening
        async with engine(create=False) as running:
            if wanted:
                return await running.get_workflow_status(wanted)
            workflows = await running.list_workflows(limit=50)
            agents.extend(await running.list_agents())
            pending.extend(await running.list_tasks(status=TaskStatus.PENDING))
            holds.update(await task_holds(pending, running.get_task))
            return [await running.get_workflow_status(w.id) for w in workflows]

    answer = run(body)
    if isinstance(answer, WorkflowStatus):
        if as_json:
            print_json(answer.to_dict())
        else:
            show_workflow(answer)
        return
    if as_json:
        print_json([_summary(s) for s in answer])
        return
    if not answer:
        console.print('no workflows yet: start one with `taskorch run "REQUIREMENT"`')
        print_holds(pending, holds)
        return
    table = Table("workflow", "task", "state", "progress", "stage", "cost", box=None)
    for item in answer:
        spent = item.cost().total.cost_usd
        table.add_row(
            item.workflow.id,
            Text(f"{item.task.ref} {item.task.title}"),
            Text.assemble(
                styled(item.state),
                (f" (waiting for {item.waiting_for})", "yellow") if item.waiting_for else "",
            ),
            f"{item.progress_percent:.0f}%",
            str(item.current_stage or "-"),
            f"${spent:.4f}" if spent is not None else "-",
        )
    console.print(table)
    print_holds(pending, holds)
    if agents:
        console.print("agents:")
        print_agents(agents)


def _summary(item: WorkflowStatus) -> dict[str, Any]:
    return {
        "workflow_id": item.workflow.id,
        "task": item.task.ref,
        "title": item.task.title,
        "state": item.state,
        "waiting_for": item.waiting_for,
        "progress_percent": item.progress_percent,
        "current_stage": item.current_stage,
        "cost_usd": item.cost().total.cost_usd,
    }


def _routing_lines(choice: dict[str, Any]) -> list[str]:
    """Why routing chose the agent: its score and the runners-up, then the score parts (how
    well it fits the subtask, and its record)."""
    head = f"routed to {choice['agent']}: score {choice['score']:.2f}"
    runners = choice.get("runners_up") or []
    if runners:
        head += "; next " + ", ".join(f"{r['agent']} {r['score']:.2f}" for r in runners)
    parts = choice.get("parts") or {}

    def named(*names: str) -> str:
        return " · ".join(f"{n} {parts[n]:.2f}" for n in names if n in parts)

    lines = [head, "fit: " + named("capability", "language", "load")]
    lines.append("record: " + named("success", "latency", "cost"))
    if "exploration" in parts:
        lines[-1] += f" · exploration +{parts['exploration']:.2f}"
    return lines


def candidate_lines(race: dict[str, Any] | None, agent: str | None) -> list[str]:
    """A best-of-N attempt's candidates: agent (``agent`` for the run's default one), outcome,
    cost and why."""
    if not race:
        return []
    lines = [f"best of {race['n']}: candidate {race['winner']} merged"]
    for c in race["candidates"]:
        cost = "cost unknown" if c["cost_usd"] is None else f"${c['cost_usd']:.4f}"
        why = f"  {c['reason']}" if c["reason"] else ""
        lines.append(
            f"#{c['number']} {c['agent'] or agent or 'default'}  {c['state']}  {cost}{why}"
        )
    return lines


def _attempt_lines(attempts: list[dict[str, Any]]) -> dict[str, list[str]]:
    """Subtask key -> one line per recorded attempt, for subtasks that took more than one or
    whose agent reported usage: ``attempt 1 claude (sonnet) failed (timeout) · $0.0100``."""
    lines: dict[str, list[str]] = {}
    for a in attempts:
        model = f" ({a['model']})" if a["model"] else ""
        why = f" ({a['error_class']})" if a["error_class"] else ""
        text = f"attempt {a['number']} {a['agent'] or 'unassigned'}{model} {a['outcome']}{why}"
        if a["cost_usd"] is not None:
            text += f" · ${a['cost_usd']:.4f}"
        if a["tokens_in"] is not None or a["tokens_out"] is not None:
            text += f" · {a['tokens_in'] or 0:,} in / {a['tokens_out'] or 0:,} out tokens"
        lines.setdefault(a["subtask"], []).append(text)
    return {
        key: found
        for key, found in lines.items()
        if len(found) > 1 or any("$" in x or "tokens" in x for x in found)
    }


def _print_cost(item: WorkflowStatus) -> None:
    """The workflow's tokens and cost, then by agent and by model when more than one."""
    from taskorch.cli.metrics import usage_text

    cost = item.cost()
    if not cost.total.attempts:
        return
    console.print(Text(f"cost: {usage_text(cost.total)}"))
    for title, groups in (("agent", cost.by_agent), ("model", cost.by_model)):
        if len(groups) > 1:
            for name, figures in sorted(groups.items()):
                console.print(Text(f"  {title} {name}: {usage_text(figures)}"))


def styled(state: str) -> Text:
    return Text(state, style=STATE_STYLE.get(state, ""))


def show_workflow(item: WorkflowStatus) -> None:
    data = item.to_dict()
    console.print(
        Text.assemble(
            (item.workflow.id, "bold"),
            "  ",
            styled(item.state),
            "  ",
            f"{item.progress_percent:.0f}%  ",
            f"{item.task.ref} ",
            item.task.title,
        )
    )
    routing: dict[str, Any] = item.workflow.metadata.get("routing") or {}
    reassigned: dict[str, list[str]] = {}
    for event in item.events:
        if event.kind == "task:retry" and event.payload.get("reassigned_to"):
            p = event.payload
            reassigned.setdefault(str(p.get("key")), []).append(
                f"attempt {p.get('attempt')} on {p.get('agent')} failed ({p.get('error_class')}); "
                f"retried on {p['reassigned_to']}"
            )
    attempts = _attempt_lines(data["attempts"])
    tree = Tree("stages")
    stages: dict[int, Tree] = {}
    for sub in data["subtasks"]:
        branch = stages.get(sub["stage"]) or tree.add(f"stage {sub['stage']}")
        stages[sub["stage"]] = branch
        line = Text.assemble(
            f"{sub['key']}  ",
            styled(sub["status"]),
            f"  agent {sub['agent'] or 'default'} · attempts {sub['attempts']}",
        )
        if sub.get("quality") is not None:
            line.append(f" · quality {sub['quality']:.2f}")
        if sub.get("cost_usd") is not None:
            line.append(f" · ${sub['cost_usd']:.4f}")
        if sub["error"]:
            line.append(f"  {sub['error']}", style="red")
        node = branch.add(line)
        if sub.get("waiting"):  # its agent's rate window
            node.add(Text(sub["waiting"], style="yellow", overflow="fold"))
        for attempt in attempts.get(sub["key"], []):
            node.add(Text(attempt, style="dim", overflow="fold"))
        choice = routing.get(sub["key"])
        if choice and choice.get("agent"):
            for text in _routing_lines(choice):
                node.add(Text(text, style="dim", overflow="fold"))
        for moved in reassigned.get(sub["key"], []):
            node.add(Text(moved, style="yellow", overflow="fold"))
        for text in candidate_lines(sub.get("best_of"), sub["agent"]):
            node.add(Text(text, style="dim", overflow="fold"))
    console.print(tree)
    _print_cost(item)
    if data["pull_request"]:
        pr = data["pull_request"]
        console.print(
            Text(
                f"pull request: {pr.get('url') or pr.get('head_branch', '')} "
                f"({pr.get('commits_count', len(pr.get('commits', [])))} commits)"
            )
        )
    if item.target:
        verb = "merged into" if item.state == "merged" else "merges into"
        console.print(Text(f"{verb} {describe_target(item.target)}"))
    if data["escalation"]:
        console.print(Text(f"escalated: {data['escalation']}", style="red"))
    if item.end_reason:
        console.print(Text(f"reason: {item.end_reason}", style="red"))
    console.print("history:")
    for step in data["history"]:
        console.print(Text(f"  {step['time'][11:19]}  {step['from'] or '-'} -> {step['to']}"))
    if item.budget is not None and item.budget.caps.any:
        console.print(Text(f"budget: {budget_summary(item.budget)}"))
    if item.budget_line:
        wf = item.workflow.id
        console.print(
            Text(f"{item.budget_line}; raise it: taskorch budget {wf} --usd N", style="bold yellow")
        )
    if item.waiting_for == "approval":
        wf = item.workflow.id
        console.print(
            Text(
                f"{wf} validated; waiting for approval: taskorch approve {wf} "
                f"(or taskorch reject {wf} --reason TEXT)",
                style="bold yellow",
            )
        )


def budget_summary(figures: BudgetFigures) -> str:
    """``spent $0.50 of $0.60 · 25,000 tokens (counted by cost)``."""
    caps = figures.caps
    spent = figures.spent
    usd = f"${spent.usd:.2f}" + (f" of ${caps.usd:.2f}" if caps.usd is not None else "")
    tokens = f"{spent.tokens:,}" + (f" of {caps.tokens:,}" if caps.tokens is not None else "")
    parts = [f"spent {usd}", f"{tokens} tokens"]
    if caps.subtask_usd is not None:
        parts.append(f"at most ${caps.subtask_usd:.2f} per subtask")
    return " · ".join(parts) + f" (counted by {spent.counted_by.value})"
