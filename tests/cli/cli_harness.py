"""The ``taskorch`` CLI run in-process (its real entry point, :func:`taskorch.cli.main.invoke`)
with captured output, and the checks every run must pass, however bad its input was."""

from __future__ import annotations

import contextlib
import io
import re
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

from taskorch.cli.main import invoke

EXIT_CODES = {0, 1, 2}
"""Success, an error (one line), a usage error (one line)."""
DEADLINE_S = 60.0
"""Generous: a case that takes this long is a hang, not a slow machine."""
HOSTILE = (
    "",
    " ",
    "\x1b]0;PWNED\x07",
    "\x1b]8;;http://x\x1b\\link",
    "\x1b[2J\x1b[Hclear",
    "\x1b[31mred",
    "\udcff\udcfe bad utf-8",  # how Python decodes invalid UTF-8 in argv (surrogateescape)
    "\ud800",
    "a\nb",
    "\t",
    "\r",
    "\x7f\x85\x9b",
    "[red]markup[/red]",
    "[/]",
    ":smile:",
    "x" * 100_001,
    "x" * 501,
    "1e999",
    "-1e999",
    "nan",
    "inf",
    "-inf",
    "-1",
    "0",
    "0.5",
    "604801",
    "9223372036854775807",
    "9223372036854775808",
    "99999999999999999999999",
    "task-0",
    "task-99999999999999999999",
    "²",
    "١٢",
    "/dev/zero",
    "/dev/full",
    "/",
    ".",
    "/nonexistent/x",
    "-",
    "'unbalanced",
    "\\",
    "%s%n{0}",
)
"""Values that broke the CLI once, or break CLIs in general."""
_RICH_STYLE = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Outcome:
    argv: tuple[str, ...]
    code: int
    out: str
    err: str
    seconds: float

    def problems(self) -> list[str]:
        """What is wrong with this run: a traceback, a bug caught by the last resort, an escape
        sequence on the terminal, an error longer than a line, an odd exit code, a hang."""
        found = []
        both = self.out + self.err
        if "Traceback" in both:
            found.append("traceback")
        if "TASKORCH_DEBUG" in both:
            found.append("bug caught by the last resort")
        if "\x1b" in _RICH_STYLE.sub("", both):
            found.append("escape sequence")
        if self.code != 0 and len(self.err.strip().splitlines()) > 1:
            found.append("multi-line error")
        if self.code not in EXIT_CODES:
            found.append(f"exit code {self.code}")
        if self.seconds > DEADLINE_S:
            found.append("hang")
        return found


def run_cli(argv: Sequence[str], stdin: bytes = b"") -> Outcome:
    """Run ``taskorch ARGV`` in this process; stdin reads ``stdin``."""
    out, err = io.StringIO(), io.StringIO()
    fake_stdin = io.TextIOWrapper(io.BytesIO(stdin), encoding="utf-8")
    started = time.monotonic()
    saved_stdin = sys.stdin
    sys.stdin = fake_stdin
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = invoke(list(argv))
    finally:
        sys.stdin = saved_stdin
    return Outcome(tuple(argv), code, out.getvalue(), err.getvalue(), time.monotonic() - started)
