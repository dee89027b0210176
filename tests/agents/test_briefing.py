"""The agent hears where its subtask stands in the plan: the requirement and its context, the
dependencies done and what their agents said they did, the subtasks waiting on it and the ones
running in parallel. Checked on the message a (fake) agentapi agent receives under the worker."""

from __future__ import annotations

from pathlib import Path

from agents.fake_agentapi import FakeAgentApi, FakeTurn
from taskorch.agents.agentapi import AgentApiAdapter
from taskorch.agents.briefed import BriefedAgent
from taskorch.domain.briefing import MAX_LISTED, Briefing, Neighbour, briefing_text
from taskorch.domain.models import NewTask
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.planning.planner import TaskNLP
from taskorch.runtime.events import EventBus
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.worker import Worker, WorkerConfig
from taskorch.store import Store
from taskorch.store.queue import SubtaskQueue

REQUIREMENT = "Add a billing total with tests and docs"
ONE_AT_A_TIME = WorkerConfig(concurrency=1, lease_s=5.0, timeout_s=30.0, poll_s=0.05)


def sub(key: str, title: str, files: list[str], deps: list[str]) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id="task-1",
        title=title,
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        files_affected=files,
        dependencies=deps,
    )


async def billing_plan(store: Store) -> str:
    task = await store.create_task(
        NewTask.create(REQUIREMENT, metadata={"context": "Python 3.11, money in integer cents"})
    )
    workflow = await store.create_workflow(task.id)
    plan = [
        sub("b-001", "Add billing total()", ["billing.py"], []),
        sub("b-002", "Add unit tests for total()", ["tests/test_billing.py"], ["b-001"]),
        sub("b-003", "Document total() in the README", ["README.md"], ["b-001"]),
        sub("b-004", "Audit the billing tests", [], ["b-002"]),
    ]
    stages = {"b-001": 0, "b-002": 1, "b-003": 1, "b-004": 2}
    await store.add_subtasks(workflow.id, plan, stages)
    await SubtaskQueue(store.connector).enqueue_workflow(workflow.id)
    return workflow.id


def said_for(turn: FakeTurn) -> str:
    """The agent's reply: what it did, named after the subtask it was given."""
    first = turn.content.splitlines()[0]
    return f"Done: {first}; verified with pytest."


async def test_the_agent_gets_the_done_dependencies_the_waiting_and_the_parallel_subtasks(
    store: Store, tmp_path: Path
) -> None:
    workflow_id = await billing_plan(store)
    with FakeAgentApi(hook=said_for) as fake:
        agent = BriefedAgent(AgentApiAdapter(fake.base_url, poll_s=0.05), store)
        worker = Worker(
            SubtaskQueue(store.connector),
            {None: agent},
            config=ONE_AT_A_TIME,  # one agentapi agent takes one turn at a time
            recovery=ErrorRecoveryManager(time_scale=0.01, seed=7),
            events=EventBus(),
        )
        await worker.run(once=True)
        messages = {m.splitlines()[0]: m for m in fake.user_messages}

    assert {s.status for s in await store.list_subtasks(workflow_id)} == {"completed"}
    tests = messages["Add unit tests for total()"]
    assert "The requirement:\ntask-1: Add a billing total with tests and docs" in tests
    assert "Its context:\nPython 3.11, money in integer cents" in tests
    done = tests.split("Done before you (build on this work, do not redo it):\n")[1]
    assert done.startswith(
        "- b-001: Add billing total() — Done: Add billing total(); verified with pytest."
    )
    waiting = tests.split("Waiting on your work (leave what they need in place):\n")[1]
    assert waiting.startswith("- b-004: Audit the billing tests")
    parallel = tests.split("Running in parallel in other worktrees (leave their files to them):\n")
    assert parallel[1].startswith("- b-003: Document total() in the README (files: README.md)")

    first = messages["Add billing total()"]  # nothing done before it; two subtasks wait on it
    assert "Done before you" not in first
    assert "- b-002: Add unit tests for total()\n- b-003: Document total() in the README" in first
    last = messages["Audit the billing tests"]
    assert "- b-002: Add unit tests for total() — Done: Add unit tests for total();" in last
    assert "Waiting on your work" not in last


async def test_generate_instructions_sends_the_briefing_and_bounds_its_lists() -> None:
    plan_sub = sub("b-002", "Add unit tests for total()", ["tests/test_billing.py"], ["b-001"])
    many = tuple(Neighbour(f"x-{i:03d}", f"Parallel work {i}") for i in range(MAX_LISTED + 3))
    briefing = Briefing(
        requirement="task-1: Add a billing total",
        done=(Neighbour("b-001", "Add billing total()", "Added total() in billing.py"),),
        parallel=many,
    )
    text = await TaskNLP().generate_instructions(plan_sub, briefing=briefing)
    assert text.startswith("# Add unit tests for total()")
    assert text.endswith(briefing_text(briefing))
    assert "- b-001: Add billing total() — Added total() in billing.py" in text
    assert f"- x-{MAX_LISTED - 1:03d}: " in text
    assert f"- x-{MAX_LISTED:03d}: " not in text
    assert "- and 3 more" in text  # counted, never silently dropped
    assert await TaskNLP().generate_instructions(plan_sub) == text.split("\n\nThe requirement:")[0]
