"""Reading a JSON document a user hands taskorch (a tasks.json), strictly and within bounds.

Python's ``json`` reads more than JSON: ``NaN``, ``Infinity``, ``1e999`` (which becomes
infinity), integers of any length, nesting as deep as the stack allows. None of that can be
stored (PostgreSQL's jsonb refuses it, a stored ``NaN`` breaks every later export) nor written
back for task-master, so it is refused here with the place it was found, as a path such as
``master.tasks[3].estimate``; so are strings no database takes (a NUL, a lone surrogate).
The bytes are read with a bound (:func:`read_limited`) so that a device or an endless stream
cannot fill the memory.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_ID

MAX_DEPTH = 64
"""Deeper nesting than any tasks.json has; the check walks no further."""
_MAX_INT_DIGITS = len(str(MAX_ID))
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class _Refused:
    """What the parser put where a value cannot be kept; the walk names where it is."""

    def __init__(self, why: str) -> None:
        self.why = why


def read_limited(path: Path, limit: int) -> bytes:
    """The bytes of the file at ``path`` (a file, a pipe, a device), but never more than
    ``limit + 1`` of them: more than ``limit`` tells the caller to refuse the file. A FIFO with
    no writer does not block the open: it reads as empty."""
    try:
        handle = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except FileNotFoundError:
        raise InputError(f"cannot read {path}: no such file") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    try:
        os.set_blocking(handle, True)
        with os.fdopen(handle, "rb", closefd=False) as stream:
            return stream.read(limit + 1)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror}") from None
    finally:
        os.close(handle)


def load_json(data: bytes, source: str) -> Any:
    """The JSON document in ``data``, checked as the module says; errors name ``source``."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{source} is not UTF-8 text (byte {exc.start})") from None
    try:
        document = json.loads(text, parse_constant=_constant, parse_float=_float, parse_int=_int)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{source} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except RecursionError:
        raise InputError(f"{source} nests JSON deeper than {MAX_DEPTH} levels") from None
    _check(document, source)
    return document


def _constant(name: str) -> _Refused:
    return _Refused(f"is {name}, which JSON does not have: write a number or null")


def _float(text: str) -> float | _Refused:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        return _Refused(f"is {text}, too large a number: write at most about 1e308")
    return value


def _int(text: str) -> int | _Refused:
    if len(text.lstrip("-")) > _MAX_INT_DIGITS or abs(int(text)) > MAX_ID:
        shown = text if len(text) <= 30 else text[:29] + "…"
        return _Refused(f"is {shown}, too large a whole number: the limit is {MAX_ID}")
    return int(text)


def _check(document: Any, source: str) -> None:
    """Walk the document (without recursion) for refused values, unstorable strings and
    nesting deeper than :data:`MAX_DEPTH`."""
    stack: list[tuple[Any, str, int]] = [(document, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        where = path or "the top level"
        if isinstance(value, _Refused):
            raise InputError(f"{source}: {where} {value.why}")
        if isinstance(value, str):
            _check_string(value, f"{source}: {where}")
            continue
        if not isinstance(value, dict | list):
            continue
        if depth >= MAX_DEPTH:
            raise InputError(f"{source}: {where} nests deeper than {MAX_DEPTH} levels")
        if isinstance(value, list):
            stack.extend((item, f"{path}[{n}]", depth + 1) for n, item in enumerate(value))
            continue
        for key, item in value.items():
            inner = f"{path}.{key}" if path else str(key)
            _check_string(key, f"{source}: the key {inner}")
            stack.append((item, inner, depth + 1))


def _check_string(text: str, where: str) -> None:
    found = _UNSTORABLE.search(text)
    if found is not None:
        raise InputError(
            f"{where} contains U+{ord(found.group()):04X}, which cannot be stored: remove it"
        )
