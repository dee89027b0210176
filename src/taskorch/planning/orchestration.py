"""``orchestration_required``: a task that asks for full orchestration gets a full plan.

The specification's task-orchestrator runs a simple task as one subtask and plans a complex one in
stages; a task flagged ``orchestration_required`` is always orchestrated. Here: a task whose
metadata (or, for a task imported from a Task Master ``tasks.json``, whose record) says
``orchestration_required: true`` (``orchestrationRequired`` too) and whose plan came out simple
gets that one subtask in stages, each a subtask of its own with its own agent, worktree and
handoff:

1. ``plan``: read the code the work touches and write down the approach (no files changed);
2. the work itself, as planned;
3. ``test``: tests for it (only after implementation work);
4. ``audit``: review the change against the requirement.

A task without the flag that is simple still runs as one subtask; a complex plan is left as it
is. The workflow's history says which it was (``orchestration_required`` in the
``task_decomposition`` metadata).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskorch.domain.plan import Complexity, Plan, PlanSubtask, WorkerType
from taskorch.planning.rules import enforce

FLAGS = ("orchestration_required", "orchestrationRequired")


def orchestration_required(metadata: Mapping[str, Any]) -> bool:
    """Whether a task's metadata (or its imported Task Master record) asks for orchestration."""
    imported = metadata.get("taskmaster")
    record = imported.get("record") if isinstance(imported, Mapping) else None
    places = [metadata, record if isinstance(record, Mapping) else {}]
    return any(_truthy(place.get(flag)) for place in places for flag in FLAGS)


def full_plan(plan: Plan) -> Plan:
    """A simple plan's one subtask as stages; any other plan unchanged."""
    if not plan.is_simple or len(plan.subtasks) != 1:
        return plan
    [work] = plan.subtasks
    prefix = work.subtask_id.split("-", 1)[0] or "task"
    ids = iter(f"{prefix}-{n:03d}" for n in range(1, 10))
    planning = _step(
        work,
        f"{next(ids)}-plan",
        WorkerType.PLANNER,
        f"Plan: {work.title}",
        "Read the code this work touches and write down the approach, the files to change and "
        "the risks; change no files.",
        "the approach, files and risks are written down in the reply",
        [],
    )
    main = work.model_copy(
        update={"subtask_id": f"{next(ids)}-{_suffix(work)}", "dependencies": [planning.subtask_id]}
    )
    steps = [planning, main]
    last = main
    if work.worker_type is WorkerType.IMPLEMENTATION:
        last = _step(
            work,
            f"{next(ids)}-test",
            WorkerType.TEST,
            f"Test: {work.title}",
            f"Add or update tests that prove this work: {work.title}.",
            "the new tests pass and fail without the change",
            [main.subtask_id],
        )
        steps.append(last)
    steps.append(
        _step(
            work,
            f"{next(ids)}-audit",
            WorkerType.AUDIT,
            f"Audit: {work.title}",
            "Review the change against the requirement: correctness, security, what is missing.",
            "the review lists what was checked and anything left to fix",
            [last.subtask_id],
        )
    )
    return enforce(plan.model_copy(update={"complexity": Complexity.MEDIUM, "subtasks": steps}))


def _step(
    work: PlanSubtask,
    subtask_id: str,
    kind: WorkerType,
    title: str,
    description: str,
    criteria: str,
    dependencies: list[str],
) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=subtask_id,
        parent_task_id=work.parent_task_id,
        title=title,
        description=description,
        assigned_to=work.assigned_to,
        worker_type=kind,
        dependencies=dependencies,
        estimated_duration_minutes=max(work.estimated_duration_minutes // 2, 5),
        estimated_tokens=max(work.estimated_tokens // 2, 1000),
        files_affected=[f for f in work.files_affected if kind is WorkerType.TEST and "test" in f],
        success_criteria=criteria,
    )


def _suffix(work: PlanSubtask) -> str:
    parts = work.subtask_id.split("-")
    return parts[-1] if len(parts) >= 3 else work.worker_type.value


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return value is True
