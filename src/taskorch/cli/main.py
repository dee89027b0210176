"""Entry point of the ``taskorch`` console script: imports every command module, then runs them
so that whatever happens ends as one line on stderr and an exit code, never a traceback.

Bad input is refused where it is read, with a message naming it; what slips past that (an
encoding the terminal cannot show, a full disk, a broken pipe) still ends as one line here. An
error that is a bug says so and how to see where it came from (``TASKORCH_DEBUG=1``).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import os
import sys
from collections.abc import Sequence

import typer
from typer._click.core import Command  # (typer's own copy of click)

from taskorch.cli import commands, help_renderer
from taskorch.cli.app import app, err_console
from taskorch.cli.terminal import error_line
from taskorch.domain.errors import TaskorchError

EXIT_ERROR = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
DEBUG_ENV = "TASKORCH_DEBUG"


def main(argv: Sequence[str] | None = None) -> None:
    # The connection pool logs every failed connect; the CLI reports failures itself, in one line.
    logging.getLogger("psycopg").setLevel(logging.CRITICAL)
    _tolerant_streams()
    try:
        code = invoke(argv)
    finally:
        tracing = sys.modules.get("taskorch.runtime.tracing")  # (loaded by what traces)
        if tracing is not None:
            tracing.shutdown()  # export the spans of a short run before the process ends
    sys.exit(code)


def _tolerant_streams() -> None:
    """Text a terminal's encoding cannot show (``PYTHONIOENCODING=ascii``, a lone surrogate)
    is written escaped (``caf\\xe9``) rather than failing the command after its work is done."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def invoke(argv: Sequence[str] | None = None) -> int:
    """Run the command line ``argv`` (default: the process's) and return its exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    if not args or "--help" in args:
        help_renderer.load()
    command = _command(args)
    try:
        try:
            result = command.main(args=argv, prog_name="taskorch", standalone_mode=False)
        finally:
            sys.stdout.flush()  # a full disk or a closed pipe shows here, not at exit
    except typer.TyperException as exc:  # what click calls a ClickException: a usage error
        if type(exc).__name__ == "NoArgsIsHelpError":
            return exc.exit_code  # the help was printed; typer checks it by name, too
        return _usage_error(exc)
    except typer.Abort:
        return _error("aborted", EXIT_ERROR)
    except TaskorchError as exc:
        return _error(exc.message, EXIT_ERROR)
    except KeyboardInterrupt:
        return _error("interrupted", EXIT_INTERRUPTED)
    except OSError as exc:
        return _os_error(exc)
    except Exception as exc:
        if os.environ.get(DEBUG_ENV):
            raise
        return _error(
            f"{exc} ({type(exc).__name__}: a bug in taskorch; {DEBUG_ENV}=1 shows where)",
            EXIT_ERROR,
        )
    return result if isinstance(result, int) else 0


def _command(argv: list[str]) -> Command:
    """The click command of the app with the command modules ``argv`` needs imported: the one
    it names, none for the top-level help, all when it names none the catalog knows."""
    name = _command_name(argv)
    if name is None and not os.environ.get(_COMPLETE_ENV):
        command = typer.main.get_command(app)
        if isinstance(command, typer.core.TyperGroup):
            commands.listed(command)
        return command
    if not commands.load_for(name):
        commands.load_all()
    return typer.main.get_command(app)


@functools.cache
def _valued_options() -> frozenset[str]:
    """The global options that take a value (``--db URL``), as typer declares them."""
    group = typer.main.get_command(app)
    return frozenset(
        name
        for param in group.params
        if param.param_type_name == "option"
        and not getattr(param, "is_flag", True)
        and not getattr(param, "count", True)
        for name in param.opts
    )


_COMPLETE_ENV = "_TASKORCH_COMPLETE"
"""Set by shell completion, which needs every command."""


def _command_name(argv: list[str]) -> str | None:
    """The first argument that is not a global option or its value (None: there is none)."""
    valued = _valued_options()
    args = iter(argv)
    for arg in args:
        if arg == "--":
            return next(args, None)
        if not arg.startswith("-") or arg == "-":
            return arg
        if arg in valued:
            next(args, None)
    return None


def _usage_error(exc: typer.TyperException) -> int:
    message = exc.format_message()
    command_path = getattr(getattr(exc, "ctx", None), "command_path", None)
    if command_path:
        message += f" (see `{command_path} --help`)"
    return _error(message, exc.exit_code)


def _os_error(exc: OSError) -> int:
    """A failed write to stdout (a closed pipe, a full disk) or another system error."""
    where = f"{exc.filename}: " if exc.filename else ""
    _error(f"{where}{exc.strerror or exc}", EXIT_ERROR)
    _silence_stdout()
    return EXIT_ERROR


def _silence_stdout() -> None:
    """Send what is still buffered for stdout to /dev/null, so that the flush at exit does not
    fail a second time with a traceback-like warning."""
    with contextlib.suppress(OSError, ValueError, AttributeError):  # not a real file (a test's)
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())


def _error(message: str, code: int) -> int:
    with contextlib.suppress(OSError):  # stderr gone too: the exit code is all that is left
        err_console.print(error_line(message), highlight=False)
    return code


if __name__ == "__main__":
    main()
