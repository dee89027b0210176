"""The whole pipeline: "Add authentication system with security audit and documentation" (6
subtasks, 5 stages) with instant simulated agents, from ``run`` to ``merged`` in a scratch git
repository, on SQLite. Prints the wall time of one workflow split by state (what the orchestrator
itself adds around the agents), then 20 such workflows at once (workflows per minute).

    python bench/pipeline.py [--workflows 20]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import tempfile
import time
from collections import defaultdict
from pathlib import Path

from taskorch.agents.base import AgentAdapter
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.models import NewTask
from taskorch.engine import OrchestrationEngine
from taskorch.engine.delivery import GitDelivery, WorkspaceAgent
from taskorch.engine.status import WorkflowStatus
from taskorch.settings import load_settings

REQUIREMENT = "Add authentication system with security audit and documentation"


async def run_batch(home: Path, count: int) -> tuple[float, list[WorkflowStatus]]:
    settings = load_settings(taskorch_home=home, nlp_provider="heuristic", worker_concurrency=32)
    engine = OrchestrationEngine(settings)
    delivery = GitDelivery(engine.store, home)
    engine.delivery = delivery
    async with engine:
        tasks = [await engine.add_task(NewTask.create(REQUIREMENT)) for _ in range(count)]
        agents: dict[str | None, AgentAdapter] = {
            None: WorkspaceAgent(SimWorktreeAgent(), delivery)
        }
        started = time.perf_counter()
        statuses = await engine.process_batch([t.id for t in tasks], agents=agents)
        return time.perf_counter() - started, statuses


def split_by_state(status: WorkflowStatus) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    history = status.history
    for entry, following in itertools.pairwise(history):
        spent[entry.to_state.value] += (following.timestamp - entry.timestamp).total_seconds()
    return dict(spent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="taskorch-pipeline-") as folder:
        wall, [single] = asyncio.run(run_batch(Path(folder) / "one", 1))
    assert single.state == "merged", single.state
    print(
        f"one workflow: {wall:.2f} s from run to merged "
        f"({len(single.subtasks)} subtasks, {len(single.history)} transitions)"
    )
    for state, seconds in split_by_state(single).items():
        print(f"  {state:<22} {seconds * 1000:8.1f} ms")
    with tempfile.TemporaryDirectory(prefix="taskorch-pipeline-") as folder:
        wall, statuses = asyncio.run(run_batch(Path(folder) / "many", args.workflows))
    merged = sum(s.state == "merged" for s in statuses)
    print(
        f"{args.workflows} workflows at once: {merged} merged in {wall:.2f} s = "
        f"{merged / wall * 60:.0f} workflows/min"
    )


if __name__ == "__main__":
    main()
