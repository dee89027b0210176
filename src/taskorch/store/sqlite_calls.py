"""Where the SQLite connection's work runs: in the event loop's own thread while that is quick and
waits for nobody, else in aiosqlite's thread.

A trip to aiosqlite's thread costs a thread switch each way and, while both threads run Python, a
hand-over of the GIL at every statement: on a 2-core virtual machine about 0.2 ms of CPU per trip,
more than the statements themselves (a state change's write and commit, fsync included, takes
0.1-0.3 ms on a local disk). A one-subtask workflow makes some thirty trips. So a trip runs in the
loop's thread, unless:

- it would wait for another process: there the connection's busy timeout is 0, and a trip refused
  with ``SQLITE_BUSY`` is rolled back (it began all it holds) and sent to the thread, which waits
  out the configured busy timeout as before;
- the recent trips were slow (:data:`INLINE_MAX_S` on average: a slow disk's fsync, big reads):
  the thread takes them, and the loop goes on meanwhile, until they are quick again;
- work sent to the thread is still there (a trip cut off by a cancel runs to its end): what follows
  queues behind it.

A transaction whose first trip went to the thread stays there; one whose first trip ran here holds
its locks (``BEGIN IMMEDIATE``, or a read snapshot) and runs its other trips here too.
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

import aiosqlite

INLINE_MAX_S = 0.002
"""Trips run in the loop's thread while the recent ones took at most this long on average."""
_WEIGHT = 0.2
"""Of the latest trip, in the running average of trip times."""
_BUSY = 5
"""SQLITE_BUSY, the primary code of every "database is locked" a busy timeout would wait out."""

_SET_BUSY_TIMEOUT = "PRAGMA busy_timeout = {ms}"

_T = TypeVar("_T")


class Calls:
    """The one way work reaches the connection (the caller holds the connector's lock)."""

    def __init__(self, connection: aiosqlite.Connection, busy_timeout_s: float) -> None:
        self._connection = connection
        self._busy_ms = int(busy_timeout_s * 1000)
        self._recent_s = 0.0
        self._sent = 0
        """Work sent to the thread (counted here) and finished there (counted there)."""
        self._finished = 0
        self.last_in_thread = False
        """Whether the last call ran in aiosqlite's thread."""

    def _quick(self) -> bool:
        return self._recent_s <= INLINE_MAX_S and self._sent == self._finished

    async def run(
        self,
        work: Callable[..., _T],
        *args: object,
        retry: Callable[[_T], bool] | None = None,
        here: bool | None = None,
    ) -> _T:
        """``work(connection, *args)``: here when quick, else (or when refused as busy, or when
        ``retry`` says so of its answer: work that took nothing it must undo) in the thread.
        ``here`` forces the place (a transaction's later trips go where its first one went)."""
        if here is None and self._quick():
            started = time.perf_counter()
            try:
                answer = work(self._connection, *args)
            except sqlite3.Error as exc:
                self._took(time.perf_counter() - started)
                if not busy(exc):
                    raise
                _roll_back(self._connection)
            else:
                self._took(time.perf_counter() - started)
                if retry is None or not retry(answer):
                    self.last_in_thread = False
                    return answer
        elif here:
            self.last_in_thread = False
            return work(self._connection, *args)
        self.last_in_thread = True
        return await asyncio.shield(self._in_thread(work, *args))

    async def roll_back(self) -> None:
        """Roll back what is open, where the last work ran."""
        if not self.last_in_thread and self._sent == self._finished:
            _roll_back(self._connection)
        else:
            await asyncio.shield(self._in_thread(_roll_back))

    def _in_thread(self, work: Callable[..., _T], *args: object) -> Awaitable[_T]:
        self._sent += 1
        run = cast(Callable[..., Awaitable[_T]], self._connection._execute)
        return run(self._waiting, self._connection, work, args)

    def _waiting(
        self, connection: aiosqlite.Connection, work: Callable[..., _T], args: tuple[object, ...]
    ) -> _T:
        """In aiosqlite's thread: ``work`` with the busy timeout on (this thread may wait)."""
        raw = connection._conn
        started = time.perf_counter()
        try:
            raw.execute(_SET_BUSY_TIMEOUT.format(ms=self._busy_ms))
            try:
                return work(connection, *args)
            finally:
                raw.execute(_SET_BUSY_TIMEOUT.format(ms=0))
        finally:
            self._took(time.perf_counter() - started)
            self._finished += 1  # (only this thread writes it)

    def _took(self, seconds: float) -> None:
        self._recent_s += (seconds - self._recent_s) * _WEIGHT


def busy(exc: BaseException) -> bool:
    """Whether ``exc`` is SQLite's "database is locked" (another connection holds the lock)."""
    code: Any = getattr(exc, "sqlite_errorcode", None)
    return isinstance(code, int) and code & 0xFF == _BUSY


def _roll_back(connection: aiosqlite.Connection) -> None:
    """Roll back what is open; a rollback that fails too (a disk I/O error) must not hide the
    error that caused it (SQLite rolls back itself when it can)."""
    raw = connection._conn
    try:
        if raw.in_transaction:
            raw.rollback()
    except sqlite3.Error:
        return
