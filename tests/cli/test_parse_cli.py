"""``taskorch parse`` as a user runs it: a real subprocess, offline or against a local fake LLM."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.llm_servers import FakeLLMServer, Reply, login_plan
from taskorch.domain.limits import MAX_TEXT_CHARS
from taskorch.domain.plan import Complexity, Plan, WorkerType

REST_API = (
    "Create a REST API for user management with authentication, including login, registration, "
    "and password reset functionality"
)
AUTH = "Add authentication system with security audit and documentation"
_STRIPPED = ("ANTHROPIC_", "OPENAI_", "NLP_", "TASKORCH_CONFIG")


@pytest.fixture
def home(tmp_path: Path) -> Path:
    return tmp_path / ".taskorch"


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


def taskorch(
    *args: str, home: Path, stdin: str | None = None, timeout_s: float = 60
) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(_STRIPPED)}
    env["TASKORCH_HOME"] = str(home)
    env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "taskorch", "parse", *args],
        capture_output=True,
        text=True,
        env=env,
        input=stdin,
        cwd=home.parent,
        timeout=timeout_s,
        check=False,
    )


def ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def one_line_error(result: subprocess.CompletedProcess[str], fragment: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert fragment in result.stderr


def test_done_when_rest_api_example(home: Path) -> None:
    out = ok(taskorch(REST_API, "--json", home=home))
    plan = Plan.from_json(out)
    assert plan.to_json() == out.rstrip("\n"), "stdout is exactly the plan format"
    assert plan.complexity is not Complexity.SIMPLE
    titles = [s.title.lower() for s in plan.subtasks]
    for feature in ("login", "registration", "password reset"):
        assert any(feature in t for t in titles), feature
    stage = {i: n for n, ids in enumerate(plan.execution_plan.values()) for i in ids}
    built = [s.subtask_id for s in plan.subtasks if s.worker_type is WorkerType.IMPLEMENTATION]
    tested = [s.subtask_id for s in plan.subtasks if s.worker_type is WorkerType.TEST]
    assert tested
    assert min(stage[t] for t in tested) > max(stage[b] for b in built)


def test_human_view_shows_stages_owners_estimates_and_planner(home: Path) -> None:
    out = ok(taskorch(AUTH, home=home))
    for shown in (
        "stage 1",
        "stage 2 (parallel)",
        "stage 5",
        "auth-001-design",
        "auth-002-backend",
        "auth-003-frontend",
        "development/implementation",
        "security/audit",
        "docs/auth-architecture.md",
        "85-110 minutes",
        "masters: development, security, docs",
        "planner  heuristic (offline",
    ):
        assert shown in out, shown


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_input_is_a_one_line_error(home: Path, text: str) -> None:
    one_line_error(taskorch(text, home=home), "empty")


def test_no_input_and_both_inputs_are_errors(home: Path, tmp_path: Path) -> None:
    one_line_error(taskorch(home=home), "no requirement")
    spec = tmp_path / "spec.md"
    spec.write_text("Add a cache")
    one_line_error(taskorch("Add a cache", "--file", str(spec), home=home), "not both")
    one_line_error(taskorch("--file", str(tmp_path / "missing.md"), home=home), "cannot read")


def test_a_file_at_the_text_limit_is_planned(home: Path, tmp_path: Path) -> None:
    """Its speed is measured by bench/planner.py, never timed here (a loaded machine is slow)."""
    paragraph = (
        "- Add billing to src/billing/invoice.py and web/Invoice.tsx with tests, then document "
        "the API in docs/billing.md and deploy it after review.\n"
    )
    spec = tmp_path / "spec.md"
    spec.write_text(paragraph * (MAX_TEXT_CHARS // len(paragraph)))
    out = ok(taskorch("--file", str(spec), "--json", home=home))
    plan = Plan.from_json(out)
    assert 3 <= len(plan.subtasks) <= 10
    assert all(len(s.files_affected) <= 3 for s in plan.subtasks)


def test_a_file_over_the_text_limit_is_refused_without_reading_it_all(
    home: Path, tmp_path: Path
) -> None:
    spec = tmp_path / "spec.md"
    spec.write_text("Add a cache. " * 1_000_000)
    one_line_error(taskorch("--file", str(spec), home=home), "over the limit of 100,000 characters")
    one_line_error(taskorch("--file", "/dev/zero", home=home, timeout_s=30), "over the limit")


def test_requirement_from_stdin(home: Path) -> None:
    out = ok(taskorch("--file", "-", "--json", home=home, stdin="List all repositories"))
    assert Plan.from_json(out).subtasks[0].assigned_to.value == "inventory"


def test_openai_compatible_provider(home: Path, llm_server: FakeLLMServer) -> None:
    llm_server.reply(Reply.plan(login_plan()))
    args = ["--provider", "openai-compatible", "--model", "llama-test"]
    out = ok(taskorch(REST_API, *args, "--base-url", llm_server.openai_base_url, home=home))
    assert "api-002-login" in out
    assert "planner  openai-compatible (llama-test)" in out
    assert llm_server.paths() == ["/v1/chat/completions"]
    assert llm_server.requests[0].body["model"] == "llama-test"


def test_fallback_keeps_json_clean_and_says_so_on_stderr(
    home: Path, llm_server: FakeLLMServer
) -> None:
    llm_server.reply(Reply(answer="not json"), Reply(answer="still not json"))
    args = ["--provider", "openai-compatible", "--model", "m", "--json"]
    result = taskorch(REST_API, *args, "--base-url", llm_server.openai_base_url, home=home)
    plan = Plan.from_json(ok(result))
    assert len(plan.subtasks) >= 3
    assert "planner: heuristic (fallback:" in result.stderr
    assert "invalid plan twice" in result.stderr


def test_named_provider_without_key_is_a_one_line_error(home: Path) -> None:
    one_line_error(taskorch("Add a cache", "--provider", "anthropic", home=home), "API_KEY")


def test_unknown_provider_is_refused(home: Path) -> None:
    result = taskorch("Add a cache", "--provider", "magic", home=home)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr


def test_json_output_round_trips(home: Path) -> None:
    out = ok(taskorch("Scan repository for security vulnerabilities", "--json", home=home))
    data = json.loads(out)
    assert list(data) == [
        "orchestration_id",
        "parent_task_id",
        "task_title",
        "complexity",
        "status",
        "subtasks",
        "execution_plan",
        "resource_estimate",
        "progress",
    ]
    assert data["complexity"] == "simple"
    assert data["subtasks"][0]["assigned_to"] == "security"
