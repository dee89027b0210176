"""What every MCP tool call goes through, whatever the client sends.

- Its text arguments pass :func:`~taskorch.domain.limits.check_text` (size, control characters,
  lone surrogates) and its task ids :func:`~taskorch.domain.limits.check_id`, before the tool
  runs: a bad one is a tool error (``isError``) of one line naming the argument.
- Its answer can always be sent: a message is one line of printable text, and a result holding
  text that cannot be encoded (a path with bytes that are not UTF-8, read from the disk) has that
  text escaped rather than killing the server's writer.
"""

from __future__ import annotations

import math
from typing import Any

from mcp_types import CallToolResult, InputRequiredResult
from pydantic import ValidationError
from pydantic_core import PydanticSerializationError

from taskorch.domain.errors import InputError
from taskorch.domain.limits import (
    MAX_TEXT_CHARS,
    MAX_TITLE_CHARS,
    check_id,
    check_text,
    echo_safe,
    encodable,
)
from taskorch.domain.models import parse_task_ref, strip_task_prefix

REFUSED = "taskorch_refused"
"""The one argument of a call the stdio transport could not pass on as sent (a message over
``MAX_BODY_BYTES``, a string with a lone surrogate): why, which the server answers as a tool
error."""
MAX_MESSAGE_CHARS = 2000
MAX_REPO_CHARS = 2000
FREE_TEXT = frozenset({"requirement", "description", "requirements", "context"})
"""Arguments that are a person's prose (newlines allowed, up to ``MAX_TEXT_CHARS``); every
other string argument is one line of at most ``MAX_TITLE_CHARS`` (a repo ``MAX_REPO_CHARS``)."""
TASK_REFS = frozenset({"task_id", "task_ids", "taskId", "taskIds"})


def check_arguments(arguments: dict[str, Any]) -> None:
    """Raise an :class:`InputError` naming the first argument that is not acceptable text or a
    storable task id."""
    if REFUSED in arguments:
        raise InputError(one_line(str(arguments[REFUSED])))
    for key, value in arguments.items():
        name = echo_safe(str(key), 60)  # a client's key, named in the message
        items = value if isinstance(value, list) else [value]
        for index, item in enumerate(items):
            _check(name, f"{name}[{index}]" if isinstance(value, list) else name, item)


def _check(name: str, where: str, value: Any) -> None:
    if isinstance(value, str):
        if name in FREE_TEXT:
            check_text(where, value, MAX_TEXT_CHARS)
        else:
            limit = MAX_REPO_CHARS if name == "repo" else MAX_TITLE_CHARS
            check_text(where, value, limit, line=True)
            if name in TASK_REFS and strip_task_prefix(value).isdigit():
                check_id(where, parse_task_ref(value))
    elif isinstance(value, bool):
        return
    elif isinstance(value, int) and name in TASK_REFS:
        check_id(where, value)
    elif isinstance(value, float) and not math.isfinite(value):
        raise InputError(f"{where} must be a finite number")


def validation_line(error: ValidationError) -> str:
    """Arguments that fail the input schema, in one line: where and why each."""
    parts = []
    for item in error.errors(include_url=False):
        where = ".".join(str(part) for part in item["loc"]) or "arguments"
        parts.append(f"{where}: {item['msg']}")
    return "; ".join(parts)


def one_line(message: str) -> str:
    """A tool error's message as one printable line."""
    return echo_safe(" ".join(message.split("\n")), MAX_MESSAGE_CHARS)


def sendable(
    result: CallToolResult | InputRequiredResult,
) -> CallToolResult | InputRequiredResult:
    """``result``, or a copy with the text that cannot be encoded escaped."""
    try:
        result.model_dump_json(by_alias=True, exclude_unset=True)
        return result
    except (PydanticSerializationError, UnicodeError, ValueError):
        data = result.model_dump(by_alias=True, exclude_unset=True)
        return type(result).model_validate(encodable(data))
