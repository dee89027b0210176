"""Health of each component: the planner says which provider is configured and whether what it
needs is there (without calling it); registered agents are probed one by one."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from taskorch.agents.registry import AgentSpec
from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import open_engine
from taskorch.settings import Settings


def _settings(tmp_path: Path, **values: Any) -> Settings:
    base: dict[str, Any] = {
        "database_url": f"sqlite:///{tmp_path / 'h.db'}",
        "taskorch_home": tmp_path,
    }
    return Settings(**(base | values))


@pytest.mark.parametrize(
    ("values", "status", "detail"),
    [
        ({}, "ok", "heuristic (offline)"),
        ({"nlp_provider": "heuristic"}, "ok", "heuristic (offline)"),
        ({"anthropic_api_key": "sk-ant-x"}, "ok", "anthropic (ANTHROPIC_API_KEY set)"),
        ({"nlp_provider": "anthropic"}, "down", "anthropic: ANTHROPIC_API_KEY is not set"),
        ({"nlp_provider": "openai"}, "down", "openai: OPENAI_API_KEY is not set"),
        ({"openai_api_key": "sk-x"}, "ok", "openai (OPENAI_API_KEY set)"),
        (
            {"nlp_provider": "openai-compatible", "nlp_model": "llama3"},
            "down",
            "openai-compatible: OPENAI_BASE_URL is not set",
        ),
        (
            {
                "nlp_provider": "openai-compatible",
                "nlp_model": "llama3",
                "openai_base_url": "http://localhost:11434/v1",
            },
            "ok",
            "openai-compatible at http://localhost:11434/v1",
        ),
    ],
)
async def test_planner_health(
    tmp_path: Path, values: dict[str, Any], status: str, detail: str
) -> None:
    async with OrchestrationEngine(_settings(tmp_path, **values)) as engine:
        report = await engine.health_check()
    planner = report.components["planner"]
    assert (planner.status, planner.detail) == (status, detail)
    assert "sk-" not in str(report.to_dict())  # keys are never shown
    assert report.status == ("down" if status == "down" else "ok")


async def test_each_registered_agent_is_a_component(tmp_path: Path) -> None:
    async with open_engine(_settings(tmp_path)) as engine:
        await engine.add_agent(
            AgentSpec(name="nowhere", type="custom", command=["/no/such/agent", "{prompt}"])
        )
        report = await engine.health_check()
    agent = report.components["agent:nowhere"]
    assert agent.status == "down"
    assert agent.detail
    # The only agent, and it takes every domain: no work can run.
    assert report.components["agents"].status == "down"
    assert report.status == "down"


async def test_one_agent_down_of_several_is_degraded(tmp_path: Path) -> None:
    async with open_engine(_settings(tmp_path)) as engine:
        await engine.add_agent(
            AgentSpec(name="nowhere", type="custom", command=["/no/such/agent", "{prompt}"])
        )
        await engine.add_agent(AgentSpec(name="sim-all", type="sim"))
        report = await engine.health_check()
    assert report.components["agent:nowhere"].status == "down"
    assert report.components["agents"].status == "ok"
    assert report.status == "degraded"
    assert report.to_dict()["status"] == "degraded"
