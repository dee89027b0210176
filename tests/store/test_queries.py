"""The named SQL of both dialects stays in step with itself and with the code that names it."""

from __future__ import annotations

import ast
import re
import sqlite3
from importlib import resources
from pathlib import Path
from typing import get_args

import pytest

import taskorch.store
from taskorch.store import open_store
from taskorch.store.migrate import available_migrations
from taskorch.store.queries import Dialect, load_queries

DIALECTS: tuple[Dialect, ...] = get_args(Dialect)
STORE_PACKAGE = Path(taskorch.store.__file__).parent
QUERY_METHODS = frozenset(
    {"execute", "executemany", "bulk", "fetchone", "fetchall", "_one", "script", "read", "read_one"}
    | {"guarded"}
)
MIGRATION_FILE = re.compile(r"^(\d{4})_(\w+)\.sql$")

_SQLITE_PARAM = re.compile(r"(?<![:\w]):([A-Za-z_]\w*)")
_POSTGRES_PARAM = re.compile(r"%\((\w+)\)s")
_SQL_STRING = re.compile(r"'(?:[^']|'')*'")
_SQL_COMMENT = re.compile(r"--[^\n]*")


def query_params(dialect: Dialect, sql: str) -> set[str]:
    """The named parameters a query takes, ignoring comments and string literals."""
    code = _SQL_STRING.sub("''", _SQL_COMMENT.sub("", sql))
    pattern = _SQLITE_PARAM if dialect == "sqlite" else _POSTGRES_PARAM
    return set(pattern.findall(code))


def _names_a_query(called: ast.expr) -> bool:
    """``<x>.<query method>(...)``, or ``Statement(...)`` (a query run later, by ``guarded``)."""
    if isinstance(called, ast.Attribute):
        return called.attr in QUERY_METHODS
    return isinstance(called, ast.Name) and called.id == "Statement"


def named_query_calls() -> list[tuple[str, int, str, set[str] | None]]:
    """Every ``<x>.<query method>("name", ...)`` call in the store package's modules.

    Returns (module, line, query name, the keys of a literal params dict or None if not literal).
    """
    calls: list[tuple[str, int, str, set[str] | None]] = []
    for module in sorted(STORE_PACKAGE.glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"), filename=str(module))
        for node in ast.walk(tree):
            if not (
                isinstance(node, ast.Call)
                and _names_a_query(node.func)
                and node.args
                and isinstance(node.args[0], ast.Constant)
                and isinstance(node.args[0].value, str)
            ):
                continue
            keys: set[str] | None = None
            if len(node.args) == 1:
                keys = set()
            elif isinstance(node.args[1], ast.Dict):
                literal = [
                    k.value
                    for k in node.args[1].keys
                    if isinstance(k, ast.Constant) and isinstance(k.value, str)
                ]
                if len(literal) == len(node.args[1].keys):
                    keys = set(literal)
            calls.append((module.name, node.lineno, node.args[0].value, keys))
    return calls


def test_both_dialects_define_the_same_queries() -> None:
    sqlite, postgres = load_queries("sqlite"), load_queries("postgres")
    assert sqlite, "no queries found in sqlite.sql"
    assert sorted(sqlite) == sorted(postgres)


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_query_has_a_body(dialect: Dialect) -> None:
    empty = [name for name, sql in load_queries(dialect).items() if not sql.strip(" ;\n")]
    assert empty == []


def test_the_scanner_sees_the_store() -> None:
    names = {name for _, _, name, _ in named_query_calls()}
    assert {"insert_task", "transition_workflow", "schema_version"} <= names


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_query_the_code_names_exists(dialect: Dialect) -> None:
    defined = load_queries(dialect)
    missing = [
        f"{module}:{line}: {name}"
        for module, line, name, _ in named_query_calls()
        if name not in defined
    ]
    assert missing == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_every_literal_params_dict_covers_its_query(dialect: Dialect) -> None:
    defined = load_queries(dialect)
    short = [
        f"{module}:{line}: {name} lacks {sorted(query_params(dialect, defined[name]) - keys)}"
        for module, line, name, keys in named_query_calls()
        if keys is not None and name in defined and query_params(dialect, defined[name]) - keys
    ]
    assert short == []


def test_every_defined_query_is_used() -> None:
    used = {name for _, _, name, _ in named_query_calls()}
    assert sorted(set(load_queries("sqlite")) - used) == []


@pytest.mark.parametrize("dialect", DIALECTS)
def test_migration_files_are_numbered_without_gaps(dialect: Dialect) -> None:
    folder = resources.files("taskorch.store").joinpath("migrations", dialect)
    files = sorted(entry.name for entry in folder.iterdir() if entry.name.endswith(".sql"))
    # A file the runner's pattern does not match would be skipped silently.
    assert [name for name in files if not MIGRATION_FILE.match(name)] == []
    migrations = available_migrations(dialect)
    assert [m.version for m in migrations] == list(range(1, len(migrations) + 1))
    assert len(migrations) == len(files)
    assert all(m.statements for m in migrations)


def test_both_dialects_have_the_same_migrations() -> None:
    sqlite, postgres = available_migrations("sqlite"), available_migrations("postgres")
    assert sqlite
    assert [(m.version, m.name) for m in sqlite] == [(m.version, m.name) for m in postgres]


async def test_a_workflows_events_are_read_through_its_index(tmp_path: Path) -> None:
    """A workflow's events (its status reads them at every write of its state.json) come by the
    (workflow_id, id) index: with "workflow_id IS NULL OR ..." SQLite scanned every event, and
    each workflow's status grew with all of them."""
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}", migrate=True)
    await store.close()
    sql = load_queries("sqlite")["list_workflow_events"]
    with sqlite3.connect(tmp_path / "db.sqlite") as connection:
        plan = connection.execute(
            f"EXPLAIN QUERY PLAN {sql}", {"workflow_id": "wf", "after_id": 0, "limit": -1}
        ).fetchall()
    assert "events_workflow_idx" in str(plan), plan
