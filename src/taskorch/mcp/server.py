"""``taskorch mcp``: the orchestrator as an MCP server over stdio (the official ``mcp`` SDK).

Nine tools, each with a typed input schema and a typed result (``structuredContent`` matching
its output schema). A failure the user can cause (an unknown id, an empty requirement, a bad
priority, a database that is down) comes back as a tool error (``isError``) carrying the same one
line the CLI prints; anything unexpected is reported by the SDK as a tool error too, so the server
never dies of a tool call. The tools are defined by area: starting work
(:mod:`~taskorch.mcp.tools_processing`), one workflow (:mod:`~taskorch.mcp.tools_workflow`) and
the orchestrator as a whole (:mod:`~taskorch.mcp.tools_overview`).

Long work: ``process_task_orchestration`` and ``process_batch_orchestration`` start the workflows
in this server process and wait for them to end, up to ``timeout_s``; with ``wait=false`` (or
once the timeout has passed) they answer at once with the workflow ids and state, and the
workflows go on in the server; ``get_workflow_status`` follows them, ``cancel_workflow`` stops
them.
"""

from __future__ import annotations

import gc
import inspect
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError, UnexpectedToolError
from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError

from taskorch import __version__
from taskorch.domain.errors import InputError
from taskorch.mcp import tools_overview, tools_processing, tools_workflow
from taskorch.mcp.aliases import check_known
from taskorch.mcp.guard import check_arguments, one_line, sendable, validation_line
from taskorch.mcp.session import Orchestrator
from taskorch.mcp.stdio import serve_stdio
from taskorch.mcp.toolkit import ToolFunction
from taskorch.settings import Settings

TOOL_NAMES = (
    "init_orchestration",
    "process_task_orchestration",
    "process_batch_orchestration",
    "get_workflow_status",
    "cancel_workflow",
    "set_budget",
    "get_orchestration_status",
    "parse_requirements",
    "orchestration_health_check",
)


class TaskorchServer(MCPServer[None]):
    """The SDK's server, with every call's arguments checked first (:mod:`taskorch.mcp.guard`),
    arguments that fail the input schema reported in one line, and answers that can always be
    sent."""

    async def call_tool(
        self, name: str, arguments: dict[str, Any], context: Context[None, Any] | None = None
    ) -> CallToolResult | InputRequiredResult:
        try:
            check_arguments(arguments)
            schema = self._tool_input_schema(name)
            if schema is not None:
                check_known(name, arguments, schema.get("properties", {}))
        except InputError as exc:
            raise ToolError(one_line(f"invalid arguments for {name}: {exc.message}")) from None
        try:
            return sendable(await super().call_tool(name, arguments, context))
        except UnexpectedToolError as exc:  # a bug: the SDK logs its traceback
            kind = type(exc.__cause__).__name__
            message = f"{exc} ({kind}); the server's log has the details"
            raise UnexpectedToolError(one_line(message)) from exc.__cause__
        except ToolError as exc:
            if isinstance(exc.__cause__, ValidationError):
                message = f"invalid arguments for {name}: {validation_line(exc.__cause__)}"
                raise ToolError(one_line(message)) from exc.__cause__
            raise ToolError(one_line(str(exc))) from exc.__cause__

    async def run_stdio_async(self) -> None:
        """Serve over stdio until stdin closes or SIGINT or SIGTERM comes (Claude Code stops its
        servers with signals, stdin left open): see :mod:`taskorch.mcp.stdio`."""
        lowlevel = self._lowlevel_server
        await serve_stdio(
            lambda read, write: lowlevel.run(read, write, lowlevel.create_initialization_options())
        )
        # The process ends next, its runs and engine closed. Collecting its objects at interpreter
        # exit takes ~0.35 s, past the 100 ms Claude Code waits after SIGINT before it sends
        # SIGTERM: leave them to the operating system.
        gc.freeze()


def build_server(settings: Settings) -> TaskorchServer:
    """The MCP server with the orchestration tools (and ``set_budget``), sharing one
    :class:`Orchestrator`."""
    orchestrator = Orchestrator(settings)

    @asynccontextmanager
    async def lifespan(_: MCPServer[None]) -> AsyncIterator[None]:
        try:
            yield None
        finally:
            # shielded: a server stopped by a signal is cancelled, and its runs (with their
            # agents' processes) and the engine must still close
            with anyio.CancelScope(shield=True):
                await orchestrator.close()

    server = TaskorchServer(
        "taskorch",
        instructions=(
            "taskorch turns requirements into a plan of subtasks, runs them on coding agents in "
            "git worktrees and merges the result. Plan with parse_requirements, carry a "
            "requirement or a stored task to merged code with process_task_orchestration, "
            "follow it with get_workflow_status."
        ),
        lifespan=lifespan,
        log_level="WARNING",
        version=__version__,
    )

    def tool(function: ToolFunction) -> ToolFunction:
        """Register a tool, its docstring dedented for the description: Python 3.11 keeps the
        source's indentation, which clients pass on to their model as is."""
        return server.tool(description=inspect.cleandoc(function.__doc__ or ""))(function)

    tools_processing.register(tool, orchestrator)
    tools_workflow.register(tool, orchestrator)
    tools_overview.register(tool, orchestrator)
    return server
