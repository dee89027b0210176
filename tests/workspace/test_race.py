"""A best-of-N race in git alone (no store): the test command decides between candidates; an
attempt ended mid-race leaves no candidate running, no worktree and no branch; two winners of one
subtask merge once."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from pathlib import Path

from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.engine.best_of import Checks, Race
from taskorch.runtime.workspace import MergeStatus, Workspace
from workspace.conftest import branch_list, git, noop, sim_task

WAIT_S = 60.0


class Writes:
    """Writes ``text`` to ``name`` in its worktree (after ``gate``, when given)."""

    name = "writes"

    def __init__(self, name: str, text: str, gate: asyncio.Event | None = None) -> None:
        self.file, self.text, self.gate = name, text, gate
        self.cancelled = False
        self.waiting = False

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        assert task.workdir is not None
        try:
            if self.gate is not None:
                self.waiting = True
                await asyncio.wait_for(self.gate.wait(), WAIT_S)
        except asyncio.CancelledError:
            self.cancelled = True
            raise
        (task.workdir / self.file).write_text(self.text)
        return AgentResult(True, f"wrote {self.file}", cost_usd=0.1)


async def until(condition: Callable[[], bool], what: str) -> None:
    """Wait for ``condition`` (generous deadline: never a timed assertion)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + WAIT_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.01)


async def started(repo: Path, home: Path) -> Workspace:
    workspace = await Workspace.for_repo(repo, "wf-1", home=home)
    await workspace.start()
    return workspace


async def test_the_test_command_rejects_a_candidate_and_the_next_one_wins(
    repo: Path, home: Path
) -> None:
    workspace = await started(repo, home)
    check = "import sys; sys.exit('tests failed' if 'bad' in open('src/app.py').read() else 0)"
    task = sim_task("fix", ["src/app.py"], workdir=None)
    gate = asyncio.Event()
    bad = Writes("src/app.py", "bad = True\n")
    good = Writes("src/app.py", "good = True\n", gate)
    race = Race(
        workspace,
        task,
        noop,
        [("a", bad), ("b", good)],
        spec=None,
        checks=Checks([sys.executable, "-c", check], 60.0),
    )
    running = asyncio.create_task(race.run())
    await until(
        lambda: 1 in race.records and race.records[1].state.value != "running",
        "candidate 1's verdict",
    )
    gate.set()
    result = await asyncio.wait_for(running, WAIT_S)

    summary = result.data["best_of"]
    assert [(c["agent"], c["state"]) for c in summary["candidates"]] == [
        ("a", "rejected"),
        ("b", "won"),
    ]
    assert "tests failed" in summary["candidates"][0]["reason"]
    assert result.cost_usd == 0.2
    assert git(repo, "show", f"{workspace.workflow_branch}:src/app.py") == "good = True"
    assert branch_list(repo, "taskorch/wf-1/sub/*") == []


async def test_an_attempt_ended_mid_race_ends_every_candidate_and_leaves_nothing(
    repo: Path, home: Path
) -> None:
    workspace = await started(repo, home)
    never = asyncio.Event()
    agents = [Writes("src/app.py", f"v{n}\n", never) for n in range(3)]
    task = sim_task("fix", ["src/app.py"], workdir=None)
    race = Race(workspace, task, noop, [(None, a) for a in agents], spec=None, checks=Checks())
    running = asyncio.create_task(race.run())
    await until(lambda: all(a.waiting for a in agents), "the three agents at work")
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)

    assert running.cancelled()
    assert [a.cancelled for a in agents] == [True, True, True]
    assert {r.state.value for r in race.records.values()} == {"cancelled"}
    assert not [n for n in (1, 2, 3) if workspace.subtask_worktree(f"fix.c{n}").exists()]
    assert "fix.c" not in git(repo, "worktree", "list")
    assert branch_list(repo, "taskorch/wf-1/sub/*") == []
    assert git(repo, "rev-parse", workspace.workflow_branch) == git(repo, "rev-parse", "main")


async def test_two_winners_of_one_subtask_merge_once(repo: Path, home: Path) -> None:
    workspace = await started(repo, home)
    for n in (1, 2):
        path = await workspace.prepare_subtask(f"fix.c{n}")
        (path / "src" / "app.py").write_text(f"winner {n}\n")
        await workspace.commit_all(f"fix.c{n}", f"candidate {n}")

    first, second = await asyncio.gather(
        workspace.merge_candidate("fix", "fix.c1"), workspace.merge_candidate("fix", "fix.c2")
    )

    assert sorted([first.status, second.status]) == sorted(
        [MergeStatus.MERGED, MergeStatus.ALREADY_MERGED]
    )
    log = git(repo, "log", "--format=%s", workspace.workflow_branch).splitlines()
    assert len([s for s in log if s.startswith("taskorch: merge subtask fix ")]) == 1
    assert branch_list(repo, "taskorch/wf-1/sub/*") == []
    assert "fix.c" not in git(repo, "worktree", "list")
