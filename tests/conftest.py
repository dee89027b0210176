"""Fixtures shared by the whole suite: a fresh database per test, on SQLite or PostgreSQL.

Fixtures
--------
``sqlite_url``
    ``sqlite:///<tmp_path>/taskorch.db``: a file that does not exist yet.
``postgres_url``
    A URL whose ``search_path`` is a fresh, empty schema (``t_<random>``) in the database named by
    ``TASKORCH_TEST_DATABASE_URL`` (default ``postgresql://postgres@127.0.0.1:5432/test``); the
    schema is dropped after the test. If the server cannot be reached the test is skipped, unless
    ``TASKORCH_REQUIRE_POSTGRES=1`` (CI sets it), which fails it instead: PostgreSQL tests are never
    skipped silently there. Reachability is checked once per session.
``database_url``
    Parametrized over both backends (test ids ``[sqlite]`` and ``[postgres]``); a test that takes
    it, or ``store``, runs once per backend. The PostgreSQL run carries the ``postgres`` marker, so
    ``-m "not postgres"`` runs the SQLite half alone.
``store``
    ``await open_store(database_url, migrate=True)``, closed after the test.
``store_factory``
    Opens more :class:`Store` instances on the same database (for concurrency tests); each is
    closed after the test. ``await store_factory(migrate=False)`` gives an unmigrated one.

Tests that ask for ``postgres_url`` directly should carry ``@pytest.mark.postgres`` themselves.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit, urlunsplit

import psycopg
import pytest
from psycopg import sql

from taskorch.runtime import ancestry, loose_commits, loose_objects, spare_pools
from taskorch.store import Store, open_store, redact_url

DEFAULT_TEST_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
CONNECT_TIMEOUT_S = 5

StoreFactory = Callable[..., Awaitable[Store]]


@pytest.fixture(autouse=True)
def _no_remembered_commits() -> None:
    """Each test starts with no commit facts of an earlier one (ancestry, parents, trees: true
    forever, but a test of what a step asks git must not depend on which tests ran first)."""
    ancestry.forget()
    loose_commits._parents.clear()
    loose_objects._trees.clear()


@pytest.fixture(autouse=True)
def _no_spare_pool_left() -> Iterator[None]:
    """A test that ran workflows without an engine's shutdown leaves no pooled spare in the
    worktrees folder (outside ``tmp_path`` by default): its folders go with the test."""
    yield
    for pool in list(spare_pools._filled):
        shutil.rmtree(pool, ignore_errors=True)
    spare_pools._filled.clear()


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """In-process CLI runs configure taskorch's logging (a handler on a stream the runner closes,
    levels for ``DEBUG=``): each test gets back the logging it started with."""
    root = logging.getLogger("taskorch")
    saved = (list(root.handlers), root.level, root.propagate)
    children = {
        name: logger.level
        for name, logger in logging.Logger.manager.loggerDict.items()
        if name.startswith("taskorch.") and isinstance(logger, logging.Logger)
    }
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    root.propagate = saved[2]
    for name, logger in logging.Logger.manager.loggerDict.items():
        if name.startswith("taskorch.") and isinstance(logger, logging.Logger):
            logger.setLevel(children.get(name, logging.NOTSET))


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "postgres: needs the PostgreSQL server of TASKORCH_TEST_DATABASE_URL"
    )


def _base_postgres_url() -> str:
    return os.environ.get("TASKORCH_TEST_DATABASE_URL") or DEFAULT_TEST_DATABASE_URL


def _postgres_required() -> bool:
    return os.environ.get("TASKORCH_REQUIRE_POSTGRES", "").strip() == "1"


def with_search_path(url: str, schema: str) -> str:
    """``url`` with ``-csearch_path=<schema>`` added to its libpq ``options`` parameter."""
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query, keep_blank_values=True))
    option = f"-csearch_path={schema}"
    query["options"] = f"{query['options']} {option}" if query.get("options") else option
    return urlunsplit(parts._replace(query=urlencode(query, quote_via=quote)))


@pytest.fixture(scope="session")
def _postgres_unreachable_reason() -> str | None:
    """Why the test server cannot be reached, or None if it can. Checked once per session."""
    try:
        with psycopg.connect(
            _base_postgres_url(), autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        ) as connection:
            connection.execute("SELECT 1")
    except psycopg.Error as exc:
        lines = str(exc).strip().splitlines()
        return lines[0] if lines else type(exc).__name__
    return None


@pytest.fixture
def postgres_url(_postgres_unreachable_reason: str | None) -> Iterator[str]:
    """A URL to a fresh, empty schema; dropped (CASCADE) after the test."""
    base = _base_postgres_url()
    if _postgres_unreachable_reason is not None:
        message = f"PostgreSQL not reachable at {redact_url(base)}: {_postgres_unreachable_reason}"
        if _postgres_required():
            pytest.fail(message + " (TASKORCH_REQUIRE_POSTGRES=1)", pytrace=False)
        pytest.skip(message)
    schema = f"t_{secrets.token_hex(6)}"
    with psycopg.connect(base, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S) as connection:
        connection.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
    try:
        yield with_search_path(base, schema)
    finally:
        with psycopg.connect(
            base, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S
        ) as connection:
            # A store the test forgot to close must not hang the suite here.
            connection.execute("SET lock_timeout = '10s'")
            connection.execute(
                sql.SQL("DROP SCHEMA IF EXISTS {} CASCADE").format(sql.Identifier(schema))
            )


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'taskorch.db'}"


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgres", id="postgres", marks=pytest.mark.postgres),
    ]
)
def database_url(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn."""
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture
async def store_factory(database_url: str) -> AsyncIterator[StoreFactory]:
    """``await store_factory(migrate=True)``: another Store on the test's database."""
    opened: list[Store] = []

    async def factory(*, migrate: bool = True) -> Store:
        new = await open_store(database_url, migrate=migrate)
        opened.append(new)
        return new

    try:
        yield factory
    finally:
        for each in reversed(opened):
            await each.close()


@pytest.fixture
async def store(database_url: str) -> AsyncIterator[Store]:
    """A migrated store on a fresh database, closed after the test."""
    opened = await open_store(database_url, migrate=True)
    try:
        yield opened
    finally:
        await opened.close()
