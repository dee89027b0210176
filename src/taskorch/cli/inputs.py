"""Text the CLI reads from files and stdin for the user: bounded, UTF-8, checked.

A requirement file is read up to what :data:`~taskorch.domain.limits.MAX_TEXT_CHARS` characters
can take in UTF-8 and no further, so a device (/dev/zero), an endless pipe or a huge file is
refused at once instead of being read for ever; a FIFO with no writer reads as empty.
"""

from __future__ import annotations

import sys
from pathlib import Path

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TEXT_CHARS, check_text
from taskorch.interop.documents import read_limited

MAX_PATH_CHARS = 4_096
"""A path or URL given on the command line (PATH_MAX on Linux)."""
_MAX_UTF8_BYTES = 4


def read_text_file(path: Path, what: str, limit: int = MAX_TEXT_CHARS) -> str:
    """The text of ``path`` (``-``: stdin), at most ``limit`` characters of UTF-8 with line
    ends made ``\\n``; an :class:`InputError` naming ``what`` otherwise."""
    most = limit * _MAX_UTF8_BYTES  # more bytes than this are surely more characters
    if str(path) == "-":
        try:
            data = sys.stdin.buffer.read(most + 1)
        except (OSError, AttributeError, ValueError) as exc:
            raise InputError(f"cannot read {what} from stdin: {exc}") from None
        source = "stdin"
    else:
        data = read_limited(path, most)
        source = str(path)
    if len(data) > most:
        raise InputError(f"{what} in {source} is over the limit of {limit:,} characters")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} in {source} is not UTF-8 text (byte {exc.start})") from None
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return check_text(f"{what} in {source}", text, limit)


def requirement(text: str | None, file: Path | None, work: str = "to do") -> str:
    """The requirement given as TEXT or with ``--file`` (exactly one), checked."""
    if text is not None and file is not None:
        raise InputError("give the requirement as TEXT or with --file, not both")
    if file is not None:
        text = read_text_file(file, "the requirement")
    if text is None:
        raise InputError("no requirement: give TEXT or --file PATH")
    if not text.strip():
        raise InputError(f"the requirement is empty: describe the work {work}")
    return check_text("the requirement", text, limit=MAX_TEXT_CHARS)
