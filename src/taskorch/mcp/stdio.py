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

import json
import os
import re
import signal
import stat
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from typing import cast

import anyio
import mcp_types as types
from mcp.server.stdio import stdio_server
from mcp.shared._stream_protocols import ReadStream, WriteStream
from mcp.shared.message import SessionMessage
from pydantic import ValidationError

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_BODY_BYTES
from taskorch.mcp.guard import REFUSED, check_arguments, one_line

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
READ_SIZE = 65536
HEAD_BYTES = 4096
"""What is kept of a line over the limit: enough to find its id and tool name."""
TOO_LARGE = f"the message is over {MAX_BODY_BYTES:,} bytes (MAX_BODY_BYTES)"
_ID = re.compile(rb'"id"\s*:\s*(-?[0-9]{1,18}|"[A-Za-z0-9_.:-]{1,100}")')
_TOOL_CALL = re.compile(rb'"method"\s*:\s*"tools/call"')
_TOOL_NAME = re.compile(rb'"name"\s*:\s*"([A-Za-z0-9_.-]{1,64})"')


def screened(line: bytes) -> bytes:
    """``line``, or for a tool call the SDK would drop without an answer (leaving its client
    waiting) one that the server answers with a tool error saying why: a message over
    ``MAX_BODY_BYTES``, a string with a lone surrogate (JSON allows the escape ``\\ud800``; the
    SDK's parser does not), JSON nested too deep, or anything else the SDK cannot read."""
    if len(line) > MAX_BODY_BYTES:
        return _refusal(line[:HEAD_BYTES], TOO_LARGE) or b""
    try:
        types.jsonrpc_message_adapter.validate_json(line, by_name=False)  # as the SDK reads it
        return line
    except ValueError as exc:
        return _refusal(line, _unreadable(line, exc)) or line


def _unreadable(line: bytes, error: ValueError) -> str:
    """Why the SDK cannot read ``line``: a bad argument named as the tools name it, if Python's
    more lenient parser finds one; else the SDK's parser's reason."""
    try:
        arguments = json.loads(line)["params"]["arguments"]
        check_arguments(arguments if isinstance(arguments, dict) else {})
    except InputError as exc:
        return exc.message
    except Exception:  # not JSON to Python either, nested too deep, no arguments: say why not
        pass
    reason = error.errors()[0]["msg"] if isinstance(error, ValidationError) else str(error)
    return f"the message is not JSON-RPC this server can read: {one_line(reason)}"


def _refusal(head: bytes, reason: str) -> bytes | None:
    """A call of the tool ``head`` names with the one argument :data:`REFUSED`; ``None`` when it
    is no tool call (the SDK drops what it cannot read, as before)."""
    found_id, tool = _ID.search(head), _TOOL_NAME.search(head)  # the first: JSON-RPC's own
    if found_id is None or tool is None or _TOOL_CALL.search(head) is None:
        return None
    params = {"name": tool.group(1).decode(), "arguments": {REFUSED: reason}}
    call = {"jsonrpc": "2.0", "id": json.loads(found_id.group(1)), "method": "tools/call"}
    return json.dumps(call | {"params": params}).encode()


class PipeLines:
    """The lines of a pipe or socket, read when it is readable, so a cancelled wait ends at once.
    Iterated as the SDK iterates its stdin file: each line as text, with its newline. Each line
    goes through :func:`screened` first, and no more than ``MAX_BODY_BYTES`` of one is kept."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    async def __aiter__(self) -> AsyncIterator[str]:
        pending = b""
        overflow: bytes | None = None  # the head of a line past the limit, while it is skipped
        while True:
            await anyio.wait_readable(self.fd)
            try:
                chunk = os.read(self.fd, READ_SIZE)
            except BlockingIOError:  # a client's non-blocking pipe: readiness was spurious
                continue
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            if overflow is not None and lines:  # the end of the line over the limit
                yield (_refusal(overflow, TOO_LARGE) or b"").decode() + "\n"
                lines, overflow = lines[1:], None
            for line in lines:
                # split as bytes first: a character cut between two reads decodes whole
                yield screened(line).decode("utf-8", errors="replace") + "\n"
            if len(pending) > MAX_BODY_BYTES:
                overflow = overflow or pending[:HEAD_BYTES]
                pending = b""
        if pending and overflow is None:
            yield screened(pending).decode("utf-8", errors="replace")


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
