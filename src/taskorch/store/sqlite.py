"""SQLite backend: one aiosqlite connection per store, WAL, synchronous=FULL.

The connection is shared by every coroutine of the process, so transactions take an asyncio lock;
write transactions start with BEGIN IMMEDIATE so two processes never deadlock upgrading a read lock
(they wait on busy_timeout instead). Work runs in the event loop's thread while that is quick and
waits for no other process, else in aiosqlite's (:mod:`taskorch.store.sqlite_calls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import os
import re
import sqlite3
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from functools import cache
from pathlib import Path
from typing import TypeVar, cast

import aiosqlite

from taskorch.domain.errors import DatabaseUnavailableError, StoreError
from taskorch.store.connector import Connector, Params, Row, Statement, Transaction
from taskorch.store.filelock import file_lock
from taskorch.store.gathered_reads import GatheredReads
from taskorch.store.sqlite_calls import Calls, busy

BUSY_TIMEOUT_S = 30.0
"""How long a transaction waits for another process's write lock before it fails (one line that
says so; ``?timeout=SECONDS`` on the database URL changes it)."""
_BEGIN_WRITE = "BEGIN IMMEDIATE"
_T = TypeVar("_T")


def _json_to_sql(value: object) -> str:
    return json.dumps(value, separators=(",", ":"), default=str)


def _datetime_to_sql(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


# Times are stored as ISO-8601 UTC text, which sorts like the times themselves. Registering the
# adapter (rather than converting every parameter dict) keeps the hot path free of Python loops.
sqlite3.register_adapter(datetime, _datetime_to_sql)
# Bulk writes pass JSON column values as objects (see Transaction.bulk).
sqlite3.register_adapter(dict, _json_to_sql)
sqlite3.register_adapter(list, _json_to_sql)


def _convert(params: Params | None) -> Params:
    return params if params is not None else {}


class _SqliteTransaction(Transaction):
    """Statements sent in as few trips as the answers allow (a trip to aiosqlite's thread costs a
    thread switch and an event-loop wake-up, about as much as the statement itself). ``BEGIN``
    goes with the first statement; a statement that answers nothing (:meth:`execute`,
    :meth:`executemany`) waits for the next one that does, or for ``COMMIT``. Order is kept, and
    an error of a waiting statement is raised by the trip that runs it, still inside the
    transaction (which then rolls back): nothing is acted on before ``COMMIT`` has returned."""

    def __init__(self, calls: Calls, queries: dict[str, str], begin: str):
        self._calls = calls
        self._here: bool | None = None
        """Where the later trips run: where the first one did (None: not sent yet)."""
        self._queries = queries
        self._begin: str | None = begin
        self._waiting: list[_Waiting] = []
        self.trips = 0
        """Trips so far, the commit's included (tests count them)."""

    @property
    def begun(self) -> bool:
        """Whether ``BEGIN`` has been sent (there is something to commit or roll back)."""
        return self._begin is None

    async def execute(self, name: str, params: Params | None = None) -> None:
        self._waiting.append((self._queries[name], _convert(params), False))

    async def fetchone(self, name: str, params: Params | None = None) -> Row | None:
        rows = await self._trip(self._queries[name], _convert(params))
        return rows[0] if rows else None

    async def fetchall(self, name: str, params: Params | None = None) -> list[Row]:
        return await self._trip(self._queries[name], _convert(params))

    async def executemany(self, name: str, params: Sequence[Params]) -> None:
        if params:
            self._waiting.append((self._queries[name], params, True))

    async def execute_sql(self, sql: str) -> None:
        self._waiting.append((sql, {}, False))

    async def commit(self) -> None:
        """Send what waits and ``COMMIT`` in one trip (none when nothing was ever sent)."""
        if self.begun or self._waiting:
            await self._trip(None, {}, commit=True)

    async def _trip(self, sql: str | None, params: Params, *, commit: bool = False) -> list[Row]:
        begin, waiting = self._begin, self._waiting
        self._begin, self._waiting = None, []
        self.trips += 1
        rows = await self._calls.run(
            _run_trip, begin, waiting, sql, params, commit, here=self._here
        )
        if self._here is None:
            self._here = not self._calls.last_in_thread
        return rows


_Waiting = tuple[str, Params | Sequence[Params], bool]
"""A statement that answers nothing, waiting for the next trip: its SQL, its parameters (a
sequence of them when ``many``) and ``many``."""


def _run_trip(
    connection: aiosqlite.Connection,
    begin: str | None,
    waiting: list[_Waiting],
    sql: str | None,
    params: Params,
    commit: bool,
) -> list[Row]:
    """``begin`` if given, the waiting statements, then ``sql``'s rows
    (and ``COMMIT`` when asked)."""
    raw = connection._conn
    if begin is not None:
        raw.execute(begin)
    for text, values, many in waiting:
        if many:
            raw.executemany(text, cast(Sequence[Params], values))
        else:
            # Fetched: a statement with RETURNING left unread would not have run to its end.
            raw.execute(text, cast(Params, values)).fetchall()
    rows = _fetch_dicts(connection, sql, params) if sql is not None else []
    if commit:
        raw.commit()
    return rows


class SqliteConnector(Connector):
    dialect = "sqlite"

    def __init__(self, path: Path | str, *, busy_timeout_s: float = BUSY_TIMEOUT_S) -> None:
        self.path = Path(path)
        self.busy_timeout_s = busy_timeout_s
        self._connection: aiosqlite.Connection | None = None
        self._calls: Calls | None = None
        self._lock = asyncio.Lock()
        self._reads = GatheredReads(self._send_reads)

    def describe(self) -> str:
        return f"sqlite:///{self.path}"

    async def open(self) -> None:
        if self._connection is not None:
            return
        try:
            self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            _create_private(self.path)
        except OSError as exc:
            raise DatabaseUnavailableError(
                f"cannot open SQLite database {self.path}: {exc.strerror}; check the folder "
                "exists and is writable"
            ) from None
        # (Used from the loop's thread too, one thread at a time: see sqlite_calls.)
        connection = aiosqlite.connect(self.path, isolation_level=None, check_same_thread=False)
        # A connection an error path forgot to close must never keep the process alive (its
        # thread is not a daemon by default): a CLI command that failed would hang on exit.
        connection._thread.daemon = True
        try:
            await connection
            connection.row_factory = sqlite3.Row
            for pragma in (
                "PRAGMA busy_timeout = 0",  # (the thread sets it for its work: it may wait)
                "PRAGMA journal_mode = WAL",
                "PRAGMA synchronous = FULL",
                "PRAGMA foreign_keys = ON",
            ):
                await connection.execute(pragma)
        except sqlite3.Error as exc:
            await _close_quietly(connection)
            raise self._translate(exc) from None
        except BaseException:
            await _close_quietly(connection)
            raise
        self._connection = connection
        self._calls = Calls(connection, self.busy_timeout_s)

    async def close(self) -> None:
        await self._reads.drain()
        if self._connection is not None:
            connection, self._connection, self._calls = self._connection, None, None
            await connection.close()

    def _translate(self, exc: sqlite3.Error) -> StoreError:
        return translate(exc, self.path.absolute(), self.busy_timeout_s)

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """A lock file beside the database: every process that opens it is on this host."""
        digest = hashlib.sha1(key.encode()).hexdigest()[:16]
        async with file_lock(self.path.parent / f"{self.path.name}.locks" / f"{digest}.lock"):
            yield

    async def script(self, name: str, params: Params) -> list[Row]:
        # The whole transaction is one trip (in aiosqlite's thread, each trip costs a thread
        # switch and an event-loop wake-up; a chain step would otherwise make six).
        return await self._one_trip(_run_script, _statements(self.queries[name]), params)

    async def guarded(self, name: str, params: Params, then: Sequence[Statement]) -> Row | None:
        # One trip: BEGIN, the write, what follows it and COMMIT (or ROLLBACK).
        statements = [(self.queries[s.name], s.params) for s in then]
        rows = await self._one_trip(_run_guarded, self.queries[name], params, statements)
        return rows[0] if rows else None

    async def read(self, name: str, params: Params | None = None) -> list[Row]:
        # The connection is in autocommit mode, so a lone SELECT is its own read transaction
        # (taken under the lock: never inside another coroutine's open one); reads asked for
        # together share a trip (``gathered_reads``).
        return await self._reads.read(self.queries[name], _convert(params))

    async def reads(self, asked: Sequence[Statement]) -> list[list[Row]]:
        return await self._reads.reads([(self.queries[s.name], s.params) for s in asked])

    async def _send_reads(
        self, asked: Sequence[tuple[str, Params]]
    ) -> list[list[Row] | BaseException]:
        answers = await self._one_trip(_fetch_each, asked, retry=_any_busy)
        return [self._translate(a) if isinstance(a, sqlite3.Error) else a for a in answers]

    async def _one_trip(
        self, work: Callable[..., _T], *args: object, retry: Callable[[_T], bool] | None = None
    ) -> _T:
        """``work(connection, *args)`` under the connection's lock (see :class:`Calls`)."""
        calls = await self._opened()
        async with self._lock:
            try:
                return await calls.run(work, *args, retry=retry)
            except sqlite3.Error as exc:
                raise self._translate(exc) from None

    async def _opened(self) -> Calls:
        if self._calls is None:
            await self.open()
        assert self._calls is not None
        return self._calls

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Transaction]:
        calls = await self._opened()
        async with self._lock:
            tx = _SqliteTransaction(calls, self.queries, _BEGIN_WRITE if write else "BEGIN")
            try:
                yield tx
            except BaseException as exc:
                if tx.begun:  # (a trip cut off by a cancel still runs: this one queues after it)
                    await calls.roll_back()
                if isinstance(exc, sqlite3.Error):
                    raise self._translate(exc) from None
                raise
            try:
                await tx.commit()
            except sqlite3.Error as exc:
                await calls.roll_back()
                raise self._translate(exc) from None
            except asyncio.CancelledError:
                # A commit sent to aiosqlite's thread still runs; it ends the transaction or
                # fails (then this rollback, queued after it, does).
                await calls.roll_back()
                raise


def _fetch_dicts(connection: aiosqlite.Connection, sql: str, params: Params) -> list[Row]:
    """Run one statement, its rows as dicts. Plain tuples zipped with the
    column names (in C) cost a third of what dicts of sqlite3.Row do."""
    cursor = connection._conn.cursor()
    cursor.row_factory = None
    values = cursor.execute(sql, params).fetchall()
    if not values:
        return []
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in values]


def _fetch_each(
    connection: aiosqlite.Connection, asked: Sequence[tuple[str, Params]]
) -> list[list[Row] | sqlite3.Error]:
    """Each read's rows, or the error it raised (the others still run)."""
    answers: list[list[Row] | sqlite3.Error] = []
    for sql, params in asked:
        try:
            answers.append(_fetch_dicts(connection, sql, params))
        except sqlite3.Error as exc:
            answers.append(exc)
    return answers


def _run_script(
    connection: aiosqlite.Connection, statements: list[str], params: Params
) -> list[Row]:
    """One write transaction running ``statements`` in order."""
    raw = connection._conn
    raw.execute(_BEGIN_WRITE)
    try:
        rows = [row for sql in statements for row in _fetch_dicts(connection, sql, params)]
    except BaseException:
        raw.rollback()
        raise
    raw.commit()
    return rows


def _run_guarded(
    connection: aiosqlite.Connection,
    sql: str,
    params: Params,
    then: list[tuple[str, Params]],
) -> list[Row]:
    """See :meth:`Connector.guarded`."""
    raw = connection._conn
    raw.execute(_BEGIN_WRITE)
    try:
        rows = _fetch_dicts(connection, sql, params)
        if not rows:
            raw.rollback()
            return rows
        for text, values in then:
            raw.execute(text, values).fetchall()
    except BaseException:
        raw.rollback()
        raise
    raw.commit()
    return rows


@cache
def _statements(script: str) -> list[str]:
    """A script's statements: each ends with a semicolon at the end of a line."""
    return [
        part.strip() for part in re.split(r";[ \t]*$", script, flags=re.MULTILINE) if part.strip()
    ]


def _create_private(path: Path) -> None:
    """The database file, created readable by its owner only (its -wal and -shm files take its
    mode); an existing one loses group and others' access."""
    if str(path) in ("", ":memory:") or str(path).startswith("file:"):
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        if os.fstat(fd).st_mode & 0o077:
            with contextlib.suppress(PermissionError):
                os.fchmod(fd, 0o600)
    finally:
        os.close(fd)


def _any_busy(answers: list[list[Row] | sqlite3.Error]) -> bool:
    """Whether a read was refused as busy (then all go again where they may wait)."""
    return any(isinstance(answer, sqlite3.Error) and busy(answer) for answer in answers)


async def _close_quietly(connection: aiosqlite.Connection) -> None:
    try:
        await connection.close()
    except (sqlite3.Error, ValueError):
        return


# Primary result codes (the low byte of the extended code) of the failures a retry may get past.
_BUSY, _LOCKED, _IOERR, _FULL = 5, 6, 10, 13
_CANTOPEN = 14


def translate(exc: sqlite3.Error, path: Path, busy_timeout_s: float) -> StoreError:
    """Our error for a sqlite3 one, in one line that names the file and what to do.
    :class:`DatabaseUnavailableError` (transient) for a database that is busy, on a full disk
    or failing its I/O: the same work may succeed later."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    text = str(exc)
    name = getattr(exc, "sqlite_errorname", None)
    if primary in (_BUSY, _LOCKED) or "locked" in text:
        return DatabaseUnavailableError(
            f"SQLite database {path} stayed locked by another process for more than "
            f"{busy_timeout_s:g} s ({text}); end the program holding it (another "
            "taskorch, a sqlite3 shell) and try again, or use PostgreSQL for many processes"
        )
    if primary == _FULL:
        return DatabaseUnavailableError(
            f"SQLite database {path}: the disk is full ({text}); free space on the disk that "
            "holds it and try again (nothing was half-written)"
        )
    if primary == _IOERR:
        return DatabaseUnavailableError(
            f"SQLite database {path}: disk I/O error ({name or text}); check that the disk "
            "holding it has free space and is still mounted, then try again"
        )
    if primary == _CANTOPEN:
        return DatabaseUnavailableError(
            f"cannot open SQLite database {path} ({text}); check that its folder exists and "
            "is writable"
        )
    return StoreError(f"SQLite database {path}: {text}")
