"""What the CLI writes to a terminal: consoles that never pass on an escape sequence, and errors
as one bounded line.

User text (titles, requirements, agent names, error messages that echo input) can carry escape
sequences that move the cursor, retitle the window or hide what follows. Rather than trust every
print to clean its arguments, the consoles clean every segment they render
(:func:`~taskorch.domain.limits.terminal_safe`) and never read markup or emoji codes in text; the
styles the CLI sets itself still apply. ``--json`` output does not pass through here: ``json``
escapes control characters itself.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from rich.console import Console, ConsoleOptions, ConsoleRenderable, RenderHook, RenderResult
from rich.segment import Segment
from rich.text import Text

from taskorch.domain.limits import terminal_safe

MAX_ERROR_CHARS = 1_000
"""An error line is cut here: a message that echoes a huge input stays readable."""


class _Cleaned:
    """A renderable shown with the text of its segments made terminal-safe."""

    def __init__(self, inner: ConsoleRenderable) -> None:
        self.inner = inner

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        for segment in console.render(self.inner, options):
            if segment.control:  # rich's own cursor movements (live progress)
                yield segment
            else:
                yield Segment(terminal_safe(segment.text), segment.style)


class _TerminalSafe(RenderHook):
    def process_renderables(self, renderables: list[ConsoleRenderable]) -> list[ConsoleRenderable]:
        return [_Cleaned(each) for each in renderables]


class _SafeConsole(Console):
    def render_str(self, text: str, **options: Any) -> Text:
        # Before the highlighter cuts the text into styled pieces, which would leave the rest
        # of a sequence behind once each piece is cleaned on its own.
        return super().render_str(terminal_safe(text), **options)


PIPED_WIDTH = 10_000
"""The width of output that goes to a pipe or a file: as wide as its longest line."""


def _is_terminal(stream: object) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty()) if callable(isatty) else False
    except ValueError:  # closed
        return False


def safe_console(*, stderr: bool = False) -> Console:
    """A console for user text: no markup, no emoji codes, no escape sequences let through."""
    stream = sys.stderr if stderr else sys.stdout
    # Piped or redirected output is read by programs and people alike: never cut at rich's
    # default 80 columns (a table's long titles, an estimate, an error's end were lost).
    piped = not _is_terminal(stream) and not os.environ.get("COLUMNS")
    made = _SafeConsole(
        stderr=stderr,
        soft_wrap=True,
        markup=False,
        emoji=False,
        width=PIPED_WIDTH if piped else None,
    )
    made.push_render_hook(_TerminalSafe())
    return made


def one_line(message: str) -> str:
    """``message`` as one terminal-safe line of at most :data:`MAX_ERROR_CHARS` characters."""
    line = " ".join(terminal_safe(message).split())
    if len(line) > MAX_ERROR_CHARS:
        line = line[: MAX_ERROR_CHARS - 1] + "…"
    return line


def error_line(message: str) -> Text:
    return Text.assemble(("error:", "bold red"), " ", one_line(message))


def shown(value: str, limit: int = 60) -> str:
    """A user's value quoted for an error message (``repr`` escapes control characters and lone
    surrogates), cut to ``limit`` characters."""
    text = value if len(value) <= limit else value[: limit - 1] + "…"
    return repr(text)
