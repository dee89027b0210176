"""The live progress view of ``run``/``process``/``batch``/``resume``/``monitor``: a redrawn tree
on a terminal, one line per change when piped, nothing with ``--quiet``/``--json``; the reason a
workflow or subtask waits shows at once; the shared options mean the same on each command."""

from __future__ import annotations

import asyncio
import json
import os
import pty
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from cli_harness import Outcome, run_cli

from taskorch.agents.registry import AgentSpec, capabilities_for, merge_capabilities
from taskorch.cli.progress import lines_of, workflow_row
from taskorch.domain.models import Event, Priority, Subtask, Task, Workflow
from taskorch.domain.plan import Domain, WorkerType
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.engine.agents import WAITING
from taskorch.engine.setup import open_engine
from taskorch.engine.status import WorkflowStatus
from taskorch.settings import load_settings
from taskorch.store import open_store

AUTH = "Add authentication system with security audit and documentation"
HEALTH = "Add a health check endpoint"
STAGED = "Fix bug in dashboard/server/index.js line 42 and document it"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "DB_HOST", "TASKORCH_CONFIG", "TASKORCH_REPO", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    monkeypatch.setenv("NLP_PROVIDER", "heuristic")
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".taskorch"


def _env(home: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DB_", "DATABASE_URL", "FORCE_COLOR")) and k != "TASKORCH_REPO"
    }
    return {**env, "TASKORCH_HOME": str(home), "NLP_PROVIDER": "heuristic"}


def _succeeded(outcome: Outcome) -> Outcome:
    assert outcome.code == 0, outcome.err
    assert outcome.problems() == [], outcome.err
    return outcome


def _progress(err: str, workflow_id: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith(f"{workflow_id}  ")]


def test_piped_progress_is_one_full_line_per_change_with_stages_agents_and_waits(
    home: Path,
) -> None:
    argv = ["run", STAGED, "--agent", "sim", "--merge", "approve", "--sim-duration", "0.2"]
    outcome = _succeeded(run_cli(argv))
    [where] = [line for line in outcome.err.splitlines() if "merging into" in line]
    workflow_id = where.split(":")[0]
    final = json.loads(_succeeded(run_cli(["status", workflow_id, "--json"])).out)
    assert len({s["stage"] for s in final["subtasks"]}) > 1
    lines = _progress(outcome.err, workflow_id)
    assert len(lines) == len(set(lines)), "a line repeats what was already shown"
    states: set[str] = set()
    for sub in final["subtasks"]:
        head = f"{workflow_id}  stage {sub['stage']}  {sub['key']}  "
        mine = [line[len(head) :].split() for line in lines if line.startswith(head)]
        assert mine, (sub["key"], lines)
        assert mine[-1][:4] == ["completed", "sim", "attempt", "1"]
        assert mine[-1][4].endswith("s")  # how long it took
        states.update(words[0] for words in mine)
    assert {"pending", "running", "completed"} <= states
    # The approve policy holds the validated workflow: the reason shows in the progress itself.
    assert lines[-1].startswith(f"{workflow_id}  validation_passed  100%  task-1 {STAGED}")
    assert lines[-1].endswith(
        f"waiting for approval: taskorch approve {workflow_id} "
        f"(or taskorch reject {workflow_id} --reason TEXT)"
    )
    # stdout keeps the result alone.
    assert not [line for line in outcome.out.splitlines() if "  stage " in line]
    assert outcome.out.startswith(f"{workflow_id}  validation_passed  100%")


def test_a_subtask_no_agent_can_take_shows_why_at_once(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKORCH_SUBTASK_TIMEOUT_S", "1")

    async def register() -> None:
        caps = merge_capabilities(capabilities_for("sim"), domains=["docs"])
        spec = AgentSpec(name="docs-only", type="sim", capabilities=caps, max_concurrency=1)
        async with open_engine(load_settings()) as engine:
            await engine.add_agent(spec)

    asyncio.run(register())
    outcome = run_cli(["run", "Fix bug in dashboard/server/index.js line 42"])
    assert outcome.code == 1, outcome.err
    assert "Traceback" not in outcome.err
    [where] = [line for line in outcome.err.splitlines() if "merging into" in line]
    lines = _progress(outcome.err, where.split(":")[0])
    [waiting] = [line for line in lines if "waiting for an agent" in line]
    assert "  pending  (waiting)" in waiting or "  queued  (waiting)" in waiting
    assert "no available agent can do development" in waiting
    assert "docs-only (domains docs)" in waiting
    # Shown while it waited, before the workflow gave up on it.
    assert lines.index(waiting) < next(i for i, line in enumerate(lines) if "  failed  " in line)


def test_on_a_terminal_the_tree_is_redrawn_in_place(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    primary, secondary = pty.openpty()
    argv = ["run", HEALTH, "--agent", "sim", "--sim-duration", "0.5"]
    env = {**_env(home), "COLUMNS": "160", "LINES": "50", "TERM": "xterm"}
    with subprocess.Popen(
        [sys.executable, "-m", "taskorch", *argv],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env=env,
        cwd=tmp_path,
    ) as proc:
        os.close(secondary)
        seen = b""
        while True:
            try:
                chunk = os.read(primary, 65536)
            except OSError:  # the terminal closed: the command ended
                break
            if not chunk:
                break
            seen += chunk
        proc.wait(timeout=60)
    os.close(primary)
    shown = seen.decode(errors="replace")
    assert proc.returncode == 0, shown
    assert "\x1b[1A\x1b[2K" in shown  # rich's Live moving up to redraw the tree
    frames = [f for f in shown.split("\x1b[2K") if "health-001-add" in f]
    assert any("├── stage 1" in f or "└── stage 1" in f for f in frames), shown[-3000:]
    running = [f for f in frames if "health-001-add  \x1b[36mrunning" in f]
    assert running, shown[-3000:]
    assert "sim  attempt 1" in running[0]
    assert "\x1b[1mwf-" in shown  # the workflow heads its tree
    assert "merged into main of" in shown  # then the result


def test_monitor_in_another_process_follows_the_run(home: Path) -> None:
    argv = ["run", HEALTH, "--agent", "sim", "--sim-duration", "3"]
    with subprocess.Popen(
        [sys.executable, "-m", "taskorch", *argv],
        env=_env(home),
        cwd=home.parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        bufsize=0,
    ) as proc:
        assert proc.stderr is not None
        said = b""
        deadline = time.monotonic() + 60
        while b"merging into" not in said and time.monotonic() < deadline:
            said += os.read(proc.stderr.fileno(), 4096) or b""
        workflow_id = said.decode().split(":")[0].strip()
        watched = _succeeded(run_cli(["monitor", workflow_id]))
        proc.communicate(timeout=60)
    assert proc.returncode == 0
    lines = _progress(watched.err, workflow_id)
    assert len(lines) == len(set(lines)), "monitor repeats a line"
    [running] = [line for line in lines if "health-001-add  running" in line]
    assert running.startswith(f"{workflow_id}  stage 1  health-001-add  running  sim  attempt 1")
    assert lines[-1].startswith(f"{workflow_id}  merged  100%")
    assert watched.out.startswith(f"{workflow_id}  merged  100%")


def test_batch_takes_ids_either_way_and_stores_the_priority(home: Path) -> None:
    for title in ("List all repositories", "Add a README"):
        _succeeded(run_cli(["task", "add", title]))
    argv = ["batch", "1,2", "--priority", "high", "--agent", "sim", "--quiet"]
    quiet = _succeeded(run_cli(argv))
    assert quiet.err == ""  # no progress, no "merging into"
    results = quiet.out.splitlines()
    assert len(results) == 2
    for result in results:
        assert result.startswith(f"{result.split()[0]}  merged  into main of ")

    async def stored() -> list[tuple[str, list[int]]]:
        store = await open_store(f"sqlite:///{home / 'taskorch.db'}")
        try:
            return [
                (w.metadata["options"]["priority"], [s.priority for s in subtasks])
                for w in await store.list_workflows()
                if (subtasks := await store.list_subtasks(w.id))
            ]
        finally:
            await store.close()

    found = asyncio.run(stored())
    assert len(found) == 2
    for priority, ranks in found:
        assert priority == "high"
        assert set(ranks) == {Priority.HIGH.rank}
    spaced = run_cli(["batch", "1", "99"])  # space-separated: the second id is read too
    assert spaced.code == 1
    assert spaced.err.strip() == "error: no task with id 99: see `taskorch task list`"


def test_options_that_cannot_apply_are_refused_and_help_says_the_unit(home: Path) -> None:
    refused = run_cli(["resume", "--priority", "high"])
    assert refused.code == 2
    assert "--priority" in refused.err
    for command in ("run", "process", "batch", "resume"):
        shown = _succeeded(run_cli([command, "--help"])).out
        for option in ("--agent", "--timeout", "--json", "--quiet"):
            assert option in shown, (command, option)
        assert "milliseconds" in " ".join(shown.split()), command
    bad = run_cli(["batch", "1", "--timeout", "soon"])
    assert bad.code == 1
    assert bad.err.startswith("error: --timeout 'soon' is not a duration")


def test_each_waiting_reason_and_the_usage_show_on_the_subtasks_line() -> None:
    """The rows of a status as stored: a failed dependency, a retry's back-off with the tokens
    and cost of the failed attempt, no capable agent; a stalled workflow."""
    now = datetime.now(UTC)
    stamps = {"created_at": now, "updated_at": now}
    task = Task(id=7, title="Add login", **stamps)
    workflow = Workflow(
        id="wf-1",
        task_id=7,
        status=WorkflowState.PROCESSING,
        start_time=now - timedelta(seconds=5),
        metadata={"options": {"agent": "auto"}, "stalled": {"reason": "disk full", "step": "x"}},
        **stamps,
    )

    def sub(key: str, stage: int, state: SubtaskState, **more: Any) -> Subtask:
        return Subtask(
            id=stage + 1,
            workflow_id="wf-1",
            key=key,
            title=key,
            assigned_to=Domain.DEVELOPMENT,
            worker_type=WorkerType.IMPLEMENTATION,
            stage=stage,
            status=state,
            **stamps,
            **more,
        )

    retry = Event(
        id=1,
        kind="task:retry",
        workflow_id="wf-1",
        subtask_id=1,
        payload={"key": "a", "tokens_in": 1000, "tokens_out": 234, "cost_usd": 0.5},
        created_at=now,
    )
    status = WorkflowStatus(
        workflow=workflow,
        task=task,
        subtasks=[
            sub(
                "a",
                0,
                SubtaskState.QUEUED,
                agent_id="claude",
                attempts=1,
                error="timed out",
                run_after=now + timedelta(minutes=1),
            ),
            sub("b", 1, SubtaskState.BLOCKED, error="dependency a failed: boom"),
            sub("c", 1, SubtaskState.PENDING, agent_id=WAITING, error="waiting for an agent: x"),
        ],
        history=[],
        events=[retry],
    )
    lines = lines_of(workflow_row(status, now=now))
    when = f"{(now + timedelta(minutes=1)).astimezone(UTC):%H:%M:%S}"
    assert lines == {
        "": "wf-1  processing  0%  task-7 Add login  stalled at x: disk full",
        "a": f"wf-1  stage 1  a  queued  claude  attempt 1  1,234 tokens  $0.5000  "
        f"retry at {when} UTC after: timed out",
        "b": "wf-1  stage 2  b  blocked  auto  blocked: dependency a failed: boom",
        "c": "wf-1  stage 2  c  pending  (waiting)  waiting for an agent: x",
    }
