"""The rules every plan keeps, whoever produced it (the heuristic planner, a model, an import).

:func:`enforce` is the one gate: it checks what can only be rejected, repairs what can be repaired
without guessing, and derives what must never be trusted from a producer (the stages of
``execution_plan``, the resource estimate, the progress block).

Decisions, so that every producer is treated alike:

- **Too many subtasks** (more than 10) is an error, not a silent clamp: dropping a model's work
  items would lose requirements without anyone noticing. The LLM planner sends the error back to
  the model for one repair; the heuristic planner merges items itself before it gets here.
- **Too many files** on one subtask: the subtask is split into parts of at most 3 files that share
  its dependencies (and everything that depended on it depends on all parts), so every file stays
  declared for conflict prevention. If splitting would break the count rules, it is an error.
- **Complexity follows the count where that is unambiguous**: one subtask is ``simple``; a plan
  labelled ``simple`` with 3-10 subtasks becomes ``medium``; exactly two subtasks is an error.
- **Dependencies** go through :class:`DependencyResolver`: unknown ids, self-dependencies, cycles
  and more than 10 stages are errors (the resolver's :class:`PlanError` subclasses).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from taskorch.domain.dag import DependencyResolver, Resolution
from taskorch.domain.errors import PlanError
from taskorch.domain.plan import (
    MAX_FILES_PER_SUBTASK,
    MAX_STAGES,
    MAX_SUBTASKS,
    MIN_COMPLEX_SUBTASKS,
    Complexity,
    Plan,
    PlanSubtask,
    Progress,
)
from taskorch.planning.estimate import resource_estimate


def enforce(plan: Plan, resolver: DependencyResolver | None = None) -> Plan:
    """``plan`` made to keep every rule, its derived parts recomputed; or a :class:`PlanError`."""
    resolver = resolver or DependencyResolver(max_stages=MAX_STAGES)
    subtasks = [_normalised(s, plan.parent_task_id) for s in plan.subtasks]
    _check_ids(subtasks)
    _check_count(len(subtasks))
    given = len(subtasks)
    subtasks = _split_oversized(subtasks)
    _check_not_two(len(subtasks), split=len(subtasks) != given)
    complexity = _complexity(plan.complexity, len(subtasks))
    shaped = plan.model_copy(
        update={
            "orchestration_id": plan.orchestration_id or f"orch-{plan.parent_task_id}",
            "complexity": complexity,
            "status": "planning",
            "subtasks": subtasks,
            "progress": Progress(),
        }
    )
    resolution = resolver.resolve_plan(shaped)
    return shaped.model_copy(
        update={
            "execution_plan": resolution.execution_plan(),
            "resource_estimate": resource_estimate(shaped, resolution),
        }
    )


def resolve(plan: Plan) -> Resolution:
    """The resolved DAG of an enforced plan (for callers that want stages or the critical path)."""
    return DependencyResolver(max_stages=MAX_STAGES).resolve_plan(plan)


def _normalised(subtask: PlanSubtask, parent_task_id: str) -> PlanSubtask:
    files = [f.strip() for f in subtask.files_affected if f.strip()]
    return subtask.model_copy(
        update={
            "subtask_id": subtask.subtask_id.strip(),
            "parent_task_id": parent_task_id,
            "dependencies": list(dict.fromkeys(d.strip() for d in subtask.dependencies)),
            "files_affected": list(dict.fromkeys(files)),
            "status": "pending",
        }
    )


def _check_ids(subtasks: Sequence[PlanSubtask]) -> None:
    seen: set[str] = set()
    for subtask in subtasks:
        if not subtask.subtask_id:
            raise PlanError("a subtask has an empty subtask_id")
        if subtask.subtask_id in seen:
            raise PlanError(f"subtask id {subtask.subtask_id!r} is used more than once")
        seen.add(subtask.subtask_id)


def _check_count(count: int) -> None:
    if count == 0:
        raise PlanError("the plan has no subtasks")
    if count > MAX_SUBTASKS:
        raise PlanError(
            f"the plan has {count} subtasks, more than the limit of {MAX_SUBTASKS}; "
            "merge related subtasks or split the requirement into smaller tasks"
        )


def _check_not_two(count: int, *, split: bool) -> None:
    if count == 2:
        how = " once subtasks with more than 3 files are split" if split else ""
        raise PlanError(
            f"the plan has 2 subtasks{how}: a simple task has exactly 1, "
            f"a complex one {MIN_COMPLEX_SUBTASKS}-{MAX_SUBTASKS}"
        )


def _complexity(declared: Complexity, count: int) -> Complexity:
    if count == 1:
        return Complexity.SIMPLE
    return Complexity.MEDIUM if declared is Complexity.SIMPLE else declared


def _split_oversized(subtasks: list[PlanSubtask]) -> list[PlanSubtask]:
    """Split every subtask that declares more than 3 files into parts of at most 3 files."""
    oversized = [s for s in subtasks if len(s.files_affected) > MAX_FILES_PER_SUBTASK]
    if not oversized:
        return subtasks
    extra = sum(_part_count(s) - 1 for s in oversized)
    total = len(subtasks) + extra
    if total > MAX_SUBTASKS:
        first = oversized[0]
        raise PlanError(
            f"subtask {first.subtask_id!r} declares {len(first.files_affected)} files, more than "
            f"{MAX_FILES_PER_SUBTASK}; splitting it would give {total} subtasks, more than "
            f"the limit of {MAX_SUBTASKS}"
        )
    taken = {s.subtask_id for s in subtasks}
    parts_of: dict[str, list[str]] = {}
    result: list[PlanSubtask] = []
    for subtask in subtasks:
        if len(subtask.files_affected) <= MAX_FILES_PER_SUBTASK:
            result.append(subtask)
            continue
        parts = _parts(subtask, taken)
        parts_of[subtask.subtask_id] = [p.subtask_id for p in parts]
        result.extend(parts)
    return [_rewire(s, parts_of) for s in result]


def _part_count(subtask: PlanSubtask) -> int:
    return math.ceil(len(subtask.files_affected) / MAX_FILES_PER_SUBTASK)


def _parts(subtask: PlanSubtask, taken: set[str]) -> list[PlanSubtask]:
    files = subtask.files_affected
    count = _part_count(subtask)
    parts: list[PlanSubtask] = []
    for index in range(count):
        chunk = files[index * MAX_FILES_PER_SUBTASK : (index + 1) * MAX_FILES_PER_SUBTASK]
        share = len(chunk) / len(files)
        part_id = _free_id(f"{subtask.subtask_id}-p{index + 1}", taken)
        parts.append(
            subtask.model_copy(
                update={
                    "subtask_id": part_id,
                    "title": f"{subtask.title} (part {index + 1} of {count})",
                    "files_affected": chunk,
                    "estimated_duration_minutes": math.ceil(
                        subtask.estimated_duration_minutes * share
                    ),
                    "estimated_tokens": math.ceil(subtask.estimated_tokens * share),
                }
            )
        )
    return parts


def _free_id(candidate: str, taken: set[str]) -> str:
    base, suffix = candidate, 2
    while candidate in taken:
        candidate = f"{base}-{suffix}"
        suffix += 1
    taken.add(candidate)
    return candidate


def _rewire(subtask: PlanSubtask, parts_of: dict[str, list[str]]) -> PlanSubtask:
    if not any(d in parts_of for d in subtask.dependencies):
        return subtask
    dependencies: list[str] = []
    for dependency in subtask.dependencies:
        dependencies.extend(parts_of.get(dependency, [dependency]))
    return subtask.model_copy(update={"dependencies": list(dict.fromkeys(dependencies))})
