"""Retention: what finished workflows leave behind, removed once they are old enough.

``taskorch gc --older-than 30d`` (and ``serve`` with ``TASKORCH_GC_OLDER_THAN``) takes each
workflow that ended (merged, failed or cancelled) before the cutoff and removes its task logs,
its stored events and its lines in ``events.jsonl``, its workflow files (plan, state, handoffs,
events, report: :mod:`taskorch.engine.workflow_files`), its worktrees, and its branches whose work
is merged (the workspace's own cleanup: a branch holding unmerged work is never deleted). The
workflow, its history, subtasks and attempts stay, marked ``collected_at`` so the next pass
skips it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from taskorch.domain.errors import TaskorchError
from taskorch.domain.models import Workflow
from taskorch.domain.states import WorkflowState
from taskorch.engine.evidence import output_folder
from taskorch.engine.workflow_files import workflow_folder
from taskorch.store.retention import delete_events, finished_before

if TYPE_CHECKING:
    from taskorch.engine.engine import OrchestrationEngine

log = logging.getLogger(__name__)

MAX_AGE_S = 10 * 365 * 86400.0
"""The largest ``--older-than`` taskorch takes (ten years)."""


@dataclass(frozen=True, slots=True)
class CollectReport:
    cutoff: datetime
    dry_run: bool
    workflows: list[str] = field(default_factory=list)
    task_logs: int = 0
    events: int = 0
    event_lines: int = 0
    worktrees: int = 0
    problems: list[str] = field(default_factory=list)
    workflow_files: int = 0
    """Folders of workflow files (plan, state, handoffs, events, report) removed."""

    def to_json(self) -> dict[str, object]:
        return {
            "cutoff": self.cutoff.isoformat(),
            "dry_run": self.dry_run,
            "workflows": self.workflows,
            "task_logs": self.task_logs,
            "events": self.events,
            "event_lines": self.event_lines,
            "worktrees": self.worktrees,
            "problems": self.problems,
            "workflow_files": self.workflow_files,
        }


async def collect_garbage(
    engine: OrchestrationEngine, older_than_s: float, *, dry_run: bool = False
) -> CollectReport:
    """Remove what the workflows that ended more than ``older_than_s`` ago left behind."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    connector = engine.store.connector
    old = [w for w in await finished_before(connector, cutoff) if "collected_at" not in w.metadata]
    ids = [w.id for w in old]
    home = engine.settings.home
    folder = engine.settings.task_logs_path
    logs = [p for wf in ids for p in sorted(folder.glob(f"{wf}-*.json"))]
    folders = [f for wf in ids if (f := workflow_folder(home, wf)) is not None]
    kept = [f for f in folders if await asyncio.to_thread(f.is_dir)]
    if dry_run:
        return CollectReport(cutoff, True, ids, task_logs=len(logs), workflow_files=len(kept))
    problems: list[str] = []
    worktrees = 0
    for workflow in old:
        worktrees += await _clean_workspace(engine, workflow, problems)
    for path in logs:
        await asyncio.to_thread(path.unlink, missing_ok=True)
    for folder in kept:
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
    for output in filter(None, (output_folder(home, wf) for wf in ids)):
        await asyncio.to_thread(shutil.rmtree, output, ignore_errors=True)  # attempts' output
    events = await delete_events(connector, ids)
    lines = await asyncio.to_thread(_drop_event_lines, engine.events.jsonl_path, set(ids))
    stamp = {"collected_at": datetime.now(UTC).isoformat()}
    for workflow in old:
        await engine.store.annotate_workflow(workflow.id, workflow.status, stamp)
    return CollectReport(
        cutoff, False, ids, len(logs), events, lines, worktrees, problems, len(kept)
    )


async def _clean_workspace(
    engine: OrchestrationEngine, workflow: Workflow, problems: list[str]
) -> int:
    """The delivery's cleanup (worktrees, merged branches), then any folder it left; how many
    worktree folders were there."""
    roots = [engine.settings.worktrees_root / workflow.id, engine.settings.home / "worktrees"]
    folders = [roots[0], roots[1] / workflow.id]
    present = sum(await asyncio.gather(*(asyncio.to_thread(f.is_dir) for f in folders)))
    if engine.delivery is not None:
        try:
            cancelled = workflow.status is WorkflowState.CANCELLED
            await engine.delivery.cleanup(workflow, cancelled=cancelled)
        except TaskorchError as exc:
            problems.append(f"{workflow.id}: {exc.message}")
    for folder in folders:
        await asyncio.to_thread(shutil.rmtree, folder, ignore_errors=True)
    return int(present)


def _drop_event_lines(path: Path | None, workflow_ids: set[str]) -> int:
    """Rewrite ``events.jsonl`` without these workflows' lines (a temporary file renamed over it,
    so a crash leaves the old file or the new one); how many lines went."""
    if path is None or not workflow_ids or not path.is_file():
        return 0
    dropped = 0
    temporary = path.with_name(path.name + ".gc")
    with path.open("rb") as source, temporary.open("wb") as target:
        for line in source:
            if _workflow_of(line) in workflow_ids:
                dropped += 1
                continue
            target.write(line)
        target.flush()
        os.fsync(target.fileno())
    if dropped:
        os.replace(temporary, path)
    else:
        temporary.unlink()
    return dropped


def _workflow_of(line: bytes) -> str | None:
    try:
        record = json.loads(line)
    except ValueError:
        return None
    workflow = record.get("workflow_id") if isinstance(record, dict) else None
    return workflow if isinstance(workflow, str) else None
