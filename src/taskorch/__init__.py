"""taskorch: a task orchestration engine for AI coding agents.

The public face is small and pinned by a test; everything else is importable from its module but
may change.
"""

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
