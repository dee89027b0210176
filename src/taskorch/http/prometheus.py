"""``/metrics`` in the Prometheus text format.

Two sources:
- the database, read at scrape time (:class:`Snapshot`): workflows by state, subtasks by state,
  attempts, successes and failures by agent and error class, cost by agent and model and tokens
  by agent and direction (as the agents reported them), queue depth, zombies, and workflow
  durations as a histogram; these are the same whichever process or machine is scraped;
- this process (:class:`AttemptTimer`): the duration of each attempt its worker ran, observed from
  the event bus into a histogram (as Prometheus counts per process).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from prometheus_client import CollectorRegistry, Histogram, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from taskorch.domain.states import WORKFLOW_TERMINAL, SubtaskState, WorkflowState
from taskorch.engine import DURATION_BUCKETS_S, OrchestrationEngine, WorkflowStats
from taskorch.engine.agents import ModelUsage
from taskorch.runtime.events import EventBus
from taskorch.runtime.metrics import UNASSIGNED_AGENT, RuntimeMetrics

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
ATTEMPT_BUCKETS_S = (0.1, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800)
_ENDED = {"task:complete": "succeeded", "task:retry": "failed", "task:failed": "failed"}


@dataclass(frozen=True, slots=True)
class Snapshot:
    workflows: WorkflowStats
    subtasks_by_state: dict[str, int]
    attempts: list[dict[str, Any]]
    queue_depth: int
    zombies: int
    active_by_agent: dict[str, int]
    registered: list[dict[str, Any]]
    """The registry's agents as ``AgentInfo.to_json()`` gives them."""
    usage: Sequence[ModelUsage]

    @classmethod
    async def read(cls, engine: OrchestrationEngine) -> Snapshot:
        metrics = await engine.get_metrics()
        return cls(
            workflows=await engine.workflow_stats(),
            subtasks_by_state=metrics.subtasks_by_state,
            attempts=await engine.attempt_breakdown(),
            queue_depth=metrics.queue_depth,
            zombies=metrics.zombies,
            active_by_agent=active_by_agent(metrics),
            registered=[info.to_json() for info in await engine.list_agents()],
            usage=await engine.usage_breakdown(),
        )


def active_by_agent(metrics: RuntimeMetrics) -> dict[str, int]:
    """Running attempts by agent; those of unassigned subtasks (the simulated agent of a run
    without registered agents) under ``default``, which the store's load figures leave out."""
    active = {name: a.active for name, a in metrics.agents.items() if name != UNASSIGNED_AGENT}
    running = sum(metrics.subtasks_by_state.get(s, 0) for s in ("assigned", "running"))
    active[UNASSIGNED_AGENT] = max(running - sum(active.values()), 0)
    return active


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        yield from self._workflows()
        yield from self._subtasks()
        yield from self._attempts()
        yield from self._usage()
        queue = GaugeMetricFamily(
            "taskorch_queue_depth", "Subtasks queued and waiting for a worker."
        )
        queue.add_metric([], self.snapshot.queue_depth)
        yield queue
        zombies = CounterMetricFamily(
            "taskorch_zombies", "Attempts whose lease expired (agent or worker went silent)."
        )
        zombies.add_metric([], self.snapshot.zombies)
        yield zombies
        active = GaugeMetricFamily(
            "taskorch_agent_active_attempts", "Attempts running now, by agent.", labels=["agent"]
        )
        for agent, count in sorted(self.snapshot.active_by_agent.items()):
            active.add_metric([agent], count)
        yield active
        yield from self._registry()

    def _registry(self) -> Iterable[Metric]:
        utilisation = GaugeMetricFamily(
            "taskorch_agent_utilisation",
            "Running attempts over the concurrency limit, by registered agent.",
            labels=["agent"],
        )
        status = GaugeMetricFamily(
            "taskorch_agent_status",
            "1 for each registered agent's current status (available, busy, offline, disabled).",
            labels=["agent", "status"],
        )
        for agent in self.snapshot.registered:
            utilisation.add_metric([agent["id"]], agent["utilisation"])
            status.add_metric([agent["id"], agent["status"]], 1)
        yield from (utilisation, status)

    def _workflows(self) -> Iterable[Metric]:
        stats = self.snapshot.workflows
        gauge = GaugeMetricFamily("taskorch_workflows", "Workflows by state.", labels=["state"])
        for state in WorkflowState:
            gauge.add_metric([state.value], stats.by_state.get(state.value, 0))
        yield gauge
        yield _workflow_durations(stats)

    def _subtasks(self) -> Iterable[Metric]:
        gauge = GaugeMetricFamily("taskorch_subtasks", "Subtasks by state.", labels=["state"])
        for state in SubtaskState:
            gauge.add_metric([state.value], self.snapshot.subtasks_by_state.get(state.value, 0))
        yield gauge

    def _attempts(self) -> Iterable[Metric]:
        attempts = CounterMetricFamily(
            "taskorch_subtask_attempts",
            "Finished subtask attempts by agent, outcome and error class.",
            labels=["agent", "outcome", "error_class"],
        )
        successes = CounterMetricFamily(
            "taskorch_subtask_successes", "Successful attempts by agent.", labels=["agent"]
        )
        failures = CounterMetricFamily(
            "taskorch_subtask_failures",
            "Unsuccessful attempts by agent and error class.",
            labels=["agent", "error_class"],
        )
        ok: dict[str, int] = {}
        failed: dict[tuple[str, str], int] = {}
        for row in self.snapshot.attempts:
            agent, outcome, error = row["agent"], row["outcome"], row["error_class"]
            attempts.add_metric([agent, outcome, error], row["count"])
            if outcome == "succeeded":
                ok[agent] = ok.get(agent, 0) + row["count"]
            else:
                key = (agent, error or outcome)
                failed[key] = failed.get(key, 0) + row["count"]
        for agent, count in sorted(ok.items()):
            successes.add_metric([agent], count)
        for (agent, error), count in sorted(failed.items()):
            failures.add_metric([agent, error], count)
        yield from (attempts, successes, failures)

    def _usage(self) -> Iterable[Metric]:
        cost = CounterMetricFamily(
            "taskorch_cost_usd",
            "Cost in US dollars the agents reported for their finished attempts, by agent and "
            "model (the agent's configured model, else unknown).",
            labels=["agent", "model"],
        )
        tokens = CounterMetricFamily(
            "taskorch_tokens",
            "Tokens the agents reported for their finished attempts, by agent and direction.",
            labels=["agent", "direction"],
        )
        for row in self.snapshot.usage:
            cost.add_metric([row.agent, row.model], row.cost_usd)
            tokens.add_metric([row.agent, "in"], row.tokens_in)
            tokens.add_metric([row.agent, "out"], row.tokens_out)
        yield from (cost, tokens)


def _workflow_durations(stats: WorkflowStats) -> HistogramMetricFamily:
    """Start to end of every finished workflow, by final state."""
    family = HistogramMetricFamily(
        "taskorch_workflow_duration_seconds",
        "Time from start to end of finished workflows, by final state.",
        labels=["state"],
    )
    for state in sorted(WORKFLOW_TERMINAL):
        found = stats.durations.get(state.value)
        cumulative = found.cumulative if found else (0,) * len(DURATION_BUCKETS_S)
        buckets = [
            (str(float(bound)), count)
            for bound, count in zip(DURATION_BUCKETS_S, cumulative, strict=True)
        ]
        buckets.append(("+Inf", found.count if found else 0))
        family.add_metric([state.value], buckets, found.total_s if found else 0.0)
    return family


class AttemptTimer:
    """Observes how long each attempt run by this process took, from its events."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.histogram = Histogram(
            "taskorch_subtask_attempt_duration_seconds",
            "Duration of subtask attempts run by this process, by agent and outcome.",
            ["agent", "outcome"],
            buckets=ATTEMPT_BUCKETS_S,
            registry=registry,
        )
        self._started: dict[Any, float] = {}

    def observe(self, event: dict[str, Any]) -> None:
        kind = event.get("event")
        subtask = event.get("subtask_id")
        if kind == "task:started":
            self._started[subtask] = time.monotonic()
            return
        started = self._started.pop(subtask, None)
        if started is None or kind not in _ENDED:
            return
        agent = str(event.get("agent") or UNASSIGNED_AGENT)
        self.histogram.labels(agent, _ENDED[str(kind)]).observe(time.monotonic() - started)

    async def follow(self, bus: EventBus) -> None:
        """Observe events until cancelled."""
        inbox = bus.subscribe()
        try:
            while True:
                self.observe(await inbox.get())
        finally:
            bus.unsubscribe(inbox)


class Exporter:
    """Renders ``/metrics``: this process's registry, then the database snapshot."""

    def __init__(self, engine: OrchestrationEngine) -> None:
        self.engine = engine
        self.registry = CollectorRegistry(auto_describe=True)
        self.timer = AttemptTimer(self.registry)
        self._follower: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._follower = asyncio.create_task(self.timer.follow(self.engine.events))

    async def stop(self) -> None:
        if self._follower is not None:
            self._follower.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._follower

    async def render(self) -> bytes:
        snapshot = await Snapshot.read(self.engine)
        database = CollectorRegistry(auto_describe=True)
        database.register(SnapshotCollector(snapshot))
        return generate_latest(self.registry) + generate_latest(database)
