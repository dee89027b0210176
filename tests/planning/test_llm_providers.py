"""The LLM providers: the real SDK clients over a real socket to a local server speaking each wire
format (Anthropic Messages, OpenAI Chat Completions, an OpenAI-compatible endpoint without a key).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fakes.llm_servers import FakeLLMServer, Reply, draft, draft_subtask, login_plan
from taskorch.domain.errors import PlannerError
from taskorch.domain.plan import WorkerType
from taskorch.planning import (
    HEURISTIC,
    HeuristicPlanner,
    PlanCache,
    Provider,
    RetryPolicy,
    TaskNLP,
)
from taskorch.planning.draft import SYSTEM_PROMPT
from taskorch.planning.providers.anthropic import AnthropicProvider
from taskorch.planning.providers.openai import OpenAIProvider

KINDS = ["anthropic", "openai", "openai-compatible"]
REQUIREMENT = "Build the user API with login and registration"


class RecordingSleep:
    """Stands in for asyncio.sleep: records the delays the retry loop asked for."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def make_provider(
    kind: str,
    url: str,
    sleep: RecordingSleep | None = None,
    retry: RetryPolicy | None = None,
) -> Provider:
    if kind == "anthropic":
        return AnthropicProvider(
            api_key="test-key", model="claude-test", base_url=url, retry=retry, sleep=sleep
        )
    return OpenAIProvider(
        api_key="test-key" if kind == "openai" else None,
        model="gpt-test" if kind == "openai" else "llama-test",
        base_url=f"{url}/v1",
        compatible=kind == "openai-compatible",
        retry=retry,
        sleep=sleep,
    )


def nlp_for(
    kind: str,
    server: FakeLLMServer,
    *,
    fallback: bool = False,
    sleep: RecordingSleep | None = None,
    retry: RetryPolicy | None = None,
    cache: PlanCache | None = None,
) -> TaskNLP:
    provider = make_provider(kind, server.base_url, sleep or RecordingSleep(), retry)
    return TaskNLP(provider, fallback=fallback, cache=cache)


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def conversation(request_body: dict[str, Any]) -> list[dict[str, Any]]:
    """The user/assistant turns of a recorded request (OpenAI puts the system prompt first)."""
    messages: list[dict[str, Any]] = request_body["messages"]
    return [m for m in messages if m["role"] != "system"]


@pytest.mark.parametrize("kind", KINDS)
async def test_valid_plan_through_the_real_sdk(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.plan(login_plan()))
    async with nlp_for(kind, llm_server) as nlp:
        result = await nlp.plan(REQUIREMENT, context="Python 3.11, FastAPI", task_ref="task-7")

    assert result.planner == kind
    assert result.model in {"claude-test", "gpt-test", "llama-test"}
    assert not result.cached
    assert not result.repaired
    plan = result.plan
    assert plan.parent_task_id == "task-7"
    assert plan.execution_plan == {
        "stage_1": ["api-001-design"],
        "stage_2": ["api-002-login", "api-003-registration"],
        "stage_3": ["api-004-tests"],
    }
    assert plan.resource_estimate.total_subtasks == 4

    [request] = llm_server.requests
    body = request.body
    assert "Python 3.11, FastAPI" in conversation(body)[0]["content"]
    if kind == "anthropic":
        assert request.path == "/v1/messages"
        # The SDK sends the key as x-api-key or, in newer versions, as a bearer token.
        sent = request.headers.get("x-api-key") or request.headers.get("authorization")
        assert sent in {"test-key", "Bearer test-key"}
        assert "anthropic-version" in request.headers
        assert body["system"] == SYSTEM_PROMPT
        assert body["output_config"]["format"]["type"] == "json_schema"
        assert body["max_tokens"] > 0
    else:
        assert request.path == "/v1/chat/completions"
        key = "test-key" if kind == "openai" else "not-needed"
        assert request.headers["authorization"] == f"Bearer {key}"
        assert body["messages"][0] == {"role": "system", "content": SYSTEM_PROMPT}
        assert body["response_format"]["type"] == "json_schema"
        assert body["response_format"]["json_schema"]["strict"] is True


async def test_stages_and_estimates_from_the_model_are_ignored(llm_server: FakeLLMServer) -> None:
    answer = login_plan() | {
        "execution_plan": {"stage_1": ["api-004-tests"]},
        "resource_estimate": {"total_subtasks": 1},
    }
    llm_server.reply(Reply.plan(answer))
    async with nlp_for("anthropic", llm_server) as nlp:
        plan = (await nlp.plan(REQUIREMENT)).plan
    assert plan.execution_plan["stage_3"] == ["api-004-tests"]
    assert plan.resource_estimate.total_subtasks == 4


@pytest.mark.parametrize("kind", KINDS)
async def test_invalid_json_gets_one_repair(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply(answer="Sure! Here is your plan: {oops"), Reply.plan(login_plan()))
    async with nlp_for(kind, llm_server) as nlp:
        result = await nlp.plan(REQUIREMENT)

    assert result.repaired
    assert result.planner == kind
    assert len(result.plan.subtasks) == 4
    first, second = llm_server.requests
    turns = conversation(second.body)
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]
    assert turns[1]["content"] == "Sure! Here is your plan: {oops"
    assert "not JSON" in turns[2]["content"]
    assert conversation(first.body) == turns[:1]


@pytest.mark.parametrize("kind", KINDS)
async def test_invalid_twice_is_a_clear_error(kind: str, llm_server: FakeLLMServer) -> None:
    wrong_kind = draft(draft_subtask("a", worker_type="wizard"))
    llm_server.reply(Reply(answer="no plan today"), Reply.plan(wrong_kind))
    async with nlp_for(kind, llm_server) as nlp:
        with pytest.raises(PlannerError, match=r"invalid plan twice.*worker_type"):
            await nlp.plan(REQUIREMENT)
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_invalid_twice_falls_back_to_heuristic(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply(answer=""), Reply(answer="```json\n[]\n```"))
    async with nlp_for(kind, llm_server, fallback=True) as nlp:
        result = await nlp.plan(REQUIREMENT, task_ref="task-3")

    assert result.planner == HEURISTIC
    assert result.used_fallback
    assert result.fallback_reason is not None
    assert "invalid plan twice" in result.fallback_reason
    assert result.describe().startswith("heuristic (fallback:")
    assert result.plan == HeuristicPlanner().plan(REQUIREMENT, task_ref="task-3")


async def test_a_cycle_from_the_model_is_sent_back_then_an_error(
    llm_server: FakeLLMServer,
) -> None:
    cyclic = draft(
        draft_subtask("a", "c"), draft_subtask("b", "a"), draft_subtask("c", "b"), title="Loop"
    )
    llm_server.reply(Reply.plan(cyclic), Reply.plan(cyclic))
    async with nlp_for("openai", llm_server) as nlp:
        with pytest.raises(PlannerError, match="dependency cycle: a -> c -> b -> a"):
            await nlp.plan(REQUIREMENT)
    repair = conversation(llm_server.requests[1].body)[-1]["content"]
    assert "dependency cycle" in repair


async def test_more_than_ten_subtasks_from_the_model_is_repaired(
    llm_server: FakeLLMServer,
) -> None:
    eleven = draft(*(draft_subtask(f"s{n}") for n in range(11)))
    llm_server.reply(Reply.plan(eleven), Reply.plan(login_plan()))
    async with nlp_for("anthropic", llm_server) as nlp:
        result = await nlp.plan(REQUIREMENT)
    assert result.repaired
    assert "more than the limit of 10" in conversation(llm_server.requests[1].body)[-1]["content"]


async def test_more_than_ten_subtasks_twice_is_an_error(llm_server: FakeLLMServer) -> None:
    eleven = Reply.plan(draft(*(draft_subtask(f"s{n}") for n in range(11))))
    llm_server.reply(eleven, eleven)
    async with nlp_for("anthropic", llm_server) as nlp:
        with pytest.raises(PlannerError, match="11 subtasks, more than the limit of 10"):
            await nlp.plan(REQUIREMENT)


async def test_file_heavy_subtask_from_the_model_is_split(llm_server: FakeLLMServer) -> None:
    files = [f"src/f{n}.py" for n in range(5)]
    answer = draft(
        draft_subtask("design", worker_type="planner"),
        draft_subtask("build", "design", files=files),
        draft_subtask("test", "build", worker_type="test"),
    )
    llm_server.reply(Reply.plan(answer))
    async with nlp_for("openai", llm_server) as nlp:
        plan = (await nlp.plan(REQUIREMENT)).plan
    assert [s.subtask_id for s in plan.subtasks] == ["design", "build-p1", "build-p2", "test"]
    assert plan.subtask("test").dependencies == ["build-p1", "build-p2"]


@pytest.mark.parametrize("kind", KINDS)
async def test_429_retry_after_is_honoured(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(429, retry_after="7"), Reply.plan(login_plan()))
    sleep = RecordingSleep()
    async with nlp_for(kind, llm_server, sleep=sleep) as nlp:
        result = await nlp.plan(REQUIREMENT)
    assert sleep.delays == [7.0]
    assert len(llm_server.requests) == 2
    assert result.planner == kind


@pytest.mark.parametrize("kind", ["anthropic", "openai"])
async def test_429_retry_after_waits_in_real_time(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(429, retry_after="1"), Reply.plan(login_plan()))
    provider = make_provider(kind, llm_server.base_url)  # the real asyncio.sleep
    started = time.monotonic()
    async with TaskNLP(provider, fallback=False) as nlp:
        await nlp.plan(REQUIREMENT)
    assert time.monotonic() - started >= 1.0
    assert len(llm_server.requests) == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_5xx_is_retried_with_backoff(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(500), Reply.error(503), Reply.plan(login_plan()))
    sleep = RecordingSleep()
    async with nlp_for(kind, llm_server, sleep=sleep) as nlp:
        result = await nlp.plan(REQUIREMENT)
    assert sleep.delays == [0.5, 1.0]
    assert len(llm_server.requests) == 3
    assert result.planner == kind


async def test_anthropic_overloaded_529_is_retried(llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(529), Reply.plan(login_plan()))
    async with nlp_for("anthropic", llm_server) as nlp:
        assert (await nlp.plan(REQUIREMENT)).planner == "anthropic"


async def test_retries_run_out(llm_server: FakeLLMServer) -> None:
    llm_server.reply(*(Reply.error(500) for _ in range(3)))
    retry = RetryPolicy(max_attempts=3)
    async with nlp_for("openai", llm_server, retry=retry) as nlp:
        with pytest.raises(PlannerError, match=r"failed after 3 attempt\(s\): HTTP 500"):
            await nlp.plan(REQUIREMENT)
    assert len(llm_server.requests) == 3


async def test_retry_after_beyond_the_limit_fails_at_once(llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(429, retry_after="3600"))
    sleep = RecordingSleep()
    async with nlp_for("anthropic", llm_server, sleep=sleep) as nlp:
        with pytest.raises(PlannerError, match="retry after 3600s"):
            await nlp.plan(REQUIREMENT)
    assert sleep.delays == []


@pytest.mark.parametrize("kind", KINDS)
async def test_auth_errors_are_not_retried(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(401))
    async with nlp_for(kind, llm_server) as nlp:
        with pytest.raises(PlannerError, match="HTTP 401"):
            await nlp.plan(REQUIREMENT)
    assert len(llm_server.requests) == 1


async def test_provider_failure_falls_back_and_says_so(llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.error(401))
    async with nlp_for("anthropic", llm_server, fallback=True) as nlp:
        result = await nlp.plan(REQUIREMENT)
    assert result.planner == HEURISTIC
    assert result.fallback_reason is not None
    assert "HTTP 401" in result.fallback_reason


async def test_unreachable_server_is_retried_then_reported() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sleep = RecordingSleep()
    provider = make_provider("openai", f"http://127.0.0.1:{port}", sleep, RetryPolicy(2))
    async with TaskNLP(provider, fallback=False) as nlp:
        with pytest.raises(PlannerError, match=r"after 2 attempt\(s\)"):
            await nlp.plan(REQUIREMENT)
    assert sleep.delays == [0.5]


@pytest.mark.parametrize("kind", KINDS)
async def test_identical_calls_hit_the_cache(kind: str, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.plan(login_plan()))
    async with nlp_for(kind, llm_server) as nlp:
        first = await nlp.plan(REQUIREMENT, context="ctx")
        second = await nlp.plan(REQUIREMENT, context="ctx")
        other_task = await nlp.plan(REQUIREMENT, context="ctx", task_ref="task-9")
    assert len(llm_server.requests) == 1
    assert not first.cached
    assert second.cached
    assert second.plan == first.plan
    assert other_task.cached
    assert other_task.plan.parent_task_id == "task-9"


async def test_a_different_context_is_a_different_question(llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.plan(login_plan()), Reply.plan(login_plan()))
    async with nlp_for("openai", llm_server) as nlp:
        await nlp.plan(REQUIREMENT, context="one")
        await nlp.plan(REQUIREMENT, context="two")
    assert len(llm_server.requests) == 2


def assert_one_cached_answer(directory: Path) -> None:
    [entry] = directory.glob("*.json")
    assert len(entry.stem) == 64, "named by the full sha256"
    assert json.loads(entry.read_text())["task_title"] == "User API"


async def test_the_disk_cache_survives_the_process(
    llm_server: FakeLLMServer, tmp_path: Path
) -> None:
    llm_server.reply(Reply.plan(login_plan()))
    async with nlp_for("anthropic", llm_server, cache=PlanCache(tmp_path)) as nlp:
        first = await nlp.plan(REQUIREMENT)
    assert_one_cached_answer(tmp_path)
    async with nlp_for("anthropic", llm_server, cache=PlanCache(tmp_path)) as nlp:
        again = await nlp.plan(REQUIREMENT)
    assert again.cached
    assert again.plan == first.plan
    assert len(llm_server.requests) == 1


async def test_model_worker_types_and_owners_are_kept(llm_server: FakeLLMServer) -> None:
    answer = draft(draft_subtask("scan", worker_type="audit", assigned_to="security"))
    llm_server.reply(Reply.plan(answer | {"complexity": "high"}))
    async with nlp_for("anthropic", llm_server) as nlp:
        plan = (await nlp.plan("Scan the repository")).plan
    assert plan.complexity.value == "simple", "one subtask is simple, whatever the model said"
    assert plan.subtasks[0].worker_type is WorkerType.AUDIT
