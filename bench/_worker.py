"""One benchmark worker process: connect, say "ready", wait for "go", drain the queue, exit."""

from __future__ import annotations

import asyncio
import os
import sys

from taskorch.agents.sim import SimAgent
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import open_store
from taskorch.store.queue import SubtaskQueue


async def main(concurrency: int) -> None:
    store = await open_store(os.environ["DATABASE_URL"])
    try:
        queue = SubtaskQueue(store.connector)
        await queue.counts()  # connect before the clock starts
        await queue.warm_up()  # and the hot path's own connections and statement
        batch = int(os.environ.get("TASKORCH_BENCH_CLAIM_BATCH", "1000"))
        config = WorkerConfig(concurrency=concurrency, poll_s=0.05, claim_batch=batch)
        worker = Worker(queue, {None: SimAgent()}, config=config)
        print("ready", flush=True)
        await asyncio.to_thread(sys.stdin.readline)
        await worker.run(once=True)
    finally:
        await store.close()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
