"""What a task-master task record must hold to be imported: the fields taskorch reads, each of
the right type and within the limits of :mod:`taskorch.domain.limits`. An error names the field by
its path in the file (``master.tasks[3].title``). Fields taskorch does not read are kept as they
are (the JSON itself was checked when it was read, see :mod:`taskorch.interop.documents`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TEXT_CHARS, MAX_TITLE_CHARS, check_text

MAX_KEY_CHARS = 100
"""A task-master id, status or priority is a short word; longer is not a task-master file."""
TEXT_FIELDS = ("description", "details", "testStrategy")
_WORD_FIELDS = ("status", "priority")


def record_key(record: Mapping[str, Any], where: str | None = None) -> str:
    """The task-master id of a task (found at ``where``) as text: ``12`` and ``"12"`` are
    ``"12"``."""
    value = record.get("id")
    if isinstance(value, bool) or not isinstance(value, int | str) or not str(value).strip():
        at = f" ({where}.id)" if where else ""
        raise InputError(f"a task has no usable id{at}: {_preview(dict(record))}")
    return check_text(f"{where or 'a task'}.id", str(value).strip(), MAX_KEY_CHARS, line=True)


def check_record(record: Any, where: str) -> None:
    """``record`` (found at ``where``) if taskorch can import it; else an :class:`InputError`."""
    if not isinstance(record, dict):
        raise InputError(f"every task must be a JSON object: {where} is {_preview(record)}")
    key = record_key(record, where)
    title = record.get("title")
    if title is not None and not isinstance(title, str):
        raise InputError(f"{where}.title must be a string, not {_kind(title)}")
    if not isinstance(title, str) or not title.strip():
        raise InputError(f"task {key} has no title ({where}.title)")
    check_text(f"{where}.title", title.strip(), MAX_TITLE_CHARS, line=True)
    for name in TEXT_FIELDS:
        text_field(record, name, where)
    for name in _WORD_FIELDS:
        value = record.get(name)
        if value is not None and not isinstance(value, str):
            raise InputError(f"{where}.{name} must be a string, not {_kind(value)}")
        check_text(f"{where}.{name}", value or "", MAX_KEY_CHARS, line=True)
    _check_dependencies(record, where)
    subtasks = record.get("subtasks")
    if subtasks is None:
        return
    if not isinstance(subtasks, list):
        raise InputError(f"{where}.subtasks must be a list, not {_kind(subtasks)}")
    for number, subtask in enumerate(subtasks):
        _check_subtask(subtask, f"{where}.subtasks[{number}]")


def text_field(record: Mapping[str, Any], name: str, where: str) -> str:
    """A free-text field of a record (missing or null: empty), line ends made ``\\n``."""
    value = record.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise InputError(f"{where}.{name} must be a string, not {_kind(value)}")
    text = value.replace("\r\n", "\n").replace("\r", "\n")  # files written on Windows
    return check_text(f"{where}.{name}", text, MAX_TEXT_CHARS)


def _check_subtask(subtask: Any, where: str) -> None:
    if not isinstance(subtask, dict):
        raise InputError(f"every subtask must be a JSON object: {where} is {_preview(subtask)}")
    title = subtask.get("title")
    if title is not None and not isinstance(title, str):
        raise InputError(f"{where}.title must be a string, not {_kind(title)}")
    check_text(f"{where}.title", (title or "").strip(), MAX_TITLE_CHARS, line=True)
    _check_dependencies(subtask, where)


def _check_dependencies(record: Mapping[str, Any], where: str) -> None:
    dependencies = record.get("dependencies")
    if dependencies is None:
        return
    if not isinstance(dependencies, list):
        raise InputError(f"{where}.dependencies must be a list, not {_kind(dependencies)}")
    for number, dependency in enumerate(dependencies):
        at = f"{where}.dependencies[{number}]"
        if isinstance(dependency, bool) or not isinstance(dependency, int | str):
            raise InputError(f"{at} must be a task id (a number or a string)")
        check_text(at, str(dependency), MAX_KEY_CHARS, line=True)


def _kind(value: Any) -> str:
    names = {dict: "an object", list: "a list", bool: "true or false", str: "a string"}
    return names.get(type(value), "null" if value is None else "a number")


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
