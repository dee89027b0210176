"""taskorch: a task orchestration engine for AI coding agents.

The public face is small and pinned by a test; everything else is importable from its module but
may change. The names load on first use (module ``__getattr__``): ``import taskorch.cli.main``
goes through this package, and a command line must not pay for the engine before it needs it.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from taskorch.domain.dag import DependencyResolver, Resolution
    from taskorch.domain.errors import TaskorchError
    from taskorch.domain.models import NewTask, Priority, Task, Workflow
    from taskorch.domain.plan import Plan, PlanSubtask
    from taskorch.domain.states import SubtaskState, WorkflowState
    from taskorch.engine import OrchestrationEngine
    from taskorch.engine.coordinator import AgentCoordinator
    from taskorch.engine.orchestrator import TaskOrchestrator
    from taskorch.planning import TaskNLP
    from taskorch.runtime.recovery import ErrorRecoveryManager
    from taskorch.settings import Settings, load_settings
    from taskorch.store import Store, open_store

_WHERE = {
    "AgentCoordinator": "taskorch.engine.coordinator",
    "DependencyResolver": "taskorch.domain.dag",
    "ErrorRecoveryManager": "taskorch.runtime.recovery",
    "NewTask": "taskorch.domain.models",
    "OrchestrationEngine": "taskorch.engine",
    "Plan": "taskorch.domain.plan",
    "PlanSubtask": "taskorch.domain.plan",
    "Priority": "taskorch.domain.models",
    "Resolution": "taskorch.domain.dag",
    "Settings": "taskorch.settings",
    "Store": "taskorch.store",
    "SubtaskState": "taskorch.domain.states",
    "Task": "taskorch.domain.models",
    "TaskNLP": "taskorch.planning",
    "TaskOrchestrator": "taskorch.engine.orchestrator",
    "TaskorchError": "taskorch.domain.errors",
    "Workflow": "taskorch.domain.models",
    "WorkflowState": "taskorch.domain.states",
    "load_settings": "taskorch.settings",
    "open_store": "taskorch.store",
}

__all__ = [
    "AgentCoordinator",
    "DependencyResolver",
    "ErrorRecoveryManager",
    "NewTask",
    "OrchestrationEngine",
    "Plan",
    "PlanSubtask",
    "Priority",
    "Resolution",
    "Settings",
    "Store",
    "SubtaskState",
    "Task",
    "TaskNLP",
    "TaskOrchestrator",
    "TaskorchError",
    "Workflow",
    "WorkflowState",
    "load_settings",
    "open_store",
]
__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    where = _WHERE.get(name)
    if where is None:
        raise AttributeError(f"module 'taskorch' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # once loaded, a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
