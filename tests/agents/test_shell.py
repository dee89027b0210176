"""The shell adapter: a subtask's own command, as argv, in its worktree."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import pytest

from agents.support import Beats, agent_task, init_repo
from taskorch.agents.shell import ShellAdapter
from taskorch.domain.errors import AgentError

PY = sys.executable


async def test_command_runs_in_the_worktree_and_reports_changed_files(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    script = "open('generated.py', 'w').write('X = 1\\n'); print('generated 1 file   ')"
    result = await ShellAdapter().run(agent_task(command=[PY, "-c", script], workdir=repo), Beats())
    assert result.success
    assert result.output == "generated 1 file"
    assert result.data["changed_files"] == ["generated.py"]
    assert result.data["exit_code"] == 0
    assert (repo / "generated.py").read_text() == "X = 1\n"


async def test_arguments_are_not_interpreted_by_a_shell(tmp_path: Path) -> None:
    command = [PY, "-c", "import sys; print(sys.argv[1])", "$(whoami); echo hi > pwned"]
    result = await ShellAdapter().run(agent_task(command=command, workdir=tmp_path), Beats())
    assert result.output == "$(whoami); echo hi > pwned"
    assert not (tmp_path / "pwned").exists()
    assert "changed_files" not in result.data  # not a git worktree


async def test_non_zero_exit_carries_the_tail_of_stderr(tmp_path: Path) -> None:
    script = (
        "import sys; print('x' * 5000, file=sys.stderr); "
        "print('the real cause', file=sys.stderr); sys.exit(2)"
    )
    with pytest.raises(AgentError) as caught:
        await ShellAdapter().run(agent_task(command=[PY, "-c", script], workdir=tmp_path), Beats())
    assert caught.value.error_class == "agent"
    assert caught.value.retryable
    assert "exited 2" in caught.value.message
    assert caught.value.message.endswith("the real cause")
    assert len(caught.value.message) < 1500


async def test_subtask_without_a_command_is_a_validation_error() -> None:
    with pytest.raises(AgentError) as caught:
        await ShellAdapter().run(agent_task(command=None), Beats())
    assert caught.value.error_class == "validation"
    assert not caught.value.retryable


async def test_missing_program_is_a_non_retryable_dependency_error(tmp_path: Path) -> None:
    with pytest.raises(AgentError) as caught:
        await ShellAdapter().run(
            agent_task(command=["no-such-tool-xyz"], workdir=tmp_path), Beats()
        )
    assert caught.value.error_class == "dependency"
    assert not caught.value.retryable


async def test_long_command_heartbeats_and_is_ended_on_timeout(tmp_path: Path) -> None:
    beats = Beats()
    command = [PY, "-c", "import time; time.sleep(30)"]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.5):
            await ShellAdapter(heartbeat_s=0.05).run(
                agent_task(command=command, workdir=tmp_path), beats
            )
    assert beats.count >= 3


async def test_environment_is_added_to(tmp_path: Path) -> None:
    command = [PY, "-c", "import os; print(os.environ['GREETING'], bool(os.environ.get('PATH')))"]
    result = await ShellAdapter(env={"GREETING": "hello"}).run(
        agent_task(command=command, workdir=tmp_path), Beats()
    )
    assert result.output == "hello True"
