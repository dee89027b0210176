"""A command line starts at once: the entry point imports no web server, MCP SDK, database driver
or provider SDK, and a command imports only its own module (``cli/commands.py``)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import typer
from cli_harness import run_cli
from typer._click.core import Command

from taskorch.cli import commands
from taskorch.cli.app import app

HEAVY = ("fastapi", "uvicorn", "starlette", "mcp", "psycopg", "psycopg_pool", "anthropic", "openai")
HELP_UNUSED = ("rich.markdown", "markdown_it", "rich.traceback", "pygments")
"""What typer's help renderer imports but a help screen never uses (``cli/help_renderer.py``)."""
NOT_FOR_READS = (
    "taskorch.planning",
    "taskorch.engine.pipeline",
    "taskorch.engine.delivery",
    "taskorch.engine.setup",
    "taskorch.runtime.git",
    "taskorch.runtime.workspace",
    "taskorch.runtime.worker",
    "taskorch.agents.registry",
    "taskorch.agents.cli_agent",
    "taskorch.agents.routing",
    "taskorch.cli.run",
    "taskorch.cli.agents",
    *HEAVY,
)
"""What a command that reads or stores a record (status, task list, task add, metrics) never
needs: the planner, git, the worker, agent adapters and routing, other commands' modules."""

_PROBE = """
import contextlib, io, json, sys
import taskorch.cli.main
after_import = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = taskorch.cli.main.invoke(["--help"])
after_help = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
commands = sorted(m for m in sys.modules if m.startswith("taskorch.cli."))
unused = sorted(m for m in {unused} if m in sys.modules)
print(json.dumps([after_import, after_help, code, out.getvalue(), commands, unused]))
"""


def test_the_entry_point_and_the_help_import_nothing_heavy() -> None:
    probe = _PROBE.format(heavy=set(HEAVY), unused=set(HELP_UNUSED))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    after_import, after_help, code, help_text, loaded, unused = json.loads(done.stdout)
    assert after_import == []
    assert after_help == []
    assert unused == []
    assert code == 0
    for entry in commands.CATALOG:  # the top-level help lists every command, none loaded
        assert f" {entry.name} " in help_text
    assert "taskorch.cli.run" not in loaded
    assert "taskorch.cli.serve" not in loaded


def test_the_catalog_is_what_the_command_modules_register() -> None:
    commands.load_all()
    group = typer.main.get_command(app)
    assert isinstance(group, typer.core.TyperGroup)
    # (in the order the modules happened to load; the top-level help shows the catalog's)
    registered = {
        name: (
            _modules(command),
            _first_paragraph(command.help),
            isinstance(command, typer.core.TyperGroup),
        )
        for name, command in group.commands.items()
        if not command.hidden
    }
    catalogued = {
        entry.name: (set(entry.modules), entry.help, entry.group) for entry in commands.CATALOG
    }
    assert registered == catalogued


def _modules(command: Command) -> set[str]:
    if isinstance(command, typer.core.TyperGroup):
        return {m for sub in command.commands.values() for m in _modules(sub)}
    return {command.callback.__module__} if command.callback else set()


def _first_paragraph(text: str | None) -> str:
    return inspect.cleandoc(text or "").split("\n\n")[0]


def test_a_command_loads_its_module_and_an_unknown_one_loads_all() -> None:
    assert commands.load_for("status")
    assert "taskorch.cli.workflows" in sys.modules
    assert not commands.load_for("no-such-command")


_READS_PROBE = """
import contextlib, io, json, sys
from taskorch.cli.main import invoke
codes = []
for argv in {commands}:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        codes.append(invoke([*{options}, *argv]))
print(json.dumps([codes, sorted(sys.modules)]))
"""


def test_reading_commands_load_no_planner_git_worker_or_adapters(tmp_path: Path) -> None:
    """status, task list, task add and metrics on a database with a pending task that waits on
    another: one process runs them all, then lists what they loaded."""
    options = ["--home", str(tmp_path / ".taskorch"), "--db", f"sqlite:///{tmp_path}/t.db"]
    for argv in (["init"], ["task", "add", "first"], ["task", "add", "next", "--depends-on", "1"]):
        assert run_cli([*options, *argv]).code == 0
    reads = [["status"], ["status", "--json"], ["task", "list"], ["task", "add", "x"], ["metrics"]]
    probe = _READS_PROBE.format(commands=reads, options=options)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
        cwd=tmp_path,
    )
    codes, loaded = json.loads(done.stdout)
    assert codes == [0] * len(reads)
    assert "taskorch.engine.engine" in loaded  # (the probe did reach the engine)
    assert [m for m in loaded if m.startswith(NOT_FOR_READS)] == []
