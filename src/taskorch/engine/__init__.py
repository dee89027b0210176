"""The engine: wires the parts and owns the pipeline; the faces (CLI, HTTP, MCP) call only this."""

from taskorch.engine.engine import ComponentHealth, HealthReport, OrchestrationEngine

__all__ = ["ComponentHealth", "HealthReport", "OrchestrationEngine"]
