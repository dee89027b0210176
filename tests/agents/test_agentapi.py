"""The agentapi adapter against a fake agentapi server speaking the real protocol over a socket."""

from __future__ import annotations

import asyncio
import gc
import itertools
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from agents.fake_agentapi import ESC, FakeAgentApi, FakeTurn
from agents.support import Beats, agent_task, git, init_repo
from taskorch.agents.agentapi import AgentApiAdapter
from taskorch.agents.outcome import NeedsInputError
from taskorch.domain.errors import AgentError, ConfigError

FAST: dict[str, Any] = {
    "poll_s": 0.05,
    "request_timeout_s": 5.0,
    "send_timeout_s": 5.0,
    "settle_s": 0.3,
}


@pytest.fixture
def server() -> Iterator[FakeAgentApi]:
    with FakeAgentApi() as fake:
        yield fake


def wait_until(condition: Callable[[], bool], timeout_s: float = 30.0) -> None:
    """Block (in a thread) until ``condition`` holds."""
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "the condition never held"
        time.sleep(0.01)


def adapter(fake: FakeAgentApi | str, **kw: Any) -> AgentApiAdapter:
    url = fake if isinstance(fake, str) else fake.base_url
    return AgentApiAdapter(url, **{**FAST, **kw})


async def test_happy_path_sends_once_follows_events_and_returns_the_trimmed_reply(
    tmp_path: Path,
) -> None:
    repo = init_repo(tmp_path / "repo")
    seen: list[FakeTurn] = []

    def agent(turn: FakeTurn) -> str:
        seen.append(turn)
        assert turn.workdir is not None
        (turn.workdir / "test_billing.py").write_text("def test_total():\n    assert True\n")
        return "I added test_billing.py.\n\n  All tests pass."

    beats = Beats()
    with FakeAgentApi(hook=agent, duration_s=0.3, api_key="s3cret") as fake:
        result = await adapter(fake, api_key="s3cret").run(agent_task(workdir=repo), beats)
        assert fake.posts() == [
            f"Working directory: {repo}\n\nAdd unit tests for the billing module"
        ]
        assert fake.user_messages == fake.posts()
        assert fake.streams_opened >= 1
        assert all(r.headers["authorization"] == "Bearer s3cret" for r in fake.requests)
    assert result.success
    assert result.output == "I added test_billing.py.\n\n  All tests pass."
    assert result.data["changed_files"] == ["test_billing.py"]
    assert result.data["agent_type"] == "claude"
    assert beats.count >= 3
    assert seen[0].workdir == repo


async def test_busy_agent_is_a_retryable_busy_error_and_nothing_is_sent() -> None:
    with FakeAgentApi(busy=True) as fake:
        with pytest.raises(AgentError) as caught:
            await adapter(fake, busy_retry_after_s=7).run(agent_task(), Beats())
        assert fake.posts() == []
        fake.finish_busy_turn()
        result = await adapter(fake).run(agent_task(), Beats())  # the retry goes through
    assert caught.value.error_class == "busy"
    assert caught.value.retryable
    assert caught.value.retry_after_s == 7
    assert result.output == "Done: the change is made."


async def test_busy_answer_to_the_post_is_recognised_by_its_text() -> None:
    with FakeAgentApi(busy_posts=1) as fake:
        with pytest.raises(AgentError) as caught:
            await adapter(fake).run(agent_task(), Beats())
        assert fake.user_messages == []
    assert caught.value.error_class == "busy"
    assert caught.value.retryable
    assert "waiting for user input" in caught.value.message


# The fake server drops connections on purpose: a socket it leaves to the collector may be reported
# as unclosed whenever the collector runs. It is collected here, after each test of this file, so
# the report never lands in another file's test.
pytestmark = pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")


@pytest.fixture(autouse=True)
def _collect_dropped_sockets() -> Iterator[None]:
    yield
    gc.collect()


async def test_dropped_connection_after_acceptance_is_not_sent_again() -> None:
    with FakeAgentApi(drop_post="after") as fake:
        result = await adapter(fake).run(agent_task(), Beats())
        assert len(fake.posts()) == 1
        assert len(fake.user_messages) == 1
    assert result.success
    assert result.output == "Done: the change is made."


async def test_dropped_connection_before_acceptance_is_sent_again_once() -> None:
    with FakeAgentApi(drop_post="before") as fake:
        result = await adapter(fake).run(agent_task(), Beats())
        assert len(fake.posts()) == 2
        assert len(fake.user_messages) == 1
    assert result.success


async def test_connection_that_keeps_dropping_is_a_network_error_without_double_send() -> None:
    with FakeAgentApi(drop_post="before", drop_posts=10) as fake:
        with pytest.raises(AgentError) as caught:
            await adapter(fake).run(agent_task(), Beats())
        assert len(fake.posts()) == 2
        assert fake.user_messages == []
        # the checks of history and status came between the two sends
        paths = [r.path for r in fake.requests]
        first, second = [i for i, p in enumerate(paths) if p == "/message"]
        assert {"/messages", "/status"} <= set(paths[first:second])
    assert caught.value.error_class == "network"
    assert caught.value.retryable


async def test_server_killed_mid_turn_is_a_retryable_network_error() -> None:
    fake = FakeAgentApi(hang=True)
    fake.start()
    try:
        run = asyncio.create_task(adapter(fake).run(agent_task(), Beats()))
        # mid-turn: the message accepted and its events followed (not a fixed time: a loaded
        # machine may not even have asked for the status yet)
        await asyncio.to_thread(
            wait_until, lambda: bool(fake.user_messages and fake.streams_opened)
        )
        await asyncio.to_thread(fake.kill)
        with pytest.raises(AgentError) as caught:
            await asyncio.wait_for(run, 5)
    finally:
        fake.stop()
    assert caught.value.error_class == "network"
    assert caught.value.retryable
    assert "stopped answering" in caught.value.message


async def test_unreachable_server_is_a_retryable_network_error() -> None:
    with FakeAgentApi() as fake:
        url = fake.base_url
    with pytest.raises(AgentError) as caught:
        await adapter(url).run(agent_task(), Beats())
    assert caught.value.error_class == "network"
    assert caught.value.retryable


async def test_slow_agent_heartbeats_all_along() -> None:
    stamps: list[float] = []
    with FakeAgentApi(duration_s=1.2, start_delay_s=0.4) as fake:
        result = await adapter(fake).run(agent_task(), lambda: stamps.append(time.monotonic()))
    assert result.success
    assert len(stamps) >= 10
    gaps = [b - a for a, b in itertools.pairwise(stamps)]
    assert max(gaps) < 0.5  # a 0.6 s lease would never expire


async def test_timeout_interrupts_the_agent_with_esc() -> None:
    with FakeAgentApi(hang=True) as fake:
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await adapter(fake).run(agent_task(), Beats())
        assert fake.raw == [ESC]
        assert fake.interrupted == 1
        for _ in range(50):
            if fake.status == "stable":
                break
            await asyncio.sleep(0.02)
        assert fake.status == "stable"


async def test_cancel_before_sending_does_not_interrupt_someone_elses_turn() -> None:
    with FakeAgentApi(start_delay_s=0.0) as fake:
        run = asyncio.create_task(adapter(fake).run(agent_task(), Beats()))
        run.cancel()
        with pytest.raises(asyncio.CancelledError):
            await run
        assert fake.raw == []


async def test_wrong_host_is_a_clear_configuration_error() -> None:
    with FakeAgentApi(allowed_hosts=("agent.internal",)) as fake:
        with pytest.raises(AgentError) as caught:
            await adapter(fake).run(agent_task(), Beats())
        assert fake.count("GET", "/status") == 1  # not retried
    assert caught.value.error_class == "dependency"
    assert not caught.value.retryable
    assert "--allowed-hosts" in caught.value.message
    assert "Invalid host header" in caught.value.message


async def test_wrong_api_key_is_a_non_retryable_auth_error() -> None:
    with FakeAgentApi(api_key="right") as fake, pytest.raises(AgentError) as caught:
        await adapter(fake, api_key="wrong").run(agent_task(), Beats())
    assert caught.value.error_class == "auth"
    assert not caught.value.retryable


@pytest.mark.parametrize(("events_status", "streams"), [(500, 3), (404, 1)])
async def test_event_stream_failure_falls_back_to_polling(events_status: int, streams: int) -> None:
    with FakeAgentApi(events_status=events_status, duration_s=0.4) as fake:
        result = await adapter(fake).run(agent_task(), Beats())
        assert fake.count("GET", "/events") == streams
        assert fake.streams_opened == 0
    assert result.output == "Done: the change is made."


async def test_polling_only_when_events_are_off() -> None:
    with FakeAgentApi(duration_s=0.2) as fake:
        result = await adapter(fake, use_events=False).run(agent_task(), Beats())
        assert fake.count("GET", "/events") == 0
    assert result.success


async def test_dropped_event_stream_is_reconnected() -> None:
    with FakeAgentApi(drop_events_after=2, drop_streams=1, duration_s=0.5) as fake:
        result = await adapter(fake, poll_s=0.2).run(agent_task(), Beats())
        assert fake.streams_opened >= 2
    assert result.success


async def test_question_without_work_in_a_worktree_needs_input(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    fake = FakeAgentApi(reply="Should I use pytest or unittest?")
    with fake, pytest.raises(NeedsInputError) as caught:
        await adapter(fake).run(agent_task(workdir=repo), Beats())
    assert caught.value.question == "Should I use pytest or unittest?"
    assert not caught.value.retryable


async def test_question_after_work_is_a_success(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")

    def agent(turn: FakeTurn) -> str:
        (repo / "billing.py").write_text("TOTAL = 1\n")
        git(repo, "add", "billing.py")
        git(repo, "commit", "-q", "-m", "billing")
        return "Done. Do you want me to add docs too?"

    with FakeAgentApi(hook=agent) as fake:
        result = await adapter(fake).run(agent_task(workdir=repo), Beats())
    assert result.success
    assert result.data["changed_files"] == ["billing.py"]
    assert len(result.data["commits"]) == 1


async def test_question_without_a_worktree_is_left_to_validation(server: FakeAgentApi) -> None:
    server.reply = "Which module do you mean? (y/n)"
    result = await adapter(server).run(agent_task(), Beats())
    assert result.success
    assert result.data["question"] == "Which module do you mean? (y/n)"


async def test_agent_errors_from_the_stream_are_reported(server: FakeAgentApi) -> None:
    def broken(turn: FakeTurn) -> str:
        raise RuntimeError("disk full")

    server.hook = broken
    server.duration_s = 0.2
    result = await adapter(server).run(agent_task(), Beats())
    assert result.data["agent_errors"] == ["hook failed: disk full"]


async def test_empty_instructions_are_refused_before_sending(server: FakeAgentApi) -> None:
    with pytest.raises(AgentError) as caught:
        await adapter(server).run(agent_task("   "), Beats())
    assert caught.value.error_class == "validation"
    assert server.requests == []


def _status_then(reply: httpx.Response) -> httpx.MockTransport:
    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/status":
            body = {"$schema": "x", "status": "stable", "agent_type": "aider", "transport": "pty"}
            return httpx.Response(200, json=body)
        if request.url.path == "/messages":
            return httpx.Response(200, json={"messages": [{"id": 0, "role": "agent"}]})
        return reply

    return httpx.MockTransport(handle)


@pytest.mark.parametrize(
    ("reply", "error_class", "retryable", "retry_after"),
    [
        (
            httpx.Response(503, headers={"retry-after": "4"}, text="down"),
            "service_unavailable",
            True,
            4,
        ),
        (httpx.Response(429, text="slow down"), "rate_limit", True, None),
        (
            httpx.Response(
                500,
                headers={"content-type": "application/problem+json"},
                content=json.dumps(
                    {"detail": "x", "errors": [{"message": "timeout waiting for condition"}]}
                ),
            ),
            "agent",
            True,
            None,
        ),
        (httpx.Response(422, json={"detail": "validation failed"}), "validation", False, None),
        (httpx.Response(403, text="forbidden"), "auth", False, None),
    ],
)
async def test_http_errors_are_classified(
    reply: httpx.Response, error_class: str, retryable: bool, retry_after: float | None
) -> None:
    tool = adapter("http://localhost:3284", transport=_status_then(reply))
    with pytest.raises(AgentError) as caught:
        await tool.run(agent_task(), Beats())
    assert (caught.value.error_class, caught.value.retryable) == (error_class, retryable)
    assert caught.value.retry_after_s == retry_after


def test_bad_settings_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="http"):
        AgentApiAdapter("localhost:3284")
    with pytest.raises(ConfigError):
        AgentApiAdapter(poll_s=0)


async def test_event_stream_ends_the_wait_without_waiting_for_a_poll() -> None:
    with FakeAgentApi(duration_s=0.2) as fake:
        started = time.monotonic()
        result = await adapter(fake, poll_s=3.0).run(agent_task(), Beats())
        elapsed = time.monotonic() - started
    assert result.success
    assert elapsed < 2.0
