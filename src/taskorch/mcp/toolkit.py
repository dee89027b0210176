"""What the MCP tool modules share: the types of their common arguments (each with the
description clients show their model), the registration of a tool, taskorch's errors as tool
errors, and a workflow's status as a tool's result."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any, Literal, Protocol, TypeVar

from mcp.server.mcpserver.exceptions import ToolError
from pydantic import Field

from taskorch.domain.errors import TaskorchError
from taskorch.domain.limits import MAX_TITLE_CHARS
from taskorch.engine.status import WorkflowStatus
from taskorch.mcp.guard import MAX_REPO_CHARS
from taskorch.mcp.models import WorkflowOut

ToolFunction = TypeVar("ToolFunction", bound=Callable[..., Any])


class Register(Protocol):
    """Registers a tool function on the server (``build_server``'s ``tool``)."""

    def __call__(self, function: ToolFunction, /) -> ToolFunction: ...


EnableNlp = Annotated[
    bool | None,
    Field(
        description="Plan with the configured model (true) or the built-in heuristic planner "
        "(false); default: ENABLE_NLP. Stored with the workflow, so a resumed one plans alike."
    ),
]
EnableNlpSpec = Annotated[bool | None, Field(description="The specification's name of enable_nlp.")]
TaskRef = Annotated[
    int | str,
    Field(description="A stored task: 42, '42' or 'task-42'."),
]
WorkflowId = Annotated[
    str, Field(min_length=1, max_length=200, description="A workflow id such as wf-1a2b3c4d5e.")
]
WorkflowIdSpec = Annotated[
    str | None,
    Field(min_length=1, max_length=200, description="The specification's name of workflow_id."),
]
Wait = Annotated[
    bool,
    Field(description="Wait for the end (up to timeout_s); false answers at once."),
]
TimeoutS = Annotated[
    float,
    Field(
        gt=0,
        le=3600,
        description="Seconds to wait before answering with the state so far; "
        "the workflow is not cancelled then, it goes on in the server.",
    ),
]
Repo = Annotated[
    str | None,
    Field(
        max_length=MAX_REPO_CHARS,
        description="The git repository to work in: a local path or a git URL (file://, ssh://, "
        "https://, host:path). Default: the task's, else TASKORCH_REPO, else a scratch "
        "repository.",
    ),
]
MergePolicyArg = Annotated[
    Literal["auto", "approve"] | None,
    Field(
        description="auto: merge once validated; approve: stop validated, waiting for a person "
        "to run `taskorch approve` (default: the task's, else TASKORCH_MERGE_POLICY, else auto)."
    ),
]
PriorityName = Annotated[
    Literal["low", "medium", "high", "critical"] | None,
    Field(description="Queue priority of the subtasks (default: the task's)."),
]
Agent = Annotated[
    str,
    Field(
        min_length=1,
        max_length=MAX_TITLE_CHARS,
        description="auto: route each subtask to the best registered agent (the simulated agent "
        "when none is registered); sim: the simulated agent; or one registered agent's name.",
    ),
]
SimDurationS = Annotated[
    float, Field(ge=0, le=600, description="Seconds each simulated subtask takes.")
]


@contextmanager
def tool_errors() -> Iterator[None]:
    """taskorch's own errors become MCP tool errors with their one-line message."""
    try:
        yield
    except TaskorchError as exc:
        raise ToolError(exc.message) from None


def workflow_out(status: WorkflowStatus) -> WorkflowOut:
    return WorkflowOut.model_validate(status.to_dict())
