"""The task-orchestrator agent's files: what a workflow did, as files a person or an agent can
read, under ``<TASKORCH_HOME>/workflows/<workflow id>/``.

``plan.json``
    The plan: subtasks, stages, dependencies, estimates, and which planner made it.
``state.json``
    The workflow's state as the API shows it (``GET /api/v1/workflows/<id>``), rewritten at each
    transition and each subtask outcome (gathered: half a second's at once, more for a big
    workflow, see :data:`GATHER_S`).
``handoffs/<subtask>.md``
    Written when a subtask completes: what it was asked, what it did (agent, attempts, files,
    commits) and which subtasks wait on it, for the subtasks that depend on it.
``dashboard-events.jsonl``
    One JSON line per event of the workflow, as the dashboard's live stream carries it.
``report.md``
    Written when the workflow ends: its outcome, where the code went, each subtask with its agent,
    attempts, tokens and cost, and the duration.

They are written by :class:`WorkflowFiles`, a subscriber to the engine's events, from the stored
state (never sprinkled through the pipeline), in the process that sees the events; the store
stays the truth and nothing reads these back. ``taskorch gc`` removes them with the rest of a
workflow's leftovers; ``TASKORCH_WORKFLOW_FILES=false`` turns them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskorch.domain.errors import TaskorchError
from taskorch.domain.models import Attempt, Subtask
from taskorch.domain.states import WORKFLOW_TERMINAL, SubtaskState

if TYPE_CHECKING:
    from taskorch.engine.engine import OrchestrationEngine
    from taskorch.engine.status import WorkflowStatus

log = logging.getLogger(__name__)

FOLDER = "workflows"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STATE_EVENTS = frozenset(
    {"workflow:transition", "workflow:escalated", "task:complete", "task:failed", "task:blocked"}
)
_RESULT_TEXT = ("summary", "message")
"""Keys of a subtask's result whose short text a handoff quotes (never the agent's raw output:
it may hold anything the agent printed)."""
_TEXT_LIMIT = 2000
GATHER_S = 0.5
"""How long, at least, the events after one are gathered before the files are written."""
GATHER_PER_WRITE = 20
GATHER_MAX_S = 5.0
"""A big workflow's ``state.json`` takes longer to write (it reads every subtask): events are
gathered ``GATHER_PER_WRITE`` times as long as the last write took, up to ``GATHER_MAX_S``, so the
files never take more than about a twentieth of the process. ``state.json`` trails the store by
at most that much while the workflow runs (and not at all once the command that ran it has
stopped)."""


def workflow_folder(home: Path, workflow_id: str) -> Path | None:
    """Where a workflow's files go; None for an id that is not a plain name."""
    return home / FOLDER / workflow_id if _plain(workflow_id) else None


def _plain(name: str) -> bool:
    """A name that is one path part (ids and subtask keys are; a stored one could be anything)."""
    return bool(_SAFE_ID.fullmatch(name)) and name not in {".", ".."}


class WorkflowFiles:
    """The subscriber: :meth:`start` with the engine, :meth:`stop` before its store closes (the
    events still queued are written first, so a command's last workflow gets its report)."""

    def __init__(self, engine: OrchestrationEngine) -> None:
        self.engine = engine
        self._inbox: asyncio.Queue[dict[str, Any]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._failing = False
        self._gathered: list[dict[str, Any]] = []
        self._writing: asyncio.Future[None] | None = None

    def start(self) -> None:
        if self._task is not None or not self.engine.settings.taskorch_workflow_files:
            return
        self._inbox = self.engine.events.subscribe()
        self._task = asyncio.create_task(self._run(), name="workflow-files")

    async def stop(self) -> None:
        task, inbox = self._task, self._inbox
        if task is None or inbox is None:
            return
        self._task = None
        self.engine.events.unsubscribe(inbox)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        if self._writing is not None:
            await self._writing
        # What came in since the last batch (and what was being gathered when stopped).
        batch, self._gathered = [*self._gathered, *_drain(inbox)], []
        await self._write_batch(batch)

    async def _run(self) -> None:
        inbox = self._inbox
        assert inbox is not None
        pause_s = GATHER_S
        while True:
            self._gathered = [await inbox.get()]
            # Events come in bursts (a subtask's outcome, the next one's start): one state.json
            # per burst, not per event; rewriting it reads the whole workflow (every subtask), so
            # per event a workflow of N subtasks cost N^2 row reads.
            await asyncio.sleep(pause_s)
            batch, self._gathered = [*self._gathered, *_drain(inbox)], []
            # Shielded: stop() lets a batch being written finish (cut off, its state.json would
            # be lost, and written again its events would be doubled).
            started = time.perf_counter()
            self._writing = asyncio.ensure_future(self._write_batch(batch))
            await asyncio.shield(self._writing)
            took = time.perf_counter() - started
            pause_s = min(GATHER_MAX_S, max(GATHER_S, GATHER_PER_WRITE * took))

    async def _write_batch(self, records: Sequence[dict[str, Any]]) -> None:
        by_workflow: dict[str, list[dict[str, Any]]] = {}
        for record in records:
            workflow_id = record.get("workflow_id")
            if isinstance(workflow_id, str):
                by_workflow.setdefault(workflow_id, []).append(record)
        for workflow_id, mine in by_workflow.items():
            folder = workflow_folder(self.engine.settings.home, workflow_id)
            if folder is None:
                continue
            try:
                await asyncio.to_thread(_append_events, folder, mine)
                if any(r.get("event") in _STATE_EVENTS for r in mine):
                    await self._write_state(folder, workflow_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A record for people, not state: a full disk, a closed store or a bug here never
                # stops the work; said once until the files can be written again.
                if not self._failing:
                    said = exc.message if isinstance(exc, TaskorchError) else repr(exc)
                    log.warning("cannot write the files of workflow %s: %s", workflow_id, said)
                    self._failing = True
                continue
            self._failing = False

    async def _write_state(self, folder: Path, workflow_id: str) -> None:
        status = await self.engine.get_workflow_status(workflow_id)
        ended = status.workflow.status in WORKFLOW_TERMINAL
        # The report's attempts by subtask are the status's own (read with it, in number order):
        # read again subtask by subtask, they cost a read per subtask at every workflow's end.
        attempts: dict[int, list[Attempt]] = {}
        if ended:
            for _, attempt in status.attempts:
                attempts.setdefault(attempt.subtask_id, []).append(attempt)
        now = datetime.now(UTC)
        await asyncio.to_thread(_write_files, folder, status, attempts, now, ended)


def _drain(inbox: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    records = []
    while not inbox.empty():
        records.append(inbox.get_nowait())
    return records


# --- the files (in a thread) -------------------------------------------------------------------


def _write_files(
    folder: Path,
    status: WorkflowStatus,
    attempts: Mapping[int, list[Attempt]],
    now: datetime,
    ended: bool,
) -> None:
    state = {"updated_at": now.isoformat(), **status.to_dict()}
    _write(folder / "state.json", json.dumps(state, indent=2, default=str) + "\n")
    metadata = status.workflow.metadata
    if metadata.get("plan") and not (folder / "plan.json").exists():
        plan = {
            "workflow_id": status.workflow.id,
            "task": status.task.ref,
            "planner": metadata.get("planner"),
            "complexity": metadata.get("complexity"),
            "stages": metadata.get("stages"),
            "plan": metadata["plan"],
        }
        _write(folder / "plan.json", json.dumps(plan, indent=2, default=str) + "\n")
    assigned = status.assignments()
    for subtask in status.subtasks:
        handoff = folder / "handoffs" / f"{subtask.key}.md"
        done = subtask.status is SubtaskState.COMPLETED
        if done and _plain(subtask.key) and not handoff.exists():
            _write(handoff, handoff_text(status, subtask, assigned))
    if ended:
        _write(folder / "report.md", report_text(status, attempts, now))


def _append_events(folder: Path, records: list[dict[str, Any]]) -> None:
    _make_folder(folder)
    lines = "".join(json.dumps(r, default=str, separators=(",", ":")) + "\n" for r in records)
    descriptor = os.open(
        folder / "dashboard-events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600
    )
    with os.fdopen(descriptor, "a", encoding="utf-8") as file:
        file.write(lines)


def _write(path: Path, text: str) -> None:
    """Whole or not at all (a temporary file renamed over it), readable by its owner only."""
    _make_folder(path.parent)
    temporary = path.with_name(f".{path.name}.tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as file:
        file.write(text)
    os.replace(temporary, path)


def _make_folder(folder: Path) -> None:
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)


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
