"""Time DependencyResolver.resolve on a seeded random 100,000-node DAG.

Each node depends on up to three distinct earlier nodes, and the mapping lists the nodes shuffled,
so the resolver gets no help from the input already being in dependency order.

    .venv/bin/python bench/dag.py
"""

from __future__ import annotations

import random
import time

from taskorch.domain.dag import DependencyResolver

NODE_COUNT = 100_000
DEPENDENCIES_PER_NODE = 3
RUNS = 5
SEED = 20240611


def random_dag(
    node_count: int, dependencies_per_node: int, seed: int
) -> tuple[dict[str, list[str]], dict[str, float]]:
    rng = random.Random(seed)
    ids = [f"subtask-{number:06d}" for number in range(node_count)]
    dependencies = {
        node_id: [
            ids[earlier]
            for earlier in rng.sample(range(number), min(number, dependencies_per_node))
        ]
        for number, node_id in enumerate(ids)
    }
    shuffled = list(dependencies.items())
    rng.shuffle(shuffled)
    durations = {node_id: float(rng.randint(1, 60)) for node_id in ids}
    return dict(shuffled), durations


def main() -> None:
    dependencies, durations = random_dag(NODE_COUNT, DEPENDENCIES_PER_NODE, SEED)
    edge_count = sum(map(len, dependencies.values()))
    resolver = DependencyResolver(max_stages=None)
    best_s = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        resolution = resolver.resolve(dependencies, durations)
        best_s = min(best_s, time.perf_counter() - started)
    print(
        f"dag: {len(dependencies):,} nodes, {edge_count:,} edges, {len(resolution.stages)} stages, "
        f"critical path {len(resolution.critical_path)} nodes / "
        f"{resolution.critical_path_minutes:,.0f} min; resolved in {best_s:.2f} s (best of {RUNS})"
    )


if __name__ == "__main__":
    main()
