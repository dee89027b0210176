"""The planner's smaller services around a plan: classified requirement items, dependencies by
phase order, the instructions an agent gets, and whether a reported result completes a subtask.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from taskorch.domain.dag import DependencyResolver
from taskorch.domain.plan import MAX_STAGES, Domain, PlanSubtask, WorkerType
from taskorch.planning.classify import TaskMetadata, domain_of, item_kinds, phase_rank
from taskorch.planning.text import Item, extract_files, shorten


class RequirementItem(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    worker_type: WorkerType
    domain: Domain
    files: list[str] = Field(default_factory=list)
    group: int = 0
    """Explicit order: items of a later group come after those of an earlier one."""
    umbrella: bool = False
    """Names the whole ("X, including a, b and c"), not a piece of work of its own."""


class Requirements(BaseModel):
    model_config = ConfigDict(frozen=True)

    text: str
    items: list[RequirementItem]
    metadata: TaskMetadata
    warnings: list[str] = Field(default_factory=list)
    """Named warnings ("items-beyond-limit: ..."): what the items leave out."""


def requirement_items(items: Sequence[Item]) -> list[RequirementItem]:
    result: list[RequirementItem] = []
    for item, kind in zip(items, item_kinds(list(items)), strict=True):
        result.append(
            RequirementItem(
                text=item.text,
                worker_type=kind,
                domain=domain_of(item.text, kind),
                files=extract_files(item.text),
                group=item.group,
                umbrella=item.umbrella,
            )
        )
    return result


def infer_dependencies(tasks: Sequence[PlanSubtask]) -> dict[str, list[str]]:
    """Declared dependencies where given; otherwise every subtask of the nearest earlier phase.

    Validated by :class:`DependencyResolver`, so unknown ids and cycles raise :class:`PlanError`.
    """
    ranks = sorted({phase_rank(t.worker_type) for t in tasks})
    by_rank: dict[int, list[str]] = {}
    for task in tasks:
        by_rank.setdefault(phase_rank(task.worker_type), []).append(task.subtask_id)
    dependencies: dict[str, list[str]] = {}
    for task in tasks:
        if task.dependencies:
            dependencies[task.subtask_id] = list(dict.fromkeys(task.dependencies))
            continue
        position = ranks.index(phase_rank(task.worker_type))
        dependencies[task.subtask_id] = list(by_rank[ranks[position - 1]]) if position else []
    DependencyResolver(max_stages=MAX_STAGES).resolve(dependencies)
    return dependencies


def instructions_for(subtask: PlanSubtask, context: str | None = None) -> str:
    """What an agent is told: the work, its boundaries (declared files) and when it is done."""
    lines = [
        f"# {subtask.title}",
        f"Subtask {subtask.subtask_id} of task {subtask.parent_task_id}.",
    ]
    if subtask.description:
        lines += ["", subtask.description]
    lines += ["", f"Role: {subtask.worker_type.value} for the {subtask.assigned_to.value} team."]
    if subtask.files_affected:
        lines.append(
            "Files you may change: " + ", ".join(subtask.files_affected) + ". Other subtasks run "
            "in parallel on other files; if you must change another file, say which and why."
        )
    if subtask.dependencies:
        lines.append("Already done before you: " + ", ".join(subtask.dependencies) + ".")
    lines.append(f"Done when: {subtask.success_criteria or 'the work described above is done'}.")
    if context and context.strip():
        lines += ["", "Context:", shorten(context.strip(), 8_000)]
    lines += ["", "When finished, summarise what you changed and how you verified it."]
    return "\n".join(lines)


class CompletionCheck(BaseModel):
    model_config = ConfigDict(frozen=True)

    complete: bool
    reasons: list[str] = Field(default_factory=list)
    """Why the result does not complete the subtask (empty when it does)."""
    warnings: list[str] = Field(default_factory=list)
    """Worth a look, but not a failure (files changed outside ``files_affected``, ...)."""


_FAILURE = re.compile(
    r"traceback \(most recent call last\)|\b\d+ (?:tests? )?failed\b|\btests? failed\b|"
    r"^\s*(?:error|fatal):|\bcould not\b|\bunable to\b|\bnot implemented\b",
    re.IGNORECASE | re.MULTILINE,
)
_TEXT_KEYS = ("output", "summary", "result", "message")
_FAILED_STATES = frozenset({"failed", "error", "errored", "cancelled", "timeout", "blocked"})


def check_completion(subtask: PlanSubtask, result: str | Mapping[str, Any]) -> CompletionCheck:
    """Judge an agent's report: a string, or a mapping with any of ``output``/``summary``,
    ``success``, ``exit_code``, ``status`` and ``files_changed``."""
    report: Mapping[str, Any] = {"output": result} if isinstance(result, str) else result
    text = next((str(report[k]) for k in _TEXT_KEYS if report.get(k)), "")
    changed = [str(f) for f in report.get("files_changed") or []]
    reasons: list[str] = []
    if report.get("success") is False:
        reasons.append("the agent reported failure")
    if report.get("exit_code") not in (None, 0):
        reasons.append(f"the agent exited with code {report['exit_code']}")
    if str(report.get("status", "")).lower() in _FAILED_STATES:
        reasons.append(f"the agent's status is {report['status']}")
    if not text.strip() and not changed:
        reasons.append("the agent reported no output and no changed files")
    failure = _FAILURE.search(text)
    if failure:
        reasons.append(f"the output reports a failure: {shorten(failure.group(0), 80)!r}")
    return CompletionCheck(
        complete=not reasons, reasons=reasons, warnings=_file_warnings(subtask, changed)
    )


def _file_warnings(subtask: PlanSubtask, changed: list[str]) -> list[str]:
    declared = set(subtask.files_affected)
    if not declared or not changed:
        return []
    warnings: list[str] = []
    outside = [f for f in changed if f not in declared]
    if outside:
        warnings.append("changed files not declared in files_affected: " + ", ".join(outside))
    if not declared.intersection(changed):
        warnings.append("none of the declared files was changed")
    return warnings
