"""``taskorch worker``: a worker process; many of them on many machines share one database."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path
from typing import Annotated

import typer

from taskorch.agents.base import AgentAdapter
from taskorch.agents.sim import SimAgent, SimBehaviour
from taskorch.agents.sim_subprocess import SimProcessAgent
from taskorch.cli.app import app, console, engine, run
from taskorch.domain.errors import InputError
from taskorch.runtime.worker import WorkerStats


@app.command()
def worker(
    concurrency: Annotated[
        int | None, typer.Option(min=1, help="Subtasks run at once (default WORKER_CONCURRENCY).")
    ] = None,
    once: Annotated[bool, typer.Option("--once", help="Drain what is ready, then exit.")] = False,
    agent: Annotated[
        str, typer.Option(help="Agent for unassigned subtasks: sim or sim-process.")
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

    async def body() -> WorkerStats:
        adapter = _default_agent(agent, sim_duration_s, sim_record)
        async with engine() as running:
            worker_ = running.create_worker({None: adapter}, concurrency=concurrency)
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, worker_.stop)
            console.print(f"worker {worker_.worker_id} on {running.database_location}")
            return await worker_.run(once=once)

    stats = run(body)
    console.print(
        f"worker done: {stats.completed} completed, {stats.retried} retried, "
        f"{stats.failed} failed, {stats.zombies} zombies requeued"
    )


def _default_agent(kind: str, duration_s: float, record: Path | None) -> AgentAdapter:
    if kind == "sim":
        return SimAgent(SimBehaviour(duration_s=duration_s))
    if kind == "sim-process":
        return SimProcessAgent(duration_s=duration_s, record=record)
    raise InputError(f"unknown agent {kind!r}: use sim or sim-process")
