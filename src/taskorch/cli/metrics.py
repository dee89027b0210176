"""``taskorch metrics``: what the runtime has done, from the stored records."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from taskorch.cli.app import app, console, engine, print_json, run
from taskorch.runtime.metrics import RuntimeMetrics


@app.command()
def metrics(as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Throughput, success rate, execution time, errors by class, agents, queue depth, zombies."""

    async def body() -> RuntimeMetrics:
        async with engine(create=False) as running:
            return await running.get_metrics()

    figures = run(body)
    if as_json:
        print_json(figures.to_dict())
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
