"""Persistence: one :class:`Store` face over a SQLite or PostgreSQL connector."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import parse_qsl

from taskorch.domain.errors import ConfigError
from taskorch.domain.limits import MAX_DURATION_S
from taskorch.store.connector import Connector
from taskorch.store.sqlite import BUSY_TIMEOUT_S, SqliteConnector
from taskorch.store.store import Store, StoreHealth
from taskorch.store.urls import redact_url

__all__ = ["Store", "StoreHealth", "connector_for_url", "open_store", "redact_url"]


def connector_for_url(url: str) -> Connector:
    """``sqlite:///relative/path.db``, ``sqlite:////abs/path.db`` (``?timeout=SECONDS``: how
    long to wait for another process's write lock) or ``postgresql://...``."""
    if url.startswith("sqlite:///"):
        path, _, query = url.removeprefix("sqlite:///").partition("?")
        return SqliteConnector(Path(path), busy_timeout_s=_busy_timeout_s(url, query))
    if url.startswith(("postgresql://", "postgres://", "postgresql+psycopg://")):
        from taskorch.store.postgres import PostgresConnector  # psycopg: only for such a URL

        return PostgresConnector(url)
    raise ConfigError(
        f"unsupported database URL {redact_url(url)!r}: use sqlite:///PATH or postgresql://..."
    )


def _busy_timeout_s(url: str, query: str) -> float:
    given = dict(parse_qsl(query)).get("timeout")
    if given is None:
        return BUSY_TIMEOUT_S
    try:
        seconds = float(given)
    except ValueError:
        seconds = -1.0
    if not 0 <= seconds <= MAX_DURATION_S:
        raise ConfigError(
            f"bad timeout={given!r} in database URL {url!r}: give seconds, 0 to {MAX_DURATION_S:g}"
        )
    return seconds


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
