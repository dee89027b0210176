"""kill -9 at each boundary of task -> workflow -> subtask -> merge -> task completed (issue 14),
not only at random moments: the real ``taskorch`` pauses at a named point
(``TASKORCH_FAULT_PAUSE``), the test kills its process group there, and the documented way on
(``taskorch resume`` after ``run``; ``serve`` again after ``serve``) takes over, to be paused and
killed at the next boundary, until a last life runs to the end.

Then git, the database and ``/proc`` must say: every task completed exactly once (one merged
workflow), no completed subtask's agent ran again, no merged work ran again or merged twice, no
task or workflow left unfinished, no agent process alive, no worktree left behind. ``resume``
never fails with a traceback (``RuntimeError: Event loop is closed`` was one).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.origins import bare_origin
from taskorch.domain.models import NewTask
from taskorch.store import Store

from .boundary import (
    Lab,
    Proc,
    agent_runs,
    assert_done_exactly_once,
    live_agents,
    wait_until,
)

pytestmark = pytest.mark.timeout(300)

REQUIREMENT = "Add a health check endpoint"  # a simple task: one subtask

RUN_CHAIN = [
    "workflow:created",
    "subtask:agent-done",
    "subtask:committed",
    "subtask:merged",
    "subtask:completed",
    "workflow:subtasks-done",
    "workflow:validated",
    "workflow:base-merged",
    "workflow:merged",
]
SERVE_CHAIN = ["task:claim", "workflow:created", "subtask:merged", "workflow:merged"]


@pytest.fixture
def lab(database_url: str, store: Store, tmp_path: Path) -> Iterator[Lab]:
    """``store`` first: the database is migrated before any process opens it."""
    origin = bare_origin(tmp_path / "remote")
    lab = Lab(database_url, tmp_path, origin.resolve().as_uri(), origin)
    lab.home.mkdir()
    lab.register_agent()
    try:
        yield lab
    finally:
        lab.stop_all()


def kill_at(lab: Lab, proc: Proc, point: str) -> None:
    """Wait until ``proc`` paused at ``point``, then kill -9 its process group; its agents must
    end with it."""
    wait_until(
        lambda: (point, proc.popen.pid) in lab.paused_at() or not proc.alive(),
        timeout_s=120,
        what=f"{proc.name} to reach {point}",
    )
    assert proc.alive(), f"{proc.name} exited before {point}:\n{proc.output()[-3000:]}"
    proc.kill9()
    wait_until(
        lambda: not live_agents(lab.agent_script),
        timeout_s=15,
        what="the agents of the killed process to end",
    )


def assert_clean_exit(text: str) -> None:
    assert "Traceback" not in text, text[-3000:]
    assert "Event loop is closed" not in text, text[-3000:]


# Each chain on one backend (the suite's time): run/resume, the single-user way, on SQLite;
# serve, the many-process way, on PostgreSQL; the plain resume after a kill on both.
# The run chain is cut into three lives of its own (each starts with `run` killed at its first
# point), so the suite's processes share the nine kills; together they kill at every point.
RUN_SEGMENTS = {
    "created-to-committed": RUN_CHAIN[0:3],
    "merged-to-subtasks-done": RUN_CHAIN[3:6],
    "validated-to-merged": RUN_CHAIN[6:9],
}
_MERGED_FROM = RUN_CHAIN.index("subtask:merged")


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("segment", list(RUN_SEGMENTS))
async def test_run_killed_at_every_boundary_then_resumed(
    lab: Lab, store: Store, segment: str
) -> None:
    points = RUN_SEGMENTS[segment]
    merged: dict[str, float] = {}
    for index, point in enumerate(points):
        if index == 0:
            life = lab.start(
                "run", "run", REQUIREMENT, "--repo", lab.repo_url, "--agent", "editor", pause=point
            )
        else:
            life = lab.start(f"resume-{index}", "resume", pause=point)
        kill_at(lab, life, point)
        assert_clean_exit(life.output())
        if not merged and RUN_CHAIN.index(point) >= _MERGED_FROM:
            # From now on, no agent may run for the subtask again.
            merged = dict.fromkeys(await _subtask_keys(store), time.time())
    last = lab.cli("resume")
    assert_clean_exit(last.stderr)
    if points[-1] == RUN_CHAIN[-1]:
        # Killed after the workflow (and its task) ended: nothing is left to resume.
        assert last.returncode == 1, last.stderr
        assert "no unfinished workflows" in last.stderr
    else:
        assert last.returncode == 0, (last.stdout + last.stderr)[-4000:]
        assert "merged" in last.stdout
    await assert_done_exactly_once(lab, store, merged_before=merged)


@pytest.mark.parametrize(
    "database_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)
async def test_serve_killed_at_boundaries_then_started_again(lab: Lab, store: Store) -> None:
    await store.create_task(NewTask.create(REQUIREMENT, REQUIREMENT))
    serve = ("serve", "--agent", "editor", "--port", "0")
    for index, point in enumerate(SERVE_CHAIN):
        life = lab.start(f"serve-{index}", *serve, pause=point)
        kill_at(lab, life, point)
    last = lab.start("serve-last", *serve)
    deadline = asyncio.get_running_loop().time() + 120
    # Ready once it has set right what the kills left (stranded tasks, ended workflows'
    # worktrees) and resumed the unfinished workflows.
    while "taskorch serving" not in last.output() or not await _all_tasks_ended(store):
        assert last.alive(), last.output()[-3000:]
        assert asyncio.get_running_loop().time() < deadline, last.output()[-3000:]
        await asyncio.sleep(0.2)
    assert last.terminate() == 0, last.output()[-3000:]
    assert_clean_exit(last.output())
    await assert_done_exactly_once(lab, store, merged_before={})


async def _subtask_keys(store: Store) -> list[str]:
    return [s.key for w in await store.list_workflows() for s in await store.list_subtasks(w.id)]


async def _all_tasks_ended(store: Store) -> bool:
    tasks = await store.list_tasks()
    return bool(tasks) and all(
        t.status.value in ("completed", "failed", "cancelled") for t in tasks
    )


async def test_resume_after_a_kill_mid_subtask_carries_the_run_to_the_end(
    lab: Lab, store: Store
) -> None:
    """The user's way after a crash: ``run`` killed while its agent works, then ``resume``
    (which waits out the dead run's lease) finishes it, exits 0, and leaves nothing running."""
    lab.agent_s = 30.0  # still at work when the kill comes
    run = lab.start("run", "run", REQUIREMENT, "--repo", lab.repo_url, "--agent", "editor")
    wait_until(
        lambda: any(r.kind == "start" for r in agent_runs(lab.record)) or not run.alive(),
        timeout_s=120,
        what="the agent to start",
    )
    assert run.alive(), run.output()[-3000:]
    run.kill9()
    wait_until(lambda: not live_agents(lab.agent_script), timeout_s=15, what="agents to end")
    lab.agent_s = 0.1
    resumed = lab.cli("resume")
    assert_clean_exit(resumed.stderr + resumed.stdout)
    assert resumed.returncode == 0, (resumed.stdout + resumed.stderr)[-4000:]
    assert "merged" in resumed.stdout
    await assert_done_exactly_once(lab, store, merged_before={})
