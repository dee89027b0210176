"""``taskorch metrics``: what the runtime has done, from the stored records."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from taskorch.cli.app import app, console, engine, print_json, run
from taskorch.runtime.metrics import RuntimeMetrics

if TYPE_CHECKING:
    from taskorch.engine.usage import CostSummary, Usage


@app.command()
def metrics(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Throughput, success rate, execution time, errors by class, agents, queue depth, zombies."""

    async def body() -> tuple[RuntimeMetrics, CostSummary]:
        async with engine(create=False) as running:
            return await running.get_metrics(), await running.usage()

    figures, usage = run(body)
    if as_json:
        print_json({**figures.to_dict(), "cost": usage.to_dict()})
        return
    console.print(
        f"attempts {figures.attempts} · success rate {figures.success_rate:.1%} · "
        f"mean {figures.mean_execution_s:.2f} s · throughput {figures.throughput_per_s:.1f}/s "
        f"(last minute) · queue depth {figures.queue_depth} · zombies {figures.zombies}"
    )
    states = ", ".join(f"{k} {v}" for k, v in sorted(figures.subtasks_by_state.items()))
    console.print(f"subtasks: {states or 'none'}")
    if figures.errors_by_class:
        errors = ", ".join(f"{k} {v}" for k, v in sorted(figures.errors_by_class.items()))
        console.print(f"errors by class: {errors}")
    if figures.agents:
        table = Table(
            "agent", "attempts", "success", "mean s", "active", "tokens in/out", "cost", box=None
        )
        for name, agent in sorted(figures.agents.items()):
            table.add_row(
                name,
                str(agent.attempts),
                f"{agent.success_rate:.0%}",
                f"{agent.mean_s:.2f}",
                str(agent.active),
                f"{agent.tokens_in}/{agent.tokens_out}",
                f"${agent.cost_usd:.4f}",
            )
        console.print(table)
    print_usage(usage)


def print_usage(usage: CostSummary) -> None:
    """Tokens and cost in all, then by agent and by model (``-`` where none was reported)."""
    if not usage.total.attempts:
        return
    console.print(f"cost: {usage_text(usage.total)}")
    for title, groups in (("agent", usage.by_agent), ("model", usage.by_model)):
        table = Table(title, "attempts", "tokens in", "tokens out", "cost USD", box=None)
        for name, figures in sorted(groups.items()):
            table.add_row(
                name,
                str(figures.attempts),
                _figure(figures.tokens_in),
                _figure(figures.tokens_out),
                f"{figures.cost_usd:.4f}" if figures.cost_usd is not None else "-",
            )
        console.print(table)


def usage_text(figures: Usage) -> str:
    """``$0.0900 · 7,500 in / 900 out tokens · 3 attempts (1 reported nothing)``."""
    cost = f"${figures.cost_usd:.4f}" if figures.cost_usd is not None else "$? (not reported)"
    parts = [cost]
    if figures.tokens_in is not None or figures.tokens_out is not None:
        parts.append(f"{_figure(figures.tokens_in)} in / {_figure(figures.tokens_out)} out tokens")
    attempts = f"{figures.attempts} attempt{'s' if figures.attempts != 1 else ''}"
    if figures.unreported:
        attempts += f" ({figures.unreported} reported nothing)"
    return " · ".join([*parts, attempts])


def _figure(value: int | None) -> str:
    return f"{value:,}" if value is not None else "-"
