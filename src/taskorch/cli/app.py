"""The typer application and what every command shares: settings, one-line errors, JSON output.

Command modules register themselves on :data:`app` (or a sub-app); :mod:`taskorch.cli.main` imports
them all. Commands are async functions run through :func:`run`, which turns any
:class:`TaskorchError` into one line on stderr and exit code 1 — never a traceback.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import typer
from rich.console import Console

from taskorch.domain.errors import TaskorchError

app = typer.Typer(
    name="taskorch",
    help="Task orchestration engine for AI coding agents.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

console = Console()
err_console = Console(stderr=True)

T = TypeVar("T")


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    raise typer.Exit(code)


def run(factory: Callable[[], Awaitable[T]]) -> T:
    """Run an async command body; report our errors as one line and exit non-zero."""
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
