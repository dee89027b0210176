"""The real Aider CLI (PyPI ``aider-chat``) driven by ``taskorch run`` end to end, its model a fake
OpenAI-compatible server (:mod:`agents.fake_openai`).

Aider is configured the way a user does it: ``taskorch agents add NAME --type aider --executable
PATH`` and Aider's own environment variables (``AIDER_MODEL``, ``AIDER_OPENAI_API_BASE``,
``AIDER_OPENAI_API_KEY``, ...) in the environment ``taskorch run`` passes on to its agents (the
``AIDER_`` names, because taskorch's own planner reads ``OPENAI_API_KEY``). Aider is installed in
its own virtualenv (its exact pins clash with taskorch's) and found through ``AIDER_BIN``; without
it those tests are skipped. The last tests need no Aider: they check the fake server with OpenAI's
own Python SDK and run the adapter against a stand-in ``aider`` script that leaves what the real
one leaves.
"""

from __future__ import annotations

import json
import os
import sqlite3
import sys
from contextlib import closing
from pathlib import Path
from typing import Any

import openai
import pytest

from agents.e2e import (
    CLI_TIMEOUT_S,
    REQUIREMENT,
    TESTS_FILE,
    agents_by_name,
    base_branch_files,
    demo_repo,
    start_taskorch,
    taskorch,
)
from agents.fake_openai import FakeOpenAI, Messages
from agents.support import Beats, agent_task, git
from taskorch.agents.cli_agent import CliAgentAdapter
from taskorch.agents.outcome import NeedsInputError
from taskorch.domain.errors import AgentError
from taskorch.domain.plan import WorkerType
from taskorch.settings import default_worktrees_root

MODEL = "fake-coder"
API_KEY = "sk-fake-aider"
TESTS = "from billing import total\n\n\ndef test_total():\n    assert total([1, 2]) == 3\n"
NO_EDIT = "The billing module is simple enough that it needs no tests."
# per token, so aider prints a cost taskorch can parse
INPUT_COST, OUTPUT_COST = 2e-6, 8e-6


def aider_bin() -> str:
    path = os.environ.get("AIDER_BIN")
    if not path:
        pytest.skip("AIDER_BIN not set: .ci/run installs aider-chat")
    if not os.access(path, os.X_OK):
        pytest.skip(f"AIDER_BIN={path} is not an executable: .ci/run installs aider-chat")
    return path


def whole_edit(messages: Messages) -> str:
    """The model's answer in Aider's "whole" edit format (its default for an unknown
    ``openai/NAME`` model): the file's path, then its whole content in a fence."""
    return f"I added tests for billing.total.\n\n{TESTS_FILE}\n```python\n{TESTS}```\n"


def configure_aider(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, server: FakeOpenAI, key: str = API_KEY
) -> None:
    """Aider's settings through its own environment variables, which ``taskorch run`` passes on;
    offline: a local price map and a metadata file naming the model (else it downloads litellm's
    price list), and a HOME of its own (it writes ``~/.aider/``). The repository map stays on, as
    for a real model: its cache is the file Aider leaves in the worktree."""
    metadata = tmp_path / "aider-models.json"
    metadata.write_text(
        json.dumps(
            {
                f"openai/{MODEL}": {
                    "max_input_tokens": 32_000,
                    "max_output_tokens": 4_096,
                    "max_tokens": 4_096,
                    "input_cost_per_token": INPUT_COST,
                    "output_cost_per_token": OUTPUT_COST,
                    "litellm_provider": "openai",
                    "mode": "chat",
                }
            }
        )
    )
    home = tmp_path / "home"
    home.mkdir()
    settings = {
        "HOME": str(home),
        "AIDER_MODEL": f"openai/{MODEL}",
        "AIDER_OPENAI_API_BASE": server.base_url,
        "AIDER_OPENAI_API_KEY": key,
        "AIDER_MODEL_METADATA_FILE": str(metadata),
        "AIDER_MAP_TOKENS": "1024",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    # taskorch's planner would take these for itself (and try api.openai.com)
    for name in ("OPENAI_API_KEY", "OPENAI_BASE_URL", "ANTHROPIC_API_KEY"):
        monkeypatch.delenv(name, raising=False)


def register_aider(home: Path) -> None:
    taskorch(home, "agents", "add", "aider-1", "--type", "aider", "--executable", aider_bin())


def attempts(home: Path) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(home / "taskorch.db")) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("SELECT * FROM attempts ORDER BY subtask_id, number").fetchall()
    return [dict(row) for row in rows]


def test_real_aider_writes_tests_commits_them_and_the_run_merges(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aider_bin()
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    with FakeOpenAI(
        reply=whole_edit, commit_message="Add tests for billing.total", model=MODEL, api_key=API_KEY
    ) as server:
        configure_aider(monkeypatch, tmp_path, server)
        register_aider(home)
        final = json.loads(taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json"))
    calls = server.calls

    assert final["state"] == "merged", final
    [subtask] = final["subtasks"]
    assert (subtask["agent"], subtask["attempts"]) == ("aider-1", 1)
    assert TESTS_FILE in base_branch_files(repo)
    assert git(repo, "show", f"main:{TESTS_FILE}") + "\n" == TESTS
    # aider committed its own edit, with the fake model's commit message
    log = git(repo, "log", "--format=%s%n%b", "main")
    assert "Add tests for billing.total" in log
    assert "Co-authored-by: aider (openai/fake-coder)" in log
    # nothing of aider's own (histories, caches) landed
    assert not [f for f in base_branch_files(repo) if f.startswith(".aider")]

    # the wire: one streamed edit request, one plain commit-message request, nothing unanswered
    assert [(c.method, c.path) for c in calls] == [("POST", "/v1/chat/completions")] * 2
    edit, commit = calls
    assert (edit.streamed, edit.is_commit_message) == (True, False)
    assert (commit.streamed, commit.is_commit_message) == (False, True)
    assert edit.headers["authorization"] == f"Bearer {API_KEY}"
    assert edit.body["model"] == MODEL
    assert REQUIREMENT in json.dumps(edit.body["messages"])

    # the "Tokens: N sent, M received. Cost: $X message, $Y session." line, on the attempt
    [attempt] = attempts(home)
    assert attempt["outcome"] == "succeeded", attempt
    assert attempt["tokens_in"] > 100
    assert 0 < attempt["tokens_out"] < 100
    expected = attempt["tokens_in"] * INPUT_COST + attempt["tokens_out"] * OUTPUT_COST
    assert attempt["cost_usd"] == pytest.approx(expected, rel=0.1)
    [summary] = final["pull_request"]["subtasks"]
    spent = {k: summary[k] for k in ("tokens_in", "tokens_out", "cost_usd")}
    assert spent == {k: attempt[k] for k in ("tokens_in", "tokens_out", "cost_usd")}
    assert agents_by_name(home)["aider-1"]["track_record"]["successes"] == 1


def test_real_aider_answering_without_an_edit_is_a_failed_attempt_not_a_success(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aider_bin()
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    with FakeOpenAI(reply=NO_EDIT, model=MODEL, api_key=API_KEY) as server:
        configure_aider(monkeypatch, tmp_path, server)
        register_aider(home)
        run = start_taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json")
        out, err = run.communicate(timeout=CLI_TIMEOUT_S)

    assert run.returncode == 1, f"{err}\n{out}"
    assert "Traceback" not in err, err
    final = json.loads(out)
    assert final["state"] == "failed", final
    assert TESTS_FILE not in base_branch_files(repo)
    tried = attempts(home)
    assert tried, "aider never ran"
    for attempt in tried:
        assert attempt["outcome"] == "failed", attempt
        assert attempt["error_class"] == "agent", attempt
        message = attempt["error_message"]
        assert message.startswith("aider-1 exited 0 but changed nothing in "), attempt
        # what the model said, without Aider's banner and token lines around it
        assert message.endswith(f": {NO_EDIT}"), attempt
    # the repo map's cache did not pass for work (nor stay in a worktree)
    assert not list(default_worktrees_root(home).glob("**/.aider.tags.cache.v*"))
    # the model was asked for an edit each time, never for a commit message
    assert not [c for c in server.calls if c.is_commit_message]
    assert len(server.chat_calls()) == len(tried)


def test_real_aider_with_a_rejected_api_key_is_an_auth_failure_tried_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    aider_bin()
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    with FakeOpenAI(reply=whole_edit, model=MODEL, api_key=API_KEY) as server:
        configure_aider(monkeypatch, tmp_path, server, key="sk-revoked")
        register_aider(home)
        run = start_taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json")
        out, err = run.communicate(timeout=CLI_TIMEOUT_S)

    assert run.returncode == 1, f"{err}\n{out}"
    final = json.loads(out)
    assert final["state"] == "failed", final
    [attempt] = attempts(home)  # an auth error is not retried
    assert (attempt["outcome"], attempt["error_class"]) == ("failed", "auth"), attempt
    assert attempt["error_message"].startswith("aider-1 reported an error: "), attempt
    assert "litellm.AuthenticationError" in attempt["error_message"], attempt
    assert [c.headers["authorization"] for c in server.chat_calls()] == ["Bearer sk-revoked"]


# A stand-in for aider: what the real one prints and leaves behind (the repo map's cache, an
# edit it commits itself when FAKE_AIDER_EDIT is set), for the adapter's handling of it.
FAKE_AIDER = """\
import os, pathlib, subprocess
cache = pathlib.Path(".aider.tags.cache.v4")
cache.mkdir(exist_ok=True)
(cache / "cache.db").write_bytes(b"SQLite format 3")
print("Aider v0.86.2\\nModel: openai/fake-coder with whole edit format")
print("Git repo: .git with 1 files\\nRepo-map: using 1024 tokens, auto refresh\\n")
if os.environ.get("FAKE_AIDER_EDIT"):
    pathlib.Path("tests").mkdir(exist_ok=True)
    pathlib.Path("tests/test_billing.py").write_text("def test_nothing():\\n    pass\\n")
    subprocess.run(["git", "add", "tests/test_billing.py"], check=True)
    subprocess.run(["git", "commit", "-q", "-m", "Add billing tests"], check=True)
    print("Applied edit to tests/test_billing.py\\nCommit 3618445 Add billing tests")
else:
    print(os.environ.get("FAKE_AIDER_SAYS", "Nothing to change."))
print("Tokens: 1.2k sent, 40 received. Cost: $0.0027 message, $0.0027 session.")
"""


@pytest.fixture
def fake_aider(tmp_path: Path) -> str:
    script = tmp_path / "bin" / "aider"
    script.parent.mkdir()
    script.write_text(f"#!{sys.executable}\n{FAKE_AIDER}")
    script.chmod(0o755)
    return str(script)


async def test_aider_repo_map_cache_is_no_work_and_is_removed(
    fake_aider: str, tmp_path: Path
) -> None:
    repo = demo_repo(tmp_path)
    with pytest.raises(AgentError) as caught:
        await CliAgentAdapter("aider", executable=fake_aider).run(
            agent_task(workdir=repo, worker_type=WorkerType.TEST), Beats()
        )
    assert caught.value.error_class == "agent"
    assert caught.value.message.endswith(f"changed nothing in {repo}: Nothing to change.")
    assert git(repo, "status", "--porcelain", "--untracked-files=all") == ""


async def test_aider_edit_is_judged_without_its_cache(
    fake_aider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    # someone's cache from before the run is not the agent's to remove
    (repo / ".aider.tags.cache.v3").mkdir()
    (repo / ".aider.tags.cache.v3" / "old.db").write_text("kept")
    monkeypatch.setenv("FAKE_AIDER_EDIT", "1")
    result = await CliAgentAdapter("aider", executable=fake_aider).run(
        agent_task(workdir=repo, worker_type=WorkerType.TEST), Beats()
    )
    assert result.success
    assert result.data["changed_files"] == [TESTS_FILE]
    assert (result.tokens_in, result.tokens_out, result.cost_usd) == (1_200, 40, 0.0027)
    assert "Tokens:" not in result.output
    assert not (repo / ".aider.tags.cache.v4").exists()
    assert (repo / ".aider.tags.cache.v3" / "old.db").read_text() == "kept"


async def test_aider_ending_with_a_question_needs_input(
    fake_aider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    monkeypatch.setenv("FAKE_AIDER_SAYS", "Which functions of billing.py should the tests cover?")
    with pytest.raises(NeedsInputError) as caught:
        await CliAgentAdapter("aider", executable=fake_aider).run(
            agent_task(workdir=repo, worker_type=WorkerType.TEST), Beats()
        )
    assert caught.value.question == "Which functions of billing.py should the tests cover?"


async def test_aider_api_error_is_classified_by_the_error_not_by_token_counts(
    fake_aider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    said = (
        "Let me look at billing.py first.\n"
        "Tokens: 401 sent, 9 received. Cost: $0.0009 message, $0.0009 session.\n"
        "litellm.APIConnectionError: APIConnectionError: OpenAIException - Connection error."
    )
    monkeypatch.setenv("FAKE_AIDER_SAYS", said)
    with pytest.raises(AgentError) as caught:
        await CliAgentAdapter("aider", executable=fake_aider).run(
            agent_task(workdir=repo, worker_type=WorkerType.TEST), Beats()
        )
    # aider exited 0, but said the call failed; a network error is retried, not an auth one
    assert (caught.value.error_class, caught.value.retryable) == ("network", True)
    assert caught.value.message.startswith("aider reported an error: Let me look")
    assert "litellm.APIConnectionError" in caught.value.message


def test_fake_server_speaks_the_protocol_of_openais_own_sdk() -> None:
    with (
        FakeOpenAI(reply="Hello from the fake.", model=MODEL, api_key=API_KEY) as server,
        openai.OpenAI(base_url=server.base_url, api_key=API_KEY, max_retries=0) as client,
        openai.OpenAI(base_url=server.base_url, api_key="sk-wrong", max_retries=0) as rejected,
    ):
        ask: list[Any] = [{"role": "user", "content": "Say hello."}]
        answer = client.chat.completions.create(model=MODEL, messages=ask)
        stream = client.chat.completions.create(
            model=MODEL, messages=ask, stream=True, stream_options={"include_usage": True}
        )
        chunks = list(stream)
        with pytest.raises(openai.AuthenticationError):
            rejected.chat.completions.create(model=MODEL, messages=ask)
        with pytest.raises(openai.NotFoundError):
            client.embeddings.create(model=MODEL, input="billing")
        models = [m.id for m in client.models.list()]

    assert answer.choices[0].message.content == "Hello from the fake."
    assert answer.usage is not None
    assert answer.usage.completion_tokens > 0
    streamed = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert streamed == "Hello from the fake."
    assert chunks[-1].usage is not None
    assert chunks[-1].usage.prompt_tokens > 0
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert models == [MODEL]


def test_a_relative_executable_is_registered_absolute_and_runs_in_the_worktree(
    fake_aider: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    monkeypatch.setenv("FAKE_AIDER_EDIT", "1")
    # registered from tmp_path (the CLI's working directory), run in a worktree elsewhere
    relative = str(Path(fake_aider).relative_to(tmp_path))
    taskorch(home, "agents", "add", "aider-1", "--type", "aider", "--executable", relative)
    assert agents_by_name(home)["aider-1"]["adapter"] == f"cli {fake_aider}"
    final = json.loads(taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json"))

    assert final["state"] == "merged", final
    assert TESTS_FILE in base_branch_files(repo)
    assert not [f for f in base_branch_files(repo) if f.startswith(".aider")]
