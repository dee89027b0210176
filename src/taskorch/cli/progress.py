"""The live progress of ``run``, ``process``, ``batch``, ``resume`` and ``monitor``: each workflow
as a tree of stages and subtasks (state, agent, attempt, elapsed, tokens and cost where known),
with the reason a workflow or subtask waits shown as soon as it is known.

It follows the engine's event stream (:class:`~taskorch.runtime.events.EventBus`): an event about a
watched workflow re-reads that workflow's status once per burst, never on a timer. ``monitor`` in
a process that does not drive the workflow has no events to follow (the worker publishes in its
own process, and the routine subtask events are not stored), so it reads the stored status every
:data:`STORED_POLL_S` instead; either way only what changed is shown.

On a terminal the tree is redrawn in place (rich's ``Live``, on stderr); piped or redirected, each
change is one full-width line on stderr. stdout keeps the final result alone.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Literal

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.text import Text
from rich.tree import Tree

from taskorch.cli.workflows import styled
from taskorch.domain.errors import TaskorchError
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.engine import OrchestrationEngine
from taskorch.engine.agents import WAITING
from taskorch.engine.status import WorkflowStatus

Mode = Literal["live", "lines", "off"]

STORED_POLL_S = 0.5
"""How often ``monitor`` reads the stored status of a workflow driven by another process."""
REFRESH_PER_S = 4
"""How often the terminal tree is redrawn (elapsed times move); no database read is involved."""
USAGE_EVENTS = frozenset({"task:complete", "task:retry", "task:failed"})
"""The events that carry an attempt's tokens and cost."""
STORED_USAGE_EVENTS = frozenset({"task:retry", "task:failed"})
"""Of those, the ones the store keeps (``task:complete`` is only published)."""


@dataclass(frozen=True, slots=True)
class SubtaskRow:
    key: str
    stage: int
    state: str
    agent: str
    attempt: int
    started: datetime | None
    ended: datetime | None
    tokens: int | None
    cost_usd: float | None
    waiting: str | None

    def text(self, now: datetime | None) -> Text:
        """One line; with ``now`` a running subtask's elapsed time is shown (the terminal
        tree), without it only what changes with its state (a piped line)."""
        parts: list[str | tuple[str, str] | Text] = [
            f"{self.key}  ",
            styled(self.state),
            f"  {self.agent}",
            f"  attempt {self.attempt}" if self.attempt else "",
        ]
        until = self.ended or (now if self.state == SubtaskState.RUNNING.value else None)
        if self.started is not None and until is not None:
            parts.append(f"  {_elapsed((until - self.started).total_seconds())}")
        if self.tokens:
            parts.append(f"  {self.tokens:,} tokens")
        if self.cost_usd:
            parts.append(f"  ${self.cost_usd:.4f}")
        if self.waiting:
            parts.append(("  " + self.waiting, "yellow"))
        return Text.assemble(*parts)


@dataclass(frozen=True, slots=True)
class WorkflowRow:
    id: str
    state: str
    task: str
    started: datetime | None
    ended: datetime | None
    percent: float
    subtasks: tuple[SubtaskRow, ...]
    waiting: str | None

    @property
    def done(self) -> bool:
        return WorkflowState(self.state) in _TERMINAL

    def text(self, now: datetime | None) -> Text:
        line = Text.assemble(
            (self.id, "bold"), "  ", styled(self.state), f"  {self.percent:.0f}%  ", self.task
        )
        if now is not None and self.started is not None:
            line.append(f"  {_elapsed(((self.ended or now) - self.started).total_seconds())}")
        if self.waiting:
            line.append("  " + self.waiting, style="bold yellow")
        return line

    def tree(self, now: datetime) -> Tree:
        top = Tree(self.text(now))
        stages: dict[int, Tree] = {}
        for sub in self.subtasks:
            branch = stages.get(sub.stage) or top.add(f"stage {sub.stage}")
            stages[sub.stage] = branch
            branch.add(sub.text(now))
        return top


_TERMINAL = frozenset({WorkflowState.MERGED, WorkflowState.FAILED, WorkflowState.CANCELLED})


def _elapsed(seconds: float) -> str:
    seconds = max(seconds, 0.0)
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m{secs:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


@dataclass
class _Seen:
    """What the events of one subtask told: when its attempt started and ended, its usage."""

    started: datetime | None = None
    ended: datetime | None = None
    tokens: int = 0
    cost_usd: float = 0.0


def workflow_row(
    status: WorkflowStatus, seen: Mapping[str, _Seen] | None = None, now: datetime | None = None
) -> WorkflowRow:
    """The rows shown for ``status``; ``seen`` adds what this process's events told (start
    times, the tokens and cost of completed attempts, which the store does not keep as events)."""
    seen = seen or {}
    now = now or datetime.now(UTC)
    workflow = status.workflow
    assigned = status.assignments()
    default_agent = str((workflow.metadata.get("options") or {}).get("agent") or "default")
    stored = _stored_usage(status)
    rows = []
    for sub in status.subtasks:
        mine = seen.get(sub.key, _Seen())
        tokens, cost = stored.get(sub.key, (0, 0.0))
        started = mine.started
        if started is None and sub.status is SubtaskState.RUNNING:
            started = sub.updated_at  # another process runs it: when it became running
        rows.append(
            SubtaskRow(
                key=sub.key,
                stage=sub.stage + 1,
                state=sub.status.value,
                agent=sub.agent_id or assigned.get(sub.key) or default_agent,
                attempt=sub.attempts,
                started=started,
                ended=mine.ended if sub.status is not SubtaskState.RUNNING else None,
                tokens=(tokens + mine.tokens) or None,
                cost_usd=(cost + mine.cost_usd) or None,
                waiting=_subtask_waits(sub.status, sub.agent_id, sub.error, sub.run_after, now),
            )
        )
    return WorkflowRow(
        id=workflow.id,
        state=status.state,
        task=f"{status.task.ref} {status.task.title}",
        started=workflow.start_time,
        ended=workflow.end_time,
        percent=status.progress_percent,
        subtasks=tuple(rows),
        waiting=_workflow_waits(status),
    )


def _stored_usage(status: WorkflowStatus) -> dict[str, tuple[int, float]]:
    usage: dict[str, tuple[int, float]] = {}
    for event in status.events:
        if event.kind in STORED_USAGE_EVENTS:
            key = str(event.payload.get("key"))
            tokens, cost = usage.get(key, (0, 0.0))
            usage[key] = (tokens + _tokens(event.payload), cost + _cost(event.payload))
    return usage


def _tokens(payload: Mapping[str, Any]) -> int:
    return sum(int(payload.get(k) or 0) for k in ("tokens_in", "tokens_out"))


def _cost(payload: Mapping[str, Any]) -> float:
    return float(payload.get("cost_usd") or 0.0)


def _subtask_waits(
    state: SubtaskState,
    agent: str | None,
    error: str | None,
    run_after: datetime | None,
    now: datetime,
) -> str | None:
    """Why a subtask does not run now, or None: no capable agent, a failed dependency, a retry
    waiting for its back-off."""
    if state in (SubtaskState.PENDING, SubtaskState.QUEUED) and agent == WAITING:
        return error or "waiting for an agent that can take it"
    if state is SubtaskState.BLOCKED:
        return f"blocked: {error}" if error else "blocked"
    if state is SubtaskState.QUEUED and run_after is not None and run_after > now:
        why = f" after: {error}" if error else ""
        return f"retry at {run_after.astimezone(UTC):%H:%M:%S} UTC{why}"
    return None


def _workflow_waits(status: WorkflowStatus) -> str | None:
    workflow = status.workflow
    if status.waiting_for == "approval":
        return (
            f"waiting for approval: taskorch approve {workflow.id} "
            f"(or taskorch reject {workflow.id} --reason TEXT)"
        )
    if status.budget_line:
        return f"{status.budget_line}; raise it: taskorch budget {workflow.id} --usd N"
    stalled = workflow.metadata.get("stalled")
    if isinstance(stalled, dict) and stalled.get("reason"):
        return f"stalled at {stalled.get('step')}: {stalled['reason']}"
    return f"reason: {status.end_reason}" if status.end_reason else None


def lines_of(row: WorkflowRow) -> dict[str, str]:
    """The piped lines of ``row``, by what they describe: the workflow, each subtask. The line of
    a workflow that has ended comes last, so a reader's last line is the outcome."""
    head = {"": row.text(None).plain}
    subtasks = {
        sub.key: f"{row.id}  stage {sub.stage}  {sub.text(None).plain}" for sub in row.subtasks
    }
    return {**subtasks, **head} if row.done else {**head, **subtasks}


@dataclass
class ProgressView:
    """The progress of the workflows it watches, shown on ``console`` as ``mode`` says, from the
    engine's events while it is open (``async with``)."""

    engine: OrchestrationEngine
    console: Console
    mode: Mode = "live"
    follow_events: bool = True
    """False for ``monitor``: it reads the stored status itself (:meth:`next_news` waits)."""
    rows: dict[str, WorkflowRow] = field(default_factory=dict)
    _watched: list[str] = field(default_factory=list)
    _seen: dict[str, dict[str, _Seen]] = field(default_factory=dict)
    _printed: dict[str, dict[str, str]] = field(default_factory=dict)
    _shown: tuple[WorkflowRow, ...] = ()
    _inbox: asyncio.Queue[dict[str, Any]] | None = None
    _task: asyncio.Task[None] | None = None
    _live: Live | None = None

    async def __aenter__(self) -> ProgressView:
        if self.mode == "off":
            return self
        self._inbox = self.engine.events.subscribe()
        if self.mode == "live":
            self._live = Live(
                self,
                console=self.console,
                transient=True,
                refresh_per_second=REFRESH_PER_S,
                redirect_stdout=False,
                redirect_stderr=False,
            )
            self._live.start()
        if self.follow_events:
            self._task = asyncio.create_task(self._follow())
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        try:
            if kind is None and self._watched and self.follow_events:
                with contextlib.suppress(TaskorchError):  # the result says it all the same
                    await self.refresh(self._watched)  # the last word, before the result
        finally:
            if self._inbox is not None:
                self.engine.events.unsubscribe(self._inbox)
            if self._live is not None:
                self._live.stop()

    def watch(self, workflow_ids: Iterable[str]) -> None:
        """Follow these workflows too (shown at once, then on each of their events)."""
        new = [w for w in workflow_ids if w not in self._watched]
        if not new or self.mode == "off":
            return
        self._watched.extend(new)
        if self._inbox is not None:
            for workflow_id in new:
                with contextlib.suppress(asyncio.QueueFull):
                    self._inbox.put_nowait({"event": "watch", "workflow_id": workflow_id})

    async def refresh(self, workflow_ids: Iterable[str]) -> None:
        for workflow_id in workflow_ids:
            self.show(await self.engine.get_workflow_status(workflow_id))

    def show(self, status: WorkflowStatus) -> None:
        """Show ``status`` (lines mode: only the lines that changed since last shown)."""
        row = workflow_row(status, self._seen.get(status.workflow.id))
        self.rows[row.id] = row
        self._shown = tuple(self.rows[w] for w in self._watched if w in self.rows)
        if self.mode == "lines":
            printed = self._printed.setdefault(row.id, {})
            for what, text in lines_of(row).items():
                if printed.get(what) != text:
                    printed[what] = text
                    self.console.print(Text(text), highlight=False)
        elif self._live is not None:
            self._live.refresh()

    def __rich__(self) -> RenderableType:
        now = datetime.now(UTC)
        return Group(*(row.tree(now) for row in self._shown))

    async def _follow(self) -> None:
        assert self._inbox is not None
        while True:
            burst = [await self._inbox.get()]
            while not self._inbox.empty():
                burst.append(self._inbox.get_nowait())
            touched = dict.fromkeys(
                str(e["workflow_id"]) for e in burst if self._note(e) in self._watched
            )
            try:
                await self.refresh(touched)
            except TaskorchError:
                continue  # progress is a view: the run itself meets (and says) the error

    def _note(self, event: Mapping[str, Any]) -> str | None:
        """Keep what the event tells that the store does not; return its workflow id."""
        workflow_id = event.get("workflow_id")
        key = event.get("key")
        if not isinstance(workflow_id, str):
            return None
        if isinstance(key, str):
            seen = self._seen.setdefault(workflow_id, {}).setdefault(key, _Seen())
            at = _time(event.get("time"))
            kind = event.get("event")
            if kind == "task:started":
                seen.started, seen.ended = at, None
            elif kind in USAGE_EVENTS:
                seen.ended = at
                if kind == "task:complete":  # the others are read back from the store
                    seen.tokens += _tokens(event)
                    seen.cost_usd += _cost(event)
        return workflow_id

    async def next_news(self, timeout_s: float) -> None:
        """Wait up to ``timeout_s`` for an event about a watched workflow (``monitor``: events of
        this process, if any; else the timeout is the poll)."""
        if self._task is not None or self._inbox is None:
            await asyncio.sleep(timeout_s)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):  # (wait_for may drop a Ctrl-C on 3.11)
                await self._inbox.get()
            while not self._inbox.empty():
                self._inbox.get_nowait()


def _time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value)
    except ValueError:
        return None


def mode_for(console: Console, *, quiet: bool) -> Mode:
    """``off`` for ``--quiet`` and ``--json``; ``live`` on a terminal; else ``lines``."""
    if quiet:
        return "off"
    return "live" if console.is_terminal else "lines"
