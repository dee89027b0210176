"""Regression tests for the CLI's bad-input faults: each once broke with a traceback, a hang,
an error over several lines or escape sequences reaching the terminal. In-process where that
shows the fault; a real subprocess where the process itself matters (argv bytes, devices,
stdout that fails)."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import IO

import pytest
from cli_harness import Outcome, run_cli

from taskorch.domain.limits import MAX_TEXT_CHARS, MAX_TITLE_CHARS

OSC = "\x1b]0;PWNED\x07"
CSI = "\x1b[2J\x1b[31m"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for name in ("DATABASE_URL", "DB_HOST", "TASKORCH_CONFIG", "TASKORCH_REPO", "FORCE_COLOR"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    monkeypatch.setenv("NLP_PROVIDER", "heuristic")
    monkeypatch.chdir(tmp_path)
    # A database to read: read commands in an empty folder stop at "no taskorch database".
    initialised = subprocess.run(
        [sys.executable, "-m", "taskorch", "init"], capture_output=True, text=True, check=False
    )
    assert initialised.returncode == 0, initialised.stderr
    return tmp_path / ".taskorch"


def error(outcome: Outcome, *fragments: str, code: int | None = 1) -> str:
    """The one error line of a failed run (exit ``code``; None: 1 or 2), which names each of
    ``fragments``."""
    assert not outcome.problems(), (outcome.problems(), outcome)
    assert outcome.code in ({1, 2} if code is None else {code}), outcome
    [line] = outcome.err.strip().splitlines()
    for fragment in fragments:
        assert fragment in line, line
    return line


def real(
    *args: str | bytes,
    home: Path,
    stdin: IO[bytes] | None = None,
    stdout: IO[bytes] | int = subprocess.PIPE,
    timeout_s: float = 60,
    extra_env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:
    """``taskorch ARGS`` as a real process (argv bytes, devices, a failing stdout)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL"))}
    env.update(TASKORCH_HOME=str(home), COLUMNS="200", NLP_PROVIDER="heuristic")
    env.update(extra_env or {})
    env.pop("FORCE_COLOR", None)
    return subprocess.run(
        [sys.executable, "-m", "taskorch", *args],
        stdin=stdin,
        stdout=stdout,
        stderr=subprocess.PIPE,
        env=env,
        cwd=home.parent,
        timeout=timeout_s,
        check=False,
    )


def one_line(result: subprocess.CompletedProcess[bytes], fragment: str) -> None:
    err = result.stderr.decode("utf-8", "replace")
    assert result.returncode == 1, err
    assert "Traceback" not in err, err
    assert "Exception ignored" not in err, err
    [line] = err.strip().splitlines()
    assert fragment in line, line


# --- arguments ---------------------------------------------------------------------------------


def test_invalid_utf8_in_argv_is_one_line(home: Path) -> None:
    one_line(real(b"task", b"add", b"\xff\xfe title", home=home), "U+DCFF")
    one_line(real(b"status", b"wf-\xff", home=home), "U+DCFF")


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["task", "show", "9223372036854775808"], "from 1 to 9223372036854775807"),
        (["task", "show", "task-99999999999999999999999"], "invalid task id"),
        (["task", "show", "²"], "invalid task id '²'"),
        (["task", "show", "0"], "from 1 to"),
        (["task", "add", "t", "--depends-on", "9223372036854775808"], "from 1 to"),
        (["batch", "1,9223372036854775808"], "from 1 to"),
        (["process", "9223372036854775808"], "from 1 to"),
        (["task", "add", "x" * (MAX_TITLE_CHARS + 1)], "task title is 501 characters"),
        (["task", "add", "a\nb"], "task title contains the control character U+000A"),
        (["task", "add", f"a{OSC}"], "task title contains the control character U+001B"),
        (["task", "add", "t", "-d", "x" * (MAX_TEXT_CHARS + 1)], "description is 100,001"),
        (["parse", "x" * (MAX_TEXT_CHARS + 1)], "requirement is 100,001 characters"),
        (["run", "x" * (MAX_TEXT_CHARS + 1)], "requirement is 100,001 characters"),
        (["parse", "add login", "--context", "\x00"], "--context contains"),
        (["reject", "wf-1", "--reason", OSC], "the reason contains"),
        (["status", OSC], "workflow id contains"),
        (["agents", "add", "a1", "--command", "'unclosed"], "No closing quotation"),
        (["agents", "show", "a\x1b"], "agent name contains"),
        (["--db", "sqlite:///x\n", "task", "list"], "--db contains"),
    ],
)
def test_bad_arguments_are_one_line_errors(home: Path, argv: list[str], fragment: str) -> None:
    error(run_cli(argv), fragment)


@pytest.mark.parametrize(
    "argv",
    [
        ["task", "list", "--limit", "x"],
        ["task", "list", "--limit", "99999999999999999999"],
        ["task", "add"],
        ["no-such-command"],
        ["agents", "add", "a", "--max-concurrency", "1e999"],
        ["serve", "--port", "70000"],
    ],
)
def test_usage_errors_are_one_line(home: Path, argv: list[str]) -> None:
    error(run_cli(argv), "(see `taskorch", code=2)


@pytest.mark.parametrize(
    ("argv", "option"),
    [
        (["run", "add login", "--sim-duration", "inf"], "--sim-duration"),
        (["run", "add login", "--sim-duration", "nan"], "--sim-duration"),
        (["run", "add login", "--sim-duration", "1e999"], "--sim-duration"),
        (["run", "add login", "--sim-duration", "604801"], "--sim-duration is 604801 s"),
        (["resume", "--sim-duration", "inf"], "--sim-duration"),
        (["worker", "--once", "--sim-duration", "inf"], "--sim-duration"),
        (["serve", "--port", "0", "--sim-duration", "inf"], "--sim-duration"),
        (["agents", "add", "a1", "--type", "sim", "--sim-duration", "inf"], "--sim-duration"),
        (["process", "1", "--timeout", "inf"], "--timeout"),
        (["process", "1", "--timeout", "1e999"], "--timeout"),
    ],
)
def test_durations_are_finite_and_bounded(home: Path, argv: list[str], option: str) -> None:
    assert run_cli(["task", "add", "a task"]).code == 0
    error(run_cli(argv), option, code=None)  # nan: refused by the option's own minimum


@pytest.mark.parametrize(
    "name", ["TASKORCH_SUBTASK_TIMEOUT_S", "TASKORCH_LEASE_S", "TASKORCH_TEST_TIMEOUT_S"]
)
@pytest.mark.parametrize("value", ["inf", "1e999", "1e9"])
def test_duration_settings_are_finite_and_bounded(
    home: Path, monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    error(run_cli(["task", "list"]), f"invalid setting {name}=")


# --- files and streams -------------------------------------------------------------------------


@pytest.mark.parametrize("source", ["/dev/zero", "/dev/urandom", "/dev/stdin"])
def test_import_of_an_endless_stream_is_refused_at_the_limit(home: Path, source: str) -> None:
    with open("/dev/zero", "rb") as endless:
        result = real("task", "import", source, home=home, stdin=endless)
    one_line(result, "over the limit of 16,777,216 bytes")


def test_requirement_from_an_endless_stdin_is_refused_at_the_limit(home: Path) -> None:
    with open("/dev/zero", "rb") as endless:
        result = real("run", "--file", "-", home=home, stdin=endless)
    one_line(result, "over the limit of 100,000 characters")


def test_export_to_a_device_is_refused_and_leaves_it_alone(home: Path) -> None:
    tasks = home.parent / "tasks.json"
    tasks.write_text(json.dumps({"tasks": [{"id": 1, "title": "first"}]}))
    assert real("task", "import", str(tasks), home=home).returncode == 0
    one_line(real("task", "export", "/dev/full", home=home), "regular file")
    assert Path("/dev/full").is_char_device()


def test_stdout_that_fails_is_one_line(home: Path) -> None:
    with open("/dev/full", "wb") as full:
        result = real("task", "list", home=home, stdout=full)
    one_line(result, "No space left on device")


def test_a_terminal_that_cannot_show_the_text_gets_it_escaped(home: Path) -> None:
    ascii_only = {"PYTHONIOENCODING": "ascii"}
    added = real("task", "add", "café", home=home, extra_env=ascii_only)
    assert added.returncode == 0, added.stderr
    assert b"caf\\xe9" in added.stdout


@pytest.mark.parametrize("path", ["/", "/nonexistent/tasks.json"])
def test_missing_files_and_folders_are_one_line(home: Path, path: str) -> None:
    error(run_cli(["task", "import", path]), "cannot read")
    error(run_cli(["parse", "--file", path]), "cannot read")


def test_a_nan_in_tasks_json_is_refused_with_its_path(home: Path) -> None:
    tasks = home.parent / "tasks.json"
    tasks.write_text('{"master": {"tasks": [{"id": 1, "title": "a", "x": [1, NaN]}]}}')
    error(run_cli(["task", "import", str(tasks)]), "master.tasks[0].x[1] is NaN")
    tasks.write_text('{"master": {"tasks": [{"id": 1, "title": "a"}]}}')
    assert run_cli(["task", "import", str(tasks)]).code == 0
    assert run_cli(["task", "export", str(home.parent / "out.json")]).code == 0


# --- the terminal ------------------------------------------------------------------------------


async def _store_hostile_task(home: Path) -> None:
    """A task whose title and description carry escape sequences, as an older version or
    another face might have stored it (the CLI itself now refuses them)."""
    from taskorch.domain.models import NewTask
    from taskorch.engine import OrchestrationEngine
    from taskorch.settings import load_settings

    async with OrchestrationEngine(load_settings(taskorch_home=home)) as engine:
        first = await engine.add_task(NewTask(title=f"first{OSC}", description=f"d{CSI}"))
        await engine.add_task(NewTask(title=f"[bold]second{CSI}", dependencies=[first.id]))


@pytest.mark.parametrize(
    "argv", [["task", "list"], ["task", "show", "1"], ["task", "show", "2"], ["status"]]
)
def test_escape_sequences_in_stored_text_never_reach_the_terminal(
    home: Path, argv: list[str]
) -> None:
    asyncio.run(_store_hostile_task(home))
    outcome = run_cli(argv)
    assert outcome.code == 0, outcome
    assert not outcome.problems(), outcome  # no escape sequence but the console's own styles
    assert "PWNED" not in outcome.out  # the whole OSC sequence is gone, not just its ESC
    assert "[2J" not in outcome.out


def test_json_output_keeps_user_text_exact(home: Path) -> None:
    asyncio.run(_store_hostile_task(home))
    listed = json.loads(run_cli(["task", "list", "--json"]).out)
    assert [t["title"] for t in listed] == [f"first{OSC}", f"[bold]second{CSI}"]


def test_errors_that_echo_input_are_terminal_safe(home: Path) -> None:
    error(run_cli(["task", "list", "--status", OSC]), "invalid status")  # no ESC: see error()
    error(run_cli([f"no-such-{OSC}"]), "No such command", code=2)
    error(run_cli([f"no-such-{CSI}"]), "No such command", code=2)
