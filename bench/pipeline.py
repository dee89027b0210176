"""The whole pipeline: "Add authentication system with security audit and documentation" (6
subtasks, 5 stages) with instant simulated agents, from ``run`` to ``merged``, on SQLite. Prints
the wall time of one workflow split by state (what the orchestrator itself adds around the
agents), then 20 such workflows at once (workflows per minute), in two modes side by side in one
run: ``local`` (a scratch repository given as a path, subtasks run in the driving process) and
``url, 2 homes`` (a bare repository behind a ``file://`` URL, subtasks run by two workers with
their own homes, so every subtask is fetched, merged and pushed through the URL).

    python bench/pipeline.py [--workflows 20] [--mode local|url|both]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import subprocess
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


async def run_batch(
    home: Path, count: int, *, repo: str | None = None, homes: int = 0
) -> tuple[float, list[WorkflowStatus]]:
    """``count`` workflows at once; with ``homes``, their subtasks run on that many workers with
    homes of their own (the driver runs none), else in the driving process."""
    settings = load_settings(taskorch_home=home, nlp_provider="heuristic", worker_concurrency=32)
    engine = OrchestrationEngine(settings)
    delivery = GitDelivery(engine.store, home, default_repo=repo)
    engine.delivery = delivery
    async with engine:
        tasks = [await engine.add_task(NewTask.create(REQUIREMENT)) for _ in range(count)]
        ids = [t.id for t in tasks]

        def agents_at(where: GitDelivery) -> dict[str | None, AgentAdapter]:
            return {None: WorkspaceAgent(SimWorktreeAgent(), where)}

        started = time.perf_counter()
        if not homes:
            statuses = await engine.process_batch(ids, agents=agents_at(delivery))
            return time.perf_counter() - started, statuses
        workers = [
            engine.create_worker(agents_at(GitDelivery(engine.store, home.parent / f"worker-{i}")))
            for i in range(homes)
        ]
        running = [asyncio.create_task(w.run()) for w in workers]
        try:
            statuses = await engine.process_batch(ids)
        finally:
            for worker in workers:
                worker.stop()
            await asyncio.gather(*running)
        return time.perf_counter() - started, statuses


def bare_repository(folder: Path) -> str:
    """A bare repository with one commit on main, named by its file:// URL."""
    folder.mkdir(parents=True)
    bare, seed = folder / "origin.git", folder / "seed"
    git = ("git", "-c", "user.name=bench", "-c", "user.email=bench@localhost")
    subprocess.run([*git, "init", "-q", "--bare", "-b", "main", str(bare)], check=True)
    subprocess.run([*git, "init", "-q", "-b", "main", str(seed)], check=True)
    (seed / "README.md").write_text("# bench\n")
    subprocess.run([*git, "-C", str(seed), "add", "README.md"], check=True)
    subprocess.run([*git, "-C", str(seed), "commit", "-q", "-m", "first"], check=True)
    subprocess.run([*git, "-C", str(seed), "push", "-q", str(bare), "main"], check=True)
    return bare.as_uri()


def split_by_state(status: WorkflowStatus) -> dict[str, float]:
    spent: dict[str, float] = defaultdict(float)
    history = status.history
    for entry, following in itertools.pairwise(history):
        spent[entry.to_state.value] += (following.timestamp - entry.timestamp).total_seconds()
    return dict(spent)


def measure(label: str, workflows: int, url: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="taskorch-pipeline-") as name:
        folder = Path(name)
        homes = 2 if url else 0
        # A fresh repository per run: the simulated agent writes the same change for the same
        # plan, which a repository that has it already would refuse as "nothing changed".
        repo = bare_repository(folder / "one-repo") if url else None
        wall, [single] = asyncio.run(run_batch(folder / "one", 1, repo=repo, homes=homes))
        assert single.state == "merged", single.state
        print(
            f"[{label}] one workflow: {wall:.2f} s from run to merged "
            f"({len(single.subtasks)} subtasks, {len(single.history)} transitions)"
        )
        for state, seconds in split_by_state(single).items():
            print(f"  {state:<22} {seconds * 1000:8.1f} ms")
        repo = bare_repository(folder / "many-repo") if url else None
        many = folder / "many"
        wall, statuses = asyncio.run(run_batch(many, workflows, repo=repo, homes=homes))
    merged = sum(s.state == "merged" for s in statuses)
    subtasks = sum(len(s.subtasks) for s in statuses)
    print(
        f"[{label}] {workflows} workflows at once: {merged} merged in {wall:.2f} s = "
        f"{merged / wall * 60:.0f} workflows/min, {subtasks / wall:.1f} subtasks/s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workflows", type=int, default=20)
    parser.add_argument("--mode", choices=["local", "url", "both"], default="both")
    args = parser.parse_args()
    if args.mode in ("local", "both"):
        measure("local path", args.workflows, url=False)
    if args.mode in ("url", "both"):
        measure("file:// URL, 2 worker homes", args.workflows, url=True)


if __name__ == "__main__":
    main()
