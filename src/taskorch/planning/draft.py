"""What a model is asked for and how its answer becomes a plan.

A model writes a *draft*: the title, the complexity and the subtasks. Everything derived (stages,
resource estimate, progress, ids of the parent task) is computed by taskorch, so the schema does not
even offer those fields. The draft is validated twice: against :class:`PlanDraft` (shape and types)
and against the plan rules (:func:`taskorch.planning.rules.enforce`); either failure is reported
back to the model once, in words it can act on.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from taskorch.domain.errors import PlannerError
from taskorch.domain.plan import (
    MAX_FILES_PER_SUBTASK,
    MAX_STAGES,
    MAX_SUBTASKS,
    MIN_COMPLEX_SUBTASKS,
    Complexity,
    Domain,
    Plan,
    PlanSubtask,
    WorkerType,
)
from taskorch.planning.rules import enforce
from taskorch.planning.text import shorten

MAX_PROMPT_CHARS = 60_000
"""The requirement (and context) sent to a model is cut to this; a plan needs the gist, not 1 MB."""


class DraftSubtask(BaseModel):
    model_config = ConfigDict(extra="ignore")

    subtask_id: str = Field(min_length=1, max_length=80, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    title: str = Field(min_length=1)
    description: str
    assigned_to: Domain
    worker_type: WorkerType
    dependencies: list[str]
    estimated_duration_minutes: int = Field(ge=1, le=24 * 60)
    estimated_tokens: int = Field(ge=0)
    files_affected: list[str]
    success_criteria: str = Field(min_length=1)


class PlanDraft(BaseModel):
    model_config = ConfigDict(extra="ignore")

    task_title: str = Field(min_length=1)
    complexity: Complexity
    subtasks: list[DraftSubtask] = Field(min_length=1)


def _string_array() -> dict[str, Any]:
    return {"type": "array", "items": {"type": "string"}}


_SUBTASK_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "subtask_id": {"type": "string"},
        "title": {"type": "string"},
        "description": {"type": "string"},
        "assigned_to": {"type": "string", "enum": [d.value for d in Domain]},
        "worker_type": {"type": "string", "enum": [w.value for w in WorkerType]},
        "dependencies": _string_array(),
        "estimated_duration_minutes": {"type": "integer"},
        "estimated_tokens": {"type": "integer"},
        "files_affected": _string_array(),
        "success_criteria": {"type": "string"},
    },
    "required": list(DraftSubtask.model_fields),
    "additionalProperties": False,
}
PLAN_DRAFT_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "task_title": {"type": "string"},
        "complexity": {"type": "string", "enum": [c.value for c in Complexity]},
        "subtasks": {"type": "array", "items": _SUBTASK_SCHEMA},
    },
    "required": list(PlanDraft.model_fields),
    "additionalProperties": False,
}
"""The answer's JSON schema, written for structured-output modes: every property required, no
extra properties, no keywords those modes reject (lengths and ranges are checked afterwards)."""

SYSTEM_PROMPT = f"""\
You are the planner of taskorch, an engine that runs coding agents in parallel. Turn the user's \
requirement into a plan and answer with one JSON object that follows the given schema, nothing else.

Rules:
- A simple task (one domain, at most {MAX_FILES_PER_SUBTASK} files, no external dependencies, \
under 30 minutes, a clear instruction) has complexity "simple" and exactly 1 subtask.
- A complex task (several domains, 4 or more files or a whole system, sequential steps, over 30 \
minutes) has complexity "medium" or "high" and {MIN_COMPLEX_SUBTASKS}-{MAX_SUBTASKS} subtasks.
- Each subtask has one owner (assigned_to: {", ".join(d.value for d in Domain)}), one worker \
type ({", ".join(w.value for w in WorkerType)}), one responsibility, measurable \
success_criteria and at most {MAX_FILES_PER_SUBTASK} files in files_affected (files it changes).
- subtask_id values are unique, short and lower-case, like "auth-001-design".
- dependencies list the subtask_ids that must finish first. No cycles; at most {MAX_STAGES} \
sequential stages. Independent work shares a stage, so give it the same dependencies.
- Usual order: design, implementation, tests, security audit, documentation, deployment; \
follow explicit order in the requirement ("then", "after", "before") over the usual order.
- Estimate minutes and tokens per subtask for a capable coding agent.
"""


def user_prompt(description: str, context: str | None) -> str:
    text = _bounded(description)
    if context and context.strip():
        return f"Requirement:\n{text}\n\nContext:\n{_bounded(context)}"
    return f"Requirement:\n{text}"


def repair_prompt(error: str) -> str:
    return (
        f"That answer is not a valid plan: {error}\n"
        "Reply with the corrected plan: one JSON object following the schema and the rules."
    )


def _bounded(text: str) -> str:
    text = text.strip()
    if len(text) <= MAX_PROMPT_CHARS:
        return text
    return text[:MAX_PROMPT_CHARS] + f"\n[... cut: {len(text)} characters in all]"


_FENCE = re.compile(r"^```(?:json)?\s*(?P<body>.*?)\s*```$", re.DOTALL)


def parse_draft(answer: str) -> PlanDraft:
    """The draft in a model's answer, or a :class:`PlannerError` saying what is wrong with it."""
    text = answer.strip()
    fenced = _FENCE.match(text)
    if fenced:
        text = fenced["body"]
    if not text:
        raise PlannerError("the answer is empty; expected one JSON object")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise PlannerError(f"the answer is not JSON ({exc.msg} at character {exc.pos})") from None
    try:
        return PlanDraft.model_validate(data)
    except ValidationError as exc:
        raise PlannerError(describe_validation(exc)) from None


def describe_validation(exc: ValidationError, limit: int = 5) -> str:
    """The first few schema errors as one line: "subtasks.0.worker_type: Input should be ..."."""
    parts = []
    for error in exc.errors()[:limit]:
        where = ".".join(str(p) for p in error["loc"]) or "answer"
        parts.append(f"{where}: {error['msg']}")
    more = exc.error_count() - limit
    return "; ".join(parts) + (f"; and {more} more error(s)" if more > 0 else "")


def draft_to_plan(draft: PlanDraft, parent_task_id: str) -> Plan:
    """The plan of a validated draft, through the rules; a :class:`PlanError` if it breaks one."""
    subtasks = [
        PlanSubtask(parent_task_id=parent_task_id, **subtask.model_dump())
        for subtask in draft.subtasks
    ]
    plan = Plan(
        orchestration_id=f"orch-{parent_task_id}",
        parent_task_id=parent_task_id,
        task_title=shorten(draft.task_title, 200),
        complexity=draft.complexity,
        subtasks=subtasks,
    )
    return enforce(plan)


def answer_to_plan(answer: str, parent_task_id: str) -> tuple[Plan, str]:
    """The plan of a model's answer and the canonical draft JSON (what the cache keeps).

    Raises :class:`PlannerError` for a malformed answer and :class:`PlanError` for a rule broken.
    """
    draft = parse_draft(answer)
    return draft_to_plan(draft, parent_task_id), draft.model_dump_json()
