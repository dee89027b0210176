"""Claude Code's JSON report of a failed run, as the real CLI (2.1.332) prints it: the failure is
classified by Claude's words and API status, never by the numbers in the report."""

from __future__ import annotations

import json
from typing import Any

import pytest

from agents.support import agent_task
from taskorch.agents.cli_agent import CliAgentAdapter
from taskorch.agents.cli_reports import parse_claude
from taskorch.agents.outcome import classify_failure
from taskorch.agents.process import ProcessResult
from taskorch.domain.errors import AgentError
from taskorch.domain.retry import ErrorClass

SERVER_ERROR = (
    "API Error: 500 Internal server error. This is a server-side issue, usually temporary — try "
    "again in a moment. If it persists, check your inference gateway (127.0.0.1:43549)."
)


def failed_report(result: str, status: int | None, **numbers: int) -> str:
    """A failed run's report (trimmed) after one good turn; ``numbers`` replace its counts."""
    usage = {"input_tokens": 380, "output_tokens": 15, "cache_read_input_tokens": 0}
    body: dict[str, Any] = {
        "type": "result",
        "subtype": "success",
        "is_error": True,
        "duration_ms": 730,
        "duration_api_ms": 32,
        "num_turns": 2,
        "result": result,
        "session_id": "7bbea2f2-0c3d-4302-a25a-d77f5958e70c",
        "total_cost_usd": 0.001904,
        "usage": {**usage, **{k: v for k, v in numbers.items() if k in usage}},
        "permission_denials": [],
        "terminal_reason": "api_error",
        "api_error_status": status,
    }
    body.update({k: v for k, v in numbers.items() if k not in usage})
    return json.dumps(body)


def judged(stdout: str) -> AgentError:
    agent = CliAgentAdapter("claude-code")
    process = ProcessResult(1, stdout, "", False)
    with pytest.raises(AgentError) as caught:
        agent.judge(agent_task(), process, parse_claude(stdout), None)
    return caught.value


@pytest.mark.parametrize(
    "numbers",
    [{"input_tokens": 401}, {"duration_ms": 429}, {"duration_api_ms": 503}, {"num_turns": 529}],
)
def test_numbers_in_the_report_do_not_read_as_http_statuses(numbers: dict[str, int]) -> None:
    error = judged(failed_report(SERVER_ERROR, 500, **numbers))
    assert (error.error_class, error.retryable) == (ErrorClass.SERVICE_UNAVAILABLE.value, True)


def test_the_api_status_classifies_a_terse_result() -> None:
    error = judged(failed_report("Invalid API key · Fix external API key", 401))
    assert (error.error_class, error.retryable) == (ErrorClass.AUTH.value, False)
    assert parse_claude(failed_report("Overloaded", 529)).evidence == "Overloaded (HTTP 529)"


def test_a_dropped_connection_is_a_network_error() -> None:
    said = "API Error: Connection dropped (ECONNRESET). Check the gateway set in ANTHROPIC_BASE_URL"
    assert classify_failure(said) == (ErrorClass.NETWORK, True)


def test_unstructured_output_is_still_classified_as_printed() -> None:
    error = judged("Error: 429 Too Many Requests")
    assert error.error_class == ErrorClass.RATE_LIMIT.value


def test_a_run_cut_short_says_why_instead_of_dumping_its_json() -> None:
    stdout = json.dumps(
        {
            "type": "result",
            "subtype": "error_max_turns",
            "is_error": True,
            "result": None,
            "terminal_reason": "max_turns",
            "errors": ["Reached maximum number of turns (2)"],
            "usage": {"input_tokens": 401, "output_tokens": 30},
        }
    )
    error = judged(stdout)
    assert error.message == "claude-code exited 1: Reached maximum number of turns (2)"
    assert error.error_class == ErrorClass.AGENT.value
