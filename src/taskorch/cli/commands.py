"""Which module registers each command, and loading only the one a command line needs.

A command module imports what its command uses (the engine, pydantic models, FastAPI for
``serve``, the MCP SDK for ``mcp``), so importing them all would make ``taskorch --help`` pay for
every one of them. :data:`CATALOG` names each top-level command (or sub-app), the modules that
register it and the first paragraph of its help: ``taskorch run ...`` imports ``cli/run.py`` only;
the top-level help lists the catalog without importing any command. A test
(``tests/cli/test_startup.py``) checks the catalog against the commands the modules register.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass

import typer
from typer.core import TyperCommand, TyperGroup


@dataclass(frozen=True, slots=True)
class Entry:
    name: str
    modules: tuple[str, ...]
    help: str
    group: bool = False


def _entry(name: str, module: str, help: str, *more: str, group: bool = False) -> Entry:
    modules = tuple(f"taskorch.cli.{m}" for m in (module, *more))
    return Entry(name, modules, help, group)


CATALOG: tuple[Entry, ...] = (
    _entry(
        "gc",
        "gc",
        "Remove finished workflows' task logs, events, workflow files, worktrees and merged\n"
        "branches (never a branch with unmerged work); the workflows and their history stay.",
    ),
    _entry(
        "mcp",
        "mcp",
        "Serve the orchestration tools over MCP (stdio); stdout carries only the protocol.",
    ),
    _entry(
        "metrics",
        "metrics",
        "Throughput, success rate, execution time, errors by class, agents, queue depth, zombies.",
    ),
    _entry(
        "parse", "parse", "Turn a requirement into a plan: subtasks, owners, stages and estimates."
    ),
    _entry(
        "status",
        "workflows",
        "All workflows, or one workflow: state, progress, stages, subtasks, history, PR record.\n"
        "Pending tasks that cannot start (a dependency failed, was cancelled or does not exist) "
        "are\n"
        "named with the reason.",
    ),
    _entry(
        "run",
        "run",
        "Add a requirement as a task and carry it to merged code, showing live progress.",
    ),
    _entry("process", "run", "Carry a stored task to merged code, showing live progress."),
    _entry(
        "batch", "run", "Carry several stored tasks to merged code at once, showing live progress."
    ),
    _entry(
        "resume",
        "run",
        "Carry on with workflows stopped mid-way (a crash, a kill); default: all unfinished.\n"
        "Where they merge and their priority were settled when they started.",
    ),
    _entry(
        "budget",
        "budget",
        "Show or change a workflow's budget; one waiting for its budget goes on when it fits.",
    ),
    _entry(
        "cancel",
        "run",
        "Cancel a workflow: its running subtasks stop, its worktrees are removed.",
    ),
    _entry(
        "approve",
        "run",
        "Merge a validated workflow that waits for approval (the approve merge policy) into its\n"
        "base branch now.",
    ),
    _entry(
        "reject",
        "run",
        "End a validated workflow that waits for approval as failed; its branch is kept, its base\n"
        "branch is not touched.",
    ),
    _entry(
        "monitor",
        "run",
        "Follow a workflow live until it ends (also one another process carries on), with the\n"
        "same progress view as `run`.",
    ),
    _entry(
        "serve",
        "serve",
        "Take pending tasks from the database and carry them to merged code; serve the HTTP API\n"
        "(/api/v1), the dashboard (/) and Prometheus metrics (/metrics). SIGTERM: finish, then "
        "exit.",
    ),
    _entry(
        "init",
        "system",
        "Create or upgrade the database and print where it is; save the settings given.",
    ),
    _entry("health", "system", "Report each component as ok, degraded or down, with the reason."),
    _entry(
        "worker",
        "worker",
        "Claim ready subtasks and run them until stopped (SIGTERM/SIGINT: finish, then exit).",
    ),
    _entry("agents", "agents", "Register coding agents and see their track record.", group=True),
    _entry("task", "tasks", "Add, list and show tasks (requirements).", "taskmaster", group=True),
)
_BY_NAME = {entry.name: entry for entry in CATALOG}


def load(modules: Iterable[str]) -> None:
    for module in modules:
        importlib.import_module(module)


def load_all() -> None:
    """Every command module (an unknown command's suggestions, shell completion, tests)."""
    load(module for entry in CATALOG for module in entry.modules)


def load_for(name: str | None) -> bool:
    """Import the modules of the command ``name``; False when the catalog does not know it
    (then only :func:`load_all` can tell what it is)."""
    entry = _BY_NAME.get(name or "")
    if entry is None:
        return False
    load(entry.modules)
    return True


def listed(group: typer.core.TyperGroup) -> None:
    """Give ``group`` (the top-level command) every catalogued command, in the catalog's order:
    the ones loaded as they are, the others as stand-ins carrying the name and help only (enough
    for the top-level help; running one goes through :func:`load_for` first)."""
    loaded = dict(group.commands)
    commands: dict[str, typer.core.TyperCommand | typer.core.TyperGroup] = {}
    for entry in CATALOG:
        known = loaded.pop(entry.name, None)
        if known is not None:
            commands[entry.name] = known  # type: ignore[assignment]
        elif entry.group:
            commands[entry.name] = TyperGroup(name=entry.name, help=entry.help)
        else:
            commands[entry.name] = TyperCommand(name=entry.name, help=entry.help)
    group.commands = {**commands, **loaded}
