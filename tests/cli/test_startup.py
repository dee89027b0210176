"""A command line starts at once: the entry point imports no web server, MCP SDK, database driver
or provider SDK, and a command imports only its own module (``cli/commands.py``)."""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import typer
from typer._click.core import Command

from taskorch.cli import commands
from taskorch.cli.app import app

HEAVY = ("fastapi", "uvicorn", "starlette", "mcp", "psycopg", "psycopg_pool", "anthropic", "openai")

_PROBE = """
import contextlib, io, json, sys
import taskorch.cli.main
after_import = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
with contextlib.redirect_stdout(io.StringIO()) as out:
    code = taskorch.cli.main.invoke(["--help"])
after_help = sorted(m for m in sys.modules if m.split(".")[0] in {heavy})
commands = sorted(m for m in sys.modules if m.startswith("taskorch.cli."))
print(json.dumps([after_import, after_help, code, out.getvalue(), commands]))
"""


def test_the_entry_point_and_the_help_import_nothing_heavy() -> None:
    probe = _PROBE.format(heavy=set(HEAVY))
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True, timeout=60
    )
    after_import, after_help, code, help_text, loaded = json.loads(done.stdout)
    assert after_import == []
    assert after_help == []
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
