"""How an agent's failure is classed: runtime error names in their one-word forms are network
errors (retried with backoff); a request the model API rejects (HTTP 400 behind an agent that
exits 0) fails at once, on its first attempt, under the real worker."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from agents.support import agent_task
from agents.test_adapters_in_worker import one_subtask, worker_for
from taskorch.agents.cli_agent import CliAgentAdapter, CliTemplate
from taskorch.agents.cli_reports import ReportFormat, parse_report
from taskorch.agents.outcome import classify_failure, model_rejection
from taskorch.agents.process import ProcessResult
from taskorch.domain.errors import AgentError
from taskorch.domain.retry import ErrorClass
from taskorch.runtime.worker import WorkerConfig
from taskorch.store import Store

NETWORK, REJECTED = (ErrorClass.NETWORK, True), (ErrorClass.VALIDATION, False)
REJECTION_400 = (
    'API Error: 400 {"type":"error","error":{"type":"invalid_request_error",'
    '"message":"messages.0.content: text content blocks must be non-empty"}}'
)


@pytest.mark.parametrize(
    ("printed", "expected"),
    [
        ("error: ConnectionRefused", NETWORK),  # Claude Code (Bun), one word
        ("API Error: Unable to connect to API (ConnectionRefused)", NETWORK),
        ("FailedToOpenSocket: Was there a typo in the url or port?", NETWORK),
        ("error: ConnectionClosed", NETWORK),
        ("connect ECONNREFUSED 127.0.0.1:443", NETWORK),
        ("read ECONNRESET", NETWORK),
        ("connect ETIMEDOUT 10.0.0.1:443", NETWORK),
        ("getaddrinfo ENOTFOUND api.anthropic.com", NETWORK),
        ("getaddrinfo EAI_AGAIN api.openai.com", NETWORK),
        ("connect EHOSTUNREACH 10.0.0.1:443", NETWORK),
        ("TypeError: fetch failed", NETWORK),
        ("Error: socket hang up", NETWORK),
        ("ConnectionResetError: [Errno 104] Connection reset by peer", NETWORK),
        ("anthropic.APIConnectionError: Connection error.", NETWORK),
        ("httpx.ConnectTimeout: timed out", NETWORK),
        ("[Errno -3] Temporary failure in name resolution", NETWORK),
        (REJECTION_400, REJECTED),
        ("litellm.BadRequestError: AnthropicException - prompt is too long", REJECTED),
        ("Error code: 404 - {'error': {'type': 'not_found_error', 'message': 'model'}}", REJECTED),
        ("openai.BadRequestError: context_length_exceeded", REJECTED),
        ("Overloaded (HTTP 529)", (ErrorClass.SERVICE_UNAVAILABLE, True)),
        ("Invalid API key · Fix external API key (HTTP 401)", (ErrorClass.AUTH, False)),
        ("Error: 429 Too Many Requests", (ErrorClass.RATE_LIMIT, True)),
        ("RuntimeError: boom", (ErrorClass.AGENT, True)),
        (
            "FileNotFoundError: [Errno 2] No such file or directory: 'x.py'",
            (ErrorClass.AGENT, True),
        ),
    ],
)
def test_what_an_agent_printed_is_classed_by_its_wording(
    printed: str, expected: tuple[ErrorClass, bool]
) -> None:
    assert classify_failure(printed) == expected


def test_writing_about_http_400_while_working_is_not_a_rejection() -> None:
    reply = "Done: the handler now answers API Error: 400 for an empty body."
    assert model_rejection(reply) is None
    assert model_rejection(REJECTION_400) is not None
    assert model_rejection("All good.", 400) == "the model API rejected the request (HTTP 400)"
    assert model_rejection("All good.", 529) is None


def claude_report(result: str, *, is_error: bool, status: int | None) -> str:
    return json.dumps(
        {
            "type": "result",
            "subtype": "success",
            "is_error": is_error,
            "result": result,
            "api_error_status": status,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
    )


EXIT_0_REJECTIONS = [
    ("claude-json", claude_report(REJECTION_400, is_error=False, status=400)),
    ("claude-json", claude_report(REJECTION_400, is_error=True, status=400)),
    ("text", REJECTION_400),
    ("aider", f"litellm.BadRequestError: AnthropicException - {REJECTION_400[15:]}"),
]
EXIT_0_IDS = ["claude-exit-0", "claude-is-error", "text-exit-0", "aider-exit-0"]


@pytest.mark.parametrize(("report", "printed"), EXIT_0_REJECTIONS, ids=EXIT_0_IDS)
def test_a_rejected_request_behind_an_exit_0_agent_is_not_retryable(
    report: ReportFormat, printed: str
) -> None:
    agent = CliAgentAdapter(CliTemplate("fake", ("fake", "{prompt}"), report=report))
    process = ProcessResult(0, printed, "", False)
    with pytest.raises(AgentError) as caught:
        agent.judge(agent_task(), process, parse_report(report, printed), None)
    assert (caught.value.error_class, caught.value.retryable) == ("validation", False)
    assert caught.value.message.startswith("fake ")


CLI_CONFIG = WorkerConfig(concurrency=1, lease_s=10.0, timeout_s=30.0, poll_s=0.05)
"""A lease longer than the CLI adapter's heartbeat interval: no attempt is lost as a zombie."""
FAKE_CLI = """
import sys
print(sys.argv[1])
sys.exit(0)
"""


@pytest.mark.parametrize(
    ("report", "printed"),
    [EXIT_0_REJECTIONS[0], EXIT_0_REJECTIONS[3]],
    ids=[EXIT_0_IDS[0], EXIT_0_IDS[3]],
)
async def test_a_400_behind_an_agent_fails_on_the_first_attempt(
    store: Store, tmp_path: Path, report: ReportFormat, printed: str
) -> None:
    workflow_id = await one_subtask(store)
    script = tmp_path / "agent.py"
    script.write_text(FAKE_CLI)
    argv = (sys.executable, str(script), printed, "{prompt}")
    template = CliTemplate("fake", argv, report=report)
    agent = CliAgentAdapter(template)
    assert parse_report(template.report, printed).text  # the fake prints what it is given
    stats = await worker_for(store, agent, tmp_path, CLI_CONFIG).run(once=True)

    [subtask] = await store.list_subtasks(workflow_id)
    assert (subtask.status, subtask.attempts) == ("failed", 1)
    attempts = await store.list_attempts(subtask.id)
    assert [(a.outcome, a.error_class) for a in attempts] == [("failed", "validation")]
    assert stats.retried == 0
