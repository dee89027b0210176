"""CLI agents with fake agent programs on PATH that edit a temporary git repository."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

from agents.support import Beats, agent_task, git, init_repo
from taskorch.agents.cli_agent import (
    TEMPLATES,
    CliAgentAdapter,
    CliTemplate,
    template,
)
from taskorch.agents.cli_reports import parse_aider, parse_claude
from taskorch.agents.outcome import NeedsInputError
from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.plan import WorkerType

# One program under every agent's name. FAKE_MODE says what it does; FAKE_RECORD gets its argv,
# stdin and cwd; its output imitates the agent it is named after.
FAKE_AGENT = r"""
import json, os, subprocess, sys, time

name = os.path.basename(sys.argv[0])
mode = os.environ.get("FAKE_MODE", "edit")
stdin = sys.stdin.read()
if os.environ.get("FAKE_RECORD"):
    with open(os.environ["FAKE_RECORD"], "w") as f:
        json.dump({"name": name, "argv": sys.argv[1:], "stdin": stdin, "cwd": os.getcwd()}, f)
text = "I wrote agent_output.txt."
code = 0
err = ""
if mode in ("edit", "commit"):
    with open("agent_output.txt", "w") as f:
        f.write(f"edited by {name}\n")
    if mode == "commit" or name == "aider":
        subprocess.run(["git", "add", "agent_output.txt"], check=True)
        subprocess.run(["git", "commit", "-q", "-m", "agent edit"], check=True)
elif mode == "nothing":
    text = "I looked around and everything seems fine."
elif mode == "question":
    text = "I can do this two ways.\nShould I use pytest or unittest?"
elif mode == "rate-limit":
    code, err = 1, "Error: 429 Too Many Requests: rate limit exceeded"
elif mode == "auth":
    code, err = 1, "Invalid API key - Please run /login"
elif mode == "crash":
    code, err = 3, "Traceback (most recent call last):\nRuntimeError: boom"
elif mode == "hang":
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(os.environ["FAKE_PIDS"], "w") as f:
        f.write(f"{os.getpid()} {child.pid}")
    time.sleep(600)
if name == "claude":
    denials = [{"tool_name": "Write", "tool_use_id": "t1"}] if mode == "denied" else []
    print(json.dumps({
        "type": "result", "subtype": "success", "is_error": code != 0,
        "result": err or text, "session_id": "s-1", "num_turns": 2, "duration_ms": 1234,
        "total_cost_usd": 0.0123, "permission_denials": denials,
        "usage": {"input_tokens": 100, "cache_creation_input_tokens": 20,
                  "cache_read_input_tokens": 30, "output_tokens": 50},
    }))
elif name == "aider":
    print(text)
    print("Tokens: 2.3k sent, 150 received. Cost: $0.01 message, $0.01 session.")
    print("Tokens: 12k sent, 1.1k cache write, 1.2k received. Cost: $0.02 message, $0.03 session.")
else:
    print(text)
print(err, file=sys.stderr)
sys.exit(code)
"""


@pytest.fixture
def fake_bin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A directory on PATH holding the fake agent as claude, aider, goose, codex and my-agent."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("claude", "aider", "goose", "codex", "my-agent"):
        program = bin_dir / name
        program.write_text(f"#!{sys.executable}\n{FAKE_AGENT}")
        program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ['PATH']}")
    monkeypatch.setenv("FAKE_RECORD", str(tmp_path / "record.json"))
    monkeypatch.setenv("GIT_AUTHOR_NAME", "Agent")
    monkeypatch.setenv("GIT_AUTHOR_EMAIL", "agent@example.com")
    monkeypatch.setenv("GIT_COMMITTER_NAME", "Agent")
    monkeypatch.setenv("GIT_COMMITTER_EMAIL", "agent@example.com")
    return bin_dir


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return init_repo(tmp_path / "repo")


def recorded(tmp_path: Path) -> dict[str, Any]:
    body: dict[str, Any] = json.loads((tmp_path / "record.json").read_text())
    return body


def same_dir(a: str | Path, b: str | Path) -> bool:
    return Path(a).resolve() == Path(b).resolve()


def files_like(where: Path, pattern: str) -> list[Path]:
    return list(where.glob(pattern))


def mode(name: str) -> dict[str, str]:
    return {"FAKE_MODE": name}


async def test_claude_success_with_usage_and_cost(
    fake_bin: Path, repo: Path, tmp_path: Path
) -> None:
    beats = Beats()
    result = await CliAgentAdapter("claude-code", heartbeat_s=0.05).run(
        agent_task(workdir=repo), beats
    )
    assert result.success
    assert result.output == "I wrote agent_output.txt."
    assert result.data["changed_files"] == ["agent_output.txt"]
    assert result.data["commits"] == []
    assert (result.tokens_in, result.tokens_out, result.cost_usd) == (150, 50, 0.0123)
    assert result.data["session_id"] == "s-1"
    record = recorded(tmp_path)
    assert record["argv"] == [
        "-p",
        "Add unit tests for the billing module",
        "--output-format",
        "json",
        "--permission-mode",
        "acceptEdits",
    ]
    assert same_dir(record["cwd"], repo)


async def test_aider_commit_is_detected_and_its_usage_parsed(
    fake_bin: Path, repo: Path, tmp_path: Path
) -> None:
    start = git(repo, "rev-parse", "HEAD")
    result = await CliAgentAdapter("aider").run(agent_task(workdir=repo), Beats())
    assert result.success
    assert result.data["commits"] == [git(repo, "rev-parse", "HEAD")]
    assert result.data["commits"] != [start]
    assert result.data["changed_files"] == ["agent_output.txt"]
    assert (result.tokens_in, result.tokens_out, result.cost_usd) == (14_300, 1_350, 0.03)
    argv = recorded(tmp_path)["argv"]
    assert argv[0] == "--message=Add unit tests for the billing module"
    assert "--yes-always" in argv
    history = next(a for a in argv if a.startswith("--chat-history-file="))
    scratch = Path(history.split("=", 1)[1]).parent
    assert not scratch.is_relative_to(repo)
    assert not scratch.exists()  # removed after the run
    assert git(repo, "status", "--porcelain") == ""


@pytest.mark.parametrize(
    ("name", "expected"),
    [("goose", ["run", "-t", "PROMPT"]), ("codex", ["exec", "--full-auto", "PROMPT"])],
)
async def test_goose_and_codex_templates(
    fake_bin: Path, repo: Path, tmp_path: Path, name: str, expected: list[str]
) -> None:
    result = await CliAgentAdapter(name).run(agent_task("PROMPT", workdir=repo), Beats())
    assert result.success
    assert result.data["changed_files"] == ["agent_output.txt"]
    assert recorded(tmp_path)["argv"] == expected


async def test_exit_zero_without_a_change_is_a_failed_attempt(fake_bin: Path, repo: Path) -> None:
    agent = CliAgentAdapter("claude-code", env=mode("nothing"))
    with pytest.raises(AgentError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert caught.value.error_class == "agent"
    assert caught.value.retryable
    assert "changed nothing" in caught.value.message


async def test_no_change_is_fine_for_an_audit_that_reports_success(
    fake_bin: Path, repo: Path
) -> None:
    agent = CliAgentAdapter("claude-code", env=mode("nothing"))
    task = agent_task("Audit the auth module", workdir=repo, worker_type=WorkerType.AUDIT)
    result = await agent.run(task, Beats())
    assert result.output == "I looked around and everything seems fine."
    assert result.data["changed_files"] == []


async def test_question_without_a_change_needs_input(fake_bin: Path, repo: Path) -> None:
    agent = CliAgentAdapter("goose", env=mode("question"))
    with pytest.raises(NeedsInputError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert caught.value.question == "Should I use pytest or unittest?"
    assert not caught.value.retryable


async def test_outside_a_git_worktree_output_is_the_evidence(
    fake_bin: Path, tmp_path: Path
) -> None:
    plain = tmp_path / "plain"
    plain.mkdir()
    result = await CliAgentAdapter("goose", env=mode("nothing")).run(
        agent_task(workdir=plain), Beats()
    )
    assert result.success
    assert "changed_files" not in result.data
    asked = await CliAgentAdapter("goose", env=mode("question")).run(
        agent_task(workdir=plain), Beats()
    )
    assert asked.data["question"] == "Should I use pytest or unittest?"


@pytest.mark.parametrize(
    ("agent", "how", "error_class", "retryable"),
    [
        ("goose", "rate-limit", "rate_limit", True),
        ("goose", "auth", "auth", False),
        ("goose", "crash", "agent", True),
        ("claude-code", "auth", "auth", False),
    ],
)
async def test_non_zero_exit_is_classified(
    fake_bin: Path, repo: Path, agent: str, how: str, error_class: str, retryable: bool
) -> None:
    with pytest.raises(AgentError) as caught:
        await CliAgentAdapter(agent, env=mode(how)).run(agent_task(workdir=repo), Beats())
    assert (caught.value.error_class, caught.value.retryable) == (error_class, retryable)
    assert "exited" in caught.value.message


async def test_claude_permission_denials_fail_the_attempt(fake_bin: Path, repo: Path) -> None:
    with pytest.raises(AgentError) as caught:
        await CliAgentAdapter("claude-code", env=mode("denied")).run(
            agent_task(workdir=repo), Beats()
        )
    assert caught.value.error_class == "agent"
    assert "Write" in caught.value.message
    spent = (caught.value.tokens_in, caught.value.tokens_out, caught.value.cost_usd)
    assert spent == (150, 50, 0.0123)


async def test_missing_executable_is_a_clear_non_retryable_error(repo: Path) -> None:
    agent = CliAgentAdapter("claude-code", executable="no-such-agent-xyz")
    with pytest.raises(AgentError) as caught:
        await agent.run(agent_task(workdir=repo), Beats())
    assert caught.value.error_class == "dependency"
    assert not caught.value.retryable
    assert "no-such-agent-xyz" in caught.value.message


HOSTILE = (
    "Fix it: \"quoted\" 'single' $(touch PWNED) `touch PWNED2`; rm -rf / && echo $HOME\nline 2"
)


@pytest.mark.parametrize("prompt", [HOSTILE, "--help me with spaces"])
async def test_prompt_is_one_argv_element_never_a_shell(
    fake_bin: Path, repo: Path, tmp_path: Path, prompt: str
) -> None:
    agent = CliAgentAdapter(CliTemplate.custom(["my-agent", "--task", "{prompt}", "--fast"]))
    await agent.run(agent_task(prompt, workdir=repo), Beats())
    argv = recorded(tmp_path)["argv"]
    assert argv[0] == "--task"
    assert argv[1].strip() == prompt  # a leading "-" gets a space so it can't be an option
    assert argv[2:] == ["--fast"]
    assert not files_like(repo, "PWNED*")


async def test_prompt_on_stdin(fake_bin: Path, repo: Path, tmp_path: Path) -> None:
    agent = CliAgentAdapter(CliTemplate.custom(["my-agent", "--stdin"]))
    assert agent.template.prompt_on_stdin
    await agent.run(agent_task(HOSTILE, workdir=repo), Beats())
    record = recorded(tmp_path)
    assert record["argv"] == ["--stdin"]
    assert record["stdin"] == HOSTILE


async def test_placeholders_inside_the_prompt_are_not_expanded(
    fake_bin: Path, repo: Path, tmp_path: Path
) -> None:
    agent = CliAgentAdapter(CliTemplate.custom(["my-agent", "--in={workdir}", "--msg={prompt}"]))
    await agent.run(agent_task("use {workdir} and {scratch}", workdir=repo), Beats())
    assert recorded(tmp_path)["argv"] == [f"--in={repo}", "--msg=use {workdir} and {scratch}"]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


async def test_cancellation_kills_the_whole_process_group(
    fake_bin: Path, repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pids_file = tmp_path / "pids"
    monkeypatch.setenv("FAKE_PIDS", str(pids_file))
    beats = Beats()
    run = asyncio.create_task(
        CliAgentAdapter("goose", env=mode("hang"), heartbeat_s=0.05).run(
            agent_task(workdir=repo), beats
        )
    )
    for _ in range(200):
        if pids_file.exists() and pids_file.read_text():
            break
        await asyncio.sleep(0.02)
    pids = [int(p) for p in pids_file.read_text().split()]
    assert all(_alive(p) for p in pids)
    await asyncio.sleep(0.2)
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    for _ in range(100):
        if not any(_alive(p) for p in pids):
            break
        await asyncio.sleep(0.02)
    assert not any(_alive(p) for p in pids)
    assert beats.count >= 2


def test_templates_are_validated() -> None:
    assert sorted(TEMPLATES) == ["aider", "claude-code", "codex", "goose"]
    with pytest.raises(ConfigError, match="known: aider, claude-code, codex, goose"):
        template("cursor")
    with pytest.raises(ConfigError, match="not both"):
        CliTemplate("both", ("x", "{prompt}"), prompt_on_stdin=True)
    with pytest.raises(ConfigError, match="not both and not neither"):
        CliTemplate("neither", ("x",))
    with pytest.raises(ConfigError, match="argv"):
        CliTemplate.custom([])


def test_claude_report_parsing_is_lenient() -> None:
    line = json.dumps({"type": "result", "is_error": False, "result": "ok  \n", "extra": 1})
    assert parse_claude(f"warning: something\n{line}\n").text == "ok"
    array = json.dumps([{"type": "system"}, {"type": "result", "is_error": True, "result": "x"}])
    assert parse_claude(array).ok is False
    garbage = parse_claude("not json at all")
    assert (garbage.ok, garbage.text, garbage.tokens_in) == (None, "not json at all", None)


def test_aider_report_parsing() -> None:
    report = parse_aider("Tokens: 950 sent, 1,200 received.\nno cost line here\n")
    assert (report.tokens_in, report.tokens_out, report.cost_usd) == (950, 1200, None)
    assert parse_aider("Tokens: 1.5M sent, 2k received.").tokens_in == 1_500_000
    assert parse_aider("nothing").tokens_in is None


async def test_taskorchs_own_secrets_are_withheld_from_the_agent(
    repo: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DATABASE_URL", "postgresql://app:hunter2@db/taskorch")
    monkeypatch.setenv("GITHUB_TOKEN", "ghp_secret")
    monkeypatch.setenv("TASKORCH_API_TOKEN", "api-secret")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "the-agent-needs-this")
    seen = tmp_path / "env.json"
    dump = f"import json, os; json.dump(dict(os.environ), open({str(seen)!r}, 'w')); print('ok')"
    template = CliTemplate.custom([sys.executable, "-c", dump], prompt_on_stdin=True)
    agent = CliAgentAdapter(
        template, env={"GITHUB_TOKEN": "given-on-purpose"}, require_changes=False
    )
    await agent.run(agent_task(workdir=repo), Beats())
    env = json.loads(seen.read_text())
    assert "DATABASE_URL" not in env
    assert "TASKORCH_API_TOKEN" not in env
    assert env["ANTHROPIC_API_KEY"] == "the-agent-needs-this"
    assert env["GITHUB_TOKEN"] == "given-on-purpose"


async def test_a_prompt_too_long_for_the_command_line_is_a_clear_input_error(
    fake_bin: Path, repo: Path
) -> None:
    huge = "Add unit tests for billing. " + "x" * 200_000
    with pytest.raises(AgentError) as caught:
        await CliAgentAdapter("goose").run(agent_task(huge, workdir=repo), Beats())
    assert (caught.value.error_class, caught.value.retryable) == ("validation", False)
    assert "too long" in caught.value.message
    assert "stdin" in caught.value.message
