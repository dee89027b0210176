"""Cost from the agents' reports, used: routing prefers the agent that costs less per success at
equal success, shows the part in ``status``; ``metrics`` and Prometheus count cost by agent and
model and tokens by agent and direction."""

from __future__ import annotations

import asyncio
from pathlib import Path

from agents.test_adapters_in_worker import one_subtask
from agents.test_routing import subtask
from taskorch.agents.base import AgentAdapter, AgentResult, AgentTask, Heartbeat
from taskorch.agents.registry import AgentSpec
from taskorch.cli.workflows import _routing_lines
from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import open_engine
from taskorch.http.prometheus import Exporter
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.settings import load_settings
from taskorch.store.agent_stats import AgentStats, RoutingWrite
from taskorch.store.queue import SubtaskQueue


class Priced:
    """An agent that always succeeds and reports what each run cost."""

    def __init__(self, name: str, cost_usd: float, tokens: tuple[int, int]) -> None:
        self._name = name
        self.cost_usd = cost_usd
        self.tokens = tokens

    @property
    def name(self) -> str:
        return self._name

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        tokens_in, tokens_out = self.tokens
        return AgentResult(True, "done", {}, tokens_in, tokens_out, self.cost_usd)


async def ran_once_each(engine: OrchestrationEngine, tmp_path: Path) -> None:
    """One subtask each for a-dear ($0.40 a run) and b-cheap ($0.10), both successful."""
    await engine.add_agent(AgentSpec(name="a-dear", type="aider", args=["--model", "opus-4"]))
    await engine.add_agent(AgentSpec(name="b-cheap", type="aider"))
    stats = AgentStats(engine.store.connector)
    for name in ("a-dear", "b-cheap"):
        [queued] = await engine.store.list_subtasks(await one_subtask(engine.store))
        await stats.route([RoutingWrite(queued.id, name)])
    adapters: dict[str | None, AgentAdapter] = {
        "a-dear": Priced("a-dear", 0.40, (1000, 200)),
        "b-cheap": Priced("b-cheap", 0.10, (900, 150)),
    }
    worker = Worker(
        SubtaskQueue(engine.store.connector),
        adapters,
        config=WorkerConfig(concurrency=2, lease_s=5.0, poll_s=0.05),
        recovery=ErrorRecoveryManager(time_scale=0.01, seed=7),
        events=EventBus(jsonl_path=tmp_path / "events.jsonl"),
    )
    stats_after = await asyncio.wait_for(worker.run(once=True), 60)
    assert stats_after.completed == 2


async def test_the_cheaper_agent_wins_at_equal_success_and_the_figures_are_exported(
    tmp_path: Path, sqlite_url: str
) -> None:
    settings = load_settings(database_url=sqlite_url, taskorch_home=tmp_path / "home")
    async with open_engine(settings) as engine:
        await ran_once_each(engine, tmp_path)
        records = await AgentStats(engine.store.connector).track_records()
        assert records["b-cheap"].cost_per_success == 0.10
        assert records["a-dear"].cost_per_success == 0.40

        choice = (await engine.agent_directory.coordinator("auto")).find_best_agent(subtask())
        assert choice.agent_id == "b-cheap"
        assert choice.parts["cost"] == 1.0
        assert choice.runners_up[0][0] == "a-dear"
        assert "cost 1.00" in choice.reason
        assert "cost 1.00" in _routing_lines(choice.to_json())[-1]
        # the same two without the cost part: a tie, broken by name
        directory = engine.agent_directory
        directory.settings = load_settings(database_url=sqlite_url, routing_cost_weight=0)
        plain = (await directory.coordinator("auto")).find_best_agent(subtask())
        assert plain.agent_id == "a-dear", plain.reason
        assert "cost" not in plain.parts

        figures = (await engine.get_metrics()).agents
        assert (figures["a-dear"].tokens_in, figures["a-dear"].cost_usd) == (1000, 0.4)
        text = (await Exporter(engine).render()).decode()
    for line in (
        'taskorch_cost_usd_total{agent="a-dear",model="opus-4"} 0.4',
        'taskorch_cost_usd_total{agent="b-cheap",model="unknown"} 0.1',
        'taskorch_tokens_total{agent="a-dear",direction="in"} 1000.0',
        'taskorch_tokens_total{agent="a-dear",direction="out"} 200.0',
        'taskorch_tokens_total{agent="b-cheap",direction="in"} 900.0',
        'taskorch_tokens_total{agent="b-cheap",direction="out"} 150.0',
    ):
        assert line in text, line
