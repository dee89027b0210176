"""procrastinate: psycopg 3 connector, async worker(s) with LISTEN/NOTIFY, default tables.

It claims one job per fetch, so throughput comes from more worker processes (its documented
way to scale) and ``concurrency`` slots per worker. No dependencies between jobs: the W1 join is
deferred by the handler of the last no-op (counted in shared memory, not durably), and each W2
step defers the next. W2 runs with ``concurrency=1``: with more slots its worker clears the
new-job flag after an empty fetch that raced the next step's NOTIFY, and the chain then waits
for the polling interval (hundreds of ms a step on 3.10).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Coroutine, Sequence
from functools import partial
from typing import Any

import procrastinate
from procrastinate.tasks import Task
from procrastinate.types import JSONDict

from peers_lib.common import Config, Figures, Handler, run_queue

DISTRIBUTION = "procrastinate"
DATABASE = "bench_procrastinate"


def configs(workload: str) -> list[Config]:
    if workload == "W1":
        return [{"processes": 2, "concurrency": 50}, {"processes": 4, "concurrency": 25}]
    return [{"processes": 1, "concurrency": 1}]


def describe(config: Config) -> str:
    return f"{config['processes']} proc, concurrency {config['concurrency']}"


class Backend:
    def __init__(self, url: str, concurrency: int) -> None:
        self.concurrency = concurrency
        self.app = procrastinate.App(connector=procrastinate.PsycopgConnector(conninfo=url))
        self.handler: Handler | None = None
        self.tasks = {kind: self._register(kind) for kind in ("noop", "join", "step")}

    def _register(self, kind: str) -> Task[..., Coroutine[Any, Any, None], ...]:
        async def run(i: int) -> None:
            assert self.handler is not None
            await self.handler(kind, i)

        return self.app.task(name=kind)(run)

    async def open(self) -> None:
        await self.app.open_async()

    async def install(self) -> None:
        await self.app.schema_manager.apply_schema_async()

    async def enqueue(self, kind: str, items: Sequence[int]) -> None:
        task = self.tasks[kind]
        if len(items) == 1:
            await task.defer_async(i=items[0])
        else:
            jobs: list[JSONDict] = [{"i": i} for i in items]
            await task.batch_defer_async(*jobs)

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        self.handler = handler
        worker = asyncio.create_task(
            self.app.run_worker_async(concurrency=self.concurrency, install_signal_handlers=False)
        )
        await stop.wait()
        worker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await worker

    async def close(self) -> None:
        await self.app.close_async()


def run(workload: str, size: int, url: str, config: Config) -> Figures:
    return run_queue(
        partial(Backend, url, config["concurrency"]), workload, size, config["processes"]
    )
