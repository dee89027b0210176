"""pgqueuer: asyncpg driver, uvloop, batched claims, its default durable tables.

Its recommended high-throughput shape, as in its own benchmark: one ``QueueManager`` per
process dequeuing batches (``batch_size``), completions buffered; wake-ups by LISTEN/NOTIFY.
It has no dependencies between jobs: the W1 join is enqueued by the handler of the last no-op
(counted in shared memory, not durably), and each W2 step's handler enqueues the next step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import timedelta
from functools import partial

import asyncpg
import uvloop
from pgqueuer import AsyncpgDriver, PgQueuer, Queries
from pgqueuer.models import Job

from peers_lib.common import Config, Figures, Handler, run_queue

DISTRIBUTION = "pgqueuer"
DATABASE = "bench_pgqueuer"


def configs(workload: str) -> list[Config]:
    if workload == "W1":
        return [{"processes": 1, "batch_size": 100}, {"processes": 2, "batch_size": 100}]
    return [{"processes": 1, "batch_size": 100}]


def describe(config: Config) -> str:
    return f"{config['processes']} proc, batch {config['batch_size']}, asyncpg+uvloop"


class Backend:
    def __init__(self, url: str, batch_size: int) -> None:
        self.url = url
        self.batch_size = batch_size
        self.connections: list[asyncpg.Connection] = []
        self.queries: Queries | None = None
        self.pgq: PgQueuer | None = None

    async def open(self) -> None:
        connection = await asyncpg.connect(self.url)
        self.connections.append(connection)
        self.queries = Queries(AsyncpgDriver(connection))

    async def install(self) -> None:
        assert self.queries is not None
        await self.queries.install()

    async def enqueue(self, kind: str, items: Sequence[int]) -> None:
        assert self.queries is not None
        if len(items) == 1:
            await self.queries.enqueue(kind, str(items[0]).encode())
        else:
            payloads: list[bytes | None] = [str(i).encode() for i in items]
            await self.queries.enqueue([kind] * len(items), payloads, [0] * len(items))

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        connection = await asyncpg.connect(self.url)
        self.connections.append(connection)
        pgq = PgQueuer(AsyncpgDriver(connection))
        for kind in ("noop", "join", "step"):

            async def run(job: Job, kind: str = kind) -> None:
                await handler(kind, int(job.payload or b"0"))

            pgq.entrypoint(kind)(run)
        runner = asyncio.create_task(
            pgq.run(batch_size=self.batch_size, dequeue_timeout=timedelta(seconds=5))
        )
        await stop.wait()
        pgq.shutdown.set()
        await runner

    async def close(self) -> None:
        for connection in self.connections:
            if not connection.is_closed():
                await connection.close()


def run(workload: str, size: int, url: str, config: Config) -> Figures:
    return run_queue(
        partial(Backend, url, config["batch_size"]),
        workload,
        size,
        config["processes"],
        run_loop=uvloop.run,
    )
