"""Budgets from the command line, in-process: a task's caps go with its workflows, the settings
give the default, ``taskorch budget`` shows and changes them, ``status --json`` carries them."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from cli_harness import run_cli

from taskorch.engine.setup import open_engine
from taskorch.settings import load_settings


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "DB_HOST", "TASKORCH_CONFIG", "TASKORCH_BUDGET_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    monkeypatch.setenv("TASKORCH_BUDGET_USD", "3")
    monkeypatch.setenv("COLUMNS", "200")
    monkeypatch.chdir(tmp_path)
    return tmp_path / ".taskorch"


async def _start(home: Path, task_id: int) -> str:
    async with open_engine(load_settings(taskorch_home=home)) as engine:
        return (await engine.pipeline().start(await engine.get_task(task_id))).id


def test_budget_from_the_task_the_setting_and_the_budget_command(home: Path) -> None:
    added = run_cli(["task", "add", "Add login", "--budget-usd", "0.5", "--budget-tokens", "900"])
    assert added.code == 0, added.err
    assert run_cli(["task", "add", "Add logout"]).code == 0
    own = asyncio.run(_start(home, 1))
    default = asyncio.run(_start(home, 2))

    shown = run_cli(["budget", own])
    assert shown.code == 0, shown.err
    assert "spent $0.00 of $0.50 · 0 of 900 tokens (counted by cost)" in shown.out
    status = json.loads(run_cli(["status", default, "--json"]).out)
    assert status["budget"]["cap_usd"] == 3.0  # TASKORCH_BUDGET_USD
    assert status["budget"]["cap_tokens"] is None

    raised = run_cli(["budget", own, "--usd", "2", "--json"])
    assert raised.code == 0, raised.err
    assert json.loads(raised.out)["budget"]["cap_usd"] == 2.0
    assert json.loads(raised.out)["budget"]["cap_tokens"] == 900
    assert "budget: spent $0.00 of $2.00" in run_cli(["status", own]).out

    for bad in ("nan", "0"):
        refused = run_cli(["budget", own, "--usd", bad])
        assert refused.code in (1, 2)
        assert refused.problems() == []
        assert "budget must be a positive number" in refused.err or refused.code == 2
    refused = run_cli(["run", "Add login", "--budget-tokens", "0"])
    assert refused.code == 1
    assert "the token budget must be a positive number, got 0" in refused.err
