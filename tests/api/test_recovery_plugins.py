"""The specification's custom recovery strategy, registered by dict in a plugin, reaches the
workers the CLI builds: ``taskorch worker`` and ``taskorch serve`` run its action on an agent that
fails with the custom error, and the action gets the workflow id and the context."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.e2e import demo_repo
from taskorch.agents.registry import AgentSpec
from taskorch.cli.main import invoke
from taskorch.domain.models import NewTask
from taskorch.domain.states import SubtaskState, WorkflowState
from taskorch.engine.setup import open_engine
from taskorch.settings import load_settings

REQUIREMENT = "Add unit tests for the billing module"
FAILING_AGENT = """\
import sys
print("CUSTOM_ERROR: the sandbox quota is used up", file=sys.stderr)
sys.exit(3)
"""
PLUGIN = """\
import json
import pathlib

EVIDENCE = pathlib.Path({evidence!r})


def register(manager):
    manager.register_recovery_strategy("CUSTOM_ERROR", {{
        "name": "Custom Recovery",
        "max_attempts": 2,
        "base_delay": 0,
        "recovery_action": recovery_action,
    }})


async def recovery_action(workflow_id, context):
    line = {{"workflow_id": workflow_id, **context.to_json()}}
    with EVIDENCE.open("a") as handle:
        handle.write(json.dumps(line) + "\\n")
"""
URL_LINE = re.compile(r"taskorch serving (http://\S+)")


def plugin(tmp_path: Path, module: str) -> Path:
    """The plugin module ``module`` in ``tmp_path/plugins``; returns the evidence file it writes."""
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    evidence = tmp_path / f"{module}.jsonl"
    (folder / f"{module}.py").write_text(PLUGIN.format(evidence=str(evidence)))
    return evidence


async def register_failing_agent(home: Path, tmp_path: Path) -> None:
    script = tmp_path / "failing_agent.py"
    script.write_text(FAILING_AGENT)
    async with open_engine(load_settings(taskorch_home=home)) as engine:
        await engine.add_agent(
            AgentSpec(name="failing", command=[sys.executable, str(script), "{prompt}"])
        )


def evidence_of(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def check_evidence(found: list[dict[str, Any]], workflow_id: str) -> None:
    assert [e["attempt"] for e in found] == [1, 2]
    for entry in found:
        assert entry["workflow_id"] == workflow_id
        assert entry["error_class"] == "CUSTOM_ERROR"
        assert "the sandbox quota is used up" in entry["error_message"]
        assert entry["agent_id"] == "failing"
        assert entry["subtask_title"]
        assert entry["max_attempts"] == 2


def test_a_dict_strategy_from_a_plugin_runs_in_taskorch_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    evidence = plugin(tmp_path, "custom_recovery_worker")
    monkeypatch.syspath_prepend(str(tmp_path / "plugins"))
    monkeypatch.setenv("TASKORCH_HOME", str(home))
    monkeypatch.setenv("TASKORCH_RECOVERY_STRATEGIES", "custom_recovery_worker:register")
    monkeypatch.delenv("DATABASE_URL", raising=False)

    async def queued() -> str:
        await register_failing_agent(home, tmp_path)
        async with open_engine(load_settings(taskorch_home=home)) as engine:
            task = await engine.add_task(NewTask.create(REQUIREMENT))
            [workflow] = await engine.start_workflows(
                [task.id], options={"agent": "auto", "repo": str(repo)}
            )
            pipeline = engine.pipeline()
            for _ in range(10):  # planned, routed, queued: then it is the worker's
                workflow = await pipeline.advance(workflow.id)
                if workflow.status == WorkflowState.PROCESSING:
                    break
            assert workflow.status == WorkflowState.PROCESSING
            return workflow.id

    workflow_id = asyncio.run(queued())
    assert invoke(["worker", "--agent", "registry", "--once"]) == 0

    check_evidence(evidence_of(evidence), workflow_id)

    async def subtasks() -> list[Any]:
        async with open_engine(load_settings(taskorch_home=home)) as engine:
            return list((await engine.get_workflow_status(workflow_id)).subtasks)

    [subtask] = asyncio.run(subtasks())
    assert subtask.status == SubtaskState.FAILED
    assert subtask.attempts == 2  # the strategy's max_attempts, not the agent class's 3
    assert "CUSTOM_ERROR" in str(subtask.error)


def test_a_dict_strategy_from_a_plugin_runs_in_taskorch_serve(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    evidence = plugin(tmp_path, "custom_recovery_serve")

    async def stored() -> None:
        await register_failing_agent(home, tmp_path)
        async with open_engine(load_settings(taskorch_home=home)) as engine:
            await engine.add_task(NewTask.create(REQUIREMENT))

    asyncio.run(stored())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "DB_"))}
    env |= {
        "TASKORCH_HOME": str(home),
        "TASKORCH_REPO": str(repo),
        "TASKORCH_RECOVERY_STRATEGIES": "custom_recovery_serve:register",
        "PYTHONPATH": os.pathsep.join([str(tmp_path / "plugins"), env.get("PYTHONPATH", "")]),
    }
    served = subprocess.Popen(
        [sys.executable, "-m", "taskorch", "serve", "--port", "0", "--agent", "auto"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        bufsize=0,
    )
    try:
        assert served.stdout is not None
        match = URL_LINE.search(served.stdout.readline().decode())
        assert match is not None, "taskorch serve did not start"
        workflow = wait_for_failed(match.group(1))
    finally:
        served.send_signal(signal.SIGTERM)
        _, err = served.communicate(timeout=60)
    assert served.returncode == 0, err.decode()
    check_evidence(evidence_of(evidence), workflow["workflow_id"])
    [subtask] = workflow["subtasks"]
    assert subtask["attempts"] == 2


def wait_for_failed(url: str) -> dict[str, Any]:
    """The first workflow, once it failed (its one subtask ran out of the strategy's attempts)."""
    for _ in range(600):
        listed = httpx.get(url + "/api/v1/workflows", timeout=30).json()
        if listed:
            detail: dict[str, Any] = httpx.get(
                f"{url}/api/v1/workflows/{listed[0]['workflow_id']}", timeout=30
            ).json()
            if detail["state"] in ("failed", "merged", "cancelled"):
                assert detail["state"] == "failed", detail
                return detail
        # Polling the served API is the only way to see it; each round is a request, not a timer.
        asyncio.run(asyncio.sleep(0.1))
    pytest.fail("the workflow did not fail under serve")
