"""``taskorch worker``: a worker process; many of them on many machines share one database."""

from __future__ import annotations

import asyncio
import signal
import statistics
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated

import typer

from taskorch.agents.base import AgentAdapter
from taskorch.agents.sim import SimAgent, SimBehaviour
from taskorch.agents.sim_subprocess import SimProcessAgent
from taskorch.cli.app import app, console, duration, run, settings
from taskorch.cli.terminal import shown
from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_ID
from taskorch.engine import OrchestrationEngine
from taskorch.engine.delivery import DeliveryAware, GitDelivery
from taskorch.engine.setup import agent_adapters, agents_for_run, open_engine
from taskorch.runtime.worker import WorkerStats


@app.command()
def worker(
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_ID, help="Subtasks run at once (default TASKORCH_WORKER_CONCURRENCY)."
        ),
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Drain what is ready, then exit.")] = False,
    agent: Annotated[
        str,
        typer.Option(
            help="sim or sim-process: the agent for unassigned subtasks; registry: the "
            "registered agents, for the subtasks routed to them (in git worktrees)."
        ),
    ] = "sim",
    sim_duration_s: Annotated[
        float, typer.Option("--sim-duration", min=0, help="Seconds each simulated run takes.")
    ] = 0.0,
    sim_record: Annotated[
        Path | None,
        typer.Option("--sim-record", help="sim-process: append a line per run to this file."),
    ] = None,
) -> None:
    """Claim ready subtasks and run them until stopped (SIGTERM/SIGINT: finish, then exit)."""

    seconds = duration("--sim-duration", sim_duration_s) or 0.0

    async def body() -> WorkerStats:
        if agent == "registry":
            async with open_engine(settings()) as running:
                pool = await agents_for_run(running, "auto")
                if pool.mode == "sim":
                    raise InputError(
                        "no usable agents registered: add one with `taskorch agents add`"
                    )
                return await _work(running, pool)
        async with open_engine(settings()) as running:
            adapter = _default_agent(running, agent, seconds, sim_record)
            return await _work(running, {None: adapter})

    async def _work(
        running: OrchestrationEngine, agents: Mapping[str | None, AgentAdapter]
    ) -> WorkerStats:
        await running.recover_git()
        worker_ = running.create_worker(agents, concurrency=concurrency)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, worker_.stop)
        names = ", ".join(sorted(str(a) for a in agents if a is not None)) or agent
        console.print(f"worker {worker_.worker_id} on {running.database_location} ({names})")
        return await worker_.run(once=once)

    stats = run(body)
    console.print(
        f"worker done: {stats.completed} completed, {stats.retried} retried, "
        f"{stats.failed} failed, {stats.zombies} zombies requeued"
        + (
            f", dispatch p50 {statistics.median(stats.dispatch_latency_s) * 1000:.1f} ms"
            if stats.dispatch_latency_s
            else ""
        )
    )


def _default_agent(
    running: OrchestrationEngine, kind: str, duration_s: float, record: Path | None
) -> AgentAdapter:
    """The simulated agent: in git worktrees, committing, for workflows that deliver code."""
    plain: AgentAdapter
    if kind == "sim":
        plain = SimAgent(SimBehaviour(duration_s=duration_s))
    elif kind == "sim-process":
        plain = SimProcessAgent(duration_s=duration_s, record=record)
    else:
        raise InputError(f"unknown agent {shown(kind)}: use sim, sim-process or registry")
    assert isinstance(running.delivery, GitDelivery)
    [delivering] = agent_adapters(running, "sim", duration_s).values()
    return DeliveryAware(plain, delivering, running.delivery)
