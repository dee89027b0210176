"""Limits on everything a user or a client hands taskorch, and the checks that enforce them.

Every face (CLI, HTTP, MCP, tasks.json import) checks its input against these numbers and refuses
what is over with an :class:`~taskorch.domain.errors.InputError` that names the field and the limit.
The README's "Limits" section lists them; keep the two in step.
"""

from __future__ import annotations

import math
import re

from taskorch.domain.errors import InputError

MAX_TEXT_CHARS = 100_000
"""A requirement's text, a task's details, any free text field (characters)."""

MAX_TITLE_CHARS = 500
"""A task's or subtask's title (characters)."""

MAX_BODY_BYTES = 1_048_576
"""An HTTP request body, an MCP message (bytes)."""

MAX_TASKS_FILE_BYTES = 16 * 1_048_576
"""A tasks.json being imported (bytes)."""

MAX_ID = 2**63 - 1
"""The largest numeric id a store can hold (a signed 64-bit integer)."""

MAX_DURATION_S = 7 * 24 * 3600.0
"""Any duration a user sets: a timeout, a lease, a simulated agent's run (seconds)."""

# C0 and C1 controls except tab and newline, DEL, and lone surrogates: none of them belongs in
# text a person wrote, and each can break a terminal, a JSON encoder or a database driver.
_FORBIDDEN = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff]")
# Escape sequences (CSI, OSC, ...) and the other controls, for text shown on a terminal.
_TERMINAL_UNSAFE = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"  # CSI ... final byte
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"  # OSC ... BEL or ST
    r"|[\x00-\x08\x0b-\x1f\x7f-\x9f]"
    r"|[\ud800-\udfff]"
)


def check_text(field: str, value: str, limit: int = MAX_TEXT_CHARS, *, line: bool = False) -> str:
    """``value`` if it is at most ``limit`` characters of printable text (tabs and, unless
    ``line``, newlines allowed); otherwise an :class:`InputError` naming ``field``."""
    if len(value) > limit:
        raise InputError(f"{field} is {len(value):,} characters; the limit is {limit:,}")
    bad = _FORBIDDEN.search(value)
    if bad is not None or (line and "\n" in value):
        char = bad.group() if bad is not None else "\n"
        raise InputError(
            f"{field} contains the control character U+{ord(char):04X}; remove it and try again"
        )
    return value


def check_duration(field: str, seconds: float, *, allow_zero: bool = True) -> float:
    """``seconds`` if it is a finite, non-negative duration of at most :data:`MAX_DURATION_S`."""
    if not math.isfinite(seconds) or seconds < 0 or (seconds == 0 and not allow_zero):
        lowest = "0" if allow_zero else "more than 0"
        raise InputError(f"{field} must be a number of seconds from {lowest} to {MAX_DURATION_S:g}")
    if seconds > MAX_DURATION_S:
        raise InputError(f"{field} is {seconds:g} s; the limit is {MAX_DURATION_S:g} s (a week)")
    return seconds


def check_id(field: str, value: int) -> int:
    """``value`` if a store can hold it as an id (1 to :data:`MAX_ID`)."""
    if not 1 <= value <= MAX_ID:
        raise InputError(f"{field} must be a whole number from 1 to {MAX_ID}; got {value}")
    return value


def terminal_safe(text: str) -> str:
    """``text`` with escape sequences and control characters (except tab and newline) removed,
    so that user text printed to a terminal cannot move the cursor, retitle the window or hide
    what follows."""
    return _TERMINAL_UNSAFE.sub("", text)


_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d|w)?\s*$", re.IGNORECASE)
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}


def parse_duration(
    field: str, text: str, *, limit_s: float = MAX_DURATION_S, bare: str = "s"
) -> float:
    """``"90"`` (in ``bare`` units: seconds unless told), ``"1.5s"``, ``"10m"``, ``"12h"``,
    ``"30d"``, ``"2w"`` as seconds; an :class:`InputError` naming ``field`` for anything else or
    more than ``limit_s``."""
    match = _DURATION.match(text)
    if match is None:
        raise InputError(
            f"{field} {text!r} is not a duration: give a number with an optional unit "
            "(ms, s, m, h, d, w), e.g. 90s, 10m, 30d"
        )
    seconds = float(match.group(1)) * _UNIT_S[(match.group(2) or bare).lower()]
    if not math.isfinite(seconds) or seconds > limit_s:
        raise InputError(f"{field} {text!r} is more than the limit of {limit_s:g} s")
    return seconds


_UNSAFE_IN_A_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")


def echo_safe(value: str, limit: int = 120) -> str:
    """``value`` fit to quote in a one-line message: controls (newlines too) and lone surrogates
    written as ``\\uXXXX`` escapes, cut to ``limit`` characters. Such a message can always be
    encoded (UTF-8, JSON) and shown, whatever a client sent."""
    cut = value[:limit]
    shown = _UNSAFE_IN_A_LINE.sub(lambda m: f"\\u{ord(m.group()):04x}", cut)
    return shown + ("…" if len(value) > limit else "")


def encodable(value: object) -> object:
    """``value`` (text, or lists and dicts of it) with every string made encodable -- a lone
    surrogate, such as a path's byte that is not UTF-8 decodes to, written as a ``\\udcff``
    escape -- and non-finite floats as ``None``: what can always be written as JSON."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {encodable(k): encodable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [encodable(v) for v in value]
    return value
