"""Every command and option of the CLI, run in-process with generated bad input: each run ends
with an exit code of 0, 1 or 2, at most one line of error, no traceback, no escape sequence from
the input on the terminal, and well within a deadline.

The commands that would run for ever with good input (``serve``, ``worker`` without ``--once``,
``run`` with a long simulated agent) get an option that is always refused after the fuzzed one
is read, so what is fuzzed is still checked and nothing starts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cli_harness import HOSTILE, Outcome, run_cli
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

V = "<value>"
N = "<bad number>"
"""A duration that is always refused: where a good one would start long work."""
TASKS_FILE = "tasks.json"
BAD_NUMBERS = ("nan", "inf", "-inf", "1e999", "-1", "604801", "1e308", "x")

TEMPLATES: tuple[tuple[str, ...], ...] = (
    ("task", "add", V),
    ("task", "add", "t", "--description", V),
    ("task", "add", "t", "--priority", V),
    ("task", "add", "t", "--depends-on", V),
    ("task", "add", "t", "--repo", V),
    ("task", "add", "t", "--base-branch", V),
    ("task", "add", "t", "--merge", V),
    ("task", "add", "t", "--json", "--priority", V),
    ("task", "list", "--status", V),
    ("task", "list", "--limit", V),
    ("task", "list", "--json", "--limit", V),
    ("task", "show", V),
    ("task", "show", V, "--json"),
    ("task", "import", V),
    ("task", "import", TASKS_FILE, "--tag", V),
    ("task", "export", V),
    ("task", "export", "out.json", "--tag", V),
    ("parse", V),
    ("parse", V, "--json"),
    ("parse", "add login", "--context", V),
    ("parse", "add login", "--provider", V),
    ("parse", "add login", "--provider", "heuristic", "--model", V),
    ("parse", "--file", V),
    ("run", V, "--sim-duration", N),
    ("run", "add login", "--sim-duration", N),
    ("run", "--file", V, "--sim-duration", N),
    ("run", "add login", "--repo", V, "--sim-duration", N),
    ("run", "add login", "--merge", V, "--sim-duration", N),
    ("run", "add login", "--agent", V, "--sim-duration", N),
    ("process", V),
    ("process", "999999", "--timeout", V),
    ("process", "999999", "--sim-duration", V),
    ("process", "999999", "--priority", V),
    ("batch", V),
    ("resume", V),
    ("resume", "--sim-duration", N),
    ("resume", "--agent", V, "--sim-duration", N),
    ("cancel", V),
    ("approve", V),
    ("reject", V, "--reason", "because"),
    ("reject", "wf-nope", "--reason", V),
    ("monitor", V),
    ("status", V),
    ("status", V, "--json"),
    ("agents", "add", V),
    ("agents", "add", "a1", "--type", V),
    ("agents", "add", "a1", "--url", V),
    ("agents", "add", "a1", "--key-env", V),
    ("agents", "add", "a1", "--host", V),
    ("agents", "add", "a1", "--command", V),
    ("agents", "add", "a1", "--executable", V),
    ("agents", "add", "a1", "--type", "claude-code", "--arg", V),
    ("agents", "add", "a1", "--adapter", V),
    ("agents", "add", "a1", "--domains", V),
    ("agents", "add", "a1", "--max-concurrency", V),
    ("agents", "add", "a1", "--sim-duration", V),
    ("agents", "show", V),
    ("agents", "remove", V),
    ("agents", "enable", V),
    ("agents", "disable", V),
    ("--home", V, "task", "list"),
    ("--db", V, "task", "list"),
    ("worker", "--once", "--agent", V),
    ("worker", "--once", "--concurrency", V),
    ("worker", "--once", "--sim-duration", V),
    ("serve", "--host", V, "--sim-duration", N),
    ("serve", "--port", V, "--sim-duration", N),
    ("serve", "--agent", V, "--sim-duration", N),
    ("serve", "--concurrency", V, "--sim-duration", N),
    ("serve", "--sim-duration", N),
    (V,),
    ("task", V),
    ("agents", "list", V),
)
ENV_SETTINGS = (
    "TASKORCH_SUBTASK_TIMEOUT_S",
    "TASKORCH_LEASE_S",
    "TASKORCH_TEST_TIMEOUT_S",
    "DB_PORT",
    "TASKORCH_WORKER_CONCURRENCY",
    "MAX_CONCURRENT_WORKFLOWS",
    "NLP_PROVIDER",
    "TASKORCH_MERGE_POLICY",
    "TASKORCH_API_PORT",
    "TASKORCH_API_TOKEN",
    "TASKORCH_REPO",
    "DATABASE_URL",
    "TASKORCH_CONFIG",
)
"""Settings read from the environment (DATABASE_URL only ever gets a value that is no URL a
server answers: the text strategies below never make one)."""

generated_text = st.text(
    st.characters(codec=None, exclude_characters="\x00", exclude_categories=()), max_size=40
)
values = st.one_of(
    st.sampled_from(HOSTILE),
    generated_text,
    st.floats().map(repr),
    st.integers(min_value=-(2**80), max_value=2**80).map(str),
)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A folder with a taskorch home, a tasks.json to import and a task to refer to; the fuzzed
    runs share it (what one stores, the next sees)."""
    folder = tmp_path_factory.mktemp("fuzz")
    saved_cwd = Path.cwd()
    saved_env = dict(os.environ)
    for name in (*ENV_SETTINGS, "FORCE_COLOR", "TTY_COMPATIBLE", "DB_HOST", "NO_COLOR"):
        os.environ.pop(name, None)
    os.environ["TASKORCH_HOME"] = str(folder / ".taskorch")
    os.environ["NLP_PROVIDER"] = "heuristic"
    os.environ["COLUMNS"] = "120"
    (folder / TASKS_FILE).write_text(json.dumps({"tasks": [{"id": 1, "title": "first"}]}))
    os.chdir(folder)
    try:
        assert run_cli(["task", "add", "a task to refer to"]).code == 0
        yield folder
    finally:
        os.chdir(saved_cwd)
        os.environ.clear()
        os.environ.update(saved_env)


def _assert_fine(outcome: Outcome) -> None:
    assert not outcome.problems(), (outcome.problems(), outcome)


WRITES_TO_PATH = {("--home",), ("task", "export")}
"""Templates whose value is a place taskorch writes: kept inside the test's folder."""


def _fill(template: tuple[str, ...], value: str, bad_number: str) -> list[str]:
    writes = any(template[: len(prefix)] == prefix for prefix in WRITES_TO_PATH)
    if writes and value.startswith("/") and not value.startswith("/dev/"):
        value = "." + value  # "/" would be the real root folder
    return [value if part == V else bad_number if part == N else part for part in template]


@pytest.mark.timeout(240)
@settings(
    max_examples=250,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    template=st.sampled_from(TEMPLATES),
    value=values,
    bad_number=st.sampled_from(BAD_NUMBERS),
)
def test_every_command_survives_bad_arguments(
    workdir: Path, template: tuple[str, ...], value: str, bad_number: str
) -> None:
    _assert_fine(run_cli(_fill(template, value, bad_number)))


@pytest.mark.timeout(120)
@settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(name=st.sampled_from(ENV_SETTINGS), value=values)
def test_every_setting_survives_bad_values(workdir: Path, name: str, value: str) -> None:
    try:
        os.environ[name] = value
    except (UnicodeEncodeError, ValueError):
        return  # no environment can hold it
    try:
        _assert_fine(run_cli(["task", "list"]))
    finally:
        os.environ.pop(name, None)
        os.environ["NLP_PROVIDER"] = "heuristic"


@pytest.mark.timeout(240)
def test_each_option_once_with_the_worst_values(workdir: Path) -> None:
    """Every template with the values that broke most commands: invalid UTF-8 (as Python
    decodes it from argv) and an escape sequence."""
    for template in TEMPLATES:
        for value in ("\udcff\udcfe", "\x1b]0;PWNED\x07"):
            _assert_fine(run_cli(_fill(template, value, "inf")))
