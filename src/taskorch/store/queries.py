"""Named SQL queries, one file per dialect (``sql/sqlite.sql``, ``sql/postgres.sql``).

A query starts at a ``-- name: <name>`` line and runs to the next one. Both files carry the same
names (a test keeps them equal); only the store names queries, by these names.
"""

from __future__ import annotations

import re
from functools import cache
from importlib import resources
from typing import Literal

Dialect = Literal["sqlite", "postgres"]

_NAME_LINE = re.compile(r"^-- name: (\w+)\s*$", re.MULTILINE)


@cache
def load_queries(dialect: Dialect) -> dict[str, str]:
    text = resources.files("taskorch.store").joinpath("sql", f"{dialect}.sql").read_text()
    parts = _NAME_LINE.split(text)
    queries: dict[str, str] = {}
    for name, body in zip(parts[1::2], parts[2::2], strict=True):
        if name in queries:
            raise ValueError(f"query {name!r} is defined twice in {dialect}.sql")
        queries[name] = body.strip()
    return queries
