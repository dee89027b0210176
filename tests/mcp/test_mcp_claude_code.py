"""``taskorch mcp`` driven by the real Claude Code (``claude``, npm ``@anthropic-ai/claude-code``):
an MCP client we did not write, configured the way a user would (an ``--mcp-config`` file naming
``taskorch mcp``), and allowed to call the server's tools with ``--allowedTools mcp__taskorch``.

Claude talks to the fake Anthropic API of :mod:`agents.fake_anthropic`, whose model reads the
request as a real model would: the taskorch tools Claude offers (by default Claude Code defers MCP
tools behind its ``ToolSearch`` tool and names them only in its prompt, so the model first loads
them with ``ToolSearch``), their input schemas, and the tool results Claude sends back. So what is
checked is the whole path Claude -> MCP (stdio) -> taskorch -> its database, and back.
``CLAUDE_BIN`` names the binary (``.ci/run`` installs it); without it the tests skip.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped]  # a dependency of mcp; no type hints
import pytest

from agents.fake_anthropic import (
    SIDE_TEXT,
    Call,
    FakeAnthropic,
    Model,
    Reply,
    ToolCall,
    claude_bin,
    deferred_tools,
    offline_claude_env,
    text_of,
    tool_definition,
    tool_results,
    tool_uses,
)
from taskorch.mcp import TOOL_NAMES, build_server
from taskorch.settings import load_settings

PREFIX = "mcp__taskorch__"
TASKORCH_TOOLS = {PREFIX + name for name in TOOL_NAMES}
REQUIREMENT = "Add login with docs"
CLAUDE_TIMEOUT_S = 120


def taskorch_command() -> list[str]:
    """``taskorch`` as the README registers it: the venv's console script by its full path (the
    client does not run in the venv), or this interpreter's ``-m taskorch``."""
    script = Path(sys.executable).with_name("taskorch")
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [sys.executable, "-m", "taskorch"]


def clean_env() -> dict[str, str]:
    """This process's environment without settings that would point taskorch or Claude at
    anything but the test's own home, database and fake API."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_", "NLP_", "ANTHROPIC_", "CLAUDE_"))
        and not k.endswith("_API_KEY")
    }


def taskorch(home: Path, *args: str) -> str:
    env = clean_env() | {"TASKORCH_HOME": str(home)}
    done = subprocess.run(
        [*taskorch_command(), *args],
        cwd=home.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@dataclass(frozen=True)
class Setup:
    home: Path
    """taskorch's data folder (SQLite database ``taskorch.db``)."""
    project: Path
    """The folder Claude runs in."""
    config: Path
    """Claude's ``--mcp-config`` file."""


@pytest.fixture
def setup(tmp_path: Path) -> Setup:
    claude_bin()  # skip before any work where Claude is not installed
    home = tmp_path / ".taskorch"
    taskorch(home, "init")
    project = tmp_path / "project"
    project.mkdir()
    [command, *args] = taskorch_command()
    server = {
        "command": command,
        "args": [*args, "mcp"],
        # Claude starts the server with its own environment plus this one. The planner must not
        # take Claude's ANTHROPIC_API_KEY and base URL (the fake API) for its own: plan offline.
        "env": {"TASKORCH_HOME": str(home), "NLP_PROVIDER": "heuristic"},
    }
    config = tmp_path / "mcp.json"
    config.write_text(json.dumps({"mcpServers": {"taskorch": server}}, indent=2))
    return Setup(home, project, config)


@dataclass(frozen=True)
class Step:
    """One call of a taskorch tool: its short name, and its arguments from the results of the
    calls before it."""

    tool: str
    arguments: Callable[[list[dict[str, Any]]], dict[str, Any]]


def driving(
    steps: list[Step],
    final: Callable[[list[dict[str, Any]]], str],
    *,
    errors_expected: bool = False,
) -> Model:
    """A model that calls taskorch's tools through Claude, one step per turn, then answers with
    ``final`` of their results. It works from the request alone (what Claude offers, what it sent
    back), like a real model: it loads deferred tools with ``ToolSearch``, checks each call's
    arguments against the schema Claude sent, and stops on a tool error (unless
    ``errors_expected``: then the result is ``{"error": its text}``)."""

    def model(body: dict[str, Any]) -> Reply:
        offered = {str(t.get("name")) for t in body.get("tools") or []} & TASKORCH_TOOLS
        deferred = [name for name in deferred_tools(body) if name.startswith(PREFIX)]
        if not offered and not deferred:
            return Reply(SIDE_TEXT)  # a side request (title, summary): no taskorch tools
        answers = tool_results(body)
        results = []
        for use in tool_uses(body):
            if not str(use["name"]).startswith(PREFIX):
                continue
            answer = answers[use["id"]]
            text = text_of(answer.get("content"))
            if answer.get("is_error"):
                if not errors_expected:
                    raise AssertionError(f"{use['name']} failed: {text}")
                results.append({"error": text})
            else:
                results.append(json.loads(text))
        if not offered:
            if any(use["name"] == "ToolSearch" for use in tool_uses(body)):
                raise AssertionError(f"ToolSearch did not load {deferred}")
            query = "select:" + ",".join(deferred)
            return Reply("", (ToolCall("ToolSearch", {"query": query}),))
        if len(results) == len(steps):
            return Reply(final(results))
        step = steps[len(results)]
        definition = tool_definition(body, PREFIX + step.tool)
        assert definition is not None, f"{step.tool} is not offered"
        arguments = step.arguments(results)
        jsonschema.validate(arguments, definition["input_schema"])
        return Reply("", (ToolCall(PREFIX + step.tool, arguments),))

    return model


@dataclass(frozen=True)
class Run:
    report: dict[str, Any]
    """Claude's ``--output-format json`` report."""
    calls: list[Call]
    """The requests Claude sent to the (fake) model."""


def claude_env(setup: Setup, base_url: str = "http://127.0.0.1:9") -> dict[str, str]:
    """Claude offline, its HOME (``~/.claude.json``, ``~/.claude/``) in the test's folder."""
    home = setup.project.parent / "claude-home"
    return clean_env() | offline_claude_env(home) | {"ANTHROPIC_BASE_URL": base_url}


def claude(setup: Setup, *args: str) -> str:
    """A ``claude`` command that needs no model (``claude mcp ...``); its stdout."""
    done = subprocess.run(
        [claude_bin(), *args],
        cwd=setup.project,
        env=claude_env(setup),
        capture_output=True,
        text=True,
        timeout=CLAUDE_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (done.stdout, done.stderr)
    return done.stdout


def run_claude(
    setup: Setup,
    prompt: str,
    model: Model,
    extra_env: dict[str, str],
    *,
    mcp_config: bool = True,
) -> Run:
    """``claude -p`` with taskorch's tools allowed; with ``mcp_config``, taskorch comes from the
    test's ``--mcp-config`` file alone, else from Claude's own settings (``claude mcp add``)."""
    with FakeAnthropic(model) as api:
        env = claude_env(setup, api.base_url) | extra_env
        # --strict-mcp-config: no MCP server from user or project settings
        config = ["--mcp-config", str(setup.config), "--strict-mcp-config"] if mcp_config else []
        argv = [
            claude_bin(),
            "-p",
            prompt,
            "--output-format",
            "json",
            *config,
            "--allowedTools",
            "mcp__taskorch",  # every tool of the server named taskorch
            "--max-turns",
            "10",  # a model gone round in circles ends the run
        ]
        done = subprocess.run(
            argv,
            cwd=setup.project,
            env=env,
            capture_output=True,
            text=True,
            timeout=CLAUDE_TIMEOUT_S,
            check=False,
        )
    assert not api.errors, api.errors
    assert done.returncode == 0, (done.stdout, done.stderr)
    report: dict[str, Any] = json.loads(done.stdout)
    assert report["is_error"] is False, report
    assert report["permission_denials"] == [], report
    return Run(report, api.message_calls())


def calls_of(run: Run, tool: str) -> Iterator[dict[str, Any]]:
    """The ``tool_use`` blocks of ``tool`` in the last request (the whole conversation)."""
    return (use for use in tool_uses(run.calls[-1].body) if use["name"] == PREFIX + tool)


def result_of(run: Run, tool: str) -> dict[str, Any]:
    """What Claude sent back to the model for the (only) call of ``tool``: taskorch's result."""
    [use] = calls_of(run, tool)
    answer = tool_results(run.calls[-1].body)[use["id"]]
    assert not answer.get("is_error"), answer
    result: dict[str, Any] = json.loads(text_of(answer.get("content")))
    return result


def offered_taskorch_tools(run: Run) -> dict[str, dict[str, Any]]:
    """The taskorch tools (definitions by name) Claude first sent with their schemas: in the
    first request (eager loading) or in the one after ``ToolSearch`` loaded them."""
    [first, *_] = [c for c in run.calls if any(n.startswith(PREFIX) for n in c.offered_tools)]
    return {
        name: definition
        for name in first.offered_tools
        if name.startswith(PREFIX) and (definition := tool_definition(first.body, name))
    }


def taskorch_tools(home: Path) -> dict[str, dict[str, Any]]:
    """taskorch's own tools as Claude would offer them to its model (named for their server,
    with taskorch's description and input schema), listed in this process."""
    server = build_server(load_settings(taskorch_home=home))
    return {
        PREFIX + tool.name: {"description": tool.description, "input_schema": tool.input_schema}
        for tool in asyncio.run(server.list_tools())
    }


def parse_steps() -> list[Step]:
    return [Step("parse_requirements", lambda _: {"requirement": REQUIREMENT})]


def quote_plan(results: list[dict[str, Any]]) -> str:
    ids = [s["subtask_id"] for s in results[0]["plan"]["subtasks"]]
    return f"taskorch planned {len(ids)} subtasks: {', '.join(ids)}"


@pytest.mark.parametrize(
    "tool_search",
    [pytest.param({}, id="tool-search"), pytest.param({"ENABLE_TOOL_SEARCH": "false"}, id="eager")],
)
def test_claude_code_plans_a_requirement_with_taskorch(
    setup: Setup, tool_search: dict[str, str]
) -> None:
    run = run_claude(
        setup,
        f"Parse this requirement with taskorch: {REQUIREMENT}",
        driving(parse_steps(), quote_plan),
        tool_search,
    )
    # Claude listed exactly taskorch's eight tools, with taskorch's descriptions and schemas
    offered = offered_taskorch_tools(run)
    assert set(offered) == TASKORCH_TOOLS
    for name, own in taskorch_tools(setup.home).items():
        sent = offered[name]
        assert (sent["description"], sent["input_schema"]) == (
            own["description"],
            own["input_schema"],
        ), name
    parse = offered[PREFIX + "parse_requirements"]["input_schema"]
    assert "required" not in parse  # `requirement`, or the specification's `description`
    assert set(parse["properties"]) == {"requirement", "description", "context", "priority"}

    # the plan came back to the model through Claude, and the model's answer is Claude's result
    plan = result_of(run, "parse_requirements")["plan"]
    ids = [s["subtask_id"] for s in plan["subtasks"]]
    assert plan["task_title"] == REQUIREMENT
    assert len(ids) >= 3
    assert all(subtask_id.startswith("login-") for subtask_id in ids)
    assert run.report["result"] == quote_plan([{"plan": plan}])
    # planning stores nothing
    assert json.loads(taskorch(setup.home, "status", "--json")) == []


def test_claude_code_carries_a_requirement_to_merged_through_taskorch(setup: Setup) -> None:
    steps = [
        Step("process_task_orchestration", lambda _: {"requirement": REQUIREMENT, "wait": True}),
        Step(
            "get_workflow_status",
            lambda results: {"workflow_id": results[0]["workflow"]["workflow_id"]},
        ),
    ]

    def merged(results: list[dict[str, Any]]) -> str:
        status = results[1]
        return f"Workflow {status['workflow_id']} is {status['state']}."

    run = run_claude(
        setup,
        f"Build this with taskorch and tell me its state: {REQUIREMENT}",
        driving(steps, merged),
        {},
    )
    assert set(offered_taskorch_tools(run)) == TASKORCH_TOOLS
    processed = result_of(run, "process_task_orchestration")
    assert processed["finished"] is True
    workflow = processed["workflow"]
    assert workflow["state"] == "merged"
    status = result_of(run, "get_workflow_status")
    assert (status["workflow_id"], status["state"]) == (workflow["workflow_id"], "merged")
    assert run.report["result"] == f"Workflow {workflow['workflow_id']} is merged."

    # ... and taskorch's own database holds the merged workflow
    stored = json.loads(taskorch(setup.home, "status", workflow["workflow_id"], "--json"))
    assert stored["state"] == "merged"
    [listed] = json.loads(taskorch(setup.home, "status", "--json"))
    assert listed["workflow_id"] == workflow["workflow_id"]


def test_taskorch_registered_with_claude_mcp_add_as_the_readme_says(setup: Setup) -> None:
    """The README's ``claude mcp add taskorch -e TASKORCH_HOME=... -- taskorch mcp``: Claude's
    health check connects. (A ``claude -p`` run with no ``--mcp-config`` offered no taskorch
    tool to the model on this machine in 2026-12, with the code of before and after; until that
    is understood only the registration is checked here. The runs with ``--mcp-config`` above
    plan and merge through taskorch.)"""
    [command, *args] = taskorch_command()
    env = [f"--env=TASKORCH_HOME={setup.home}", "--env=NLP_PROVIDER=heuristic"]
    claude(setup, "mcp", "add", "taskorch", *env, "--", command, *args, "mcp")
    listed = claude(setup, "mcp", "list")
    assert f"taskorch: {' '.join([command, *args])} mcp - ✔ Connected" in listed, listed


def test_a_taskorch_tool_error_reaches_the_model_as_one_readable_line(setup: Setup) -> None:
    steps = [Step("get_workflow_status", lambda _: {"workflow_id": "wf-nope"})]
    run = run_claude(
        setup,
        "What is the state of taskorch workflow wf-nope?",
        driving(
            steps, lambda results: f"taskorch says: {results[0]['error']}", errors_expected=True
        ),
        {},
    )
    [use] = calls_of(run, "get_workflow_status")
    answer = tool_results(run.calls[-1].body)[use["id"]]
    assert answer.get("is_error") is True
    text = text_of(answer.get("content"))
    assert "no workflow with id 'wf-nope'" in text
    assert "\n" not in text.strip()
    assert "Traceback" not in text
    assert run.report["result"] == f"taskorch says: {text}"
