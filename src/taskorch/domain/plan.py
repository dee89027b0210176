"""The plan format of DESIGN.md: what the planner produces and ``parse --json`` prints.

The models mirror the JSON field for field and in the same order, so a plan round-trips exactly:
``Plan.from_json(text).to_json()`` is the same document. Extension fields that the format does not
name (a shell subtask's ``command``) are left out of the JSON while unset.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_serializer
from pydantic_core.core_schema import SerializerFunctionWrapHandler


class Domain(StrEnum):
    """The masters a subtask can be owned by."""

    DEVELOPMENT = "development"
    SECURITY = "security"
    INVENTORY = "inventory"
    CICD = "cicd"
    DOCS = "docs"


class WorkerType(StrEnum):
    PLANNER = "planner"
    IMPLEMENTATION = "implementation"
    TEST = "test"
    AUDIT = "audit"
    DOCUMENTATION = "documentation"
    DEPLOY = "deploy"


class Complexity(StrEnum):
    SIMPLE = "simple"
    MEDIUM = "medium"
    HIGH = "high"


MAX_FILES_PER_SUBTASK = 3
MAX_STAGES = 10
MIN_COMPLEX_SUBTASKS = 3
MAX_SUBTASKS = 10

_OMITTED_WHEN_UNSET = frozenset({"command", "best_of"})


class _PlanModel(BaseModel):
    model_config = ConfigDict(extra="forbid", use_enum_values=False, validate_assignment=False)


class PlanSubtask(_PlanModel):
    subtask_id: str = Field(min_length=1)
    parent_task_id: str
    title: str
    description: str = ""
    assigned_to: Domain
    worker_type: WorkerType
    dependencies: list[str] = Field(default_factory=list)
    estimated_duration_minutes: int = Field(default=15, ge=0)
    estimated_tokens: int = Field(default=5000, ge=0)
    files_affected: list[str] = Field(default_factory=list)
    success_criteria: str = ""
    status: str = "pending"
    command: list[str] | None = None
    """argv of a deterministic step run by the shell adapter; not part of the published format."""
    best_of: int | None = Field(default=None, ge=1, le=5)
    """Run this subtask on this many agents at once and merge the first whose work passes
    validation (see ``domain.best_of``); not part of the published format."""

    @model_serializer(mode="wrap")
    def _drop_unset_extensions(self, handler: SerializerFunctionWrapHandler) -> dict[str, Any]:
        data: dict[str, Any] = handler(self)
        for key in _OMITTED_WHEN_UNSET:
            if data.get(key) is None:
                data.pop(key, None)
        return data


class ResourceEstimate(_PlanModel):
    total_subtasks: int = 0
    duration_estimate: str = ""
    token_estimate: int = 0
    masters: list[str] = Field(default_factory=list)
    workers: int = 0
    parallelization_possible: bool = False
    bottlenecks: list[str] = Field(default_factory=list)


class Progress(_PlanModel):
    current_stage: int = 1
    completed_subtasks: list[str] = Field(default_factory=list)
    active_subtasks: list[str] = Field(default_factory=list)
    failed_subtasks: list[str] = Field(default_factory=list)
    zombie_subtasks: list[str] = Field(default_factory=list)


class Plan(_PlanModel):
    orchestration_id: str
    parent_task_id: str
    task_title: str
    complexity: Complexity
    status: str = "planning"
    subtasks: list[PlanSubtask]
    execution_plan: dict[str, list[str]] = Field(default_factory=dict)
    resource_estimate: ResourceEstimate = Field(default_factory=ResourceEstimate)
    progress: Progress = Field(default_factory=Progress)

    @classmethod
    def from_json(cls, text: str | bytes) -> Plan:
        return cls.model_validate_json(text)

    def to_json(self, *, indent: int | None = 2) -> str:
        return self.model_dump_json(indent=indent)

    def to_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json")

    @property
    def is_simple(self) -> bool:
        return self.complexity is Complexity.SIMPLE

    def subtask(self, subtask_id: str) -> PlanSubtask:
        for subtask in self.subtasks:
            if subtask.subtask_id == subtask_id:
                return subtask
        raise KeyError(subtask_id)


def stage_key(index: int) -> str:
    """The ``execution_plan`` key of the 0-based stage ``index``: ``stage_1``, ``stage_2``, ..."""
    return f"stage_{index + 1}"
