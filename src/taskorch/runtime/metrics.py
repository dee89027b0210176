"""Runtime metrics from the store: throughput, success rate, execution time, error rates by class,
per-agent utilisation, tokens and cost, queue depth and zombies. Computed from the records, so
every worker and every machine sees the same figures."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from typing import Any

from taskorch.store.agent_stats import AgentStats
from taskorch.store.queue import SubtaskQueue

WINDOW_S = 60.0
UNASSIGNED_AGENT = "sim"
"""The agent an attempt is counted under when its subtask has no agent: such subtasks run on the
worker's default adapter, which is always the simulated agent (a worker with only registered
agents leaves them alone)."""


@dataclass(frozen=True, slots=True)
class AgentMetrics:
    attempts: int
    successes: int
    mean_s: float
    active: int
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0
    """As the agent reported them (0 when it reports none)."""

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0


@dataclass(frozen=True, slots=True)
class RuntimeMetrics:
    subtasks_by_state: dict[str, int]
    attempts: int
    successes: int
    failures: int
    zombies: int
    mean_execution_s: float
    throughput_per_s: float
    """Successful attempts per second over the last minute."""
    errors_by_class: dict[str, int]
    agents: dict[str, AgentMetrics] = field(default_factory=dict)

    @property
    def success_rate(self) -> float:
        return self.successes / self.attempts if self.attempts else 0.0

    @property
    def queue_depth(self) -> int:
        return self.subtasks_by_state.get("queued", 0)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["success_rate"] = round(self.success_rate, 4)
        data["queue_depth"] = self.queue_depth
        for name, agent in self.agents.items():
            data["agents"][name]["success_rate"] = round(agent.success_rate, 4)
        return data


async def collect_metrics(queue: SubtaskQueue) -> RuntimeMetrics:
    rows = await queue.attempt_stats(queue.now - timedelta(seconds=WINDOW_S))
    states = await queue.counts()
    load = await queue.agent_load()
    usage = await AgentStats(queue.connector).model_usage()
    spent = {agent or UNASSIGNED_AGENT: figures for agent, figures in usage.items()}
    errors: dict[str, int] = defaultdict(int)
    per_agent: dict[str, list[float]] = defaultdict(lambda: [0, 0, 0.0])
    attempts = successes = zombies = recent = 0
    weighted_s = 0.0
    for row in rows:
        n = int(row["n"])
        mean = float(row["mean_s"] or 0.0)
        attempts += n
        weighted_s += mean * n
        agent = per_agent[str(row["agent_id"] or UNASSIGNED_AGENT)]
        agent[0] += n
        agent[2] += mean * n
        if row["outcome"] == "succeeded":
            successes += n
            recent += int(row["recent"] or 0)
            agent[1] += n
        if row["outcome"] == "zombie":
            zombies += n
        if row["error_class"]:
            errors[str(row["error_class"])] += n
    return RuntimeMetrics(
        subtasks_by_state=states,
        attempts=attempts,
        successes=successes,
        failures=attempts - successes,
        zombies=zombies,
        mean_execution_s=weighted_s / attempts if attempts else 0.0,
        throughput_per_s=recent / WINDOW_S,
        errors_by_class=dict(errors),
        agents={
            name: AgentMetrics(
                int(a[0]),
                int(a[1]),
                a[2] / a[0] if a[0] else 0.0,
                load.get(name, 0),
                spent[name].tokens_in if name in spent else 0,
                spent[name].tokens_out if name in spent else 0,
                spent[name].cost_usd if name in spent else 0.0,
            )
            for name, a in per_agent.items()
        },
    )


async def attempt_breakdown(queue: SubtaskQueue) -> list[dict[str, Any]]:
    """Finished attempts counted by agent, outcome and error class (for Prometheus)."""
    rows = await queue.attempt_stats(queue.now)
    return [
        {
            "agent": str(row["agent_id"] or UNASSIGNED_AGENT),
            "outcome": str(row["outcome"]),
            "error_class": str(row["error_class"] or ""),
            "count": int(row["n"]),
        }
        for row in rows
    ]
