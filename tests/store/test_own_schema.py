"""On PostgreSQL taskorch keeps its tables in a schema of its own: an application's tables of
the same names (a Rails-style ``schema_migrations``, its own ``tasks``) are never touched."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator

import psycopg
import pytest
from psycopg import sql

from taskorch.domain.models import NewTask
from taskorch.store import open_store

pytestmark = pytest.mark.postgres


@pytest.fixture
async def application_database(postgres_url: str) -> AsyncIterator[str]:
    """A database of its own (the schema ``taskorch`` is per database), already holding an
    application's ``schema_migrations`` and ``tasks`` in ``public``."""
    base = postgres_url.split("?", 1)[0]
    name = f"app_{secrets.token_hex(4)}"
    async with await psycopg.AsyncConnection.connect(base, autocommit=True) as admin:
        await admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    url = base.rsplit("/", 1)[0] + "/" + name
    try:
        async with await psycopg.AsyncConnection.connect(url, autocommit=True) as app:
            await app.execute("CREATE TABLE schema_migrations (version varchar PRIMARY KEY)")
            await app.execute("INSERT INTO schema_migrations VALUES ('20240101120000')")
            await app.execute("CREATE TABLE tasks (id serial PRIMARY KEY, body text)")
        yield url
    finally:
        async with await psycopg.AsyncConnection.connect(base, autocommit=True) as admin:
            drop = sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name))
            await admin.execute(drop)


async def test_tables_live_in_their_own_schema(application_database: str) -> None:
    store = await open_store(application_database, migrate=True)
    try:
        task = await store.create_task(NewTask.create("Add login"))
        assert (await store.get_task(task.id)).title == "Add login"
    finally:
        await store.close()
    async with await psycopg.AsyncConnection.connect(application_database) as app:
        rows = await (await app.execute("SELECT version FROM public.schema_migrations")).fetchall()
        assert rows == [("20240101120000",)]  # the application's, untouched
        theirs = await (await app.execute("SELECT count(*) FROM public.tasks")).fetchone()
        assert theirs == (0,)
        ours = await (await app.execute("SELECT title FROM taskorch.tasks")).fetchall()
        assert ours == [("Add login",)]
