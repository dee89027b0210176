"""The small interface each database backend implements; the store speaks only to it.

A backend runs named queries inside transactions and translates its driver's errors into
:class:`StoreError` subclasses at this boundary, so nothing above it sees sqlite3 or psycopg.
"""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any

from taskorch.store.queries import Dialect, load_queries

Row = dict[str, Any]
Params = Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class Statement:
    """A named query with its parameters, to be run later (see :meth:`Connector.guarded`)."""

    name: str
    params: Params


class Transaction(ABC):
    """One open transaction: named queries run here commit or roll back together."""

    @abstractmethod
    async def execute(self, name: str, params: Params | None = None) -> None:
        """Run a named query (use ``RETURNING`` with :meth:`fetchall` to learn what changed)."""

    @abstractmethod
    async def fetchone(self, name: str, params: Params | None = None) -> Row | None: ...

    @abstractmethod
    async def fetchall(self, name: str, params: Params | None = None) -> list[Row]: ...

    @abstractmethod
    async def executemany(self, name: str, params: Sequence[Params]) -> None:
        """Run a named query once per parameter set, in one round trip where the driver can."""

    async def notify_ready(self) -> None:
        """Tell other processes, once this transaction commits, that work became ready.
        Backends without notifications do nothing: their workers poll."""
        return

    async def bulk(self, name: str, rows: Sequence[Params]) -> None:
        """Write many rows with one named query. By default once per row (cheap in-process);
        a backend may instead send all rows at once (PostgreSQL: one JSON recordset). Values for
        JSON columns are passed as Python objects, not JSON text."""
        await self.executemany(name, rows)

    @abstractmethod
    async def execute_sql(self, sql: str) -> None:
        """Run literal SQL (one statement); only migrations do this."""


class Connector(ABC):
    dialect: Dialect
    parallel_writes: int = 1
    """Write transactions worth running at once for one large write (SQLite has one writer)."""

    @property
    def queries(self) -> dict[str, str]:
        return load_queries(self.dialect)

    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    def transaction(self, *, write: bool = True) -> AbstractAsyncContextManager[Transaction]:
        """A transaction; ``write=False`` promises only reads (SQLite then takes no write lock)."""

    async def read(self, name: str, params: Params | None = None) -> list[Row]:
        """The rows of one named read-only query, as that one statement sees the database (a
        statement reads one snapshot; no transaction is needed around a single one). A backend
        may run it in one trip where a transaction costs three (begin, query, commit)."""
        async with self.transaction(write=False) as tx:
            return await tx.fetchall(name, params)

    async def reads(self, asked: Sequence[Statement]) -> list[list[Row]]:
        """The rows of several named read-only queries, run in this order. By default in one
        read transaction; a backend may send them at once (SQLite: one trip, each statement
        its own snapshot, as PostgreSQL's read committed transaction sees them)."""
        async with self.transaction(write=False) as tx:
            return [await tx.fetchall(s.name, s.params) for s in asked]

    async def read_one(self, name: str, params: Params | None = None) -> Row | None:
        """The first row of :meth:`read`, None when there is none."""
        rows = await self.read(name, params)
        return rows[0] if rows else None

    async def guarded(self, name: str, params: Params, then: Sequence[Statement]) -> Row | None:
        """In one write transaction: run ``name`` (a write whose ``RETURNING`` gives the row it
        changed) and, only when it gave one, each of ``then`` in order; that row, or None when
        it gave none (nothing written). A backend may run it in one trip where a transaction
        costs several (a checked state change with its history row, on SQLite)."""
        async with self.transaction() as tx:
            row = await tx.fetchone(name, params)
            if row is None:
                return None
            for statement in then:
                await tx.execute(statement.name, statement.params)
        return row

    async def wait_for_notification(self, timeout_s: float) -> bool:
        """Wait until another process says work is ready (True) or ``timeout_s`` passed (False).

        Backends without notifications just sleep: callers then poll.
        """
        await asyncio.sleep(timeout_s)
        return False

    async def warm_up(self) -> None:
        """Open now what :meth:`script` runs on, rather than in the first batch (a worker starting;
        a benchmark before its clock). Nothing by default."""
        return

    @abstractmethod
    async def script(self, name: str, params: Params) -> list[Row]:
        """Run a named script as one transaction and return the rows it reports.

        The hot path of the queue: on PostgreSQL the script is one statement (data-modifying
        CTEs) sent outside any explicit transaction, so it costs one round trip and one commit;
        on SQLite it is several statements, run in order in one write transaction, and the rows
        their ``RETURNING`` clauses give are concatenated.
        """

    @asynccontextmanager
    async def exclusive(self, key: str) -> AsyncIterator[None]:
        """Hold ``key`` against every other holder of this database while the block runs (one
        merger per workflow, whichever host). This default serves one process only."""
        locks = self.__dict__.setdefault("_exclusive_locks", {})
        async with locks.setdefault(key, asyncio.Lock()):
            yield

    @abstractmethod
    def describe(self) -> str:
        """Where the database is, for humans; never includes a password."""
