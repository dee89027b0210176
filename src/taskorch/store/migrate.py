"""A small versioned-SQL migration runner.

Migrations are ``migrations/<dialect>/NNNN_<name>.sql``; each runs in its own transaction together
with the row that records it in ``schema_migrations``, so a crash leaves the schema at a whole
version. PostgreSQL migrators serialise on an advisory lock, so several workers starting at once
apply each migration exactly once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from importlib import resources

from taskorch.domain.errors import MigrationError, StoreError
from taskorch.store.connector import Connector, Transaction

_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")
_ADVISORY_LOCK_KEY = 0x7A5C0B
_CREATE_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_migrations ("
    "version INTEGER PRIMARY KEY, name TEXT NOT NULL, "
    "applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
)


@dataclass(frozen=True, slots=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class MigrationReport:
    from_version: int
    to_version: int
    applied: tuple[str, ...]


def available_migrations(dialect: str) -> list[Migration]:
    folder = resources.files("taskorch.store").joinpath("migrations", dialect)
    found: list[Migration] = []
    for entry in folder.iterdir():
        match = _FILE.match(entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], tuple(_statements(entry.read_text()))))
    return sorted(found, key=lambda m: m.version)


def latest_version(dialect: str) -> int:
    return max((m.version for m in available_migrations(dialect)), default=0)


def _statements(script: str) -> list[str]:
    """The script's statements: split at semicolons, except inside a ``$$``-quoted body (a
    PostgreSQL function's)."""
    lines = [line for line in script.splitlines() if not line.lstrip().startswith("--")]
    statements: list[str] = []
    pending = ""
    for part in "\n".join(lines).split(";"):
        pending += part
        if pending.count("$$") % 2:  # inside a function body: the semicolon belongs to it
            pending += ";"
            continue
        if pending.strip():
            statements.append(pending.strip())
        pending = ""
    return statements


async def current_version(connector: Connector) -> int:
    """The applied schema version; 0 for a database that was never initialised."""
    try:
        row = await connector.read_one("schema_version")
    except StoreError as exc:
        if "schema_migrations" in str(exc):
            return 0
        raise
    return int(row["version"]) if row else 0


async def migrate(connector: Connector, *, target: int | None = None) -> MigrationReport:
    """Apply every migration above the current version (up to ``target``)."""
    start = await current_version(connector)
    wanted = latest_version(connector.dialect) if target is None else target
    if start >= wanted:
        # Up to date: read only, so a command still works while another process holds the
        # write lock (SQLite's WAL lets readers through).
        return MigrationReport(start, start, ())
    async with connector.transaction() as tx:
        await _lock(connector, tx)
        await tx.execute_sql(_CREATE_TABLE)
    start = await current_version(connector)
    applied: list[str] = []
    for migration in available_migrations(connector.dialect):
        if migration.version <= start or (target is not None and migration.version > target):
            continue
        if await _apply(connector, migration):
            applied.append(f"{migration.version:04d}_{migration.name}")
    return MigrationReport(start, await current_version(connector), tuple(applied))


async def _apply(connector: Connector, migration: Migration) -> bool:
    try:
        async with connector.transaction() as tx:
            await _lock(connector, tx)
            row = await tx.fetchone("schema_version")
            if row and int(row["version"]) >= migration.version:
                return False  # another process applied it while we waited for the lock
            for statement in migration.statements:
                await tx.execute_sql(statement)
            await tx.execute_sql(
                "INSERT INTO schema_migrations (version, name) "
                f"VALUES ({migration.version}, '{migration.name}')"
            )
    except MigrationError:
        raise
    except StoreError as exc:
        raise MigrationError(
            f"migration {migration.version:04d}_{migration.name} failed: {exc.message}"
        ) from None
    return True


async def _lock(connector: Connector, tx: Transaction) -> None:
    if connector.dialect == "postgres":
        await tx.execute_sql(f"SELECT pg_advisory_xact_lock({_ADVISORY_LOCK_KEY})")
