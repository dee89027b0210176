"""The specification's camelCase argument names beside taskorch's snake_case ones, and the check
that a call names only arguments the tool takes.

Both names of an argument are in the tool's input schema (so a client and its model see them);
a call may use either, and one that gives both with different values, or an argument the tool
does not take, is a one-line tool error rather than something quietly ignored.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, TypeVar

from taskorch.domain.errors import InputError
from taskorch.domain.limits import echo_safe

T = TypeVar("T")

SPEC_NAMES = {
    "task_id": "taskId",
    "task_ids": "taskIds",
    "workflow_id": "workflowId",
    "enable_nlp": "enableNLP",
    "enable_agent_coordination": "enableAgentCoordination",
    "max_concurrent_workflows": "maxConcurrentWorkflows",
}
"""taskorch's name -> the specification's, for arguments that are the same thing under two
names (``parse_requirements`` also takes the specification's ``description`` for
``requirement``)."""


def spec_name(ours: str) -> str:
    return SPEC_NAMES.get(ours, ours)


def pick(ours: str, value: T | None, theirs: str, their_value: T | None) -> T | None:
    """The one value given under either name (None: neither)."""
    if value is not None and their_value is not None and value != their_value:
        raise InputError(f"{ours} and {theirs} are the same argument: give one of them")
    return value if value is not None else their_value


def need(ours: str, value: T | None, theirs: str, their_value: T | None) -> T:
    """An argument that must be given, under either name."""
    chosen = pick(ours, value, theirs, their_value)
    if chosen is None:
        raise InputError(f"{ours} (or {theirs}) is required")
    return chosen


def check_known(tool: str, arguments: Mapping[str, Any], accepted: Iterable[str]) -> None:
    """An argument the tool does not take is an error naming it and what the tool takes."""
    known = set(accepted)
    unknown = sorted(str(name) for name in arguments if name not in known)
    if unknown:
        names = ", ".join(echo_safe(name, 60) for name in unknown[:5])
        raise InputError(
            f"{tool} takes no argument {names}: it takes {', '.join(sorted(known)) or 'none'}"
        )
