"""``taskorch mcp`` as an MCP client sees it: the SDK's own stdio client spawns the server as a
subprocess on a fresh home (SQLite) and calls every tool.

(No ``__init__.py`` in this folder: a package named ``mcp`` here would shadow the SDK.)
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client
from mcp_types import CallToolResult, TextContent

from fakes.cli import ok, taskorch
from fakes.origins import bare_origin, git, tip, url
from taskorch.mcp import TOOL_NAMES
from taskorch.mcp.models import (
    BatchOutcome,
    HealthOut,
    InitOutcome,
    OrchestrationStatus,
    ParseOutcome,
    ProcessOutcome,
    WorkflowOut,
)

AUTH = "Add authentication system with security audit and documentation"


@asynccontextmanager
async def mcp_session(home: Path, database_url: str | None = None) -> AsyncIterator[ClientSession]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "TASKORCH_", "NLP_"))
        and not k.endswith("_API_KEY")
    }
    env["TASKORCH_HOME"] = str(home)
    if database_url:
        env["DATABASE_URL"] = database_url
    params = StdioServerParameters(
        command=sys.executable, args=["-m", "taskorch", "mcp"], env=env, cwd=home.parent
    )
    with (home.parent / "server-stderr.log").open("w") as errlog:
        async with (
            stdio_client(params, errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            await session.initialize()
            yield session


async def call(session: ClientSession, tool: str, **arguments: Any) -> dict[str, Any]:
    result = await session.call_tool(tool, arguments)
    assert not result.is_error, _text(result)
    assert isinstance(result.structured_content, dict)
    return result.structured_content


async def tool_error(session: ClientSession, tool: str, **arguments: Any) -> str:
    result = await session.call_tool(tool, arguments)
    assert result.is_error
    message = _text(result)
    assert "\n" not in message
    assert "Traceback" not in message
    return message


def _text(result: CallToolResult) -> str:
    return "".join(c.text for c in result.content if isinstance(c, TextContent))


async def test_every_tool_over_stdio(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    async with mcp_session(home) as session:
        listed = (await session.list_tools()).tools
        assert sorted(t.name for t in listed) == sorted(TOOL_NAMES)
        for tool in listed:
            assert tool.input_schema["type"] == "object"
            assert tool.output_schema is not None, tool.name
            assert tool.description
            assert "ctx" not in tool.input_schema.get("properties", {})

        init = InitOutcome.model_validate(await call(session, "init_orchestration"))
        assert init.schema_version >= 1
        assert init.database.startswith("sqlite:///")
        assert Path(init.data_folder) == home.resolve()
        assert init.agents == ["auto", "sim"]  # no agent registered yet

        parsed = ParseOutcome.model_validate(
            await call(session, "parse_requirements", requirement=AUTH)
        )
        assert parsed.planner.startswith("heuristic")
        assert len(parsed.plan["subtasks"]) >= 3
        assert parsed.plan["execution_plan"]

        heard: list[tuple[float, str | None]] = []

        async def listen(progress: float, total: float | None, message: str | None) -> None:
            heard.append((progress, message))

        result = await session.call_tool(
            "process_task_orchestration", {"requirement": AUTH}, progress_callback=listen
        )
        assert not result.is_error, _text(result)
        ran = ProcessOutcome.model_validate(result.structured_content)
        assert heard  # the workflow's progress while the tool waited
        assert all(ran.workflow.workflow_id in (message or "") for _, message in heard)
        assert ran.finished
        assert ran.workflow.state == "merged"
        assert ran.workflow.progress_percent == 100.0
        assert [h.to for h in ran.workflow.history][-1] == "merged"
        assert ran.workflow.task.ref == "task-1"
        assert ran.note is not None
        assert "simulated agent" in ran.note  # agent "auto" with no agent registered

        # Stored tasks (added with the CLI meanwhile); one answered at once: the workflow goes
        # on in the server.
        for title in ("Add a logout button", "Add a settings page", "Document the release"):
            add_task(home, title)
        started = ProcessOutcome.model_validate(
            await call(session, "process_task_orchestration", task_id="task-2", wait=False)
        )
        assert started.workflow.task.id == 2
        followed = await _until_finished(session, started.workflow.workflow_id)
        assert followed.state == "merged"

        batch = BatchOutcome.model_validate(
            await call(
                session,
                "process_batch_orchestration",
                task_ids=[3, "task-4"],
                requirements=["Add rate limiting to the API"],
            )
        )
        assert batch.finished
        assert [w.state for w in batch.workflows] == ["merged"] * 3
        assert [w.task.id for w in batch.workflows] == [3, 4, 5]
        again = await tool_error(session, "process_task_orchestration", task_id=3)
        assert f"task-3 is already done (workflow {batch.workflows[0].workflow_id} merged)" in again

        slow = ProcessOutcome.model_validate(
            await call(
                session,
                "process_task_orchestration",
                requirement="Write the onboarding guide",
                wait=False,
                sim_duration_s=30,
            )
        )
        assert not slow.finished
        overview = OrchestrationStatus.model_validate(
            await call(session, "get_orchestration_status", limit=50)
        )
        assert slow.workflow.workflow_id in overview.running_in_server
        assert overview.workflows_by_state["merged"] == 5
        assert len(overview.recent_workflows) == 6
        cancelled = WorkflowOut.model_validate(
            await call(session, "cancel_workflow", workflow_id=slow.workflow.workflow_id)
        )
        assert cancelled.state == "cancelled"
        status = WorkflowOut.model_validate(
            await call(session, "get_workflow_status", workflow_id=slow.workflow.workflow_id)
        )
        assert status.state == "cancelled"

        health = HealthOut.model_validate(await call(session, "orchestration_health_check"))
        assert health.components["database"].status == "ok"
        assert health.components["database"].info["backend"] == "sqlite"


async def test_errors_are_tool_errors_and_the_server_keeps_serving(tmp_path: Path) -> None:
    async with mcp_session(tmp_path / ".taskorch") as session:
        message = await tool_error(session, "get_workflow_status", workflow_id="wf-nope")
        assert "no workflow with id 'wf-nope'" in message
        message = await tool_error(session, "cancel_workflow", workflow_id="wf-nope")
        assert "wf-nope" in message
        message = await tool_error(session, "process_task_orchestration", task_id=99)
        assert "99" in message
        message = await tool_error(session, "process_task_orchestration", task_id="abc")
        assert "invalid task id 'abc'" in message
        message = await tool_error(session, "process_task_orchestration")
        assert "give task_id" in message
        message = await tool_error(session, "process_task_orchestration", requirement="   ")
        assert "requirement is empty" in message
        message = await tool_error(session, "process_batch_orchestration")
        assert "nothing to process" in message
        message = await tool_error(
            session, "process_task_orchestration", requirement="Add login", agent="nobody"
        )
        assert "nobody" in message
        message = await tool_error(
            session, "process_batch_orchestration", requirements=["Add login", " "]
        )
        assert "a requirement is empty" in message
        message = await tool_error(
            session, "process_task_orchestration", requirement="Add login", priority="urgent"
        )
        assert "invalid arguments for process_task_orchestration: priority" in message
        message = await tool_error(session, "get_orchestration_status", limit=0)
        assert "limit: Input should be greater than or equal to 1" in message
        message = await tool_error(session, "parse_requirements")
        assert "requirement (or description) is required" in message
        await tool_error(session, "no_such_tool")
        # Nothing above hurt the server, and no failed call stored a task or started a workflow.
        health = HealthOut.model_validate(await call(session, "orchestration_health_check"))
        assert health.components["database"].status == "ok"
        overview = OrchestrationStatus.model_validate(
            await call(session, "get_orchestration_status")
        )
        assert overview.recent_workflows == []


async def test_a_database_that_is_down_is_a_tool_error(tmp_path: Path) -> None:
    down = "postgresql://postgres@127.0.0.1:9/nothing"
    async with mcp_session(tmp_path / ".taskorch", database_url=down) as session:
        message = await tool_error(session, "init_orchestration")
        assert "127.0.0.1:9" in message
        await tool_error(session, "get_orchestration_status")
        parsed = await call(session, "parse_requirements", requirement="Add login")
        assert parsed["plan"]["subtasks"]


def add_task(home: Path, title: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL"))}
    env["TASKORCH_HOME"] = str(home)
    subprocess.run(
        [sys.executable, "-m", "taskorch", "task", "add", title],
        env=env,
        cwd=home.parent,
        check=True,
        capture_output=True,
        timeout=60,
    )


async def _until_finished(session: ClientSession, workflow_id: str) -> WorkflowOut:
    for _ in range(600):
        status = WorkflowOut.model_validate(
            await call(session, "get_workflow_status", workflow_id=workflow_id)
        )
        if status.state in ("merged", "failed", "cancelled"):
            return status
        await asyncio.sleep(0.1)
    raise AssertionError(f"{workflow_id} did not finish")


async def test_on_postgresql(postgres_url: str, tmp_path: Path) -> None:
    async with mcp_session(tmp_path / ".taskorch", database_url=postgres_url) as session:
        init = InitOutcome.model_validate(await call(session, "init_orchestration"))
        assert init.database.startswith("postgresql://")
        ran = ProcessOutcome.model_validate(
            await call(session, "process_task_orchestration", requirement="Add a login page")
        )
        assert ran.workflow.state == "merged"
        health = HealthOut.model_validate(await call(session, "orchestration_health_check"))
        assert health.components["database"].info["backend"] == "postgres"


async def test_a_repository_by_url_and_the_approve_merge_policy(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    origin = bare_origin(tmp_path / "remote")
    before = tip(origin)
    async with mcp_session(home) as session:
        ran = ProcessOutcome.model_validate(
            await call(
                session,
                "process_task_orchestration",
                requirement="Fix bug in dashboard/server/index.js line 42",
                repo=url(origin),
                merge_policy="approve",
                agent="sim",
            )
        )
        assert ran.finished  # nothing runs for it until a person decides
        assert (ran.workflow.state, ran.workflow.waiting_for) == ("validation_passed", "approval")
        assert ran.workflow.target is not None
        assert ran.workflow.target.model_dump() == {
            "repo": url(origin),
            "base_branch": "main",
            "merge_policy": "approve",
        }
        assert tip(origin) == before
        workflow_id = ran.workflow.workflow_id
        ok(taskorch("approve", workflow_id, home=home))
        status = WorkflowOut.model_validate(
            await call(session, "get_workflow_status", workflow_id=workflow_id)
        )
        assert (status.state, status.waiting_for) == ("merged", None)
        assert "simulated: bug-001-fix" in git(origin, "log", "--format=%s", "main")

        batch = BatchOutcome.model_validate(
            await call(
                session,
                "process_batch_orchestration",
                requirements=["List all repositories in the portfolio"],
                repo=url(origin),
                merge_policy="auto",
            )
        )
        assert [w.state for w in batch.workflows] == ["merged"]
        assert "simulated: repo-001-list" in git(origin, "log", "--format=%s", "main")

        message = await tool_error(
            session, "process_task_orchestration", requirement="Add login", merge_policy="later"
        )
        assert "invalid arguments for process_task_orchestration: merge_policy" in message
        message = await tool_error(
            session,
            "process_task_orchestration",
            requirement="Add login",
            repo="https://me:secret@example.com/app.git",
        )
        assert "carries a password" in message
        assert "secret" not in message
        message = await tool_error(
            session,
            "process_batch_orchestration",
            requirements=["Add login"],
            repo=url(tmp_path / "nothing.git"),
        )
        assert "git ls-remote failed" in message
