"""Graceful shutdown: a worker told to stop (SIGTERM) claims nothing more but keeps the leases of
its running attempts until they finish and are stored, so no other worker takes them over and runs
them a second time meanwhile."""

from __future__ import annotations

import os
import signal
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from durability.harness import (
    assert_completed_exactly_once,
    kill_leftover_workers,
    read_ledger,
    read_record,
    start_worker,
    wait_exit,
    wait_until,
)
from fakes.workflows import queued_workflow
from taskorch.store import Store

LEASE_S = 1.0
AGENT_S = 3.0  # longer than the lease, shorter than the worker's shutdown grace (10 s)


@pytest.fixture
def reaper() -> Iterator[None]:
    """No worker outlives its test; asked for last, so it runs before the database teardown."""
    yield
    kill_leftover_workers()


@pytest.mark.timeout(120)
async def test_sigterm_keeps_leases_until_running_attempts_are_stored(
    store: Store, database_url: str, tmp_path: Path, reaper: None
) -> None:
    deps: dict[str, list[str]] = {f"slow-{i}": [] for i in range(4)}
    workflow_id = await queued_workflow(store, deps)
    record = tmp_path / "agent-runs.log"
    args = ["--agent", "sim-process", "--sim-record", str(record), "--concurrency", "4"]
    stopping = start_worker(
        database_url, tmp_path, "stopping", [*args, "--sim-duration", str(AGENT_S)], lease_s=LEASE_S
    )
    await wait_until(
        lambda: len(read_record(record)) == len(deps), timeout_s=60, what="all agents to start"
    )
    os.kill(stopping.pid, signal.SIGTERM)
    # Another worker, ready to take over any lease that lapses.
    other = start_worker(
        database_url, tmp_path, "other", [*args, "--sim-duration", "0"], lease_s=LEASE_S
    )
    assert await wait_exit(stopping, timeout_s=60) == 0, stopping.describe()
    assert await wait_exit(other, timeout_s=60) == 0, other.describe()

    ledger = await read_ledger(store, workflow_id)
    assert_completed_exactly_once(ledger, deps)
    assert ledger.outcomes() == {"succeeded": len(deps)}
    starts = Counter(r.key for r in read_record(record) if r.kind == "start")
    assert starts == Counter(list(deps)), "a running attempt of the stopping worker was run again"
