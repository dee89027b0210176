"""``/api/v1/tasks`` and ``/api/v1/workflows``: create and read tasks, read, cancel, approve and
reject workflows.

A stored task is pending until the daemon of ``taskorch serve`` (or ``taskorch process``) starts
its workflow; creating one here is how the dashboard's form submits a requirement. Its optional
``repo``, ``base_branch`` and ``merge_policy`` are kept with it (the task's metadata) and used by
every workflow that carries it.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Request

from taskorch.domain.errors import InputError, NotFoundError, WorkspaceError
from taskorch.domain.models import JSONDict, NewTask, TaskStatus, parse_task_ref
from taskorch.domain.states import WorkflowState
from taskorch.engine import OrchestrationEngine
from taskorch.engine.targets import check_base_branch, repository
from taskorch.http.errors import StrictJSONRoute
from taskorch.http.guard import same_site_json
from taskorch.http.schemas import (
    TASK_ID_PATTERN,
    WORKFLOW_ID_PATTERN,
    ActionIn,
    BudgetIn,
    ErrorOut,
    RejectIn,
    TaskIn,
    TaskOut,
    WorkflowDetail,
    WorkflowSummary,
)

Responses = dict[int | str, dict[str, Any]]
CHANGES: Responses = {
    403: {"model": ErrorOut, "description": "Sent by a page of another site."},
    413: {"model": ErrorOut, "description": "A body over MAX_BODY_BYTES."},
    415: {"model": ErrorOut, "description": "Not JSON (Content-Type: application/json)."},
}
"""What a state-changing request may be refused with before it is read."""
router = APIRouter(
    prefix="/api/v1", route_class=StrictJSONRoute, dependencies=[Depends(same_site_json)]
)
NOT_FOUND: Responses = {404: {"model": ErrorOut, "description": "No such id."}}
NOT_VALIDATED: Responses = {
    **NOT_FOUND,
    **CHANGES,
    409: {"model": ErrorOut, "description": "Not a validated workflow (validation_passed)."},
}
REVIEWER = "api"
"""Who approved or rejected, as the workflow records it, for a request through this API."""
Limit = Annotated[int, Query(ge=1, le=1000, description="At most this many, newest first.")]
Offset = Annotated[int, Query(ge=0, le=100_000, description="Skip this many (paging).")]
TaskIdParam = Annotated[str, Path(pattern=TASK_ID_PATTERN, description="42, task-42 or task_42")]
WorkflowIdParam = Annotated[str, Path(pattern=WORKFLOW_ID_PATTERN)]


def engine_of(request: Request) -> OrchestrationEngine:
    engine: OrchestrationEngine = request.app.state.engine
    return engine


@router.post("/tasks", status_code=201, tags=["tasks"], responses=CHANGES)
async def create_task(body: TaskIn, request: Request) -> TaskOut:
    """Store a requirement as a pending task; ``taskorch serve`` starts its workflow."""
    engine = engine_of(request)
    metadata = await _target(body)
    try:
        task = await engine.add_task(
            NewTask.create(
                body.title, body.description, body.priority, body.dependencies, metadata=metadata
            )
        )
    except NotFoundError as exc:  # an unknown dependency is a bad field, not a missing resource
        raise InputError(f"dependencies: {exc.message.removesuffix(' in --depends-on')}") from None
    return TaskOut.of(task)


async def _target(body: TaskIn) -> JSONDict:
    """The task's ``repo``, ``base_branch`` and ``merge_policy``, checked (a 422 naming the
    field): a path must be a git repository on this server, a URL one this server reaches (its
    daemon starts the task's workflows), with the base branch if one is named."""
    target: JSONDict = {}
    if body.merge_policy is not None:
        target["merge_policy"] = body.merge_policy
    if body.base_branch is not None:
        try:
            target["base_branch"] = check_base_branch(body.base_branch)
        except InputError as exc:
            raise InputError(f"base_branch: {exc.message}") from None
    if body.repo is not None:
        try:
            target["repo"] = await repository(body.repo, target.get("base_branch"), reach=True)
        except (InputError, WorkspaceError) as exc:
            raise InputError(f"repo: {exc.message}") from None
    return target


@router.get("/tasks", tags=["tasks"])
async def list_tasks(
    request: Request, status: TaskStatus | None = None, limit: Limit = 100
) -> list[TaskOut]:
    tasks = await engine_of(request).list_tasks(status=status, limit=limit)
    return [TaskOut.of(t) for t in tasks]


@router.get("/tasks/{task_id}", tags=["tasks"], responses=NOT_FOUND)
async def get_task(task_id: TaskIdParam, request: Request) -> TaskOut:
    # The path's pattern (1 to 12 significant digits) keeps the id within a store's.
    return TaskOut.of(await engine_of(request).get_task(parse_task_ref(task_id)))


@router.get("/workflows", tags=["workflows"])
async def list_workflows(
    request: Request, state: WorkflowState | None = None, limit: Limit = 100, offset: Offset = 0
) -> list[WorkflowSummary]:
    """Workflows, newest first, with their task's title and progress; ``offset`` skips that
    many (the next page)."""
    engine = engine_of(request)
    workflows = (await engine.list_workflows(status=state, limit=limit + offset))[offset:]
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
    responses={
        **NOT_FOUND,
        **CHANGES,
        409: {"model": ErrorOut, "description": "Past the point of cancel."},
    },
)
async def cancel_workflow(
    workflow_id: WorkflowIdParam, body: ActionIn, request: Request
) -> WorkflowDetail:
    """Cancel a workflow before its pull request: running subtasks stop, worktrees go."""
    return WorkflowDetail.of(await engine_of(request).cancel_workflow(workflow_id))


@router.post("/workflows/{workflow_id}/approve", tags=["workflows"], responses=NOT_VALIDATED)
async def approve_workflow(
    workflow_id: WorkflowIdParam, body: ActionIn, request: Request
) -> WorkflowDetail:
    """Approve a validated workflow held by the approve merge policy (``waiting_for`` is
    ``approval``): it merges into its base branch now."""
    engine = engine_of(request)
    return WorkflowDetail.of(await engine.approve_workflow(workflow_id, by=REVIEWER))


@router.post("/workflows/{workflow_id}/reject", tags=["workflows"], responses=NOT_VALIDATED)
async def reject_workflow(
    workflow_id: WorkflowIdParam, body: RejectIn, request: Request
) -> WorkflowDetail:
    """Reject a validated workflow: it ends ``failed`` with the reason; its branch is kept and
    its base branch is not touched."""
    engine = engine_of(request)
    return WorkflowDetail.of(
        await engine.reject_workflow(workflow_id, body.reason.strip(), by=REVIEWER)
    )


@router.post(
    "/workflows/{workflow_id}/budget",
    tags=["workflows"],
    responses={
        **NOT_FOUND,
        **CHANGES,
        409: {"model": ErrorOut, "description": "The workflow has ended."},
    },
)
async def set_budget(
    workflow_id: WorkflowIdParam, body: BudgetIn, request: Request
) -> WorkflowDetail:
    """Set the workflow's caps (``budget`` in the answer): one waiting for its budget goes on
    once its next attempt fits. ``{}`` changes nothing and answers the workflow as it is."""
    engine = engine_of(request)
    if body.usd is None and body.tokens is None and body.subtask_usd is None:
        return WorkflowDetail.of(await engine.get_workflow_status(workflow_id))
    return WorkflowDetail.of(
        await engine.set_budget(
            workflow_id, usd=body.usd, tokens=body.tokens, subtask_usd=body.subtask_usd
        )
    )
