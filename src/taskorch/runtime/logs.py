"""Logging for taskorch's processes: one handler on stderr, text or JSON lines, a level per run.

The level comes from ``--log-level`` / ``TASKORCH_LOG_LEVEL``; ``--verbose`` and the Node-style
``DEBUG=orchestration:*`` (or ``DEBUG=orchestration:runtime,orchestration:engine`` for parts) turn
on debug lines. Long-running commands (``serve``, ``worker``) log at INFO by default, so every
workflow transition and attempt outcome is a line (see :func:`log_events`); one-shot commands show
their own progress and log only warnings.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, Literal

from taskorch.domain.errors import ConfigError
from taskorch.domain.limits import terminal_safe

LogFormat = Literal["text", "json"]
LEVELS = ("debug", "info", "warning", "error", "critical")
DEBUG_PREFIX = "orchestration:"

events_log = logging.getLogger("taskorch.events")
_debugged: set[str] = set()
"""The parts of taskorch ``DEBUG`` turned on (their loggers' level set here)."""

# Fields of an event record that make its log line; the rest stays in events.jsonl.
_EVENT_FIELDS = (
    "key",
    "from",
    "to",
    "agent",
    "attempt",
    "outcome",
    "error_class",
    "error",
    "reason",
    "duration_s",
    "reassigned_to",
)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and the record's ``event`` data."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        event = getattr(record, "event", None)
        if isinstance(event, Mapping):
            line["event"] = dict(event)
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str)


class TextFormatter(logging.Formatter):
    """``2026-12-02T09:00:00Z info taskorch.events: message``, with control sequences removed."""

    def format(self, record: logging.LogRecord) -> str:
        stamp = datetime.fromtimestamp(record.created, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        text = f"{stamp} {record.levelname.lower()} {record.name}: {record.getMessage()}"
        if record.exc_info:
            text += "\n" + self.formatException(record.exc_info)
        return terminal_safe(text)


def parse_level(value: str) -> int:
    name = value.strip().lower()
    if name not in LEVELS:
        raise ConfigError(f"invalid log level {value!r}: use one of {', '.join(LEVELS)}")
    return int(getattr(logging, name.upper()))


def debug_loggers(debug: str | None) -> list[str]:
    """The logger names a ``DEBUG`` value asks for: ``orchestration:*`` is all of taskorch,
    ``orchestration:runtime`` is ``taskorch.runtime``; other namespaces are someone else's."""
    names: list[str] = []
    for part in (debug or "").replace(",", " ").split():
        if not part.startswith(DEBUG_PREFIX):
            continue
        area = part[len(DEBUG_PREFIX) :].strip(".")
        names.append("taskorch" if area in ("", "*") else f"taskorch.{area.rstrip('*.')}")
    return names


def configure_logging(
    *,
    level: str | None,
    fmt: str = "text",
    verbose: bool = False,
    default: int = logging.WARNING,
    environ: Mapping[str, str] | None = None,
) -> None:
    """Send taskorch's log records to stderr at the chosen level, in the chosen format."""
    env = os.environ if environ is None else environ
    if fmt not in ("text", "json"):
        raise ConfigError(f"invalid log format {fmt!r}: use text or json")
    chosen = parse_level(level) if level else default
    if verbose:
        chosen = min(chosen, logging.DEBUG)
    handler = logging.StreamHandler()
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger("taskorch")
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(chosen)
    root.propagate = False
    # Configured again in one process (tests, an embedding program): a part DEBUG named last
    # time goes back to the level of the whole.
    while _debugged:
        logging.getLogger(_debugged.pop()).setLevel(logging.NOTSET)
    for name in debug_loggers(env.get("DEBUG")):
        if name == "taskorch":
            root.setLevel(logging.DEBUG)
        else:
            logging.getLogger(name).setLevel(logging.DEBUG)
            _debugged.add(name)


def log_events(records: Iterable[Mapping[str, Any]]) -> None:
    """One INFO line per event (workflow transitions, attempt outcomes, retries, zombies)."""
    if not events_log.isEnabledFor(logging.INFO):
        return
    for record in records:
        kind = str(record.get("event", ""))
        where = str(record.get("workflow_id") or "-")
        details = " ".join(
            f"{key}={record[key]}" for key in _EVENT_FIELDS if record.get(key) not in (None, "")
        )
        level = logging.WARNING if kind in ("task:failed", "task:zombie") else logging.INFO
        events_log.log(level, "%s %s %s", kind, where, details, extra={"event": dict(record)})
