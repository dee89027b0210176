"""The specification's orchestrator settings, by their own environment names, change what the
engine's worker does: ``RETRY_ATTEMPTS`` (attempts in all), ``RETRY_DELAY`` (first wait, bare
number = ms), ``TASK_TIMEOUT`` (one attempt's limit, bare number = ms), ``TASK_LOG_DIR``."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest

from fakes.workflows import queued_workflow
from taskorch.agents.base import AgentResult, AgentTask, Heartbeat
from taskorch.domain.errors import AgentError
from taskorch.engine import OrchestrationEngine
from taskorch.settings import load_settings


class FailingAgent:
    """Fails each key's first ``failures[key]`` runs with a network error, then succeeds; hangs
    on the keys in ``hang``."""

    def __init__(self, failures: dict[str, int], hang: tuple[str, ...] = ()) -> None:
        self.failures = dict(failures)
        self.hang = hang
        self.runs: list[str] = []

    @property
    def name(self) -> str:
        return "failing"

    async def run(self, task: AgentTask, heartbeat: Heartbeat) -> AgentResult:
        key = task.subtask.key
        self.runs.append(key)
        if key in self.hang:
            await asyncio.sleep(3600)
        if self.failures.get(key, 0) > 0:
            self.failures[key] -= 1
            raise AgentError("connection reset by peer", error_class="network")
        return AgentResult(True, f"did {key}")


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[OrchestrationEngine]:
    """An engine on the settings the environment gives (set by each test first)."""
    settings = load_settings(
        database_url=f"sqlite:///{tmp_path}/taskorch.db", taskorch_home=tmp_path / "home"
    )
    running = OrchestrationEngine(settings)
    await running.initialize()
    try:
        yield running
    finally:
        await running.shutdown()


@pytest.fixture
def one_attempt(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.setenv("RETRY_ATTEMPTS", "1")
    monkeypatch.setenv("TASK_LOG_DIR", str(tmp_path / "task-logs"))
    return tmp_path / "task-logs"


async def test_retry_attempts_1_fails_at_once_and_logs_go_to_task_log_dir(
    one_attempt: Path, engine: OrchestrationEngine
) -> None:
    workflow_id = await queued_workflow(engine.store, {"a": [], "b": []})
    agent = FailingAgent({"a": 1})  # one network error: retried five times by default
    await engine.create_worker({None: agent}).run(once=True)
    states = {s.key: (s.status, s.attempts) for s in await engine.store.list_subtasks(workflow_id)}
    assert states == {"a": ("failed", 1), "b": ("completed", 1)}
    assert agent.runs.count("a") == 1
    log = json.loads((one_attempt / f"{workflow_id}-a.json").read_text())
    assert [a["outcome"] for a in log["attempts"]] == ["failed"]
    assert not (engine.settings.home / "logs" / "tasks").exists()


@pytest.fixture
def quick_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RETRY_ATTEMPTS", "2")
    monkeypatch.setenv("RETRY_DELAY", "300")  # ms; a network error waits 1 s by default


async def test_retry_delay_in_milliseconds_is_the_first_wait(
    quick_retry: None, engine: OrchestrationEngine
) -> None:
    workflow_id = await queued_workflow(engine.store, {"a": []})
    agent = FailingAgent({"a": 5})
    await engine.create_worker({None: agent}).run(once=True)
    [subtask] = await engine.store.list_subtasks(workflow_id)
    assert (subtask.status, subtask.attempts) == ("failed", 2)
    jsonl = engine.settings.home / "events.jsonl"
    events = [json.loads(line) for line in jsonl.read_text().splitlines()]
    [retry] = [e for e in events if e["event"] == "task:retry"]
    [first, _] = await engine.store.list_attempts(subtask.id)
    assert first.ended_at is not None
    waited = (datetime.fromisoformat(retry["run_after"]) - first.ended_at).total_seconds()
    assert 0.27 <= waited <= 0.33  # 300 ms, give or take the 10 % jitter


@pytest.fixture
def short_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_TIMEOUT", "300")  # ms


async def test_task_timeout_in_milliseconds_ends_a_hung_attempt(
    one_attempt: Path, short_timeout: None, engine: OrchestrationEngine
) -> None:
    assert engine.settings.attempt_timeout_s == 0.3
    workflow_id = await queued_workflow(engine.store, {"stuck": []})
    await engine.create_worker({None: FailingAgent({}, hang=("stuck",))}).run(once=True)
    [subtask] = await engine.store.list_subtasks(workflow_id)
    [attempt] = await engine.store.list_attempts(subtask.id)
    assert subtask.status == "failed"
    assert attempt.error_class == "timeout"
    assert attempt.error_message == "attempt timed out after 0.3 s"


def test_the_specification_names_and_their_units(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASK_TIMEOUT", "600000")
    monkeypatch.setenv("RETRY_DELAY", "5s")
    assert load_settings().attempt_timeout_s == 600.0  # ten minutes, not a week
    assert load_settings().retry_delay_s == 5.0
    monkeypatch.setenv("TASKORCH_TASK_TIMEOUT", "10m")  # the TASKORCH_ name wins
    assert load_settings().attempt_timeout_s == 600.0
    monkeypatch.setenv("TASKORCH_TASK_TIMEOUT", "0")
    with pytest.raises(Exception, match="invalid setting TASKORCH_TASK_TIMEOUT='0': must be more"):
        load_settings()
