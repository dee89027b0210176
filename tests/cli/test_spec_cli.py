"""The specification's command lines, as written, in process: ``init --max-workflows 15
--enable-nlp --enable-agents`` (and the ``--disable-*`` / ``--no-enable-*`` forms) saved in the
config file and taking effect; ``--verbose`` after the command and ``DEBUG=orchestration:*``
printing debug lines."""

from __future__ import annotations

import asyncio
import tomllib
from pathlib import Path

import pytest
from cli_harness import run_cli

from taskorch.agents.registry import AgentSpec
from taskorch.domain.models import Capabilities
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.engine.daemon import Daemon
from taskorch.engine.setup import open_engine
from taskorch.planning.providers import chosen_provider
from taskorch.settings import load_settings

BACKEND = PlanSubtask(
    subtask_id="api",
    parent_task_id="task-1",
    title="Build the orders API",
    assigned_to=Domain.DEVELOPMENT,
    worker_type=WorkerType.IMPLEMENTATION,
)


@pytest.fixture(autouse=True)
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("MAX_CONCURRENT_WORKFLOWS", "ENABLE_NLP", "ENABLE_AGENT_COORDINATION", "DEBUG"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"TASKORCH_{name}", raising=False)
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "NLP_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(f"TASKORCH_{name}", raising=False)
    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    return tmp_path / ".taskorch"


async def serve_limit() -> int:
    async with open_engine(load_settings()) as engine:
        return Daemon(engine, {}).max_workflows


async def routed_to() -> str | None:
    """Where the settings route a development subtask, with a docs-only agent first by name."""
    async with open_engine(load_settings()) as engine:
        docs = Capabilities(domains=[Domain.DOCS])
        url = "http://127.0.0.1:9"  # never reached: routing only
        await engine.add_agent(AgentSpec(name="a-docs", url=url, capabilities=docs))
        await engine.add_agent(AgentSpec(name="b-dev", url=url))
        coordinator = await engine.agent_directory.coordinator("auto")
        return coordinator.find_best_agent(BACKEND).agent_id


def test_init_saves_the_specification_flags(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-never-used")  # never called: no plan is made
    ran = run_cli(["init", "--max-workflows", "15", "--enable-nlp", "--enable-agents"])
    assert ran.code == 0, ran.err
    saved = tomllib.loads((home / "config.toml").read_text())
    assert saved == {
        "max_concurrent_workflows": 15,
        "enable_nlp": True,
        "enable_agent_coordination": True,
    }
    assert "saved max_concurrent_workflows=15 in" in ran.out
    settings = load_settings()
    assert chosen_provider(settings) == "anthropic"  # the model plans
    assert asyncio.run(serve_limit()) == 15  # serve carries 15 at once
    assert asyncio.run(routed_to()) == "b-dev"  # scored: the capable agent


def test_init_disable_forms_take_effect(home: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-never-used")
    assert run_cli(["init", "--enable-nlp", "--enable-agents"]).code == 0
    ran = run_cli(["init", "--no-enable-nlp", "--disable-agents", "--max-workflows", "2"])
    assert ran.code == 0, ran.err
    saved = tomllib.loads((home / "config.toml").read_text())
    assert (saved["enable_nlp"], saved["enable_agent_coordination"]) == (False, False)
    assert chosen_provider(load_settings()) == "heuristic"  # no model call
    assert asyncio.run(serve_limit()) == 2
    assert asyncio.run(routed_to()) == "a-docs"  # not scored: the first usable agent by name
    assert run_cli(["init", "--disable-nlp"]).code == 0
    assert run_cli(["init", "--max-workflows", "0"]).code == 2


def test_the_environment_still_wins_and_init_says_so(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_WORKFLOWS", "3")
    ran = run_cli(["init", "--max-workflows", "15"])
    assert "(MAX_CONCURRENT_WORKFLOWS in the environment wins over it)" in ran.out
    assert load_settings().max_concurrent_workflows == 3


@pytest.mark.parametrize(
    "argv",
    [
        ["parse", "Add login and logout", "--verbose"],
        ["parse", "Add login and logout", "-v"],
        ["--verbose", "parse", "Add login and logout"],
    ],
)
def test_verbose_anywhere_prints_debug_lines(argv: list[str]) -> None:
    ran = run_cli(argv)
    assert ran.code == 0, ran.err
    assert " debug taskorch.planning: planner " in ran.err


def test_verbose_after_a_double_dash_is_an_argument() -> None:
    ran = run_cli(["parse", "--", "--verbose"])
    assert " debug " not in ran.err


def test_debug_orchestration_namespaces(monkeypatch: pytest.MonkeyPatch) -> None:
    quiet = run_cli(["parse", "Add login and logout"])
    assert " debug " not in quiet.err
    monkeypatch.setenv("DEBUG", "orchestration:*")
    assert " debug taskorch.planning: " in run_cli(["parse", "Add login and logout"]).err
    monkeypatch.setenv("DEBUG", "orchestration:planning")
    assert " debug taskorch.planning: " in run_cli(["parse", "Add login and logout"]).err
    monkeypatch.setenv("DEBUG", "orchestration:runtime,express:*")
    assert " debug " not in run_cli(["parse", "Add login and logout"]).err
