"""``/api/v1/tasks`` and ``/api/v1/workflows``: create and read tasks, read and cancel workflows.

A stored task is pending until the daemon of ``taskorch serve`` (or ``taskorch process``) starts
its workflow; creating one here is how the dashboard's form submits a requirement.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request

from taskorch.domain.errors import InputError, NotFoundError
from taskorch.domain.models import NewTask, TaskStatus, parse_task_ref
from taskorch.domain.states import WorkflowState
from taskorch.engine import OrchestrationEngine
from taskorch.http.schemas import (
    TASK_ID_PATTERN,
    WORKFLOW_ID_PATTERN,
    ErrorOut,
    TaskIn,
    TaskOut,
    WorkflowDetail,
    WorkflowSummary,
)

router = APIRouter(prefix="/api/v1")
NOT_FOUND: dict[int | str, dict[str, Any]] = {
    404: {"model": ErrorOut, "description": "No such id."}
}
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]
TaskIdParam = Annotated[str, Path(pattern=TASK_ID_PATTERN, description="42 or task-42")]
WorkflowIdParam = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN)]


def engine_of(request: Request) -> OrchestrationEngine:
    engine: OrchestrationEngine = request.app.state.engine
    return engine


@router.post("/tasks", status_code=201, tags=["tasks"])
async def create_task(body: TaskIn, request: Request) -> TaskOut:
    """Store a requirement as a pending task; ``taskorch serve`` starts its workflow."""
    engine = engine_of(request)
    try:
        task = await engine.add_task(
            NewTask.create(body.title, body.description, body.priority, body.dependencies)
        )
    except NotFoundError as exc:  # an unknown dependency is a bad field, not a missing resource
        raise InputError(f"dependencies: {exc.message.removesuffix(' in --depends-on')}") from None
    return TaskOut.of(task)


@router.get("/tasks", tags=["tasks"])
async def list_tasks(
    request: Request, status: TaskStatus | None = None, limit: Limit = 100
) -> list[TaskOut]:
    tasks = await engine_of(request).list_tasks(status=status, limit=limit)
    return [TaskOut.of(t) for t in tasks]


@router.get("/tasks/{task_id}", tags=["tasks"], responses=NOT_FOUND)
async def get_task(task_id: TaskIdParam, request: Request) -> TaskOut:
    return TaskOut.of(await engine_of(request).get_task(parse_task_ref(task_id)))


@router.get("/workflows", tags=["workflows"])
async def list_workflows(
    request: Request, state: WorkflowState | None = None, limit: Limit = 100
) -> list[WorkflowSummary]:
    """Workflows, newest first, with their task's title and progress."""
    engine = engine_of(request)
    workflows = await engine.list_workflows(status=state, limit=limit)
    counts = await engine.subtask_counts([w.id for w in workflows])
    summaries = []
    for workflow in workflows:
        summary = WorkflowSummary.of(workflow)
        summary.title = (await engine.get_task(workflow.task_id)).title
        summary.progress_percent = _progress(workflow.status, counts.get(workflow.id, {}))
        summaries.append(summary)
    return summaries


def _progress(state: WorkflowState, counts: dict[str, int]) -> float:
    total = sum(counts.values())
    if not total:
        return 100.0 if state is WorkflowState.MERGED else 0.0
    return round(100.0 * counts.get("completed", 0) / total, 1)


@router.get("/workflows/{workflow_id}", tags=["workflows"], responses=NOT_FOUND)
async def get_workflow(workflow_id: WorkflowIdParam, request: Request) -> WorkflowDetail:
    """State, progress, the DAG by stage with each subtask's state, agent and attempts, and the
    history of transitions."""
    return WorkflowDetail.of(await engine_of(request).get_workflow_status(workflow_id))


@router.post(
    "/workflows/{workflow_id}/cancel",
    tags=["workflows"],
    responses={**NOT_FOUND, 409: {"model": ErrorOut, "description": "Past the point of cancel."}},
)
async def cancel_workflow(workflow_id: WorkflowIdParam, request: Request) -> WorkflowDetail:
    """Cancel a workflow before its pull request: running subtasks stop, worktrees go."""
    return WorkflowDetail.of(await engine_of(request).cancel_workflow(workflow_id))
