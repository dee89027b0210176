"""The typer application and what every command shares: settings, one-line errors, JSON output.

Command modules register themselves on :data:`app` (or a sub-app); :mod:`taskorch.cli.main` imports
them all and is the one place that turns anything left over into one line. Commands are async
functions run through :func:`run`, which turns any :class:`TaskorchError` into one line on stderr
and exit code 1 — never a traceback. What the CLI prints goes through the terminal-safe consoles of
:mod:`taskorch.cli.terminal`.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from typer.core import TyperGroup

from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.cli.terminal import error_line, safe_console
from taskorch.domain.errors import TaskorchError
from taskorch.domain.limits import MAX_TITLE_CHARS, check_duration, check_text
from taskorch.runtime.logs import configure_logging

if TYPE_CHECKING:  # loaded by the commands that use them: `--help` must not pay for them
    from taskorch.engine import OrchestrationEngine
    from taskorch.settings import Settings

GLOBAL_FLAGS = ("--verbose", "-v")
"""Global flags a user may also write after the command, as the specification does
(``process 123 --verbose``): they take no value, and no command has an option of that name."""


class _GlobalFlagsGroup(TyperGroup):
    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # (typer's vendored Context)
        return super().parse_args(ctx, hoist_global_flags(args))


def hoist_global_flags(args: list[str]) -> list[str]:
    """``args`` with the :data:`GLOBAL_FLAGS` given after the command moved before it (not past
    a ``--``, after which everything is an argument)."""
    end = args.index("--") if "--" in args else len(args)
    flags = [a for a in args[:end] if a in GLOBAL_FLAGS]
    rest = [a for a in args[:end] if a not in GLOBAL_FLAGS]
    return flags + rest + args[end:]


app = typer.Typer(
    cls=_GlobalFlagsGroup,
    name="taskorch",
    help="Task orchestration engine for AI coding agents.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
)

console = safe_console()
err_console = safe_console(stderr=True)

T = TypeVar("T")


@dataclass
class GlobalOptions:
    """Options given before the command (``taskorch --db URL task list``)."""

    db: str | None = None
    home: Path | None = None


options = GlobalOptions()


# Long-running commands log every transition and attempt by default; the rest print their own.
_LOGGING_COMMANDS = ("serve", "worker")


@app.callback()
def _global_options(
    ctx: typer.Context,
    db: Annotated[
        str | None,
        typer.Option(
            "--db", help="Database URL (sqlite:///PATH or postgresql://...).", show_default=False
        ),
    ] = None,
    home: Annotated[
        Path | None,
        typer.Option(
            "--home", help="taskorch's data folder (default .taskorch).", show_default=False
        ),
    ] = None,
    log_level: Annotated[
        str | None,
        typer.Option(
            "--log-level",
            envvar="TASKORCH_LOG_LEVEL",
            help="debug, info, warning, error (default: info for serve and worker, else warning).",
            show_default=False,
        ),
    ] = None,
    log_format: Annotated[
        str,
        typer.Option(
            "--log-format", envvar="TASKORCH_LOG_FORMAT", help="text or json (one object a line)."
        ),
    ] = "text",
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="Log debug lines too (as --log-level debug).")
    ] = False,
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print taskorch's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    options.db = line("--db", db, MAX_PATH_CHARS)
    options.home = home
    default = logging.INFO if ctx.invoked_subcommand in _LOGGING_COMMANDS else logging.WARNING
    try:
        configure_logging(level=log_level, fmt=log_format, verbose=verbose, default=default)
    except TaskorchError as exc:
        fail(exc.message)


def _print_version(wanted: bool) -> None:
    if wanted:
        from taskorch import __version__

        sys.stdout.write(f"taskorch {__version__}\n")
        raise typer.Exit()


def settings(db: str | None = None, **overrides: Any) -> Settings:
    """The settings for this invocation: flags > environment > config file > defaults;
    ``overrides`` are a command's own flags (None: not given). A bad setting is one line."""
    from taskorch.settings import load_settings

    try:
        return load_settings(database_url=db or options.db, taskorch_home=options.home, **overrides)
    except TaskorchError as exc:
        fail(exc.message)


@asynccontextmanager
async def engine(
    db: str | None = None, *, create: bool = True
) -> AsyncIterator[OrchestrationEngine]:
    """The engine on this invocation's database; ``create=False`` for commands that only read or
    act on existing records: they never create a database (one line says where they looked)."""
    from taskorch.engine import OrchestrationEngine

    running = OrchestrationEngine(settings(db))
    await running.initialize(create=create)
    try:
        yield running
    finally:
        await running.shutdown()


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(error_line(message), highlight=False)
    raise typer.Exit(code)


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body; report our errors as one line and exit non-zero."""
    import asyncio  # (not for `--help`)

    try:
        return asyncio.run(_call(factory))
    except TaskorchError as exc:
        fail(exc.message)
    except KeyboardInterrupt:
        fail("interrupted", code=130)


async def _call(factory: Callable[[], Awaitable[T]]) -> T:
    return await factory()


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")


def duration(option: str, seconds: float | None, *, allow_zero: bool = True) -> float | None:
    """A duration option checked (finite, at most a week); None when not given."""
    return None if seconds is None else check_duration(option, seconds, allow_zero=allow_zero)


def line(option: str, value: str | None, limit: int = MAX_TITLE_CHARS) -> str | None:
    """A one-line option (a name, an id, a URL) checked: printable, at most ``limit``
    characters; None when not given."""
    return None if value is None else check_text(option, value, limit, line=True)


def workflow_ref(value: str) -> str:
    """A workflow id as given on the command line, checked before it reaches the store."""
    return check_text("the workflow id", value.strip(), MAX_TITLE_CHARS, line=True)
