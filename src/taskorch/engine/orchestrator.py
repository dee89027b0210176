"""``TaskOrchestrator``: the specification's generic orchestrator over taskorch's tasks.

::

    async with TaskOrchestrator() as orchestrator:
        schema = await orchestrator.add_task("Design the schema")
        api = await orchestrator.add_task("Build the API", dependencies=[schema.id])
        orchestrator.on_task_complete(lambda done: print(done.task_ref, done.status))
        runs = await orchestrator.execute_with_dependencies([schema.id, api.id])
        await orchestrator.update_task_state(api.id, "completed", 100, "released")
        log = await orchestrator.get_task_log(api.id)        # JSON, also in logs/tasks/task-N.json

Tasks run stage by stage in dependency order, each through the normal pipeline (plan, agents,
git, validation, merge); a task whose dependency did not complete is skipped with the reason.
Completion is a callback and a ``task:completed`` event on the engine's bus (``task:failed``,
``task:skipped`` likewise).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import logging
import math
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskorch.domain.dag import DependencyResolver
from taskorch.domain.errors import InputError, PlanError, StaleStateError, TaskorchError
from taskorch.domain.models import JSONDict, NewTask, Priority, Task, TaskStatus, parse_task_ref
from taskorch.domain.states import WORKFLOW_TERMINAL, WorkflowState
from taskorch.engine.agents import AgentPool
from taskorch.engine.engine import OrchestrationEngine
from taskorch.engine.setup import agents_for_run, delivering_engine
from taskorch.settings import Settings, load_settings
from taskorch.store.outcomes import QueueEvent
from taskorch.store.task_state import record_task_state, reported_state

log = logging.getLogger(__name__)

MAX_MESSAGE_CHARS = 2000
_STATUS_WORDS = {
    "pending": TaskStatus.PENDING,
    "todo": TaskStatus.PENDING,
    "processing": TaskStatus.PROCESSING,
    "in_progress": TaskStatus.PROCESSING,
    "in-progress": TaskStatus.PROCESSING,
    "running": TaskStatus.PROCESSING,
    "completed": TaskStatus.COMPLETED,
    "complete": TaskStatus.COMPLETED,
    "done": TaskStatus.COMPLETED,
    "failed": TaskStatus.FAILED,
    "cancelled": TaskStatus.CANCELLED,
    "canceled": TaskStatus.CANCELLED,
}


@dataclass(frozen=True, slots=True)
class TaskCompletion:
    """A task that ended: what completion callbacks get and the bus event carries."""

    task_id: int
    task_ref: str
    status: str
    """``completed``, ``failed``, ``cancelled`` or ``skipped`` (a dependency did not complete)."""
    workflow_id: str | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "task_id": self.task_id,
            "task": self.task_ref,
            "status": self.status,
            "workflow_id": self.workflow_id,
            "reason": self.reason,
        }


@dataclass(frozen=True, slots=True)
class TaskState:
    """A task's stored status and its last reported progress and message."""

    task_id: int
    status: TaskStatus
    reported_status: str | None
    progress: float | None
    message: str | None
    updated_at: str | None


CompletionCallback = Callable[[TaskCompletion], Awaitable[None] | None]


class TaskOrchestrator:
    def __init__(
        self,
        engine: OrchestrationEngine | None = None,
        *,
        settings: Settings | None = None,
        agent: str = "auto",
        options: JSONDict | None = None,
    ) -> None:
        """``agent`` as ``taskorch process --agent`` (``auto``: the registered agents, else the
        simulated one); ``options`` go to every workflow (``repo``, ``base_branch``, ...)."""
        self._engine = engine
        self._settings = settings
        self._owns_engine = False
        self.agent = agent
        self.options = dict(options or {})
        self._callbacks: list[CompletionCallback] = []

    async def initialize(self) -> None:
        if self._engine is None:
            self._engine = delivering_engine(self._settings or load_settings())
            await self._engine.initialize()
            self._owns_engine = True

    async def shutdown(self) -> None:
        if self._owns_engine and self._engine is not None:
            await self._engine.shutdown()
        self._engine, self._owns_engine = None, False

    async def __aenter__(self) -> TaskOrchestrator:
        await self.initialize()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.shutdown()

    @property
    def engine(self) -> OrchestrationEngine:
        if self._engine is None:
            raise InputError(
                "the orchestrator is not initialised: `await orchestrator.initialize()`"
            )
        return self._engine

    # --- tasks -------------------------------------------------------------------------------

    async def add_task(
        self,
        task: NewTask | str,
        description: str = "",
        *,
        dependencies: Sequence[int | str | Task] = (),
        priority: str | Priority = Priority.MEDIUM,
    ) -> Task:
        """Store a task that waits for ``dependencies`` (ids, ``task-N`` or tasks: each must
        exist already)."""
        if isinstance(task, str):
            ids = [d.id if isinstance(d, Task) else parse_task_ref(d) for d in dependencies]
            for task_id in ids:
                await self.engine.get_task(task_id)  # a one-line error for an unknown one
            task = NewTask.create(task, description, priority, ids)
        return await self.engine.add_task(task)

    def on_task_complete(self, callback: CompletionCallback) -> None:
        """Call ``callback(TaskCompletion)`` (plain or async) whenever a task ends here."""
        self._callbacks.append(callback)

    # --- running -----------------------------------------------------------------------------

    async def execute_with_dependencies(
        self, task_ids: Sequence[int | str] | None = None
    ) -> list[TaskCompletion]:
        """Run ``task_ids`` (default: every pending task) in dependency order, a stage at a time
        (the tasks of a stage at once), each through the pipeline; a task whose dependency did
        not complete is skipped. Returns how each ended, in dependency order."""
        engine = self.engine
        if task_ids is None:
            chosen = await engine.list_tasks(status=TaskStatus.PENDING)
        else:
            chosen = [await engine.get_task(parse_task_ref(t)) for t in task_ids]
        by_id = {task.id: task for task in chosen}
        stages = _stages(list(by_id.values()))
        pool = await agents_for_run(engine, self.agent)
        ended: dict[int, TaskCompletion] = {}
        for stage in stages:
            runnable: list[Task] = []
            for task_id in stage:
                task = by_id[task_id]
                blocker = await self._blocker(task, ended)
                if task.status is TaskStatus.COMPLETED:
                    ended[task_id] = TaskCompletion(
                        task_id, task.ref, "completed", reason="already completed"
                    )
                elif blocker is None:
                    runnable.append(task)
                else:
                    ended[task_id] = await self._ended(
                        TaskCompletion(task_id, task.ref, "skipped", reason=blocker)
                    )
            size = engine.settings.max_concurrent_workflows
            for start in range(0, len(runnable), size):
                for completion in await self._run(runnable[start : start + size], pool):
                    ended[completion.task_id] = await self._ended(completion)
        return [ended[task_id] for stage in stages for task_id in stage]

    async def _run(self, tasks: list[Task], pool: AgentPool) -> list[TaskCompletion]:
        """Carry ``tasks`` through the pipeline at once; how each ended."""
        options = {"agent": self.agent, **self.options}
        try:
            statuses = await self.engine.process_batch(
                [t.id for t in tasks], agents=pool, options=options
            )
        except TaskorchError as exc:  # refused (taken meanwhile), or a step failed repeatedly
            return [TaskCompletion(t.id, t.ref, "failed", reason=exc.message) for t in tasks]
        found = []
        for task, status in zip(tasks, statuses, strict=True):
            merged = status.workflow.status is WorkflowState.MERGED
            found.append(
                TaskCompletion(
                    task.id,
                    task.ref,
                    "completed" if merged else status.workflow.status.value,
                    status.workflow.id,
                    "" if merged else _reason(status.workflow.result),
                )
            )
        return found

    async def _blocker(self, task: Task, ended: Mapping[int, TaskCompletion]) -> str | None:
        for dependency in task.dependencies:
            if dependency in ended:
                if ended[dependency].status != "completed":
                    return f"task-{dependency} {ended[dependency].status}"
                continue
            found = await self.engine.get_task(dependency)
            if found.status != TaskStatus.COMPLETED:
                return f"task-{dependency} is {found.status.value}, not completed"
        return None

    async def _ended(self, completion: TaskCompletion) -> TaskCompletion:
        """Tell the bus, the callbacks and the task's log that a task ended."""
        kind = {"completed": "task:completed", "skipped": "task:skipped"}.get(
            completion.status, "task:failed"
        )
        await self.engine.events.publish(
            [QueueEvent(kind, completion.workflow_id, None, completion.to_json())]
        )
        for callback in self._callbacks:
            answer = callback(completion)
            if inspect.isawaitable(answer):
                await answer
        await self.write_task_log(completion.task_id)
        return completion

    # --- state and logs ----------------------------------------------------------------------

    async def update_task_state(
        self,
        task_id: int | str,
        status: str | TaskStatus,
        progress: float | None = None,
        message: str | None = None,
    ) -> TaskState:
        """Record a task's status, progress (0-100 %) and message (``task show`` prints them).

        ``completed``/``failed``/``cancelled``/``pending`` become the task's stored status too
        (a completed one releases the tasks waiting for it), except while a workflow carries the
        task: that workflow owns its status. ``processing`` (``in_progress``) is recorded as
        reported only: ``processing`` in the store means a workflow carries the task.
        """
        number = parse_task_ref(task_id)
        wanted = _status(status)
        reported: JSONDict = {"status": str(status).strip().lower()}
        if progress is not None:
            number_given = isinstance(progress, int | float) and not isinstance(progress, bool)
            if not number_given or not math.isfinite(progress) or not 0 <= progress <= 100:
                raise InputError(f"progress must be a percentage from 0 to 100, got {progress!r}")
            reported["progress"] = float(progress)
        if message is not None:
            if len(message) > MAX_MESSAGE_CHARS:
                raise InputError(f"the message is over {MAX_MESSAGE_CHARS} characters: shorten it")
            reported["message"] = message
        stored = None if wanted is TaskStatus.PROCESSING else wanted
        if stored is not None and await self._carried(number):
            raise InputError(
                f"task-{number} is carried by a running workflow, which sets its status: "
                f"cancel the workflow first (`taskorch cancel`), or report progress only"
            )
        try:
            task = await record_task_state(
                self.engine.store,
                number,
                reported,
                status=stored,
                unless=(TaskStatus.PROCESSING,),
            )
        except StaleStateError:
            raise InputError(
                f"task-{number} was taken up by a workflow just now: its workflow sets its status"
            ) from None
        await self.engine.events.publish(
            [QueueEvent("task:state", None, None, {"task_id": number, **reported})]
        )
        if stored in (TaskStatus.COMPLETED, TaskStatus.FAILED, TaskStatus.CANCELLED):
            await self._ended(TaskCompletion(number, task.ref, stored.value, reason="reported"))
        else:
            await self.write_task_log(number)
        return await self.get_task_state(number)

    async def get_task_state(self, task_id: int | str) -> TaskState:
        task = await self.engine.get_task(parse_task_ref(task_id))
        state = reported_state(task)
        progress = state.get("progress")
        return TaskState(
            task.id,
            task.status,
            state.get("status"),
            float(progress) if isinstance(progress, int | float) else None,
            state.get("message"),
            state.get("at"),
        )

    async def get_task_log(self, task_id: int | str) -> dict[str, Any]:
        """The task's log as JSON: the task, its reported states, its workflows and subtasks."""
        engine = self.engine
        task = await engine.get_task(parse_task_ref(task_id))
        workflows = []
        for workflow in await engine.store.list_workflows(task_id=task.id):
            subtasks = await engine.store.list_subtasks(workflow.id)
            workflows.append(
                {
                    "workflow_id": workflow.id,
                    "status": workflow.status.value,
                    "start_time": _iso(workflow.start_time),
                    "end_time": _iso(workflow.end_time),
                    "subtasks": [
                        {
                            "key": s.key,
                            "title": s.title,
                            "status": s.status.value,
                            "agent": s.agent_id,
                            "attempts": s.attempts,
                        }
                        for s in subtasks
                    ],
                }
            )
        state = task.metadata.get("state") or {}
        return {
            "taskId": task.ref,
            "title": task.title,
            "status": task.status.value,
            "priority": task.priority.value,
            "dependencies": [f"task-{d}" for d in task.dependencies],
            "progress": state.get("progress"),
            "message": state.get("message"),
            "history": state.get("history", []),
            "workflows": workflows,
            "createdAt": _iso(task.created_at),
            "updatedAt": _iso(task.updated_at),
        }

    def task_log_path(self, task_id: int) -> Path:
        """Beside the subtasks' logs (the engine's task log folder)."""
        folder = self.engine.events.task_log_dir or self.engine.settings.home / "logs" / "tasks"
        return folder / f"task-{task_id}.json"

    async def write_task_log(self, task_id: int) -> Path:
        """Write the task's log to ``task-N.json`` in the task log folder (by default
        ``<TASKORCH_HOME>/logs/tasks``; a record for people: a failed write is logged, never
        raised)."""
        path = self.task_log_path(task_id)
        text = json.dumps(await self.get_task_log(task_id), indent=2, default=str)
        try:
            await asyncio.to_thread(_write, path, text)
        except OSError as exc:
            log.warning("could not write the log of task-%s to %s: %s", task_id, path, exc)
        return path

    async def _carried(self, task_id: int) -> bool:
        workflows = await self.engine.store.list_workflows(task_id=task_id)
        return any(w.status not in WORKFLOW_TERMINAL for w in workflows)


def _stages(tasks: list[Task]) -> list[list[int]]:
    """The tasks' ids by stage of their dependencies among themselves (a cycle is an error)."""
    inside = {task.id for task in tasks}
    graph = {task.ref: [f"task-{d}" for d in task.dependencies if d in inside] for task in tasks}
    try:
        resolution = DependencyResolver(max_stages=None).resolve(graph)
    except PlanError as exc:
        raise InputError(f"the tasks' dependencies cannot be ordered: {exc.message}") from None
    return [[parse_task_ref(ref) for ref in stage] for stage in resolution.stages]


def _status(status: str | TaskStatus) -> TaskStatus:
    if isinstance(status, TaskStatus):
        return status
    found = _STATUS_WORDS.get(str(status).strip().lower())
    if found is None:
        raise InputError(
            f"invalid status {status!r}: use pending, in_progress, completed, failed or cancelled"
        )
    return found


def _reason(result: JSONDict | None) -> str:
    if not result:
        return ""
    return str(result.get("reason") or result.get("error") or "")


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
