"""What an agent is told about its subtask's place in the plan, beside the subtask itself.

The specification's task-orchestrator hands each agent the context of its handoff: the
dependencies already done and what they did, the subtasks waiting on this one, the ones running in
parallel, and the requirement it all comes from. :func:`briefing_for` gathers that from the
workflow's subtasks (pure: the caller reads them); :func:`briefing_text` is the text appended to
the subtask's own instructions.

Bounded so a big plan cannot flood a prompt: at most :data:`MAX_LISTED` subtasks per list (the
rest counted, never silently left out), :data:`SUMMARY_CHARS` of each dependency's summary, and
:data:`REQUIREMENT_CHARS` of the requirement and of its context.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

MAX_LISTED = 12
SUMMARY_CHARS = 600
REQUIREMENT_CHARS = 4_000


class Briefed(Protocol):
    """What a briefing reads of a subtask (a stored :class:`~taskorch.domain.models.Subtask`)."""

    @property
    def key(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def dependencies(self) -> list[str]: ...
    @property
    def files_affected(self) -> list[str]: ...
    @property
    def stage(self) -> int: ...
    @property
    def result(self) -> Mapping[str, Any] | None: ...


@dataclass(frozen=True, slots=True)
class Neighbour:
    """Another subtask of the plan, as the agent hears of it."""

    key: str
    title: str
    summary: str = ""
    """For a dependency that is done: what its agent said it did."""
    files: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Briefing:
    requirement: str = ""
    """The requirement the plan was made from (its title and description)."""
    context: str = ""
    """What the requirement came with: an imported task's details, a test strategy, ..."""
    done: tuple[Neighbour, ...] = ()
    """Dependencies already completed, with their summaries."""
    waiting: tuple[Neighbour, ...] = ()
    """Subtasks that depend directly on this one."""
    parallel: tuple[Neighbour, ...] = ()
    """Subtasks of the same stage, which may run at the same time in other worktrees."""

    @property
    def empty(self) -> bool:
        return not (self.requirement or self.context or self.done or self.waiting or self.parallel)


def briefing_for(
    subtask: Briefed,
    siblings: Sequence[Briefed],
    *,
    requirement: str = "",
    context: str = "",
) -> Briefing:
    """The briefing of ``subtask`` among ``siblings`` (the workflow's subtasks, it included)."""
    others = [s for s in siblings if s.key != subtask.key]
    by_key = {s.key: s for s in others}
    done = [
        _neighbour(dep, summary=_summary(dep.result))
        for key in subtask.dependencies
        if (dep := by_key.get(key)) is not None and dep.result is not None
    ]
    waiting = [_neighbour(s) for s in others if subtask.key in s.dependencies]
    related = set(subtask.dependencies) | {s.key for s in waiting}
    parallel = [
        _neighbour(s, files=tuple(s.files_affected))
        for s in others
        if s.stage == subtask.stage and s.key not in related
    ]
    return Briefing(
        requirement.strip(), context.strip(), tuple(done), tuple(waiting), tuple(parallel)
    )


def briefing_text(briefing: Briefing) -> str:
    """The briefing as sections of plain text (empty for an empty briefing)."""
    sections: list[str] = []
    if briefing.requirement:
        sections.append("The requirement:\n" + _shorten(briefing.requirement, REQUIREMENT_CHARS))
    if briefing.context:
        sections.append("Its context:\n" + _shorten(briefing.context, REQUIREMENT_CHARS))
    if briefing.done:
        sections.append(
            "Done before you (build on this work, do not redo it):\n" + _list(briefing.done)
        )
    if briefing.waiting:
        sections.append(
            "Waiting on your work (leave what they need in place):\n" + _list(briefing.waiting)
        )
    if briefing.parallel:
        sections.append(
            "Running in parallel in other worktrees (leave their files to them):\n"
            + _list(briefing.parallel)
        )
    return "\n\n".join(sections)


def with_briefing(instructions: str, briefing: Briefing) -> str:
    """The subtask's own instructions followed by its briefing."""
    text = briefing_text(briefing)
    return f"{instructions.rstrip()}\n\n{text}" if text else instructions


def _neighbour(sub: Briefed, *, summary: str = "", files: tuple[str, ...] = ()) -> Neighbour:
    return Neighbour(sub.key, sub.title, summary, files)


def _summary(result: Mapping[str, Any] | None) -> str:
    if not result:
        return ""
    said = str(result.get("output") or result.get("summary") or "").strip()
    changed = result.get("changed_files")
    if isinstance(changed, list) and changed:
        said += f" (changed: {', '.join(map(str, changed[:10]))}"
        said += f", +{len(changed) - 10} more)" if len(changed) > 10 else ")"
    return _shorten(" ".join(said.split()), SUMMARY_CHARS)


def _list(items: Sequence[Neighbour]) -> str:
    lines = []
    for item in items[:MAX_LISTED]:
        line = f"- {item.key}: {item.title}"
        if item.summary:
            line += f" — {item.summary}"
        if item.files:
            line += f" (files: {', '.join(item.files[:8])})"
        lines.append(line)
    if len(items) > MAX_LISTED:
        lines.append(f"- and {len(items) - MAX_LISTED} more")
    return "\n".join(lines)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1].rstrip() + "…"
