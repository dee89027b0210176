"""The pipeline with routing, in process: each subtask goes to an agent that can do it, the choice
and its score parts are in the history, and a subtask no agent can take waits with the reason in
its status until its workflow fails after the timeout."""

from __future__ import annotations

from pathlib import Path

from taskorch.agents.registry import AgentSpec, capabilities_for, merge_capabilities
from taskorch.domain.models import NewTask
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.settings import load_settings

AUTH = "Add authentication system with security audit and documentation"


def sim_agent(name: str, domains: list[str], limit: int = 2) -> AgentSpec:
    caps = merge_capabilities(capabilities_for("sim"), domains=domains)
    return AgentSpec(name=name, type="sim", capabilities=caps, max_concurrency=limit)


async def test_each_subtask_goes_to_an_agent_that_can_do_it(tmp_path: Path) -> None:
    settings = load_settings(taskorch_home=tmp_path / ".taskorch")
    async with open_engine(settings) as engine:
        await engine.add_agent(sim_agent("dev", ["development"]))
        await engine.add_agent(sim_agent("sec-docs", ["security", "docs"]))
        pool = await agents_for_run(engine, "auto")
        assert pool.mode == "auto"
        assert sorted(k for k in pool if k is not None) == ["dev", "sec-docs"]
        assert None not in pool  # nothing runs on an unrouted default
        task = await engine.add_task(NewTask.create(AUTH))
        status = await engine.process_task(task.id, agents=pool, options={"agent": "auto"})
        overview = await engine.get_status()

    assert status.state == "merged"
    dev = overview["agents"]["dev"]
    assert dev["success_rate"] == 1.0
    assert dev["utilisation"] == 0.0  # nothing running now
    assert dev["mean_s"] is not None
    owner = {"development": "dev", "security": "sec-docs", "docs": "sec-docs"}
    for sub in status.subtasks:
        assert sub.agent_id == owner[sub.assigned_to.value], sub.key
    [assigned] = [h for h in status.history if h.to_state.value == "processing"]
    routing = assigned.metadata["routing"]
    assert set(routing) == {s.key for s in status.subtasks}
    for choice in routing.values():
        assert choice["reason"].startswith(f"{choice['agent']}: score ")
        assert 0 < choice["score"] <= 1.2


async def test_a_subtask_no_agent_can_take_waits_then_its_workflow_fails(tmp_path: Path) -> None:
    settings = load_settings(taskorch_home=tmp_path / ".taskorch", subtask_timeout_s=1.0)
    async with open_engine(settings) as engine:
        await engine.add_agent(sim_agent("docs-only", ["docs"]))
        pool = await agents_for_run(engine, "auto")
        task = await engine.add_task(NewTask.create("Fix bug in dashboard/server/index.js line 42"))
        status = await engine.process_task(task.id, agents=pool, options={"agent": "auto"})

    assert status.state == "failed"
    [sub] = status.subtasks
    assert sub.attempts == 0  # never ran anywhere
    assert sub.error is not None
    assert sub.error.startswith("waiting for an agent: no available agent can do development/")
    assert "docs-only (domains docs)" in sub.error
    escalation = status.to_dict()["escalation"]
    assert escalation["blocking_subtask"] == sub.key
    assert escalation["reason"].startswith(f"no agent took {sub.key} within 1 s: ")


async def test_without_registered_agents_auto_falls_back_to_the_simulated_agent(
    tmp_path: Path,
) -> None:
    settings = load_settings(taskorch_home=tmp_path / ".taskorch")
    async with open_engine(settings) as engine:
        pool = await agents_for_run(engine, "auto")
    assert pool.mode == "sim"
    assert list(pool) == [None]
    assert "simulated agent" in pool.note
