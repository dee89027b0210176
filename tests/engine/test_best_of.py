"""Best-of-N: a subtask runs on three scripted agents at once, each in its own worktree (one
does out-of-scope work, one good work, one is slow); exactly one candidate's work is merged, the
others are cancelled and leave no worktree or branch, and the attempt counts every candidate's
cost. On both backends."""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.domain.best_of import allowed_candidates, candidates_wanted
from taskorch.domain.errors import AgentError
from taskorch.domain.models import NewTask, Subtask
from taskorch.domain.plan import Domain, WorkerType
from taskorch.engine import OrchestrationEngine, best_of
from taskorch.engine.agents import AgentPool
from taskorch.engine.best_of import BestOf
from taskorch.engine.delivery import GitDelivery, WorkspaceAgent
from taskorch.engine.setup import budget_cap, open_engine, races
from taskorch.runtime.validation import Finding, working_spec_check
from taskorch.settings import Settings, load_settings

REQUIREMENT = "Fix bug in src/app.py line 42"
WAIT_S = 60.0
"""Generous: the slow candidate waits this long for a cancel that comes at once."""


class Scripted:
    """Behaves by the candidate whose worktree it runs in (``<key>.c1`` ...): c1 writes outside
    the subtask's files; c2 does good work once c1 is judged and c3 has started; c3 is slow and,
    when cancelled, says what it spent (as an agent that streams usage does)."""

    name = "scripted"

    def __init__(self, declared: list[str]) -> None:
        self.declared = declared
        self.c1_judged = asyncio.Event()
        self.c3_started = asyncio.Event()
        self.cancelled: list[str] = []
        self.workdirs: list[Path] = []

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        assert task.workdir is not None
        self.workdirs.append(task.workdir)
        which = task.workdir.name.rsplit(".", 1)[-1]
        heartbeat()
        if which == "c1":
            (task.workdir / "outside.txt").write_text("not asked for\n")
            return AgentResult(True, "changed outside.txt", tokens_in=100, cost_usd=0.01)
        if which == "c2":
            await asyncio.wait_for(self.c1_judged.wait(), WAIT_S)
            await asyncio.wait_for(self.c3_started.wait(), WAIT_S)
            target = task.workdir / self.declared[0]
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("fixed by candidate 2\n")
            return AgentResult(True, "fixed the bug", tokens_in=200, cost_usd=0.02)
        self.c3_started.set()
        try:
            await asyncio.sleep(WAIT_S)
        except asyncio.CancelledError:
            self.cancelled.append(which)
            raise AgentError("stopped").with_usage(50, None, 0.04) from None
        return AgentResult(True, "too late", cost_usd=0.04)


@pytest.fixture
def settings_for(database_url: str, tmp_path: Path) -> Callable[..., Settings]:
    """Settings on the test's database, with the ones given added."""

    def settings(**extra: Any) -> Settings:
        return load_settings(
            database_url=database_url,
            taskorch_home=tmp_path / "home",
            taskorch_worktrees=tmp_path / "worktrees",
            **extra,
        )

    return settings


@pytest.fixture
async def engine(settings_for: Callable[..., Settings]) -> AsyncIterator[OrchestrationEngine]:
    async with open_engine(settings_for()) as running:
        yield running


def git(cwd: Path, *args: str) -> str:
    argv = ["git", *args]
    return subprocess.run(argv, cwd=cwd, capture_output=True, text=True, check=True).stdout


async def test_best_of_three_merges_one_cancels_the_others_and_counts_all_costs(
    engine: OrchestrationEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    task = await engine.add_task(NewTask.create(REQUIREMENT))
    scripted = Scripted(["src/app.py"])

    def scope_check(declared: Any, actual: Any) -> list[Finding]:
        found = working_spec_check(declared, actual)
        if any("outside.txt" in files for files in actual.values()):
            scripted.c1_judged.set()  # (its verdict is stored before c2's work is looked at)
        return found

    monkeypatch.setattr(best_of, "working_spec_check", scope_check)
    delivery = engine.delivery
    assert isinstance(delivery, GitDelivery)
    pool = AgentPool(
        {None: WorkspaceAgent(scripted, delivery, BestOf({None: scripted}))}, mode="sim"
    )
    status = await engine.process_task(task.id, agents=pool, options={"agent": "sim", "best_of": 3})

    assert status.state == "merged", status.to_dict()
    [sub] = status.subtasks
    assert sub.files_affected == ["src/app.py"]  # what makes c1's work out of scope
    race = status.to_dict()["subtasks"][0]["best_of"]
    states = {c["number"]: (c["state"], c["cost_usd"]) for c in race["candidates"]}
    assert states == {1: ("rejected", 0.01), 2: ("won", 0.02), 3: ("cancelled", 0.04)}
    assert race["winner"] == 2
    assert "outside its declared scope" in race["candidates"][0]["reason"]
    assert scripted.cancelled == ["c3"]

    # All three candidates' cost is in the attempts table.
    attempts = await engine.store.list_attempts(sub.id)
    assert [a.outcome.value for a in attempts] == ["succeeded"]
    assert attempts[0].cost_usd == pytest.approx(0.07)
    assert attempts[0].tokens_in == 350

    # Git: the base branch holds exactly one merge of the subtask, candidate 2's work.
    repo = tmp_path / "home" / "repos" / "scratch"
    subjects = git(repo, "log", "--format=%s", "main").splitlines()
    merges = [s for s in subjects if s.startswith(f"taskorch: merge subtask {sub.key}")]
    assert len(merges) == 1, subjects
    assert git(repo, "show", "main:src/app.py") == "fixed by candidate 2\n"
    assert "outside.txt" not in git(repo, "ls-tree", "-r", "--name-only", "main")
    # No candidate worktree or branch is left, on disk or in git.
    assert len(scripted.workdirs) == 3
    assert not [p for p in scripted.workdirs if p.exists()]
    assert ".c" not in git(repo, "worktree", "list")
    assert git(repo, "branch", "--list", f"taskorch/{status.workflow.id}/*") == ""


async def test_a_retry_escalates_to_a_race_that_fails_with_each_candidates_reason(
    settings_for: Callable[..., Settings],
) -> None:
    class Failing:
        name = "failing"

        async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
            return AgentResult(False, "could not do it", cost_usd=0.5)

    failing = Failing()
    options = {"agent": "sim", "best_of_retry": 2}
    async with open_engine(settings_for(retry_attempts=2, retry_delay="10ms")) as engine:
        delivery = engine.delivery
        assert isinstance(delivery, GitDelivery)
        agent = WorkspaceAgent(failing, delivery, BestOf({None: failing}))
        task = await engine.add_task(NewTask.create(REQUIREMENT))
        status = await engine.process_task(
            task.id, agents=AgentPool({None: agent}, mode="sim"), options=options
        )
        [sub] = status.subtasks
        attempts = await engine.store.list_attempts(sub.id)

    assert status.state == "failed"
    # The first try on one agent, the retry on two at once: each candidate's cost counts.
    assert [a.cost_usd for a in attempts] == [pytest.approx(0.5), pytest.approx(1.0)]
    assert sub.error is not None
    assert f"none of 2 candidates for {sub.key} passed validation" in sub.error
    assert "candidate 2 (default) failed: agent reported failure: could not do it" in sub.error


def test_how_many_candidates_a_subtask_asks_for() -> None:
    options = {"best_of": 3}
    assert candidates_wanted(worker_type="implementation", attempt=1, options=options) == 3
    assert candidates_wanted(worker_type="documentation", attempt=1, options=options) == 1
    assert candidates_wanted(worker_type="documentation", attempt=1, plan_best_of=2) == 2
    retry = {"best_of_retry": 4}
    assert candidates_wanted(worker_type="test", attempt=1, options=retry) == 1
    assert candidates_wanted(worker_type="test", attempt=2, options=retry) == 4
    assert candidates_wanted(worker_type="test", attempt=1, plan_best_of=50) == 5


def test_the_budget_caps_the_candidates() -> None:
    assert allowed_candidates(3) == 3
    assert allowed_candidates(3, remaining_usd=1.0, predicted_usd=0.25) == 3
    assert allowed_candidates(3, remaining_usd=0.5, predicted_usd=0.25) == 2
    assert allowed_candidates(3, remaining_usd=0.3, predicted_usd=0.3) == 1
    assert allowed_candidates(3, remaining_usd=0.0, predicted_usd=0.25) == 1
    assert allowed_candidates(3, remaining_usd=5.0, predicted_usd=None) == 3


def test_the_candidates_go_to_different_agents_first() -> None:
    now = datetime.now(UTC)
    subtask = Subtask(
        id=1,
        workflow_id="wf-1",
        key="fix",
        title="Fix it",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        agent_id="b",
        created_at=now,
        updated_at=now,
    )
    a, b, c = Scripted([]), Scripted([]), Scripted([])
    lineup = BestOf({"a": a, "b": b, "c": c}).lineup(subtask, 4)
    assert [agent for agent, _ in lineup] == ["b", "a", "c", "b"]
    assert [adapter for _, adapter in lineup] == [b, a, c, b]
    picked = BestOf({"a": a, "b": b}, pick=lambda s, chosen: None).lineup(subtask, 2)
    assert [agent for agent, _ in picked] == ["b", "b"]  # no other capable agent: b twice


class Counting:
    """Every candidate waits until two have started (a third, if any, would start too); the
    first writes the fix, the others wait to be cancelled."""

    name = "counting"

    def __init__(self) -> None:
        self.workdirs: list[Path] = []
        self.two_started = asyncio.Event()

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        assert task.workdir is not None
        self.workdirs.append(task.workdir)
        if len(self.workdirs) >= 2:
            self.two_started.set()
        heartbeat()
        if task.workdir.name.endswith(".c1"):
            await asyncio.wait_for(self.two_started.wait(), WAIT_S)
            await asyncio.sleep(0.3)  # a third candidate, were it allowed, has started by now
            target = task.workdir / "src" / "app.py"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text("fixed\n")
            return AgentResult(True, "fixed the bug", cost_usd=0.01)
        await asyncio.sleep(WAIT_S)
        return AgentResult(True, "too late")


async def test_the_workflows_budget_caps_how_many_candidates_race(
    engine: OrchestrationEngine,
) -> None:
    """No history: a candidate of the plan's 15,000-token subtask is predicted at $0.15, so a
    $0.35 cap pays for two of the three asked for."""
    task = await engine.add_task(NewTask.create(REQUIREMENT))
    counting = Counting()
    delivery = engine.delivery
    assert isinstance(delivery, GitDelivery)
    race = races({None: counting}, cap=budget_cap(engine))
    pool = AgentPool({None: WorkspaceAgent(counting, delivery, race)}, mode="sim")
    options = {"agent": "sim", "best_of": 3, "budget": {"usd": 0.35}}
    status = await engine.process_task(task.id, agents=pool, options=options)
    assert status.state == "merged", status.to_dict()
    [sub] = status.subtasks
    assert sub.estimated_tokens == 15_000
    candidates = status.to_dict()["subtasks"][0]["best_of"]["candidates"]
    assert [c["state"] for c in candidates] == ["won", "cancelled"]
    assert len(counting.workdirs) == 2
