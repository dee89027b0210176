"""Subtask rows to :class:`Subtask` objects on the queue's hot path, without validation.

Workers decode every claimed row (thousands a second); the rows come from our own table, so only
the conversions are needed: JSON text to values (SQLite), times to aware UTC datetimes, strings to
enums. ``decode(Subtask, row)`` of :mod:`taskorch.store.records` gives an equal object (a test
checks); columns that are not fields of the model (``what`` of a script's rows, columns a later
migration adds) are left out.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from taskorch.domain.models import Subtask
from taskorch.domain.plan import Domain, WorkerType
from taskorch.domain.states import SubtaskState
from taskorch.store.connector import Row

_FIELDS = tuple(Subtask.model_fields)
_FIELD_SET = frozenset(_FIELDS)
_SCRIPT_COLUMNS = ("what", "done_id", "done_ids")
_JSON = ("dependencies", "files_affected", "command", "result")
_TIMES = ("run_after", "lease_expires_at", "queued_at", "created_at", "updated_at")
_STATES = {state.value: state for state in SubtaskState}
_DOMAINS = {domain.value: domain for domain in Domain}
_WORKER_TYPES = {worker_type.value: worker_type for worker_type in WorkerType}
_new = object.__new__
_set = object.__setattr__


def subtask_from_row(row: Row) -> Subtask:
    data = dict(row)
    for name in _SCRIPT_COLUMNS:
        data.pop(name, None)
    if len(data) != len(_FIELDS) or data.keys() != _FIELD_SET:
        data = {name: data[name] if name in data else _default(name) for name in _FIELDS}
    for key in _JSON:
        value = data[key]
        if value.__class__ is str:
            data[key] = [] if value == "[]" else json.loads(value)
    for key in _TIMES:
        value = data[key]
        if value.__class__ is str:
            data[key] = datetime.fromisoformat(value)
        elif value is not None and value.tzinfo is not UTC:  # (the scripts' rows are in UTC)
            data[key] = value.astimezone(UTC)
    data["status"] = _STATES[data["status"]]
    data["assigned_to"] = _DOMAINS[data["assigned_to"]]
    data["worker_type"] = _WORKER_TYPES[data["worker_type"]]
    data["budgeted"] = data["budgeted"] is True or data["budgeted"] == 1  # SQLite: 0/1
    # What BaseModel.model_construct does, minus its per-field loop: the values are complete.
    subtask: Subtask = _new(Subtask)
    _set(subtask, "__dict__", data)
    _set(subtask, "__pydantic_fields_set__", set(_FIELDS))
    _set(subtask, "__pydantic_extra__", None)
    _set(subtask, "__pydantic_private__", None)
    return subtask


def _default(name: str) -> Any:
    info = Subtask.model_fields[name]
    if info.is_required():
        raise KeyError(f"subtask row has no column {name!r}")
    return info.get_default(call_default_factory=True)
