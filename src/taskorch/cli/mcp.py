"""``taskorch mcp``: the MCP server over stdio, for Claude Code, Cursor and other MCP clients."""

from __future__ import annotations

from taskorch.cli.app import app, fail, settings
from taskorch.domain.errors import TaskorchError


@app.command("mcp")
def mcp() -> None:
    """Serve the orchestration tools over MCP (stdio); stdout carries only the protocol."""
    from taskorch.mcp import build_server  # the SDK loads only for this command

    try:
        server = build_server(settings())
    except TaskorchError as exc:
        fail(exc.message)
    server.run("stdio")
