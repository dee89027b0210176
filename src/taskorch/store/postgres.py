"""PostgreSQL backend: a psycopg 3 async connection pool.

Connections that die under us (a restarted server, ``pg_terminate_backend``) are dropped by the
pool when they are given back and replaced; the failed transaction surfaces as
:class:`DatabaseUnavailableError` (see :func:`_transient`), which the loops (serve, worker, the
pipeline) retry with backoff (``store/outage.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import psycopg
import psycopg.sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import dict_row
from psycopg.types.json import set_json_loads
from psycopg_pool import AsyncConnectionPool, PoolTimeout

from taskorch.domain.errors import DatabaseUnavailableError, StoreError
from taskorch.store.connector import Connector, Params, Row, Transaction
from taskorch.store.urls import redact_url as redact_url

CONNECT_TIMEOUT_S = 5.0
NOTIFY_CHANNEL = "taskorch_ready"


class _PostgresTransaction(Transaction):
    def __init__(self, connection: psycopg.AsyncConnection[Any], queries: dict[str, str]) -> None:
        self._connection = connection
        self._queries = queries

    async def execute(self, name: str, params: Params | None = None) -> None:
        await self._connection.execute(self._queries[name], params or {})

    async def notify_ready(self) -> None:
        await self._connection.execute(f"NOTIFY {NOTIFY_CHANNEL}".encode())

    async def fetchone(self, name: str, params: Params | None = None) -> Row | None:
        cursor = await self._connection.execute(self._queries[name], params or {})
        row: Row | None = await cursor.fetchone()
        return row

    async def fetchall(self, name: str, params: Params | None = None) -> list[Row]:
        cursor = await self._connection.execute(self._queries[name], params or {})
        return await cursor.fetchall()

    async def executemany(self, name: str, params: Sequence[Params]) -> None:
        if params:
            async with self._connection.cursor() as cursor:
                await cursor.executemany(self._queries[name], params)

    async def bulk(self, name: str, rows: Sequence[Params]) -> None:
        # One round trip and one statement for the whole batch: the query reads the rows with
        # jsonb_to_recordset(%(rows)s).
        if rows:
            payload = json.dumps(list(rows), default=str, separators=(",", ":"))
            await self._connection.execute(self._queries[name], {"rows": payload})

    async def execute_sql(self, sql: str) -> None:
        await self._connection.execute(sql.encode())


class PostgresConnector(Connector):
    dialect = "postgres"
    parallel_writes = 2

    def __init__(self, url: str, *, max_size: int = 10) -> None:
        self.url = url
        self._max_size = max_size
        self._pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        self._script_pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
        """Connections of their own for :meth:`script`, whose plans are cached generic."""
        self._script_lock = asyncio.Lock()
        self._listener: asyncio.Task[None] | None = None
        self._notified = asyncio.Event()

    def describe(self) -> str:
        return redact_url(self.url)

    async def open(self) -> None:
        if self._pool is not None:
            return
        await self._probe()
        self._pool = await self._open_pool(_in_own_schema(_conninfo(self.url)), "taskorch")

    async def _open_pool(
        self, conninfo: str, name: str
    ) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] = AsyncConnectionPool(
            conninfo,
            min_size=1,
            max_size=self._max_size,
            kwargs={"row_factory": dict_row, "autocommit": True},
            configure=_configure,
            open=False,
            name=name,
        )
        try:
            await pool.open(wait=True, timeout=CONNECT_TIMEOUT_S)
        except (PoolTimeout, psycopg.Error) as exc:
            await pool.close()
            raise DatabaseUnavailableError(
                f"cannot reach PostgreSQL at {self.describe()} ({type(exc).__name__}); "
                "check DATABASE_URL or DB_HOST/DB_PORT and that the server runs"
            ) from None
        return pool

    async def _probe(self) -> None:
        """Connect once directly, so an unreachable server fails fast with the driver's reason."""
        try:
            connection = await psycopg.AsyncConnection.connect(
                _conninfo(self.url), connect_timeout=int(CONNECT_TIMEOUT_S)
            )
        except psycopg.Error as exc:
            raise DatabaseUnavailableError(
                f"cannot reach PostgreSQL at {self.describe()}: {_first_line(exc)}; "
                "check DATABASE_URL or DB_HOST/DB_PORT and that the server runs"
            ) from None
        try:
            if not _sets_search_path(_conninfo(self.url)):
                await _create_own_schema(connection)
        except psycopg.Error as exc:
            raise StoreError(
                f"cannot create the schema {SCHEMA!r} in PostgreSQL at {self.describe()}: "
                f"{_first_line(exc)}; create it (CREATE SCHEMA {SCHEMA}) or give the URL a "
                "search_path (?options=-csearch_path%3Dyour_schema)"
            ) from None
        finally:
            await connection.close()

    async def wait_for_notification(self, timeout_s: float) -> bool:
        """Wait on the listener task's signal; the LISTEN connection itself lives on between calls
        (cancelling a wait must not cost a reconnect)."""
        if self._listener is None or self._listener.done():
            self._listener = asyncio.create_task(self._listen(), name="taskorch-listen")
        try:
            async with asyncio.timeout(timeout_s):
                await self._notified.wait()
        except TimeoutError:
            return False
        self._notified.clear()
        return True

    async def _listen(self) -> None:
        while True:
            try:
                connection = await psycopg.AsyncConnection.connect(
                    _conninfo(self.url), autocommit=True, connect_timeout=int(CONNECT_TIMEOUT_S)
                )
            except psycopg.Error:
                await asyncio.sleep(1.0)
                continue
            try:
                await connection.execute(f"LISTEN {NOTIFY_CHANNEL}".encode())
                self._notified.set()  # (re)connected: anything sent meanwhile was missed, look
                async for _ in connection.notifies():
                    self._notified.set()
            except psycopg.Error:
                await asyncio.sleep(0.2)
            finally:
                with contextlib.suppress(psycopg.Error):
                    await connection.close()

    async def _drop_listener(self) -> None:
        if self._listener is not None:
            listener, self._listener = self._listener, None
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener

    async def close(self) -> None:
        await self._drop_listener()
        if self._script_pool is not None:
            scripts, self._script_pool = self._script_pool, None
            await scripts.close()
        if self._pool is not None:
            pool, self._pool = self._pool, None
            await pool.close()

    @asynccontextmanager
    async def transaction(self, *, write: bool = True) -> AsyncIterator[Transaction]:
        async with self._connection() as connection, connection.transaction():
            yield _PostgresTransaction(connection, self.queries)

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """A transaction-level advisory lock on ``key``: released at commit, or by the server when
        the holder's connection dies (a killed host never leaves it held)."""
        async with self._connection() as connection, connection.transaction():
            await connection.execute(
                b"SELECT pg_advisory_xact_lock(hashtextextended(%(key)s, 0))", {"key": key}
            )
            yield

    async def script(self, name: str, params: Params) -> list[Row]:
        # Outside a transaction block the one statement is its own transaction: no BEGIN and
        # COMMIT round trips. A script is the queue's hot path, a large statement whose plan
        # does not depend on its parameters' values (rows found by id, candidates in claim
        # order from the narrow mirror): it is prepared on first use and planned once per
        # connection (GENERIC_PLANS, set on the script connections only). Planning it anew for
        # each batch cost about a tenth of the server's time per settle.
        async with self._connection(await self._scripts()) as connection:
            # Binary results: no text formatting on the server, cheaper parsing here.
            cursor = connection.cursor(binary=True)
            await cursor.execute(self.queries[name], params, prepare=True)
            return await cursor.fetchall()

    async def warm_up(self) -> None:
        await self._scripts()

    async def _scripts(self) -> AsyncConnectionPool[psycopg.AsyncConnection[Any]]:
        if self._script_pool is None:
            await self.open()  # the schema exists from here on
            async with self._script_lock:
                if self._script_pool is None:
                    conninfo = _with_option(_in_own_schema(_conninfo(self.url)), GENERIC_PLANS)
                    conninfo = _with_option(conninfo, SCRIPT_TIME_ZONE)
                    self._script_pool = await self._open_pool(conninfo, "taskorch-scripts")
        return self._script_pool

    @asynccontextmanager
    async def _connection(
        self, pool: AsyncConnectionPool[psycopg.AsyncConnection[Any]] | None = None
    ) -> AsyncIterator[psycopg.AsyncConnection[Any]]:
        """A pooled connection (autocommit), with driver errors translated into ours."""
        if pool is None:
            if self._pool is None:
                await self.open()
            pool = self._pool
        assert pool is not None
        try:
            async with pool.connection(timeout=CONNECT_TIMEOUT_S) as connection:
                yield connection
        except PoolTimeout:
            raise DatabaseUnavailableError(
                f"no PostgreSQL connection available at {self.describe()}"
            ) from None
        except psycopg.Error as exc:
            if _transient(exc):
                raise DatabaseUnavailableError(
                    f"PostgreSQL at {self.describe()} failed: {_first_line(exc)}"
                ) from None
            raise StoreError(f"PostgreSQL at {self.describe()}: {_first_line(exc)}") from None


_TRANSIENT_SQLSTATE_CLASSES = frozenset({"08", "40", "53", "57", "58"})
"""Connection exception, transaction rollback (serialization failure, deadlock), insufficient
resources, operator intervention (pg_terminate_backend, shutdown), system error."""


def _transient(exc: psycopg.Error) -> bool:
    """Whether the same work may succeed if tried again: the connection or the server failed,
    not the statement (a constraint or a bad query fails the same way every time)."""
    if isinstance(exc, psycopg.OperationalError):
        return True
    state = exc.sqlstate or ""
    return state[:2] in _TRANSIENT_SQLSTATE_CLASSES


async def _configure(connection: psycopg.AsyncConnection[Any]) -> None:
    set_json_loads(_json_loads, connection)


def _json_loads(data: str | bytes) -> Any:
    # Most JSON columns a claim returns are empty lists; and json.loads of bytes first sniffs
    # their encoding (PostgreSQL sends UTF-8).
    if data == b"[]":
        return []
    return json.loads(data.decode() if isinstance(data, bytes) else data)


SCHEMA = "taskorch"
"""Where taskorch's tables live on PostgreSQL, so that none of them (``tasks``, ``events``,
``schema_migrations``, ...) meets an application's table of the same name; a URL that sets its
own ``search_path`` (``?options=-csearch_path%3Dname``) chooses another."""


def _sets_search_path(conninfo: str) -> bool:
    options = conninfo_to_dict(conninfo).get("options") or ""
    return "search_path" in str(options)


def _in_own_schema(conninfo: str) -> str:
    """``conninfo`` whose connections use taskorch's schema, unless it names a search_path."""
    if _sets_search_path(conninfo):
        return conninfo
    return _with_option(conninfo, f"-csearch_path={SCHEMA}")


GENERIC_PLANS = "-cplan_cache_mode=force_generic_plan -cenable_seqscan=off"
"""Server options of the script connections: one plan per prepared statement, whatever its
parameters, and one that reads rows through their indexes (by id; candidates in claim order) as
the tables grow. A plan made while the tables were nearly empty (a worker that starts before the
work is stored) chose sequential scans inside nested loops and took 250 ms to claim 500 subtasks
once there were 5,000; without sequential scans the same plan claims them in about 30 ms."""


SCRIPT_TIME_ZONE = "-ctimezone=UTC"
"""The script connections' session time zone. Their rows' times then arrive as ``datetime.UTC``
(psycopg's own for a session in UTC), which the claim's decoder keeps as they are: in a server's
default zone (``Etc/UTC`` here) each came as a ``ZoneInfo`` time that was slower to build and that
the decoder converted, four or five per claimed row, thousands of rows a second. Instants are
the same in any zone; no script formats a time as text or reads a date in the session's zone."""


def _with_option(conninfo: str, option: str) -> str:
    """``conninfo`` with one more server option (``-cname=value``)."""
    options = str(conninfo_to_dict(conninfo).get("options") or "")
    return make_conninfo(conninfo, options=f"{options} {option}".strip())


async def _create_own_schema(connection: psycopg.AsyncConnection[Any]) -> None:
    # Bootstrap statements, before any of taskorch's tables (or its named queries) can exist.
    lookup = psycopg.sql.SQL("SELECT 1 FROM pg_namespace WHERE nspname = {}")
    exists = await connection.execute(lookup.format(psycopg.sql.Literal(SCHEMA)))
    if await exists.fetchone() is None:
        await connection.execute(
            psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(psycopg.sql.Identifier(SCHEMA))
        )
    await connection.commit()


def _conninfo(url: str) -> str:
    # psycopg does not know SQLAlchemy-style driver suffixes.
    for prefix in ("postgresql+psycopg://", "postgresql+psycopg2://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0]
