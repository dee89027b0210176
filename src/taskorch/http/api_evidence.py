"""``/api/v1/workflows/{id}/subtasks/{key}/...``: the evidence of a subtask's attempts.

``attempts``
    Every attempt, the running one too: agent, model, start and end, outcome and error class,
    tokens and cost, the tail of what the agent printed and the diff its work merged.
``output``
    What an attempt printed from a byte ``offset`` on: poll it with the ``next_offset`` of the
    last answer while ``running`` is true (the dashboard does, once a second).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Request

from taskorch.http.api_work import NOT_FOUND, WorkflowIdParam, engine_of
from taskorch.http.errors import StrictJSONRoute
from taskorch.http.schemas import SUBTASK_KEY_PATTERN, AttemptOut, OutputOut

router = APIRouter(prefix="/api/v1", route_class=StrictJSONRoute)
SubtaskKeyParam = Annotated[
    str, Path(pattern=SUBTASK_KEY_PATTERN, description="The subtask's key in the plan")
]


@router.get(
    "/workflows/{workflow_id}/subtasks/{key}/attempts", tags=["workflows"], responses=NOT_FOUND
)
async def list_attempts(
    workflow_id: WorkflowIdParam, key: SubtaskKeyParam, request: Request
) -> list[AttemptOut]:
    """Every attempt of the subtask, oldest first (the running one last)."""
    found = await engine_of(request).subtask_attempts(workflow_id, key)
    return [AttemptOut.model_validate(a.to_dict()) for a in found]


@router.get(
    "/workflows/{workflow_id}/subtasks/{key}/output", tags=["workflows"], responses=NOT_FOUND
)
async def attempt_output(
    workflow_id: WorkflowIdParam,
    key: SubtaskKeyParam,
    request: Request,
    attempt: Annotated[
        int | None, Query(ge=1, le=1_000_000, description="Attempt number; default the latest.")
    ] = None,
    offset: Annotated[int, Query(ge=0, le=2**40, description="Byte offset to read from.")] = 0,
) -> OutputOut:
    """What the attempt printed from ``offset`` on (at most 64 kB per answer)."""
    chunk = await engine_of(request).attempt_output(workflow_id, key, attempt, offset)
    return OutputOut.model_validate(chunk.to_dict())
