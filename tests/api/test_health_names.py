"""``health_check()`` answers to the specification's component names (``nlp``,
``agentCoordinator``) beside taskorch's, and lists each component once."""

from __future__ import annotations

from pathlib import Path

from taskorch import OrchestrationEngine
from taskorch.settings import load_settings


async def test_health_components_answer_to_the_specifications_names(tmp_path: Path) -> None:
    async with OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home")) as engine:
        report = await engine.health_check()
    assert report.components["nlp"] is report.components["planner"]
    assert report.components["agentCoordinator"] is report.components["agents"]
    assert "nlp" in report.components
    assert sorted(report.components) == ["agents", "database", "planner"]
    assert "nlp" not in report.to_dict()["components"]
