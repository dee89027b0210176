"""What each attempt of a subtask left behind (its cost: :mod:`taskorch.engine.usage`).

- :func:`attempt_evidence`: every attempt of one subtask (the running one too) with its agent,
  model, times, outcome, error class, usage, the tail of what the agent printed and the diff the
  attempt merged (``GET /api/v1/workflows/{id}/subtasks/{key}/attempts``).
- :func:`read_output`: the live output of an attempt from a byte offset, for polling while the
  agent works.

Where the output comes from: while an attempt runs, the processes its agent starts append what
they print to ``<TASKORCH_HOME>/logs/output/<workflow>/<key>.<attempt>.log``
(:func:`output_log_path`, written through :func:`taskorch.agents.process.output_log`); ``taskorch
gc`` removes it with the workflow's other logs. A worker on another host writes under its
own home: a server there shows the stored tail instead (the result's output or the error).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from taskorch.agents import child_watch
from taskorch.domain.errors import NotFoundError
from taskorch.domain.models import Attempt, Subtask, Workflow
from taskorch.domain.states import SubtaskState
from taskorch.engine.usage import configured_models, model_of
from taskorch.store import Store

TAIL_CHARS = 8000
"""How much of an attempt's output the attempt list carries (the end of it)."""
DIFF_CAP_BYTES = 200_000
"""The diff of one attempt is cut here (and says so)."""
OUTPUT_CHUNK_BYTES = 64_000
"""At most this much live output per poll."""
_SAFE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}")
_LIVE = {SubtaskState.ASSIGNED, SubtaskState.RUNNING}


# --- one subtask's attempts -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AttemptEvidence:
    number: int
    agent: str | None
    model: str | None
    started_at: datetime | None
    ended_at: datetime | None
    outcome: str
    error_class: str | None
    error: str | None
    tokens_in: int | None
    tokens_out: int | None
    cost_usd: float | None
    running: bool
    """Still at work: its output may grow (poll :func:`read_output`)."""
    output_tail: str
    output_source: str
    """``live`` (the captured output file), ``result`` (the agent's reported output), ``error``
    (the failure's message) or ``none``."""
    output_bytes: int
    """Size of the captured output file so far: where polling for more starts."""
    diff: str | None = None
    diff_truncated: bool = False
    commit: str | None = None
    """The merge commit the attempt's work landed as on the workflow branch."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "agent": self.agent,
            "model": self.model,
            "started_at": _iso(self.started_at),
            "ended_at": _iso(self.ended_at),
            "outcome": self.outcome,
            "error_class": self.error_class,
            "error": self.error,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
            "cost_usd": self.cost_usd,
            "running": self.running,
            "output_tail": self.output_tail,
            "output_source": self.output_source,
            "output_bytes": self.output_bytes,
            "commit": self.commit,
            "diff": self.diff,
            "diff_truncated": self.diff_truncated,
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def output_folder(home: Path, workflow_id: str) -> Path | None:
    """Where a workflow's attempts' output goes (``taskorch gc`` removes it); None for an id
    that is not a plain name."""
    if not _SAFE.fullmatch(workflow_id) or workflow_id in (".", ".."):
        return None
    return home / "logs" / "output" / workflow_id


def output_log_path(home: Path, workflow_id: str, key: str, number: int) -> Path | None:
    """Where the live output of attempt ``number`` of subtask ``key`` goes; None for an id or
    key that is not a plain name."""
    folder = output_folder(home, workflow_id)
    if folder is None or not _SAFE.fullmatch(key) or key in (".", ".."):
        return None
    return folder / f"{key}.{number}.log"


def start_output_log(home: Path, subtask: Subtask) -> Path | None:
    """A fresh, empty live output file for the subtask's current attempt (None when it cannot be
    made: the attempt runs without a live view)."""
    path = output_log_path(home, subtask.workflow_id, subtask.key, subtask.attempts)
    if path is None:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")
    except OSError:
        return None
    return path


@dataclass(frozen=True, slots=True)
class OutputChunk:
    text: str
    offset: int
    """Where this chunk starts in the file."""
    next_offset: int
    """Ask from here next time."""
    running: bool
    available: bool
    """False when this host holds no output file for the attempt."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "offset": self.offset,
            "next_offset": self.next_offset,
            "running": self.running,
            "available": self.available,
        }


def read_output(path: Path | None, offset: int, running: bool) -> OutputChunk:
    """The captured output from byte ``offset`` on (at most :data:`OUTPUT_CHUNK_BYTES`). A UTF-8
    character cut at the end is left for the next read."""
    if path is None or not path.is_file():
        return OutputChunk("", offset, offset, running, False)
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        start = min(max(offset, 0), size)
        handle.seek(start)
        data = handle.read(OUTPUT_CHUNK_BYTES)
    cut = _whole_utf8(data) if start + len(data) < size or running else len(data)
    text = data[:cut].decode(errors="replace")
    return OutputChunk(text, start, start + cut, running, True)


def _whole_utf8(data: bytes) -> int:
    """The length of ``data`` without a UTF-8 sequence cut at its end."""
    for back in range(1, min(4, len(data)) + 1):
        byte = data[-back]
        if byte & 0xC0 == 0x80:
            continue  # a continuation byte: look further back for the lead
        if byte & 0x80 == 0:
            return len(data)
        needed = 2 if byte & 0xE0 == 0xC0 else 3 if byte & 0xF0 == 0xE0 else 4
        return len(data) if back >= needed else len(data) - back
    return len(data)


def _tail_of(path: Path | None) -> tuple[str, int] | None:
    if path is None or not path.is_file():
        return None
    with path.open("rb") as handle:
        size = handle.seek(0, 2)
        handle.seek(max(0, size - TAIL_CHARS * 2))
        data = handle.read()
    text = data.decode(errors="replace")
    return ("…" + text[-TAIL_CHARS:] if len(text) > TAIL_CHARS else text), size


async def attempt_evidence(
    home: Path,
    subtask: Subtask,
    attempts: Sequence[Attempt],
    *,
    repo: Path | None,
    agent_models: Mapping[str, str] | None = None,
) -> list[AttemptEvidence]:
    """Every attempt of ``subtask``, oldest first, the one running now last. ``repo`` is the git
    repository holding the workflow's commits on this host (None: no diff)."""
    models = agent_models or {}
    found = [await _recorded(home, subtask, a, repo, models) for a in attempts]
    recorded = {a.number for a in attempts}
    if subtask.status in _LIVE and subtask.attempts and subtask.attempts not in recorded:
        found.append(await asyncio.to_thread(_running, home, subtask, models))
    return found


async def _recorded(
    home: Path, subtask: Subtask, attempt: Attempt, repo: Path | None, models: Mapping[str, str]
) -> AttemptEvidence:
    path = output_log_path(home, subtask.workflow_id, subtask.key, attempt.number)
    live = await asyncio.to_thread(_tail_of, path)
    final = attempt.number == subtask.attempts and attempt.outcome.value == "succeeded"
    result = (subtask.result or {}) if final else {}
    if live is not None and live[0].strip():
        tail, source, size = live[0], "live", live[1]
    elif isinstance(result.get("output"), str) and result["output"]:
        tail, source, size = str(result["output"])[-TAIL_CHARS:], "result", 0
    elif attempt.error_message:
        tail, source, size = attempt.error_message, "error", 0
    else:
        tail, source, size = "", "none", 0
    merge = result.get("merge") if isinstance(result.get("merge"), dict) else {}
    commit = merge.get("commit") if isinstance(merge, dict) else None
    diff, cut = (None, False)
    if repo is not None and isinstance(commit, str) and commit:
        diff, cut = await merged_diff(repo, commit)
    return AttemptEvidence(
        number=attempt.number,
        agent=attempt.agent_id,
        model=model_of(attempt, subtask, models),
        started_at=attempt.started_at,
        ended_at=attempt.ended_at,
        outcome=attempt.outcome.value,
        error_class=attempt.error_class,
        error=attempt.error_message,
        tokens_in=attempt.tokens_in,
        tokens_out=attempt.tokens_out,
        cost_usd=attempt.cost_usd,
        running=False,
        output_tail=tail,
        output_source=source,
        output_bytes=size,
        diff=diff,
        diff_truncated=cut,
        commit=commit if isinstance(commit, str) else None,
    )


def _running(home: Path, subtask: Subtask, models: Mapping[str, str]) -> AttemptEvidence:
    path = output_log_path(home, subtask.workflow_id, subtask.key, subtask.attempts)
    live = _tail_of(path)
    return AttemptEvidence(
        number=subtask.attempts,
        agent=subtask.agent_id,
        model=models.get(subtask.agent_id or ""),
        started_at=subtask.updated_at,
        ended_at=None,
        outcome="running",
        error_class=None,
        error=None,
        tokens_in=None,
        tokens_out=None,
        cost_usd=None,
        running=True,
        output_tail=live[0] if live else "",
        output_source="live" if live else "none",
        output_bytes=live[1] if live else 0,
    )


async def merged_diff(repo: Path, commit: str) -> tuple[str | None, bool]:
    """``git diff <commit>^1 <commit>``: what the merge of the attempt's work brought to the
    workflow branch, cut at :data:`DIFF_CAP_BYTES` (the bool says so); None when the commit is
    not in ``repo`` (another host's, or collected)."""
    if not re.fullmatch(r"[0-9a-f]{7,64}", commit):
        return None, False
    child_watch.install()
    process = await asyncio.create_subprocess_exec(
        "git",
        "-C",
        str(repo),
        "diff",
        "--no-color",
        "--no-ext-diff",
        "--no-textconv",
        f"{commit}^1",
        commit,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        stdin=asyncio.subprocess.DEVNULL,
        env={k: v for k, v in os.environ.items() if k not in _GIT_PLACES} | {"LC_ALL": "C"},
    )
    assert process.stdout is not None
    data = bytearray()
    while len(data) <= DIFF_CAP_BYTES and (chunk := await process.stdout.read(65536)):
        data += chunk
    cut = len(data) > DIFF_CAP_BYTES
    if cut:
        with contextlib.suppress(ProcessLookupError):
            process.kill()
    code = await process.wait()
    if not cut and code != 0:
        return None, False
    return bytes(data[:DIFF_CAP_BYTES]).decode(errors="replace"), cut


_GIT_PLACES = {"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY"}


def workflow_repo(home: Path, workflow: Workflow) -> Path | None:
    """The repository on this host that holds the workflow's commits: its mirror under the home
    (where its worktrees are cut from), else the scratch repository of a workflow that recorded
    none; None when this host has neither."""
    from taskorch.runtime.remote import parse_origin  # git's module: only for a diff

    repo = (workflow.metadata.get("options") or {}).get("repo")
    if not repo:
        scratch = home / "repos" / "scratch"
        return scratch if (scratch / ".git").exists() else None
    mirror = home / "mirrors" / f"{parse_origin(str(repo)).slug}.git"
    return mirror if (mirror / "config").exists() else None


async def subtask_attempts(
    store: Store, home: Path, workflow_id: str, key: str
) -> list[AttemptEvidence]:
    """Every attempt of the workflow's subtask ``key`` (NotFoundError for an unknown one)."""
    workflow = await store.get_workflow(workflow_id)
    subtask = _find(await store.list_subtasks(workflow_id), workflow_id, key)
    attempts = await store.list_attempts(subtask.id)
    repo = await asyncio.to_thread(workflow_repo, home, workflow)
    models = configured_models(await store.list_agents())
    return await attempt_evidence(home, subtask, attempts, repo=repo, agent_models=models)


async def attempt_output(
    store: Store, home: Path, workflow_id: str, key: str, number: int | None, offset: int
) -> OutputChunk:
    """The live output of attempt ``number`` (default: the latest) from byte ``offset``."""
    subtask = _find(await store.list_subtasks(workflow_id), workflow_id, key)
    chosen = number or subtask.attempts
    running = subtask.status in _LIVE and chosen == subtask.attempts
    path = output_log_path(home, workflow_id, key, chosen)
    return await asyncio.to_thread(read_output, path, offset, running)


def _find(subtasks: Iterable[Subtask], workflow_id: str, key: str) -> Subtask:
    for subtask in subtasks:
        if subtask.key == key:
            return subtask
    raise NotFoundError(f"no subtask {key!r} in workflow {workflow_id}")
