"""The agent registry through the engine's face, on both store backends: agents added, listed,
shown and removed; the track record derived from the attempts table; health probes that turn an
unreachable agentapi agent offline and back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.fake_agentapi import FakeAgentApi
from taskorch.agents.registry import AgentSpec
from taskorch.domain.errors import NotFoundError
from taskorch.domain.models import Agent, AgentStatus, AttemptOutcome, NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.engine import OrchestrationEngine
from taskorch.engine.agents import AgentInfo
from taskorch.settings import load_settings
from taskorch.store import Store
from taskorch.store.agent_stats import TrackRecord


def engine_for(database_url: str, home: Path, **env: str) -> OrchestrationEngine:
    return OrchestrationEngine(load_settings(database_url=database_url, taskorch_home=home, **env))


async def test_agents_are_added_listed_shown_and_removed(database_url: str, tmp_path: Path) -> None:
    async with engine_for(database_url, tmp_path) as engine:
        await engine.add_agent(AgentSpec(name="claude", type="claude-code", max_concurrency=2))
        await engine.add_agent(AgentSpec(name="api-1", type="goose", url="http://127.0.0.1:9/"))
        await engine.add_agent(AgentSpec(name="mine", command=["./agent.sh", "{prompt}"]))
        secret = await engine.add_agent(AgentSpec(name="sec", url="http://u:pw@127.0.0.1:9"))
        assert secret.to_json()["adapter"] == "agentapi http://***@127.0.0.1:9"
        await engine.remove_agent("sec")
        listed = {info.agent.name: info for info in await engine.list_agents()}
        assert sorted(listed) == ["api-1", "claude", "mine"]
        claude = listed["claude"].to_json()
        assert claude["adapter"] == "cli claude"
        assert claude["max_concurrency"] == 2
        assert "security" in claude["capabilities"]["domains"]  # the built-in table
        assert claude["track_record"]["attempts"] == 0
        assert listed["api-1"].to_json()["adapter"] == "agentapi http://127.0.0.1:9"
        assert listed["api-1"].agent.capabilities.domains == [
            Domain.DEVELOPMENT,
            Domain.CICD,
            Domain.INVENTORY,
        ]
        assert listed["mine"].to_json()["adapter"] == "cli ./agent.sh {prompt}"
        assert listed["mine"].agent.capabilities.domains == []  # custom: anything

        removed = await engine.remove_agent("mine")
        assert removed.agent.name == "mine"
        with pytest.raises(NotFoundError, match="no agent 'mine'"):
            await engine.get_agent("mine")


def test_agent_specs_are_checked() -> None:
    with pytest.raises(ValueError, match="needs --url"):
        AgentSpec(name="x", adapter="agentapi")
    with pytest.raises(ValueError, match="has no built-in command"):
        AgentSpec(name="x", type="gemini")
    with pytest.raises(ValueError, match="lower-case"):
        AgentSpec(name="Bad Name")
    with pytest.raises(ValueError, match="must start with http"):
        AgentSpec(name="x", url="127.0.0.1:3284")
    assert AgentSpec(name="g", type="gemini", url="http://h:1").adapter_kind == "agentapi"


async def test_agentapi_url_registers_the_default_agent(database_url: str, tmp_path: Path) -> None:
    settings_env = {"agentapi_url": "http://127.0.0.1:3999"}
    async with engine_for(database_url, tmp_path, **settings_env) as engine:
        [default] = await engine.list_agents()
        assert default.agent.name == "agentapi"
        assert default.to_json()["adapter"] == "agentapi http://127.0.0.1:3999"
        assert default.agent.metadata["adapter"]["key_env"] == "AGENTAPI_KEY"


async def test_track_record_comes_from_the_attempts(store: Store, tmp_path: Path) -> None:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    now = [start]
    timed = Store(store.connector, clock=lambda: now[0])
    task = await timed.create_task(NewTask.create("billing"))
    workflow = await timed.create_workflow(task.id)
    plan = [
        PlanSubtask(
            subtask_id=f"s{i}",
            parent_task_id="t",
            title=f"step {i}",
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.TEST,
        )
        for i in range(21)
    ]
    subtasks = await timed.add_subtasks(workflow.id, plan, {p.subtask_id: 0 for p in plan})
    for i, sub in enumerate(subtasks[:20], start=1):
        now[0] = start + timedelta(hours=i)
        attempt = await timed.start_attempt(sub.id, 1, agent_id="a", worker_id="w")
        now[0] += timedelta(seconds=i)
        failed = i in (3, 7, 11, 13, 17)
        await timed.finish_attempt(
            attempt.id,
            AttemptOutcome.FAILED if failed else AttemptOutcome.SUCCEEDED,
            error_class="network" if failed else None,
            error_message=f"refused {i}" if failed else None,
        )
    cancelled = await timed.start_attempt(subtasks[20].id, 1, agent_id="a", worker_id="w")
    await timed.finish_attempt(cancelled.id, AttemptOutcome.CANCELLED)

    engine = OrchestrationEngine(
        load_settings(database_url="sqlite:///unused", taskorch_home=tmp_path), store=store
    )
    records = await engine.agent_directory.stats.track_records()
    record = records["a"]
    assert (record.attempts, record.successes) == (20, 15)
    assert record.mean_s == pytest.approx(10.5)
    assert record.p95_s == pytest.approx(19.0)  # nearest rank: the 19th of 20
    assert record.last_error == "network: refused 17"
    assert record.success_rate == 0.75


async def test_health_probe_marks_an_unreachable_agent_offline_and_back(
    database_url: str, tmp_path: Path
) -> None:
    fake = FakeAgentApi()
    fake.start()
    try:
        async with engine_for(database_url, tmp_path) as engine:
            await engine.add_agent(AgentSpec(name="api", url=fake.base_url))
            await engine.add_agent(AgentSpec(name="ghost", command=["no-such-agent-xyz"]))
            health = await engine.agent_health()
            assert health["api"].status == "ok"
            assert health["ghost"].status == "down"
            assert "no-such-agent-xyz" in health["ghost"].detail
            # A program missing here is this host's fact, not the agent's: it stays available
            # for the hosts that have it.
            assert (await engine.get_agent("ghost")).agent.status.value == "available"

            url = fake.base_url
            fake.kill()
            health = await engine.agent_health()
            assert health["api"].status == "down"
            assert (await engine.get_agent("api")).agent.status.value == "offline"

            port = int(url.rsplit(":", 1)[1])
            fake = FakeAgentApi(port=port)  # the same address comes back
            fake.start()
            health = await engine.agent_health()
            assert health["api"].status == "ok"
            assert (await engine.get_agent("api")).agent.status.value == "available"
            await engine.set_agent_enabled("api", False)
            assert "api" not in await engine.agent_health()  # disabled agents are not probed
    finally:
        fake.stop()


def test_an_available_agent_at_its_limit_shows_busy() -> None:
    now = datetime(2026, 1, 1, tzinfo=UTC)
    agent = Agent(id="a", name="a", type="sim", max_concurrency=2, created_at=now, updated_at=now)
    assert AgentInfo(agent, TrackRecord(), active=1).status is AgentStatus.AVAILABLE
    full = AgentInfo(agent, TrackRecord(), active=2)
    assert full.status is AgentStatus.BUSY
    assert full.to_json()["utilisation"] == 1.0
    disabled = agent.model_copy(update={"status": AgentStatus.DISABLED})
    assert AgentInfo(disabled, TrackRecord(), active=2).status is AgentStatus.DISABLED
