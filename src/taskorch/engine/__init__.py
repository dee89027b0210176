"""The engine: wires the parts and owns the pipeline; the faces (CLI, HTTP, MCP) call only this."""

from taskorch.engine.engine import ComponentHealth, HealthReport, OrchestrationEngine
from taskorch.store import redact_url
from taskorch.store.migrate import MigrationReport
from taskorch.store.stats import DURATION_BUCKETS_S, WorkflowStats

__all__ = [
    "DURATION_BUCKETS_S",
    "ComponentHealth",
    "HealthReport",
    "MigrationReport",
    "OrchestrationEngine",
    "WorkflowStats",
    "redact_url",
]
