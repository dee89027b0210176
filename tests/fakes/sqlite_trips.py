"""A count of the calls a SQLite store runs in aiosqlite's thread: each is one hand-off to that
thread and one wake-up of the event loop, the cost the store's trips are measured in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from taskorch.store import Store
from taskorch.store.sqlite import SqliteConnector


class Trips:
    """Counts the calls ``store`` (SQLite, open) runs in aiosqlite's thread from now on."""

    def __init__(self, store: Store) -> None:
        connector = store.connector
        assert isinstance(connector, SqliteConnector)
        assert connector._connection is not None
        real: Callable[..., Awaitable[Any]] = connector._connection._execute
        self.count = 0

        async def counted(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await real(fn, *args, **kwargs)

        connector._connection._execute = counted  # type: ignore[method-assign]

    def take(self) -> int:
        """The calls counted since the last take."""
        taken, self.count = self.count, 0
        return taken
