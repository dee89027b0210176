"""DBOS Transact on PostgreSQL (its system database), in one process.

W2 is DBOS's native shape: one workflow of ``size`` sequential no-op steps, each checkpointed
before the next starts. W1 enqueues ``size`` no-op workflows on a DBOS queue (from a thread
pool, each enqueue its own transaction: DBOS has no batch enqueue), waits for all their
results, then runs a join workflow. Its durable shape, a parent workflow that enqueues the
children itself, measured about half as fast here, so the faster shape is the one reported.
The queue polls every ``poll_ms`` (default 1 s; lowered for throughput).
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

from dbos import DBOS, DBOSConfig, Queue, WorkflowHandle

from peers_lib.common import Config, Figures, figures

DISTRIBUTION = "dbos"
DATABASE = "bench_dbos"

_ready: list[float] = []
_start: list[float] = []


def configs(workload: str) -> list[Config]:
    if workload == "W1":
        return [{"enqueue_threads": 4, "poll_ms": 50}]
    return [{"sync": 1}]


def describe(config: Config) -> str:
    if "enqueue_threads" in config:
        return f"queue, {config['enqueue_threads']} enqueue threads, poll {config['poll_ms']} ms"
    return "1 workflow, sequential steps"


def _noop_step(i: int) -> None:
    _start[i] = time.monotonic()


# Registered by call, not as decorators: mypy then needs no DBOS types when the extra is absent.
noop_step = DBOS.step(name="noop_step")(_noop_step)


def _chain(size: int) -> float:
    for i in range(size):
        _ready[i] = time.monotonic()
        noop_step(i)
    return time.monotonic()


def _noop_workflow(i: int) -> None:
    _start[i] = time.monotonic()


def _join_workflow(i: int) -> float:
    _start[i] = time.monotonic()
    return time.monotonic()


chain = DBOS.workflow(name="chain")(_chain)
noop_workflow = DBOS.workflow(name="noop_workflow")(_noop_workflow)
join_workflow = DBOS.workflow(name="join_workflow")(_join_workflow)


def _fan_out(queue: Queue, size: int, threads: int) -> float:
    def enqueue(i: int) -> WorkflowHandle[None]:
        handle = queue.enqueue(noop_workflow, i)
        _ready[i] = time.monotonic()
        return handle

    with ThreadPoolExecutor(threads) as pool:
        handles = list(pool.map(enqueue, range(size)))
    for handle in handles:
        handle.get_result()
    _ready[size] = time.monotonic()
    return float(DBOS.start_workflow(join_workflow, size).get_result())


def run(workload: str, size: int, url: str, config: Config) -> Figures:
    _ready[:] = [0.0] * (size + 1)
    _start[:] = [0.0] * (size + 1)
    settings: DBOSConfig = {"name": "taskorch-bench", "system_database_url": url}
    settings["log_level"] = "WARNING"
    DBOS(config=settings)
    logging.getLogger("dbos").setLevel(logging.WARNING)
    DBOS.launch()
    try:
        if workload == "W1":
            queue = DBOS.register_queue("fan", polling_interval_sec=config["poll_ms"] / 1000)
            time.sleep(0.5)
            t0 = time.monotonic()
            t_end = _fan_out(queue, size, config["enqueue_threads"])
            count = size + 1
        else:
            time.sleep(0.5)
            t0 = time.monotonic()
            t_end = float(DBOS.start_workflow(chain, size).get_result())
            count = size
        latencies = [_start[i] - _ready[i] for i in range(count)]
        return figures(t_end - t0, count, latencies)
    finally:
        DBOS.destroy()
