"""Lone reads sent to the database's thread together: those asked for in the same turn of the
event loop, or while the connection is busy with another trip, go in one trip.

Each trip to aiosqlite's thread costs a thread switch and an event-loop wake-up each way, about
as much as a small query itself. A workflow's status is nine reads that do not depend on each
other, and several workflows advance at once: asked for together, they are one trip where they
were nine. Each read is still its own statement (its own snapshot, in autocommit mode), in the
order asked; an error of one is raised to its reader only.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from taskorch.store.connector import Params, Row

Send = Callable[[Sequence[tuple[str, Params]]], Awaitable[list[list[Row] | BaseException]]]
"""Runs the reads in one trip, in order: each one's rows or the error it raised (translated)."""

_Asked = tuple[str, Params, "asyncio.Future[list[Row]]"]


class GatheredReads:
    def __init__(self, send: Send) -> None:
        self._send = send
        self._asked: list[_Asked] = []
        self._sender: asyncio.Task[None] | None = None

    async def read(self, sql: str, params: Params) -> list[Row]:
        return await self._ask(sql, params)

    async def reads(self, asked: Sequence[tuple[str, Params]]) -> list[list[Row]]:
        """Several reads, run in this order (in one trip unless the batch is cut by a trip
        already on its way)."""
        answers = [self._ask(sql, params) for sql, params in asked]
        try:
            return [await answer for answer in answers]
        except BaseException:
            for answer in answers:  # the rest are not waited for: their errors are seen here
                if not answer.done():
                    answer.cancel()
                elif not answer.cancelled():
                    answer.exception()
            raise

    def _ask(self, sql: str, params: Params) -> asyncio.Future[list[Row]]:
        loop = asyncio.get_running_loop()
        answer: asyncio.Future[list[Row]] = loop.create_future()
        self._asked.append((sql, params, answer))
        # (A sender of an event loop that has ended, its reads with it, is left behind.)
        if self._sender is None or self._sender.get_loop() is not loop:
            # A task of its own, so that a reader cancelled while its read is on its way never
            # strands the reads that came in behind it.
            self._sender = asyncio.create_task(self._send_all(), name="sqlite-reads")
        return answer

    async def drain(self) -> None:
        """Wait until every read asked for has been answered (before the connection closes)."""
        while self._sender is not None:
            if self._sender.get_loop() is not asyncio.get_running_loop():
                self._sender = None  # (its event loop has ended: nothing there is answered)
                return
            await asyncio.shield(self._sender)

    async def _send_all(self) -> None:
        try:
            loop = asyncio.get_running_loop()
            while self._asked:
                batch = [
                    asked
                    for asked in self._asked
                    if not asked[2].done() and asked[2].get_loop() is loop
                ]
                self._asked = []
                if batch:
                    await self._send_batch(batch)
        finally:
            self._sender = None

    async def _send_batch(self, batch: list[_Asked]) -> None:
        try:
            answers = await self._send([(sql, params) for sql, params, _ in batch])
        except Exception as exc:
            for _, _, answer in batch:
                if not answer.done():
                    answer.set_exception(exc)
            return
        except BaseException:
            for _, _, answer in batch:
                answer.cancel()
            raise
        for (_, _, answer), rows in zip(batch, answers, strict=True):
            if answer.done():  # (its reader was cancelled meanwhile)
                continue
            if isinstance(rows, BaseException):
                answer.set_exception(rows)
            else:
                answer.set_result(rows)
