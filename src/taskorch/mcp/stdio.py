"""The stdio transport of ``taskorch mcp``, stopping cleanly when the client signals it.

Claude Code (2.1.332) ends a stdio MCP server with signals and leaves its stdin open: SIGINT,
SIGTERM 100 ms later, SIGKILL 400 ms after that. The SDK's transport reads stdin in a worker
thread that no cancellation reaches, so the server ignored SIGINT (it waited for a line that never
came) and died of SIGTERM without its shutdown: the runs it carried on were not cancelled, their
agents' processes went on alone, the engine was not closed.

Here SIGINT and SIGTERM cancel the server, whose lifespan then closes the orchestrator (an idle
server is gone in some 30 ms); and when stdin is a pipe or a socket (what MCP clients give a
server) it is read only once readable, without a thread, so cancelling ends the wait. Any other
stdin (a terminal, a file) keeps the SDK's reader. (Attempts still running when the signal comes
get the worker's shutdown grace, longer than Claude waits: Claude's SIGTERM then ends the process.)
"""

from __future__ import annotations

import os
import signal
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import cast

import anyio
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
READ_SIZE = 65536


class PipeLines:
    """The lines of a pipe or socket, read when it is readable, so a cancelled wait ends at once.
    Iterated as the SDK iterates its stdin file: each line as text, with its newline."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def __aiter__(self) -> AsyncIterator[str]:
        pending = b""
        while True:
            await anyio.wait_readable(self.fd)
            try:
                chunk = os.read(self.fd, READ_SIZE)
            except BlockingIOError:  # a client's non-blocking pipe: readiness was spurious
                continue
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                # split as bytes first: a character cut between two reads decodes whole
                yield line.decode("utf-8", errors="replace") + "\n"
        if pending:
            yield pending.decode("utf-8", errors="replace")


@contextmanager
def claimed_stdin() -> Iterator[int | None]:
    """A private descriptor on the client's pipe, with fd 0 on the null device meanwhile (as the
    SDK does: no child process may read the protocol); ``None`` when stdin is no pipe or socket,
    where the SDK's own reader serves."""
    if sys.platform == "win32":
        yield None
        return
    import fcntl

    try:
        mode = os.fstat(0).st_mode
    except OSError:
        yield None
        return
    if not (stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)):
        yield None
        return
    wire = fcntl.fcntl(0, fcntl.F_DUPFD_CLOEXEC, 3)
    try:
        null = os.open(os.devnull, os.O_RDONLY)
        try:
            os.dup2(null, 0)
        finally:
            os.close(null)
        yield wire
    finally:
        os.dup2(wire, 0)
        os.close(wire)


async def cancel_on_signals(scope: anyio.CancelScope) -> None:
    """Cancel ``scope`` on SIGINT or SIGTERM."""
    with anyio.open_signal_receiver(*STOP_SIGNALS) as signals:
        async for _ in signals:
            scope.cancel()
            return


Serve = Callable[
    [ReadStream[SessionMessage | Exception], WriteStream[SessionMessage]], Awaitable[None]
]


async def serve_stdio(serve: Serve) -> None:
    """Run ``serve`` on the process's stdin and stdout until the client closes stdin or sends
    SIGINT or SIGTERM; either way ``serve`` is cancelled or returns, and this returns."""
    async with anyio.create_task_group() as group:
        group.start_soon(cancel_on_signals, group.cancel_scope)
        with claimed_stdin() as wire:
            # the SDK's transport only iterates its stdin, which PipeLines does like its file
            stdin = None if wire is None else cast("anyio.AsyncFile[str]", PipeLines(wire))
            async with stdio_server(stdin=stdin) as (read_stream, write_stream):
                await serve(read_stream, write_stream)
        group.cancel_scope.cancel()
