"""An agent that answers 429 (or "usage limit") is paused until its reset, not the workflow: the
subtask goes at once to another capable agent, or waits for the reset and runs on the same one;
either way the limit is not the agent's try and not in its track record, and the window is stored
so every worker leaves the agent alone meanwhile."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from agents.fake_agentapi import FakeAgentApi
from agents.support import agent_task
from agents.test_adapters_in_worker import one_subtask
from agents.test_busy_agent import routed_to, worker
from agents.test_claude_report import failed_report
from taskorch.agents.agentapi import AgentApiAdapter
from taskorch.agents.base import AgentAdapter
from taskorch.agents.cli_agent import CliAgentAdapter
from taskorch.agents.cli_reports import parse_report
from taskorch.agents.process import ProcessResult
from taskorch.cli.agent_views import _status_text
from taskorch.cli.app import console
from taskorch.cli.workflows import show_workflow
from taskorch.domain.errors import AgentError
from taskorch.domain.rate_window import open_window
from taskorch.domain.retry import DEFAULT_POLICIES, ErrorClass
from taskorch.engine.setup import open_engine
from taskorch.http.schemas import WorkflowDetail
from taskorch.settings import load_settings
from taskorch.store import Store
from taskorch.store.agent_stats import AgentStats, RoutingWrite
from taskorch.store.rate_windows import RateWindowStore

NOW = datetime(2026, 12, 2, 13, 20, 0, tzinfo=UTC)


async def test_a_429_hands_the_subtask_to_another_agent_and_pauses_the_limited_one(
    store: Store, database_url: str, tmp_path: Path
) -> None:
    workflow_id, agents, subtask_id = await routed_to(store, ["api-1", "api-2"])
    later = await one_subtask(store)  # more work for the limited agent, ready from the start
    [waiting] = await store.list_subtasks(later)
    await AgentStats(store.connector).route([RoutingWrite(waiting.id, "api-1")])
    with (
        FakeAgentApi(rate_limited_posts=1, retry_after="3600", reply="limited later") as limited,
        FakeAgentApi(reply="Added tests/test_billing.py") as other,
    ):
        adapters: dict[str | None, AgentAdapter] = {
            "api-1": AgentApiAdapter(limited.base_url, poll_s=0.05),
            "api-2": AgentApiAdapter(other.base_url, poll_s=0.05),
        }
        running = worker(store, adapters, agents, tmp_path)
        events = running.events.subscribe()
        run = asyncio.create_task(running.run())
        try:
            while (await asyncio.wait_for(events.get(), 60))["event"] != "task:complete":
                pass
            await asyncio.sleep(0.5)  # poll rounds in which the limited agent's work could go
        finally:
            running.stop()
            await asyncio.wait_for(run, 30)
        assert len(limited.posts()) == 1  # the later subtask was never sent to it
        assert limited.user_messages == []

    [subtask] = await store.list_subtasks(workflow_id)
    assert (subtask.agent_id, subtask.attempts, subtask.interrupted) == ("api-2", 2, 1)
    attempts = await store.list_attempts(subtask_id)
    assert [(a.agent_id, a.outcome, a.error_class) for a in attempts] == [
        ("api-1", "failed", "rate_limit"),
        ("api-2", "succeeded", None),
    ]
    assert attempts[1].started_at - attempts[0].started_at < timedelta(minutes=59)
    [paused] = await store.list_subtasks(later)
    assert (paused.status, paused.agent_id, paused.attempts) == ("queued", "api-1", 0)
    windows = await RateWindowStore(store.connector).open_at(datetime.now(UTC))
    window = windows["api-1"]
    assert attempts[0].ended_at is not None
    assert window.source == "retry-after"
    assert timedelta(minutes=59) < window.until - attempts[0].ended_at <= timedelta(hours=1)
    records = await AgentStats(store.connector).track_records()
    assert "api-1" not in records  # a limit says nothing about how the agent works

    # what a user sees: the waiting subtask's reason, the agent's status
    settings = load_settings(database_url=database_url, taskorch_home=tmp_path / "home")
    async with open_engine(settings) as engine:
        status = await engine.get_workflow_status(later)
        infos = {info.agent.id: info for info in await engine.list_agents()}
    reason = f"waiting: api-1 rate-limited until {window.until:%H:%M:%S} UTC"
    assert status.to_dict()["subtasks"][0]["waiting"] == reason
    assert WorkflowDetail.of(status).subtasks[0].waiting == reason  # the HTTP API's
    with console.capture() as captured:
        show_workflow(status)
    assert reason in " ".join(captured.get().split())
    assert _status_text(infos["api-1"]).plain == f"rate-limited until {window.until:%H:%M:%S} UTC"
    assert _status_text(infos["api-2"]).plain == "available"
    assert infos["api-1"].to_json()["rate_window"]["source"] == "retry-after"


async def test_with_no_other_agent_the_subtask_waits_for_the_reset_and_runs_on_the_same_one(
    store: Store, tmp_path: Path
) -> None:
    workflow_id, agents, subtask_id = await routed_to(store, ["api-1"])
    with FakeAgentApi(rate_limited_posts=1, retry_after="0.5", reply="Added tests") as fake:
        adapter = AgentApiAdapter(fake.base_url, poll_s=0.05)
        await asyncio.wait_for(
            worker(store, {"api-1": adapter}, agents, tmp_path).run(once=True), 60
        )
        assert len(fake.posts()) == 2
        assert len(fake.user_messages) == 1

    [subtask] = await store.list_subtasks(workflow_id)
    assert (subtask.status, subtask.agent_id) == ("completed", "api-1")
    assert (subtask.attempts, subtask.interrupted) == (2, 1)
    limited, ran = await store.list_attempts(subtask_id)
    assert (limited.error_class, ran.outcome) == ("rate_limit", "succeeded")
    window = await RateWindowStore(store.connector).get("api-1")
    assert window is not None
    assert window.until >= limited.started_at + timedelta(seconds=0.5)  # the Retry-After
    assert ran.started_at >= window.until  # not a moment before the reset


AIDER_LIMITED = """Aider v0.86.2
Main model: openai/gpt-4o with diff edit format
litellm.RateLimitError: RateLimitError: OpenAIException - Rate limit reached for gpt-4o in
organization org-x on tokens per min (TPM): Limit 30000, Used 29000. Please try again in 1m30s.
"""


@pytest.mark.parametrize(
    ("agent", "stdout", "code", "source", "after_s"),
    [
        (
            "claude-code",
            failed_report(f"Claude AI usage limit reached|{int(NOW.timestamp()) + 7200}", None),
            1,
            "reset time",
            7200.0,
        ),
        ("aider", AIDER_LIMITED, 0, "delay", 90.0),
    ],
)
def test_the_cli_agents_limit_reports_open_a_window_until_the_reset_they_name(
    agent: str, stdout: str, code: int, source: str, after_s: float
) -> None:
    adapter = CliAgentAdapter(agent)
    report = parse_report(adapter.template.report, stdout)
    with pytest.raises(AgentError) as caught:
        adapter.judge(agent_task(), ProcessResult(code, stdout, "", False), report, None)
    error = caught.value
    assert (error.error_class, error.retryable) == ("rate_limit", True)
    window = open_window(
        agent,
        NOW,
        retry_after_s=error.retry_after_s,
        text=error.message,
        strikes=1,
        policy=DEFAULT_POLICIES[ErrorClass.RATE_LIMIT],
    )
    assert (window.source, window.until - NOW) == (source, timedelta(seconds=after_s))
