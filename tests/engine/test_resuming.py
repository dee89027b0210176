"""A workflow is resumed with the agents it started with, or refused in one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from taskorch.domain.errors import InputError
from taskorch.domain.models import Workflow
from taskorch.domain.states import WorkflowState
from taskorch.engine.resuming import agent_for_resume, started_with


def workflow(workflow_id: str, agent: str | None) -> Workflow:
    now = datetime.now(UTC)
    options = {} if agent is None else {"agent": agent}
    return Workflow(
        id=workflow_id,
        task_id=1,
        status=WorkflowState.PROCESSING,
        metadata={"options": options},
        created_at=now,
        updated_at=now,
    )


def test_the_agents_a_workflow_started_with() -> None:
    assert started_with(workflow("wf-a", "auto")) == "auto"
    assert started_with(workflow("wf-b", "claude-1")) == "claude-1"
    assert started_with(workflow("wf-c", None)) == "sim"  # stored before options said
    assert started_with(workflow("wf-d", "default")) == "sim"


def test_resume_defaults_to_the_workflows_own_agents() -> None:
    assert agent_for_resume([workflow("wf-a", "sim"), workflow("wf-b", "sim")], None) == "sim"
    assert agent_for_resume([workflow("wf-a", "auto")], "auto") == "auto"
    assert agent_for_resume([], None) == "auto"


def test_other_agents_are_refused_naming_the_workflow() -> None:
    with pytest.raises(InputError, match="wf-a started with --agent sim; resume it with"):
        agent_for_resume([workflow("wf-a", "sim")], "auto")
    with pytest.raises(InputError, match=r"different agents \(wf-a: sim, wf-b: auto\)"):
        agent_for_resume([workflow("wf-a", "sim"), workflow("wf-b", "auto")], None)
