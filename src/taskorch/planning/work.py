"""A subtask in the making, shared by the heuristic planner and its recipes."""

from __future__ import annotations

from dataclasses import dataclass, field

from taskorch.domain.plan import Domain, WorkerType
from taskorch.planning.text import shorten

DESCRIPTION_CHARS = 4_000
"""A subtask carries at most this much of the requirement; agents get the rest as context."""

KIND_SLUGS = {
    WorkerType.PLANNER: "design",
    WorkerType.IMPLEMENTATION: "build",
    WorkerType.TEST: "tests",
    WorkerType.AUDIT: "audit",
    WorkerType.DOCUMENTATION: "docs",
    WorkerType.DEPLOY: "deploy",
}


@dataclass(slots=True)
class Work:
    """A subtask in the making; ``key`` (group, phase, step) orders it: work with equal keys
    runs in parallel, every key waits for the one before."""

    key: tuple[int, int, int]
    worker_type: WorkerType
    domain: Domain
    title: str
    label: str
    slug: str
    description: str
    files: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    minutes: int = 0
    size: int = 1
    """How many items were merged into it."""
    source: str = ""
    """The requirement text it came from (empty for implied work)."""
    shaped: bool = False
    """Made by a recipe that plans its own design and verification (no implied ones)."""
    criteria: str = ""
    """Success criteria of its own (else the worker type's, see ``success_criteria_for``)."""


def bounded(text: str) -> str:
    if len(text) <= DESCRIPTION_CHARS:
        return text
    return shorten(text, DESCRIPTION_CHARS) + f" [requirement truncated: {len(text)} characters]"
