"""Turning rows into frozen value objects and values into query parameters, for both dialects.

SQLite hands JSON columns back as text and PostgreSQL as parsed values; times come back as ISO text
or datetimes in the session's time zone. Decoding here makes both look the same to everything above
the store: parsed JSON, and aware datetimes in UTC.
"""

from __future__ import annotations

import json
from collections import OrderedDict
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel

from taskorch.domain.models import (
    Agent,
    Attempt,
    Event,
    HistoryEntry,
    Subtask,
    Task,
    Workflow,
)
from taskorch.store.connector import Row

M = TypeVar("M", bound=BaseModel)

_JSON_COLUMNS: dict[type[BaseModel], frozenset[str]] = {
    Task: frozenset({"dependencies", "metadata"}),
    Workflow: frozenset({"result", "metadata"}),
    HistoryEntry: frozenset({"metadata"}),
    Agent: frozenset({"capabilities", "metadata"}),
    Subtask: frozenset({"dependencies", "files_affected", "command", "result"}),
    Attempt: frozenset(),
    Event: frozenset({"payload"}),
}


def to_json(value: Any) -> str | None:
    """Encode a parameter for a JSON column; None stays SQL NULL."""
    if value is None:
        return None
    return json.dumps(value, separators=(",", ":"), default=str)


def id_params(ids: Iterable[int] | Iterable[str]) -> dict[str, Any]:
    """The id list in both shapes: JSON text for SQLite's json_each, a list for PostgreSQL."""
    id_list = list(ids)
    return {"ids": json.dumps(id_list), "id_list": id_list}


def decode(model: type[M], row: Row) -> M:
    columns = _JSON_COLUMNS[model]
    data = {key: _decode_value(value, key in columns) for key, value in row.items()}
    return model.model_validate(data)


_PARSED_MIN_CHARS = 4096
_PARSED_KEPT = 16
_parsed: OrderedDict[str, Any] = OrderedDict()


def _parse(text: str) -> Any:
    """``json.loads``, with the last few large texts' values kept: a workflow's metadata holds
    its plan (160 kB at 200 subtasks), read again at every step of every subtask while it does
    not change. Comparing the text is a memcmp where parsing it took most of a millisecond.

    The values are shared by the objects decoded from one text: nothing may change a decoded
    value in place (every change goes through the store, which writes a new text)."""
    if len(text) < _PARSED_MIN_CHARS:
        return json.loads(text)
    value = _parsed.get(text)
    if value is None:
        value = _parsed[text] = json.loads(text)
        if len(_parsed) > _PARSED_KEPT:
            _parsed.popitem(last=False)
    else:
        _parsed.move_to_end(text)
    return value


def _decode_value(value: Any, is_json: bool) -> Any:
    if is_json and isinstance(value, str):
        return _parse(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC)  # PostgreSQL answers in the session's TimeZone
    return value


def decode_all(model: type[M], rows: Iterable[Row]) -> list[M]:
    return [decode(model, row) for row in rows]
