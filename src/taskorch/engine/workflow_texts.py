"""What a workflow's files say in words (``engine.workflow_files`` writes them): the handoff a
completed subtask leaves for those that depend on it, and the completion report."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from taskorch.domain.models import Attempt, Subtask

if TYPE_CHECKING:
    from taskorch.engine.status import WorkflowStatus

_RESULT_TEXT = ("summary", "message")
"""Keys of a subtask's result whose short text a handoff quotes (never the agent's raw output:
it may hold anything the agent printed)."""
_TEXT_LIMIT = 2000


def handoff_text(status: WorkflowStatus, subtask: Subtask, assigned: Mapping[str, str]) -> str:
    """What a completed subtask leaves for the subtasks that depend on it."""
    result = subtask.result or {}
    files = _files_of(subtask)
    commits = [str(c) for c in _as_list(result.get("commits") or result.get("commit"))]
    waiting = [s for s in status.subtasks if subtask.key in s.dependencies]
    parallel = [s for s in status.subtasks if s.stage == subtask.stage and s.key != subtask.key]
    lines = [
        f"# Handoff: {subtask.key}",
        "",
        f"{_one_line(subtask.title)}",
        "",
        f"- workflow: {status.workflow.id} ({status.task.ref}: {_one_line(status.task.title)})",
        f"- stage: {subtask.stage + 1}",
        f"- agent: {subtask.agent_id or assigned.get(subtask.key) or 'unassigned'}",
        f"- attempts: {subtask.attempts}",
        f"- depended on: {', '.join(subtask.dependencies) or 'nothing'}",
        "",
        "## What it was asked",
        "",
        _clip(subtask.description) or "(no description)",
        "",
    ]
    if subtask.success_criteria:
        lines += ["Done when: " + _clip(subtask.success_criteria), ""]
    lines += ["## What it did", ""]
    for key in _RESULT_TEXT:
        if isinstance(result.get(key), str) and result[key].strip():
            lines += [_clip(result[key]), ""]
            break
    lines += ["Files:", *([f"- {f}" for f in files] or ["- (none recorded)"]), ""]
    if commits:
        lines += ["Commits:", *[f"- {c}" for c in commits], ""]
    lines += ["## For the subtasks that depend on it", ""]
    lines += [f"- {s.key}: {_one_line(s.title)} (stage {s.stage + 1})" for s in waiting] or [
        "- none: nothing waits on it"
    ]
    if parallel:
        lines += ["", "Ran beside it in the same stage: " + ", ".join(s.key for s in parallel)]
    return "\n".join(lines) + "\n"


def report_text(
    status: WorkflowStatus, attempts: Mapping[int, list[Attempt]], now: datetime
) -> str:
    """The completion report: outcome, delivery, subtasks, attempts, tokens, cost, duration."""
    workflow = status.workflow
    totals = _Usage()
    assigned = status.assignments()
    rows = []
    for subtask in status.subtasks:
        usage = _Usage.of(attempts.get(subtask.id, []))
        totals = totals.plus(usage)
        rows.append(
            f"| {subtask.key} | {_cell(subtask.title)} | {subtask.stage + 1} | "
            f"{subtask.status.value} | {subtask.agent_id or assigned.get(subtask.key) or '-'} | "
            f"{subtask.attempts} | "
            f"{usage.tokens_text} | {usage.cost_text} |"
        )
    started, ended = workflow.start_time, workflow.end_time or now
    duration = f"{(ended - started).total_seconds():.1f} s" if started else "unknown"
    merged = (workflow.result or {}).get("base_commit") if workflow.result else None
    delivery = status.target or {}
    lines = [
        f"# Report: {workflow.id}",
        "",
        f"- task: {status.task.ref}: {_one_line(status.task.title)}",
        f"- outcome: {workflow.status.value}",
        f"- repository: {delivery.get('repo') or 'the scratch repository'}"
        + (f" ({delivery['base_branch']})" if delivery.get("base_branch") else ""),
    ]
    if merged:
        lines.append(f"- merged as: {merged}")
    pull_request = workflow.metadata.get("pull_request")
    if isinstance(pull_request, Mapping) and pull_request.get("url"):
        lines.append(f"- pull request: {pull_request['url']}")
    lines += [
        f"- started: {started.isoformat() if started else 'not started'}",
        f"- ended: {ended.isoformat()}",
        f"- duration: {duration}",
        f"- subtasks: {len(status.subtasks)}; attempts: {totals.attempts}; "
        f"tokens: {totals.tokens_text}; cost: {totals.cost_text}",
    ]
    reason = (workflow.result or {}).get("error") or (workflow.result or {}).get("reason")
    if workflow.status.value != "merged" and reason:
        lines.append(f"- why: {_one_line(str(reason))}")
    lines += [
        "",
        "## Subtasks",
        "",
        "| subtask | title | stage | status | agent | attempts | tokens | cost |",
        "|---|---|---|---|---|---|---|---|",
        *rows,
    ]
    failed = [s for s in status.subtasks if s.error]
    if failed:
        lines += ["", "## Errors", ""] + [f"- {s.key}: {_one_line(s.error or '')}" for s in failed]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, slots=True)
class _Usage:
    attempts: int = 0
    tokens: int | None = None
    cost_usd: float | None = None

    @classmethod
    def of(cls, attempts: list[Attempt]) -> _Usage:
        counted = [a for a in attempts if a.tokens_in is not None or a.tokens_out is not None]
        priced = [a.cost_usd for a in attempts if a.cost_usd is not None]
        return cls(
            attempts=len(attempts),
            tokens=sum((a.tokens_in or 0) + (a.tokens_out or 0) for a in counted)
            if counted
            else None,
            cost_usd=sum(priced) if priced else None,
        )

    def plus(self, other: _Usage) -> _Usage:
        def add(a: Any, b: Any) -> Any:
            return b if a is None else a if b is None else a + b

        return _Usage(
            self.attempts + other.attempts,
            add(self.tokens, other.tokens),
            add(self.cost_usd, other.cost_usd),
        )

    @property
    def tokens_text(self) -> str:
        return "unknown" if self.tokens is None else str(self.tokens)

    @property
    def cost_text(self) -> str:
        return "unknown" if self.cost_usd is None else f"${self.cost_usd:.4f}"


def _files_of(subtask: Subtask) -> list[str]:
    result = subtask.result or {}
    found = result.get("changed_files") or result.get("files") or subtask.files_affected
    return [str(f) for f in _as_list(found)]


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple) else [value]


def _one_line(text: str) -> str:
    return " ".join(text.split())[:300]


def _clip(text: str) -> str:
    text = text.strip()
    return text if len(text) <= _TEXT_LIMIT else text[: _TEXT_LIMIT - 1] + "…"


def _cell(text: str) -> str:
    return _one_line(text).replace("|", "\\|")
