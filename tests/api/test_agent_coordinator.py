"""The specification's ``AgentCoordinator``: initialize, execute_task, monitor_execution,
cancel_execution (the agent's process really ends), get_agent_capabilities and get_statistics (the
store's attempts: tokens, cost, durations)."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from fakes.workflows import queued_workflow
from taskorch import AgentCoordinator
from taskorch.agents.registry import AgentSpec
from taskorch.domain.models import AttemptOutcome
from taskorch.domain.plan import Domain, PlanSubtask, WorkerType
from taskorch.engine import OrchestrationEngine
from taskorch.engine.coordinator import Assignment, ExecutionStatus
from taskorch.settings import load_settings
from taskorch.store import Store

WRITER = """\
import pathlib, sys
pathlib.Path("NOTES.md").write_text(sys.argv[1])
print("wrote NOTES.md")
"""
SLEEPER = """\
import os, pathlib, sys, time
pathlib.Path(sys.argv[2]).write_text(str(os.getpid()))
time.sleep(120)
"""


def subtask(title: str = "Write the release notes") -> PlanSubtask:
    return PlanSubtask(
        subtask_id="docs-001-notes",
        parent_task_id="task-1",
        title=title,
        assigned_to=Domain.DOCS,
        worker_type=WorkerType.DOCUMENTATION,
        files_affected=["NOTES.md"],
        success_criteria="NOTES.md exists",
    )


def engine_on(store: Store, tmp_path: Path) -> OrchestrationEngine:
    return OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home"), store=store)


async def add_script_agent(
    engine: OrchestrationEngine, tmp_path: Path, name: str, script: str, *args: str
) -> None:
    path = tmp_path / f"{name}.py"
    path.write_text(script)
    spec = AgentSpec(name=name, command=[sys.executable, str(path), "{prompt}", *args])
    await engine.add_agent(spec)


async def test_execute_task_runs_the_assignment_on_the_chosen_agent(tmp_path: Path) -> None:
    engine = OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home"))
    await engine.initialize()
    await add_script_agent(engine, tmp_path, "writer", WRITER)
    coordinator = AgentCoordinator(engine=engine)
    await coordinator.initialize()
    workdir = tmp_path / "work"
    workdir.mkdir()

    session = await coordinator.execute_task(
        subtask(), {"workdir": str(workdir), "project": "taskorch 0.1"}
    )
    assert session.agent_name == "writer"
    assert "writer" in session.reason
    final = await coordinator.wait_for_execution(session.session_id, timeout_s=60)

    assert final.status == ExecutionStatus.COMPLETED
    assert final.done
    assert "wrote NOTES.md" in final.output
    notes = (workdir / "NOTES.md").read_text()
    assert notes.startswith("# Write the release notes")
    assert "project: taskorch 0.1" in notes  # the context reached the agent
    assert (await coordinator.monitor_execution(session.session_id)) == final
    stats = await coordinator.get_statistics()
    assert stats["writer"].executions == 1
    await engine.shutdown()


async def test_cancel_execution_ends_the_agents_process(tmp_path: Path) -> None:
    engine = OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home"))
    await engine.initialize()
    pid_file = tmp_path / "sleeper.pid"
    await add_script_agent(engine, tmp_path, "sleeper", SLEEPER, str(pid_file))
    async with AgentCoordinator(engine=engine) as coordinator:
        session = await coordinator.execute_task(Assignment(subtask(), agent="sleeper"))
        for _ in range(600):  # until the agent is up (a process start, not a timer)
            if pid_file.exists() and pid_file.read_text():
                break
            await asyncio.sleep(0.05)
        pid = int(pid_file.read_text())
        running = await coordinator.monitor_execution(session.session_id)
        assert running.status == ExecutionStatus.RUNNING

        cancelled = await coordinator.cancel_execution(session.session_id)

    await engine.shutdown()
    assert cancelled.status == ExecutionStatus.CANCELLED
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


async def test_capabilities_and_statistics_come_from_the_registry_and_the_store(
    store: Store, tmp_path: Path
) -> None:
    engine = engine_on(store, tmp_path)
    await engine.add_agent(AgentSpec(name="claude-1", type="claude-code"))
    await engine.add_agent(AgentSpec(name="aider-1", type="aider"))
    workflow_id = await queued_workflow(store, {"a": [], "b": []})
    [first, second] = await store.list_subtasks(workflow_id)
    for sub, outcome, tokens, cost in (
        (first, AttemptOutcome.SUCCEEDED, 1000, 0.25),
        (second, AttemptOutcome.FAILED, 500, 0.5),
    ):
        attempt = await store.start_attempt(sub.id, 1, agent_id="claude-1", worker_id="w")
        await store.finish_attempt(
            attempt.id,
            outcome,
            error_class=None if outcome == AttemptOutcome.SUCCEEDED else "agent",
            error_message=None if outcome == AttemptOutcome.SUCCEEDED else "tests failed",
            tokens_in=tokens,
            tokens_out=tokens // 10,
            cost_usd=cost,
        )

    coordinator = AgentCoordinator(engine=engine)
    await coordinator.initialize()
    caps = await coordinator.get_agent_capabilities("claude-code")
    assert caps.registered == ("claude-1",)
    assert caps.known_type
    assert "implementation" in caps.worker_types
    assert not (await coordinator.get_agent_capabilities("my-own")).known_type

    stats = await coordinator.get_statistics()
    claude = stats["claude-1"]
    assert (claude.attempts, claude.successes, claude.failures) == (2, 1, 1)
    assert (claude.tokens_in, claude.tokens_out) == (1500, 150)
    assert claude.cost_usd == pytest.approx(0.75)
    assert claude.total_s >= 0
    assert claude.mean_s is not None
    assert claude.last_error == "agent: tests failed"
    assert stats["aider-1"].attempts == 0


async def test_unknown_sessions_and_agents_are_one_line_errors(
    store: Store, tmp_path: Path
) -> None:
    from taskorch.domain.errors import InputError, NotFoundError

    coordinator = AgentCoordinator(engine=engine_on(store, tmp_path))
    with pytest.raises(InputError, match="not initialised"):
        await coordinator.execute_task(subtask())
    await coordinator.initialize()
    with pytest.raises(NotFoundError, match="no execution 'nope'"):
        await coordinator.monitor_execution("nope")
    with pytest.raises(NotFoundError, match="no registered agent 'ghost'"):
        await coordinator.execute_task(Assignment(subtask(), agent="ghost"))
    with pytest.raises(InputError, match="no agent for subtask docs-001-notes"):
        await coordinator.execute_task(subtask())
