"""Persistence: one :class:`Store` face over a SQLite or PostgreSQL connector."""

from __future__ import annotations

from pathlib import Path

from taskorch.domain.errors import ConfigError
from taskorch.store.connector import Connector
from taskorch.store.postgres import PostgresConnector, redact_url
from taskorch.store.sqlite import SqliteConnector
from taskorch.store.store import Store, StoreHealth

__all__ = ["Store", "StoreHealth", "connector_for_url", "open_store", "redact_url"]


def connector_for_url(url: str) -> Connector:
    """``sqlite:///relative/path.db``, ``sqlite:////abs/path.db`` or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        return SqliteConnector(Path(url.removeprefix("sqlite:///")))
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        return PostgresConnector(url)
    raise ConfigError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///PATH or postgresql://..."
    )


async def open_store(url: str, *, migrate: bool = False) -> Store:
    store = Store(connector_for_url(url))
    await store.open()
    try:
        if migrate:
            await store.migrate()
    except BaseException:
        await store.close()
        raise
    return store
