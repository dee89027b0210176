"""The engine: wires the parts and owns the pipeline; the faces (CLI, HTTP, MCP) call only this."""

from taskorch.engine.engine import ComponentHealth, HealthReport, OrchestrationEngine
from taskorch.store import redact_url
from taskorch.store.migrate import MigrationReport

__all__ = [
    "ComponentHealth",
    "HealthReport",
    "MigrationReport",
    "OrchestrationEngine",
    "redact_url",
]
