"""The ``set_budget`` tool through the SDK's client on the real server (in-process), under its
snake_case and the camelCase argument names."""

from __future__ import annotations

from pathlib import Path

from mcp_types import TextContent

from mcp import Client
from taskorch.domain.models import NewTask
from taskorch.engine.setup import open_engine
from taskorch.mcp import build_server
from taskorch.mcp.models import WorkflowOut
from taskorch.settings import load_settings


async def test_set_budget_tool(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    settings = load_settings(
        database_url=f"sqlite:///{home}/taskorch.db", taskorch_home=home, nlp_provider="heuristic"
    )
    async with open_engine(settings) as engine:
        task = await engine.add_task(NewTask.create("Add login"))
        workflow = await engine.pipeline().start(task)

    async with Client(build_server(settings)) as client:
        result = await client.call_tool("set_budget", {"workflowId": workflow.id, "usd": 2.5})
        assert not result.is_error
        out = WorkflowOut.model_validate(result.structured_content)
        assert out.budget is not None
        assert out.budget["cap_usd"] == 2.5
        assert out.budget["waiting"] is False

        result = await client.call_tool(
            "set_budget", {"workflow_id": workflow.id, "tokens": 9000, "subtaskUsd": 0.5}
        )
        out = WorkflowOut.model_validate(result.structured_content)
        assert out.budget is not None
        assert (out.budget["cap_usd"], out.budget["cap_tokens"]) == (2.5, 9000)

        refused = await client.call_tool("set_budget", {"workflow_id": workflow.id})
        assert refused.is_error
        text = "".join(c.text for c in refused.content if isinstance(c, TextContent))
        assert "no budget given" in text
        assert "\n" not in text
