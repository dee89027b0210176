"""``taskorch worker --agent registry``: a separate worker process runs the subtasks routed to the
registered agents, while this process carries the workflow through the pipeline."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from agents.e2e import REQUIREMENT, base_branch_files, cli_agent_command, demo_repo, start_taskorch
from taskorch.agents.registry import AgentSpec
from taskorch.domain.models import NewTask
from taskorch.engine.setup import open_engine
from taskorch.settings import load_settings


async def test_a_worker_process_runs_subtasks_routed_to_registered_agents(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    command = cli_agent_command(tmp_path).split()
    async with open_engine(load_settings(taskorch_home=home)) as engine:
        await engine.add_agent(AgentSpec(name="cli-1", command=command))
        task = await engine.add_task(NewTask.create(REQUIREMENT))
        worker = start_taskorch(home, "worker", "--agent", "registry")
        try:
            status = await asyncio.wait_for(
                engine.process_task(task.id, options={"agent": "auto", "repo": str(repo)}), 120
            )
        finally:
            worker.send_signal(signal.SIGTERM)
            out, err = worker.communicate(timeout=60)
    assert "Traceback" not in err, err
    assert worker.returncode == 0, err
    assert "(cli-1)" in out
    assert "1 completed" in out
    assert status.state == "merged"
    assert [s.agent_id for s in status.subtasks] == ["cli-1"]
    assert "tests/test_billing_cli.py" in base_branch_files(repo)


def test_a_registry_worker_needs_registered_agents(tmp_path: Path) -> None:
    worker = start_taskorch(tmp_path / ".taskorch", "worker", "--agent", "registry", "--once")
    _, err = worker.communicate(timeout=60)
    assert worker.returncode == 1
    assert err.strip() == ("error: no usable agents registered: add one with `taskorch agents add`")
