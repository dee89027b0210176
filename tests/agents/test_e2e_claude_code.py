"""The real Claude Code CLI (``claude``, npm ``@anthropic-ai/claude-code``) under ``taskorch run``.

The ``claude`` binary talks to a local fake Anthropic Messages API (:mod:`agents.fake_anthropic`),
which plays a model that calls Claude's own tools; Claude runs them in the subtask's worktree. So
what is checked is taskorch against the real program: argv, environment, worktree as cwd, the JSON
report (tokens, cost, ``permission_denials``) and the judging of the attempt. ``CLAUDE_BIN`` names
the binary (``.ci/run`` installs it); without it the tests skip.
"""

from __future__ import annotations

import contextlib
import json
import socket
import sqlite3
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agents.e2e import (
    REQUIREMENT,
    TESTS_FILE,
    agents_by_name,
    base_branch_files,
    demo_repo,
    routing_of,
    taskorch,
)
from agents.fake_anthropic import (
    API_KEY,
    FINAL_TEXT,
    SIDE_TEXT,
    FakeAnthropic,
    Model,
    Reply,
    ToolCall,
    claude_bin,
    dropping,
    failing,
    has_tool_result,
    offers,
    offline_claude_env,
    tool_then_text,
    working_directory,
)
from agents.support import Beats, agent_task, git, init_repo
from taskorch.agents.cli_agent import CliAgentAdapter
from taskorch.agents.registry import AgentSpec, build_adapter
from taskorch.domain.errors import AgentError, NeedsInputError
from taskorch.domain.models import Agent

TEST_SOURCE = (
    "from billing import total\n\n\ndef test_total() -> None:\n    assert total([1, 2]) == 3\n"
)
DENIED_COMMAND = "git push origin main"


def write_tests(body: dict[str, Any]) -> dict[str, Any]:
    """Claude's Write tool: the test file, by absolute path in the directory Claude runs in."""
    return {"file_path": str(working_directory(body) / TESTS_FILE), "content": TEST_SOURCE}


@pytest.fixture
def claude_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """What ``taskorch run`` passes on to the agent: Claude offline, its HOME in tmp_path."""
    for key, value in offline_claude_env(tmp_path / "claude-home").items():
        monkeypatch.setenv(key, value)
    # taskorch's own planner would take the key and the fake endpoint too: keep it offline
    monkeypatch.setenv("NLP_PROVIDER", "heuristic")
    monkeypatch.delenv("ANTHROPIC_AUTH_TOKEN", raising=False)


def serve(model: Model, monkeypatch: pytest.MonkeyPatch) -> FakeAnthropic:
    api = FakeAnthropic(model)
    monkeypatch.setenv("ANTHROPIC_BASE_URL", api.base_url)
    return api


def attempts_of(home: Path) -> list[tuple[Any, ...]]:
    """What the store recorded per attempt: number, agent, outcome, error, tokens and cost."""
    with contextlib.closing(sqlite3.connect(home / "taskorch.db")) as db:
        return db.execute(
            "SELECT number, agent_id, outcome, error_class, tokens_in, tokens_out, cost_usd "
            "FROM attempts ORDER BY number"
        ).fetchall()


def register(home: Path) -> None:
    taskorch(
        home, "agents", "add", "claude-1", "--type", "claude-code", "--executable", claude_bin()
    )


@pytest.mark.usefixtures("claude_env")
def test_run_goes_through_the_real_claude_code_to_merged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    register(home)
    with serve(tool_then_text("Write", write_tests), monkeypatch) as api:
        final = json.loads(taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json"))
    assert not api.errors, api.errors
    assert {c.headers.get("user-agent", "").split("/")[0] for c in api.calls} == {"claude-cli"}

    assert final["state"] == "merged"
    [subtask] = final["subtasks"]
    assert (subtask["agent"], subtask["attempts"]) == ("claude-1", 1)
    assert routing_of(final)[subtask["key"]]["agent"] == "claude-1"
    assert TESTS_FILE in base_branch_files(repo)
    assert git(repo, "show", f"main:{TESTS_FILE}") == TEST_SOURCE.strip()
    # Claude ran in the subtask's worktree, not in the user's checkout
    [first, *_] = [c for c in api.message_calls() if "Write" in c.offered_tools]
    ran_in = working_directory(first.body)
    assert (ran_in.name, ran_in.parent.name) == (subtask["key"], "subtasks")
    assert not ran_in.is_relative_to(repo)

    # Claude's JSON report (tokens summed over its turns, cost priced by Claude) reaches the PR
    [summary] = final["pull_request"]["subtasks"]
    assert summary["tokens_in"] == sum(u.input_tokens for u in api.usage)
    assert summary["tokens_out"] == sum(u.output_tokens for u in api.usage)
    assert summary["cost_usd"] > 0
    usage = (summary["tokens_in"], summary["tokens_out"], summary["cost_usd"])
    assert attempts_of(home) == [(1, "claude-1", "succeeded", None, *usage)]

    track = agents_by_name(home)["claude-1"]["track_record"]
    assert (track["attempts"], track["successes"], track["last_error"]) == (1, 1, None)


def write_and_push_then_write() -> Model:
    """A model whose first session writes the tests and also runs a command that Claude's
    acceptEdits mode does not allow; later sessions only write the tests."""
    sessions = 0

    def model(body: dict[str, Any]) -> Reply:
        nonlocal sessions
        if not offers(body, "Write"):
            return Reply(SIDE_TEXT)
        if has_tool_result(body):
            return Reply(FINAL_TEXT)
        sessions += 1
        write = ToolCall("Write", write_tests(body))
        if sessions > 1:
            return Reply("", (write,))
        push = ToolCall("Bash", {"command": DENIED_COMMAND, "description": "Push the tests"})
        return Reply("I will add the tests and push them.", (write, push))

    return model


@pytest.mark.usefixtures("claude_env")
def test_a_tool_claude_denied_fails_the_attempt_even_with_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    register(home)
    with serve(write_and_push_then_write(), monkeypatch) as api:
        final = json.loads(taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json"))
    assert not api.errors, api.errors

    # Claude ran the Write, refused the Bash command and still exited 0 with is_error false
    refused = [
        block
        for call in api.message_calls()
        for message in call.body.get("messages") or []
        if isinstance(message.get("content"), list)
        for block in message["content"]
        if block.get("type") == "tool_result" and block.get("is_error")
    ]
    assert refused, "Claude did not answer the Bash call with a refusal"
    # ... so attempt 1 failed on its permission_denials although it changed the worktree (its
    # work was kept aside), and attempt 2 on a fresh worktree went through. Attempt 2 wrote the
    # same file: the kept attempt held nothing the merge lacks, and went with the clean-up.
    track = agents_by_name(home)["claude-1"]["track_record"]
    assert (track["attempts"], track["successes"]) == (2, 1)
    assert track["last_error"].startswith("agent: claude-1 was denied permission for: Bash;")
    assert git(repo, "branch", "--list", "--format=%(refname:short)").split() == ["main"]

    assert final["state"] == "merged"
    [subtask] = final["subtasks"]
    assert (subtask["agent"], subtask["attempts"]) == ("claude-1", 2)
    assert git(repo, "show", f"main:{TESTS_FILE}") == TEST_SOURCE.strip()
    # the failed attempt is paid for too: its usage is recorded from Claude's report
    [failed, succeeded] = attempts_of(home)
    assert failed[:4] == (1, "claude-1", "failed", "agent")
    assert min(failed[4:]) > 0  # tokens in, tokens out, cost
    [summary] = final["pull_request"]["subtasks"]
    usage = (summary["tokens_in"], summary["tokens_out"], summary["cost_usd"])
    assert succeeded == (2, "claude-1", "succeeded", None, *usage)


@pytest.mark.usefixtures("claude_env")
async def test_claude_registered_with_its_own_command_is_judged_by_its_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A command of one's own (to add options, say) that forgets ``--permission-mode``: Claude
    silently denies the edit too and exits 0; its report still fails the attempt."""
    argv = [claude_bin(), "-p", "{prompt}", "--output-format", "json"]
    spec = AgentSpec(name="claude-1", type="claude-code", command=argv)
    now = datetime.now(UTC)
    settings = {"adapter": spec.adapter_settings()}
    record = Agent(
        id="a1", name="claude-1", type=spec.type, metadata=settings, created_at=now, updated_at=now
    )
    agent = build_adapter(record, {})
    repo = init_repo(tmp_path / "repo")
    with serve(write_and_push_then_write(), monkeypatch), pytest.raises(AgentError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert caught.value.message.startswith("claude-1 was denied permission for: Bash, Write;")
    assert not (repo / TESTS_FILE).exists()


def a_turn_then(error: Model) -> Model:
    """One good turn (reporting 401 input tokens: a number that must not read as an HTTP status),
    then ``error`` for every later request."""

    def model(body: dict[str, Any]) -> Reply:
        if has_tool_result(body):
            return error(body)
        return Reply("", (ToolCall("Write", write_tests(body)),), input_tokens=401)

    return model


@pytest.mark.usefixtures("claude_env")
@pytest.mark.parametrize(
    ("model", "error_class", "retryable"),
    [
        (failing(401, "authentication_error", "invalid x-api-key"), "auth", False),
        (
            failing(429, "rate_limit_error", "Number of requests exceeds the rate limit"),
            "rate_limit",
            True,
        ),
        (failing(529, "overloaded_error", "Overloaded"), "service_unavailable", True),
        (failing(500, "api_error", "Internal server error"), "service_unavailable", True),
        (
            a_turn_then(failing(500, "api_error", "Internal server error")),
            "service_unavailable",
            True,
        ),
        (dropping, "network", True),
        (
            failing(
                400, "invalid_request_error", "messages.0: text content blocks must be non-empty"
            ),
            "validation",
            False,
        ),
    ],
    ids=["401", "429", "529", "500", "500-after-401-tokens", "dropped", "400"],
)
async def test_claudes_api_errors_are_classified_from_its_own_words(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    model: Model,
    error_class: str,
    retryable: bool,
) -> None:
    repo = init_repo(tmp_path / "repo")
    agent = CliAgentAdapter("claude-code", executable=claude_bin())
    with serve(model, monkeypatch), pytest.raises(AgentError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert (caught.value.error_class, caught.value.retryable) == (error_class, retryable), (
        caught.value.message
    )
    assert "claude-code exited 1: " in caught.value.message


def writes_forever(body: dict[str, Any]) -> Reply:
    """A model that never finishes: every turn writes the tests again."""
    if not offers(body, "Write"):
        return Reply(SIDE_TEXT)
    return Reply("", (ToolCall("Write", write_tests(body)),))


@pytest.mark.usefixtures("claude_env")
async def test_a_run_claude_cut_short_at_max_turns_fails_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo")
    agent = CliAgentAdapter("claude-code", executable=claude_bin(), extra_args=["--max-turns", "1"])
    with serve(writes_forever, monkeypatch), pytest.raises(AgentError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert caught.value.message == "claude-code exited 1: Reached maximum number of turns (1)"
    assert (caught.value.error_class, caught.value.retryable) == ("agent", True)


@pytest.mark.usefixtures("claude_env")
async def test_a_question_from_claude_without_changes_needs_input(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo")
    agent = CliAgentAdapter("claude-code", executable=claude_bin())
    question = "Should the tests use pytest or unittest?"
    asks = Reply(f"I can write them two ways.\n\n{question}")
    with serve(lambda body: asks, monkeypatch), pytest.raises(NeedsInputError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert caught.value.question == question


def test_the_fake_api_speaks_the_protocol_of_anthropics_own_sdk() -> None:
    """The fake against the official Python SDK (no Claude needed): a streamed tool call, and
    the JSON answer claude would get if it did not stream."""
    import anthropic

    call = ToolCall("Write", {"file_path": "/w/tests/test_billing.py", "content": TEST_SOURCE})
    replies = iter([Reply("Writing the tests.", (call,)), Reply(FINAL_TEXT)])
    with FakeAnthropic(lambda body: next(replies)) as api:
        client = anthropic.Anthropic(base_url=api.base_url, api_key=API_KEY, max_retries=0)
        with client:
            asked: dict[str, Any] = {
                "model": "claude-opus-5-5",
                "max_tokens": 100,
                "messages": [{"role": "user", "content": REQUIREMENT}],
            }
            with client.messages.stream(**asked) as stream:
                streamed = stream.get_final_message()
            answered = client.messages.create(**asked)
    assert [b.type for b in streamed.content] == ["text", "tool_use"]
    assert streamed.content[1].model_dump(include={"name", "input"}) == {
        "name": "Write",
        "input": call.input,
    }
    assert (streamed.stop_reason, answered.stop_reason) == ("tool_use", "end_turn")
    assert answered.content[0].model_dump(include={"text"}) == {"text": FINAL_TEXT}
    assert [(c.path, c.body.get("stream")) for c in api.calls] == [
        ("/v1/messages", True),
        ("/v1/messages", None),
    ]


@pytest.mark.usefixtures("claude_env")
async def test_claude_with_its_api_refusing_connections_is_a_network_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as closed:  # a port nobody listens on once the socket is closed
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
    monkeypatch.setenv("ANTHROPIC_BASE_URL", f"http://127.0.0.1:{port}")
    monkeypatch.setenv("CLAUDE_CODE_MAX_RETRIES", "0")
    agent = CliAgentAdapter("claude-code", executable=claude_bin())
    with pytest.raises(AgentError) as caught:
        await agent.run(agent_task(workdir=init_repo(tmp_path / "repo")), Beats())
    assert (caught.value.error_class, caught.value.retryable) == ("network", True)
    assert "claude-code exited 1: " in caught.value.message
