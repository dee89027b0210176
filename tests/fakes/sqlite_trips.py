"""A count of the trips a SQLite store makes to its connection: each is one call of
:class:`~taskorch.store.sqlite_calls.Calls` (in the loop's thread, or a hand-off to aiosqlite's
thread and a wake-up of the event loop), the cost the store's trips are measured in."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from taskorch.store import Store
from taskorch.store.sqlite import SqliteConnector


class Trips:
    """Counts the trips ``store`` (SQLite, open) makes from now on."""

    def __init__(self, store: Store) -> None:
        connector = store.connector
        assert isinstance(connector, SqliteConnector)
        calls = connector._calls
        assert calls is not None
        real: Callable[..., Awaitable[Any]] = calls.run
        self.count = 0

        async def counted(work: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await real(work, *args, **kwargs)

        calls.run = counted  # type: ignore[method-assign]

    def take(self) -> int:
        """The trips counted since the last take."""
        taken, self.count = self.count, 0
        return taken
