"""The specification's MCP calls, with its camelCase argument names, through the SDK's client on
the real server (in-process): each argument takes effect, none is dropped, and an argument a tool
does not take is a one-line tool error.

The planner is an OpenAI-compatible model behind a local fake server with no fallback, so "no
model call" is counted on the wire and a call that should not reach the model would fail.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from mcp_types import CallToolResult, TextContent

from fakes.llm_servers import FakeLLMServer, Reply, login_plan
from mcp import Client
from taskorch.mcp import build_server
from taskorch.mcp.models import InitOutcome, ParseOutcome, ProcessOutcome, WorkflowOut
from taskorch.settings import load_settings


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@asynccontextmanager
async def client_for(home: Path, llm: FakeLLMServer) -> AsyncIterator[Client]:
    settings = load_settings(
        database_url=f"sqlite:///{home}/taskorch.db",
        taskorch_home=home,
        nlp_provider="openai-compatible",
        openai_base_url=llm.openai_base_url,
        nlp_model="llama-test",
        nlp_fallback=False,
    )
    async with Client(build_server(settings)) as client:
        yield client


def text_of(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    result = await client.call_tool(tool, arguments)
    assert not result.is_error, text_of(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def error(client: Client, tool: str, arguments: dict[str, Any]) -> str:
    result = await client.call_tool(tool, arguments)
    assert result.is_error
    message = text_of(result)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


async def test_enable_nlp_by_call_and_by_init(tmp_path: Path, llm_server: FakeLLMServer) -> None:
    async with client_for(tmp_path / ".taskorch", llm_server) as client:
        # parse_requirements {description, priority}: the model plans it (one call on the wire)
        llm_server.reply(Reply.plan(login_plan()))
        parsed = ParseOutcome.model_validate(
            await call(
                client,
                "parse_requirements",
                {"description": "Build the user API with login", "priority": "high"},
            )
        )
        assert parsed.planner.startswith("openai-compatible")
        assert (parsed.priority, parsed.plan["priority"]) == ("high", "high")
        assert len(llm_server.requests) == 1

        # process_task_orchestration {enableNLP: false}: planned without the model, stored so
        ran = ProcessOutcome.model_validate(
            await call(
                client,
                "process_task_orchestration",
                {
                    "requirement": "Add a logout button",
                    "priority": "high",
                    "enableNLP": False,
                    "agent": "sim",
                },
            )
        )
        assert ran.workflow.state == "merged"
        assert ran.workflow.planner is not None
        assert ran.workflow.planner.startswith("heuristic")
        assert len(llm_server.requests) == 1

        # init_orchestration {enableNLP: false}: every later plan of this server is heuristic
        init = InitOutcome.model_validate(
            await call(client, "init_orchestration", {"enableNLP": False})
        )
        assert (init.enable_nlp, init.planner) == (False, "heuristic")
        again = ParseOutcome.model_validate(
            await call(client, "parse_requirements", {"description": "Add a settings page"})
        )
        assert again.planner.startswith("heuristic")
        assert len(llm_server.requests) == 1


async def test_max_concurrent_workflows_and_camel_case_ids(
    tmp_path: Path, llm_server: FakeLLMServer
) -> None:
    async with client_for(tmp_path / ".taskorch", llm_server) as client:
        init = InitOutcome.model_validate(
            await call(
                client,
                "init_orchestration",
                {
                    "enableNLP": False,
                    "enableAgentCoordination": False,
                    "maxConcurrentWorkflows": 1,
                },
            )
        )
        assert init.max_concurrent_workflows == 1
        assert init.enable_agent_coordination is False
        slow = ProcessOutcome.model_validate(
            await call(
                client,
                "process_task_orchestration",
                {"requirement": "Write the guide", "wait": False, "sim_duration_s": 60},
            )
        )
        assert not slow.finished
        refused = await error(
            client, "process_task_orchestration", {"requirement": "Write the FAQ", "wait": False}
        )
        assert "takes at most 1 at once (maxConcurrentWorkflows)" in refused
        workflow_id = slow.workflow.workflow_id
        cancelled = WorkflowOut.model_validate(
            await call(client, "cancel_workflow", {"workflowId": workflow_id})
        )
        assert cancelled.state == "cancelled"
        status = WorkflowOut.model_validate(
            await call(client, "get_workflow_status", {"workflowId": workflow_id})
        )
        assert status.state == "cancelled"
        # taskId is read, not dropped: the refusal names the task it was given
        missing = await error(client, "process_task_orchestration", {"taskId": "task-99"})
        assert "99" in missing
        assert llm_server.requests == []


@pytest.mark.parametrize(
    ("tool", "arguments", "said"),
    [
        (
            "process_task_orchestration",
            {"taskId": 1, "enableNlp": False},
            "process_task_orchestration takes no argument enableNlp: it takes",
        ),
        ("init_orchestration", {"maxWorkflows": 3}, "takes no argument maxWorkflows"),
        ("parse_requirements", {"text": "Add login"}, "takes no argument text"),
        (
            "process_task_orchestration",
            {"task_id": 1, "taskId": 2},
            "task_id and taskId are the same argument: give one of them",
        ),
        ("parse_requirements", {"priority": "high"}, "requirement (or description) is required"),
        ("get_workflow_status", {}, "workflow_id (or workflowId) is required"),
    ],
)
async def test_unknown_or_doubled_arguments_are_one_line_errors(
    tmp_path: Path, llm_server: FakeLLMServer, tool: str, arguments: dict[str, Any], said: str
) -> None:
    async with client_for(tmp_path / ".taskorch", llm_server) as client:
        assert said in await error(client, tool, arguments)
        listed = {t.name: t for t in (await client.list_tools()).tools}
        properties = listed["process_task_orchestration"].input_schema["properties"]
        assert {"taskId", "task_id", "enableNLP", "enable_nlp", "priority"} <= set(properties)
    assert llm_server.requests == []
