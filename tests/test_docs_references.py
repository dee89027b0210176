"""The README's "From the specification" table names a test for each row: each named test exists,
so the table cannot point at tests that were renamed or removed."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TABLE = ROOT / "docs" / "from-the-specification.md"
REFERENCE = re.compile(r"`(tests/[\w/]+\.py)(?:::(\w+))?`")


def test_every_test_the_specification_table_names_exists() -> None:
    text = TABLE.read_text(encoding="utf-8")
    references = REFERENCE.findall(text)
    assert len(references) > 50, "the table names a test for each row"
    missing = []
    for path, name in references:
        source = ROOT / path
        if not source.is_file():
            missing.append(path)
        elif name and not re.search(rf"^(async )?def {name}\(", source.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, missing
