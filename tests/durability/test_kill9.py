"""kill -9 at random moments: a real ``taskorch worker`` process running a DAG on simulated
subprocess agents is SIGKILLed (its whole process group) again and again and restarted each time.

At the end the database must say every subtask completed exactly once, in dependency order, and the
agents' own record (each run appends ``start``/``done`` lines, fsynced) must show that nothing ran
again after it had completed, and that no agent outlived its killed worker.

At-least-once is the contract for *interrupted* work: a run whose worker was killed before the
outcome was stored is run again after its lease expires (a zombie), so some subtasks legitimately
show more than one ``start``. What must never happen is a ``start`` after the subtask's successful
run was stored.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from durability.harness import (
    Deps,
    WorkerProcess,
    assert_completed_exactly_once,
    assert_dependency_order,
    kill_leftover_workers,
    live_agents,
    read_ledger,
    read_record,
    start_worker,
    wait_exit,
    wait_until,
)
from fakes.workflows import queued_workflow
from taskorch.runtime.worker import WorkerConfig
from taskorch.store import Store, open_store

SEED = int(os.environ.get("TASKORCH_KILL_SEED", "20240917"))
MIN_KILLS = 10
MAX_KILLS = 16
LEASE_S = 1.0
CONCURRENCY = 4
TEST_DEADLINE_S = 240.0  # a hang, not a slow machine, should trip this


@pytest.fixture
def reaper() -> Iterator[None]:
    """No worker outlives its test, failed or not. Ask for it last, so that it runs before the
    database fixtures tear down."""
    yield
    kill_leftover_workers()


def kill_test_dag() -> Deps:
    """49 subtasks: a root fanned out to 12, pairs joined into 6 chains of 3, 10 independent
    subtasks, a join over the chains and the independents, then a tail chain of 6."""
    deps: Deps = {"design": []}
    for i in range(12):
        deps[f"impl-{i}"] = ["design"]
    for c in range(6):
        deps[f"chain-{c}-0"] = [f"impl-{2 * c}", f"impl-{2 * c + 1}"]
        deps[f"chain-{c}-1"] = [f"chain-{c}-0"]
        deps[f"chain-{c}-2"] = [f"chain-{c}-1"]
    for i in range(10):
        deps[f"solo-{i}"] = []
    deps["integrate"] = [f"chain-{c}-2" for c in range(6)] + [f"solo-{i}" for i in range(10)]
    previous = "integrate"
    for i in range(6):
        deps[f"tail-{i}"] = [previous]
        previous = f"tail-{i}"
    deps["release"] = [previous, "impl-11"]
    return deps


async def _poison_pill_risk(store: Store, workflow_id: str) -> bool:
    """Could a kill now bring an unfinished subtask to its last allowed lost lease?

    A subtask whose worker dies ``max_interrupted`` times is failed on purpose (a subtask that
    kills its worker every time must not loop forever). Kills every second or so would now and then
    hit the same early subtask that often; the test then postpones the kill: the poison-pill guard
    is not what it is about.
    """
    limit = WorkerConfig().max_interrupted
    return any(
        s.interrupted >= limit - 1 and s.status != "completed"
        for s in await store.list_subtasks(workflow_id)
    )


async def _kill_at_a_random_moment(
    worker: WorkerProcess, rng: random.Random, record: Path, store: Store, workflow_id: str
) -> bool:
    """Wait for a random moment in this worker's life, then SIGKILL its process group.
    Returns False if the worker exited on its own first (``--once``: nothing left to do)."""
    if rng.random() < 0.25:
        # Anywhere from the spawn on: start-up, opening the database, the first claims.
        anchor = time.monotonic()
    else:
        # Once it is running: claims, agents mid-run, settles.
        await wait_until(
            lambda: worker.ready() or worker.exited(), timeout_s=60, what="worker start-up"
        )
        anchor = time.monotonic()
    moment = anchor + rng.uniform(0.05, 1.0)
    await wait_until(
        lambda: worker.exited() or time.monotonic() >= moment, timeout_s=60, what="kill moment"
    )
    deadline = time.monotonic() + 60
    while await _poison_pill_risk(store, workflow_id):
        if worker.exited() or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    if worker.exited():
        return False
    worker.kill9()
    # The agents it had started must not outlive it: they are not in its process group (each
    # agent has its own), but the kernel ends them when their worker dies (agents/process.py).
    await wait_until(
        lambda: not live_agents(str(record)), timeout_s=10, what="agents of a killed worker to end"
    )
    return True


@pytest.mark.timeout(TEST_DEADLINE_S)
async def test_kill9_at_random_moments_loses_nothing_and_repeats_nothing_completed(
    store: Store, database_url: str, tmp_path: Path, reaper: None
) -> None:
    backend = database_url.split(":", 1)[0]
    rng = random.Random(f"{SEED}-{backend}")
    deps = kill_test_dag()
    workflow_id = await queued_workflow(store, deps)
    record = tmp_path / "agent-runs.log"

    kills = 0
    lives: list[WorkerProcess] = []
    began = time.monotonic()
    while True:
        duration_s = rng.uniform(0.05, 0.2)
        worker = start_worker(
            database_url,
            tmp_path,
            f"life-{len(lives) + 1}",
            [
                "--agent",
                "sim-process",
                "--sim-duration",
                f"{duration_s:.3f}",
                "--sim-record",
                str(record),
                "--concurrency",
                str(CONCURRENCY),
            ],
            lease_s=LEASE_S,
        )
        lives.append(worker)
        if kills < MAX_KILLS and await _kill_at_a_random_moment(
            worker, rng, record, store, workflow_id
        ):
            kills += 1
            continue
        code = await wait_exit(worker, timeout_s=120)
        assert code == 0, worker.describe()
        break
    elapsed_s = time.monotonic() - began

    assert kills >= MIN_KILLS, f"only {kills} kills before the workflow was done"

    # --- the database: each subtask completed exactly once, in dependency order ---------------
    ledger = await read_ledger(store, workflow_id)
    assert_completed_exactly_once(ledger, deps)
    assert_dependency_order(ledger, deps)

    # --- the agents' side -------------------------------------------------------------------
    runs = read_record(record)
    starts = Counter(r.key for r in runs if r.kind == "start")
    dones = Counter(r.key for r in runs if r.kind == "done")
    assert {k for k in deps if dones[k] < 1} == set(), "subtasks whose agent never finished a run"
    # Nothing that completed ran again: no run of a subtask started after its successful run was
    # over (the succeeded attempt's end, which precedes the stored completion).
    late = [
        (r.key, r.at - ledger.completed_at(r.key))
        for r in runs
        if r.kind == "start" and r.at > ledger.completed_at(r.key)
    ]
    assert late == [], f"completed subtasks started again: {late}"
    # No run of a subtask began before all its dependencies' successful runs were over.
    early = [
        (r.key, dep)
        for r in runs
        if r.kind == "start"
        for dep in deps[r.key]
        if r.at <= ledger.completed_at(dep)
    ]
    assert early == [], f"subtasks run before their dependencies completed: {early}"
    # Every agent process is gone: the killed workers' agents were ended with them.
    assert live_agents(str(record)) == []

    runs_per_subtask = dict(sorted(Counter(starts[k] for k in deps).items()))
    print(
        f"\n[{backend}] {len(deps)} subtasks, {kills} kills, {len(lives)} worker lives, "
        f"{elapsed_s:.1f} s; runs per subtask (runs: subtasks) {runs_per_subtask}; "
        f"{sum(starts.values())} runs in all, {sum(starts.values()) - len(deps)} re-runs of "
        f"interrupted work; attempts by outcome {ledger.outcomes()}"
    )


async def test_agents_die_with_their_killed_worker(
    sqlite_url: str, tmp_path: Path, reaper: None
) -> None:
    """A worker killed with SIGKILL cannot end its agents' process groups; the kernel must (an
    orphaned agent would keep working on a subtask that is about to run again elsewhere)."""
    record = tmp_path / "agent-runs.log"
    store = await open_store(sqlite_url, migrate=True)
    try:
        await queued_workflow(store, {"long-a": [], "long-b": []})
    finally:
        await store.close()
    worker = start_worker(
        sqlite_url,
        tmp_path,
        "victim",
        ["--agent", "sim-process", "--sim-duration", "600", "--sim-record", str(record)],
        lease_s=LEASE_S,
    )
    try:
        await wait_until(
            lambda: len(read_record(record)) == 2, timeout_s=60, what="both agents to start"
        )
        started = {r.pid for r in read_record(record)}
        assert set(live_agents(str(record))) == started
        worker.kill9()
        await wait_until(
            lambda: not live_agents(str(record)), timeout_s=10, what="the orphaned agents to end"
        )
        assert [r.kind for r in read_record(record)] == ["start", "start"]
    finally:
        worker.kill9()
        for pid in live_agents(str(record)):
            os.kill(pid, signal.SIGKILL)
