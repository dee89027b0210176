"""The MCP face: ``taskorch mcp`` serves the orchestration tools over stdio."""

from taskorch.mcp.server import TOOL_NAMES, build_server

__all__ = ["TOOL_NAMES", "build_server"]
