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
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from taskorch.domain.errors import TaskorchError
from taskorch.domain.models import Attempt
from taskorch.domain.states import WORKFLOW_TERMINAL, SubtaskState
from taskorch.engine.workflow_texts import handoff_text, report_text

if TYPE_CHECKING:
    from taskorch.engine.engine import OrchestrationEngine
    from taskorch.engine.status import WorkflowStatus

log = logging.getLogger(__name__)

FOLDER = "workflows"
_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_STATE_EVENTS = frozenset(
    {"workflow:transition", "workflow:escalated", "task:complete", "task:failed", "task:blocked"}
)
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
        folders = {
            workflow_id: folder
            for workflow_id in by_workflow
            if (folder := workflow_folder(self.engine.settings.home, workflow_id)) is not None
        }
        if not folders:
            return
        # The batch's workflows are read at once (on SQLite their reads share two trips) and
        # their files written in one hop to a thread: per workflow, that was two trips per
        # read and two hops, for each of the batch's several workflows.
        stated = [w for w in folders if _moved(by_workflow[w])]
        read = await asyncio.gather(*(self._state(w) for w in stated), return_exceptions=True)
        states = dict(zip(stated, read, strict=True))
        writes = [(folders[w], by_workflow[w], states.get(w)) for w in folders]
        failures = await asyncio.to_thread(_write_workflows, writes)
        for workflow_id, exc in zip(folders, failures, strict=True):
            if isinstance(exc, asyncio.CancelledError):
                raise exc
            if exc is None:
                self._failing = False
            elif not self._failing:
                # A record for people, not state: a full disk, a closed store or a bug here
                # never stops the work; said once until the files can be written again.
                said = exc.message if isinstance(exc, TaskorchError) else repr(exc)
                log.warning("cannot write the files of workflow %s: %s", workflow_id, said)
                self._failing = True

    async def _state(self, workflow_id: str) -> _State:
        status = await self.engine.get_workflow_status(workflow_id)
        ended = status.workflow.status in WORKFLOW_TERMINAL
        # The report's attempts by subtask are the status's own (read with it, in number order):
        # read again subtask by subtask, they cost a read per subtask at every workflow's end.
        attempts: dict[int, list[Attempt]] = {}
        if ended:
            for _, attempt in status.attempts:
                attempts.setdefault(attempt.subtask_id, []).append(attempt)
        return status, attempts, datetime.now(UTC), ended


_State = tuple["WorkflowStatus", dict[int, list[Attempt]], datetime, bool]
"""What a workflow's state files are written from: its status, its attempts by subtask, the
time and whether it has ended."""


def _moved(records: Sequence[dict[str, Any]]) -> bool:
    """Whether these events change what ``state.json`` says."""
    return any(r.get("event") in _STATE_EVENTS for r in records)


def _drain(inbox: asyncio.Queue[dict[str, Any]]) -> list[dict[str, Any]]:
    records = []
    while not inbox.empty():
        records.append(inbox.get_nowait())
    return records


# --- the files (in a thread) -------------------------------------------------------------------


def _write_workflows(
    writes: Sequence[tuple[Path, list[dict[str, Any]], _State | BaseException | None]],
) -> list[BaseException | None]:
    """Each workflow's events appended and its state files written (when it has a state to
    write: None for none, the error its read raised); what each failed with, None for none."""
    failures: list[BaseException | None] = []
    for folder, records, state in writes:
        try:
            _append_events(folder, records)
            if isinstance(state, BaseException):
                raise state
            if state is not None:
                _write_files(folder, *state)
        except BaseException as exc:  # (a cancelled read's too: the caller raises it again)
            failures.append(exc)
            continue
        failures.append(None)
    return failures


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
