"""A known agent type registered with its own ``--command`` is still that program."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskorch.agents.cli_agent import CliAgentAdapter
from taskorch.agents.registry import AgentSpec, build_adapter
from taskorch.domain.models import Agent


def registered(spec: AgentSpec) -> Agent:
    now = datetime.now(UTC)
    return Agent(
        id=spec.name,
        name=spec.name,
        type=spec.type,
        metadata={"adapter": spec.adapter_settings()},
        created_at=now,
        updated_at=now,
    )


def cli_adapter(spec: AgentSpec) -> CliAgentAdapter:
    adapter = build_adapter(registered(spec), {})
    assert isinstance(adapter, CliAgentAdapter)
    return adapter


@pytest.mark.parametrize(("kind", "report"), [("claude-code", "claude-json"), ("aider", "aider")])
def test_a_known_types_own_command_keeps_its_report(kind: str, report: str) -> None:
    argv = ["/opt/bin/agent", "-p", "{prompt}", "--allowedTools", "Bash(pytest:*)"]
    adapter = cli_adapter(AgentSpec(name="mine", type=kind, command=argv))
    assert adapter.template.argv == tuple(argv)
    assert adapter.template.report == report
    assert (adapter.name, adapter.template.prompt_on_stdin) == ("mine", False)


def test_a_custom_type_reports_plain_text() -> None:
    adapter = cli_adapter(AgentSpec(name="mine", command=["./agent.sh"]))
    assert (adapter.template.report, adapter.template.prompt_on_stdin) == ("text", True)


def test_arguments_are_added_after_a_known_agents_own() -> None:
    spec = AgentSpec(name="aider-big", type="aider", args=["--model", "openai/big"])
    adapter = cli_adapter(spec)
    assert adapter.template.argv[0] == "aider"
    assert adapter.template.argv[-2:] == ("--model", "openai/big")
    assert "--yes-always" in adapter.template.argv
    assert adapter.template.report == "aider"


@pytest.mark.parametrize(
    ("fields", "said"),
    [
        ({"type": "aider", "command": ["aider", "{prompt}"]}, "put the arguments in --command"),
        ({"url": "http://localhost:3284"}, "are for CLI agents"),
    ],
)
def test_arguments_need_a_known_cli_agent(fields: dict[str, object], said: str) -> None:
    with pytest.raises(ValueError, match=said):
        AgentSpec(name="x", args=["--y"], **fields)
