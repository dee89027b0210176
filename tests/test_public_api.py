"""The public face is deliberate: adding or removing a name is a decision, so it fails here."""

from __future__ import annotations

import taskorch


def test_public_names_are_pinned() -> None:
    assert sorted(taskorch.__all__) == [
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
    for name in taskorch.__all__:
        assert getattr(taskorch, name) is not None


def test_py_typed_marker_ships() -> None:
    from importlib import resources

    assert resources.files("taskorch").joinpath("py.typed").is_file()
