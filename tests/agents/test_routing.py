"""Routing: capability and worker-type fit, language, load, track record with exploration, the
reason when no agent fits, and reassignment after an agent error."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

from taskorch import AgentCoordinator
from taskorch.agents.registry import capabilities_for
from taskorch.agents.routing import languages_of
from taskorch.domain.models import Agent, AgentStatus, Capabilities
from taskorch.domain.plan import Domain, Plan, PlanSubtask, WorkerType
from taskorch.store.agent_stats import TrackRecord

NOW = datetime(2026, 1, 1, tzinfo=UTC)


def agent(
    name: str,
    agent_type: str = "custom",
    *,
    capabilities: Capabilities | None = None,
    status: AgentStatus = AgentStatus.AVAILABLE,
    limit: int = 1,
) -> Agent:
    return Agent(
        id=name,
        name=name,
        type=agent_type,
        capabilities=capabilities or capabilities_for(agent_type),
        status=status,
        max_concurrency=limit,
        created_at=NOW,
        updated_at=NOW,
    )


def subtask(
    key: str = "s1",
    domain: Domain = Domain.DEVELOPMENT,
    worker_type: WorkerType = WorkerType.IMPLEMENTATION,
    files: list[str] | None = None,
    command: list[str] | None = None,
    title: str = "Add unit tests for the billing module",
) -> PlanSubtask:
    return PlanSubtask(
        subtask_id=key,
        parent_task_id="task-1",
        title=title,
        assigned_to=domain,
        worker_type=worker_type,
        files_affected=files or [],
        command=command,
    )


def test_only_agents_that_can_do_the_work_are_candidates() -> None:
    coordinator = AgentCoordinator([agent("aider-1", "aider"), agent("claude-1", "claude-code")])
    audit = subtask(domain=Domain.SECURITY, worker_type=WorkerType.AUDIT)
    assert coordinator.find_best_agent(audit).agent_id == "claude-1"  # aider: no security


def test_explicit_capability_and_language_beat_a_generalist() -> None:
    python_only = Capabilities(
        domains=[Domain.DEVELOPMENT], worker_types=[WorkerType.TEST], languages=["python"]
    )
    go_only = python_only.model_copy(update={"languages": ["go"]})
    coordinator = AgentCoordinator(
        [agent("any"), agent("go", capabilities=go_only), agent("py", capabilities=python_only)]
    )
    work = subtask(worker_type=WorkerType.TEST, files=["tests/test_billing.py"])
    choice = coordinator.find_best_agent(work)
    assert choice.agent_id == "py"
    assert choice.parts["capability"] == 1.0
    assert choice.parts["language"] == 1.0
    assert coordinator.score(agent("go", capabilities=go_only), work).parts["language"] == 0.0
    assert coordinator.score(agent("any"), work).parts["capability"] < 1.0
    assert "py: score" in choice.reason
    assert "next:" in choice.reason


def test_languages_come_from_files_then_words() -> None:
    assert languages_of(subtask(files=["api/server.ts", "docs/api.md"])) == {"typescript"}
    assert languages_of(subtask(title="Add a pytest suite for billing")) == {"python"}
    assert languages_of(subtask(title="Write the release notes")) == set()


def test_a_failing_agent_gets_fewer_assignments() -> None:
    agents = [agent("steady"), agent("flaky")]
    records = {
        "steady": TrackRecord(attempts=20, successes=19, mean_s=30.0),
        "flaky": TrackRecord(attempts=20, successes=6, mean_s=30.0),
    }
    choice = AgentCoordinator(agents, records).find_best_agent(subtask())
    assert choice.agent_id == "steady"
    assert choice.parts["success"] > 0.9


def test_a_new_agent_gets_tried_through_exploration() -> None:
    agents = [agent("veteran"), agent("newcomer")]
    records = {"veteran": TrackRecord(attempts=50, successes=25, mean_s=60.0)}
    choice = AgentCoordinator(agents, records).find_best_agent(subtask())
    assert choice.agent_id == "newcomer"
    assert choice.parts["exploration"] > 0.05


def test_load_spreads_a_plan_over_agents_and_limits() -> None:
    agents = [agent("a", limit=1), agent("b", limit=1), agent("c", limit=2)]
    plan = Plan(
        orchestration_id="orch-1",
        parent_task_id="task-1",
        task_title="four pieces",
        complexity="medium",
        subtasks=[subtask(f"s{i}") for i in range(4)],
    )
    choices = AgentCoordinator(agents).assign_tasks(plan)
    assert Counter(c.agent_id for c in choices.values()) == {"a": 1, "b": 1, "c": 2}


def test_load_counts_only_within_a_stage() -> None:
    agents = [agent("a", limit=1), agent("b", limit=1)]
    plan = Plan(
        orchestration_id="orch-1",
        parent_task_id="task-1",
        task_title="one after the other",
        complexity="medium",
        subtasks=[subtask("s1"), subtask("s2")],
        execution_plan={"stage_1": ["s1"], "stage_2": ["s2"]},
    )
    records = {"a": TrackRecord(attempts=10, successes=10, mean_s=5.0)}
    choices = AgentCoordinator(agents, records).assign_tasks(plan)
    assert [c.agent_id for c in choices.values()] == ["a", "a"]  # s2 runs after s1 is done
    assert choices[1].parts["load"] == 1.0


def test_no_capable_agent_says_why() -> None:
    agents = [
        agent("docs-bot", capabilities=Capabilities(domains=[Domain.DOCS])),
        agent("down", status=AgentStatus.OFFLINE),
        agent("off", status=AgentStatus.DISABLED),
        agent("sh", "shell"),
    ]
    choice = AgentCoordinator(agents).find_best_agent(subtask())
    assert not choice.routed
    assert choice.reason.startswith("no available agent can do development/implementation: ")
    assert "docs-bot (domains docs)" in choice.reason
    assert "down (offline)" in choice.reason
    assert "off (disabled)" in choice.reason
    assert "sh (shell agent, the subtask has no command)" in choice.reason
    assert "no agent registered" in AgentCoordinator([]).find_best_agent(subtask()).reason


def test_a_subtask_with_a_command_goes_to_the_shell_agent() -> None:
    coordinator = AgentCoordinator([agent("claude-1", "claude-code"), agent("sh", "shell")])
    assert coordinator.find_best_agent(subtask(command=["make", "fmt"])).agent_id == "sh"


def test_reassignment_after_an_agent_error_picks_another_agent() -> None:
    coordinator = AgentCoordinator([agent("a"), agent("b")])
    work = subtask()
    assert coordinator.reassign(work, "a", "agent", True) == "b"  # the policy says reassign
    assert coordinator.reassign(work, "a", "network", False) == "b"  # unreachable: move on
    assert coordinator.reassign(work, "a", "rate_limit", False) == "a"  # wait for the same one
    alone = AgentCoordinator([agent("a")])
    assert alone.reassign(work, "a", "agent", True) == "a"  # nobody else: the same one again
    # failures count at once in this run; a rate limit is no failure (a rate window)
    assert coordinator.records["a"].attempts == 2


def test_one_named_agent_and_coordination_off() -> None:
    agents = [
        agent("a"),
        agent("b"),
        agent("docs", capabilities=Capabilities(domains=[Domain.DOCS])),
    ]
    assert AgentCoordinator(agents, only="b").find_best_agent(subtask()).agent_id == "b"
    off = AgentCoordinator(agents, scoring=False).find_best_agent(subtask(key="x"))
    assert off.agent_id == "a"
    assert "coordination is off" in off.reason
