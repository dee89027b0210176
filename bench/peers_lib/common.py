"""What the peer modules share: databases, figures, and a multi-process harness for queues.

Clocks: every timestamp is ``time.monotonic()``, which on Linux is one system-wide clock, so a
"ready" taken in one process and a "start" taken in another can be subtracted.
"""

from __future__ import annotations

import asyncio
import multiprocessing
import multiprocessing.sharedctypes
import os
import statistics
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from typing import Any, Protocol

import psycopg

ADMIN_URL = os.environ.get(
    "TASKORCH_BENCH_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/test"
)

Figures = dict[str, float]
Config = dict[str, int]
Handler = Callable[[str, int], Awaitable[None]]
RunLoop = Callable[[Coroutine[Any, Any, None]], None]


def database_url(name: str) -> str:
    """The URL of database ``name`` on the server of ``ADMIN_URL``."""
    base, _, _ = ADMIN_URL.partition("?")
    return base.rsplit("/", 1)[0] + "/" + name


def recreate_database(name: str) -> str:
    """Drop and create database ``name`` (one per peer, fresh for every run); return its URL."""
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())
        connection.execute(f'CREATE DATABASE "{name}"'.encode())
    return database_url(name)


def drop_database(name: str) -> None:
    with psycopg.connect(ADMIN_URL, autocommit=True) as connection:
        connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'.encode())


def figures(wall_s: float, count: int, latencies_s: Sequence[float]) -> Figures:
    """The figures ``throughput.measure`` returns, from a wall time and dispatch latencies."""
    ms = sorted(max(0.0, x) * 1000 for x in latencies_s)
    result: Figures = {
        "subtasks_per_s": count / wall_s,
        "ms_per_step": wall_s * 1000 / count,
        "wall_s": wall_s,
    }
    if ms:
        result["dispatch_p50_ms"] = statistics.median(ms)
        result["dispatch_p99_ms"] = ms[max(0, int(len(ms) * 0.99) - 1)]
    return result


class QueueBackend(Protocol):
    """One peer seen as a job queue; one instance per process."""

    async def open(self) -> None: ...

    async def install(self) -> None:
        """Create the peer's tables (its own migration or install command)."""

    async def enqueue(self, kind: str, items: Sequence[int]) -> None:
        """Enqueue one job of ``kind`` per item, in one call of the peer's batch API if >1."""

    async def consume(self, handler: Handler, stop: asyncio.Event) -> None:
        """Run the peer's worker, calling ``handler(kind, item)`` per job, until ``stop``."""

    async def close(self) -> None: ...


class _Shared:
    """Cross-process state of one run: created before the workers fork."""

    def __init__(self, size: int) -> None:
        context = multiprocessing.get_context("fork")
        self.size = size
        self.counter = context.Value("l", 0)
        self.t_end = context.Value("d", 0.0)
        self.ready = context.Array("d", size + 1, lock=False)
        self.start = context.Array("d", size + 1, lock=False)
        self.done = context.Event()
        self.stop = context.Event()
        self.up = context.Semaphore(0)


def _handler(shared: _Shared, backend: QueueBackend) -> Handler:
    """W1: ``noop`` jobs count themselves; the last one enqueues the ``join``.
    W2: each ``step`` enqueues the next one; the last one ends the run."""
    size = shared.size

    async def handle(kind: str, item: int) -> None:
        now = time.monotonic()
        shared.start[item] = now
        if kind == "noop":
            with shared.counter.get_lock():
                shared.counter.value += 1
                last = shared.counter.value == size
            if last:
                await backend.enqueue("join", [size])
                shared.ready[size] = time.monotonic()
        elif kind == "join" or item + 1 == size:
            shared.t_end.value = time.monotonic()
            shared.done.set()
        else:
            await backend.enqueue("step", [item + 1])
            shared.ready[item + 1] = time.monotonic()

    return handle


def _worker_process(make: Callable[[], QueueBackend], shared: _Shared, run_loop: RunLoop) -> None:
    async def main() -> None:
        backend = make()
        await backend.open()
        stop = asyncio.Event()
        consumer = asyncio.create_task(backend.consume(_handler(shared, backend), stop))
        await asyncio.sleep(0.5)  # the worker is connected and listening before the clock starts
        shared.up.release()
        # shared.stop is a multiprocessing event: poll it without blocking the loop
        while not shared.stop.is_set() and not consumer.done():  # noqa: ASYNC110
            await asyncio.sleep(0.05)
        stop.set()
        try:
            await asyncio.wait_for(consumer, timeout=10)
        finally:
            await backend.close()

    run_loop(main())


def run_queue(
    make: Callable[[], QueueBackend],
    workload: str,
    size: int,
    processes: int,
    run_loop: RunLoop = asyncio.run,
    timeout_s: float = 600,
) -> Figures:
    """Measure ``workload`` on a queue peer with ``processes`` worker processes.

    The coordinator installs the schema and starts the workers; once all are up it starts the
    clock and enqueues (W1: all ``size`` jobs in one batch call; W2: the first step). The clock
    stops when the join (W1) or the last step (W2) starts: both are no-ops.
    """
    shared = _Shared(size)
    context = multiprocessing.get_context("fork")

    async def install() -> None:
        backend = make()
        await backend.open()
        try:
            await backend.install()
        finally:
            await backend.close()

    run_loop(install())
    workers = [
        context.Process(target=_worker_process, args=(make, shared, run_loop), daemon=True)
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    result: Figures = {}

    async def coordinate() -> None:
        backend = make()
        await backend.open()
        try:
            for _ in workers:
                if not await asyncio.to_thread(shared.up.acquire, True, 60):
                    raise RuntimeError("a worker did not start")
            t0 = time.monotonic()
            items = list(range(size)) if workload == "W1" else [0]
            await backend.enqueue("noop" if workload == "W1" else "step", items)
            t1 = time.monotonic()
            for i in items:
                shared.ready[i] = t1
            deadline = t0 + timeout_s
            while not await asyncio.to_thread(shared.done.wait, 1.0):
                if not all(worker.is_alive() for worker in workers):
                    raise RuntimeError("a worker process died (its traceback is above)")
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{workload} did not finish in {timeout_s:.0f} s")
            count = size + 1 if workload == "W1" else size
            latencies = [shared.start[i] - shared.ready[i] for i in range(count)]
            result.update(figures(shared.t_end.value - t0, count, latencies))
        finally:
            await backend.close()

    try:
        run_loop(coordinate())
    finally:
        shared.stop.set()
        for worker in workers:
            worker.join(15)
            if worker.is_alive():
                worker.kill()
    return result
