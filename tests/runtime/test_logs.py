"""Logging: levels, formats, DEBUG=orchestration:*, and one line per event."""

from __future__ import annotations

import json
import logging

import pytest

from taskorch.domain.errors import ConfigError
from taskorch.runtime.events import EventBus
from taskorch.runtime.logs import configure_logging, debug_loggers
from taskorch.store.outcomes import QueueEvent


def _transition() -> QueueEvent:
    return QueueEvent("workflow:transition", "wf-1", None, {"from": "processing", "to": "merged"})


async def test_events_become_json_lines(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level="info", fmt="json", environ={})
    await EventBus().publish([_transition()])
    line = json.loads(capsys.readouterr().err.strip())
    assert line["level"] == "info"
    assert line["logger"] == "taskorch.events"
    assert line["message"] == "workflow:transition wf-1 from=processing to=merged"
    assert line["event"]["to"] == "merged"


async def test_text_lines_and_the_default_level(capsys: pytest.CaptureFixture[str]) -> None:
    configure_logging(level=None, environ={})  # warning: one-shot commands print their own
    await EventBus().publish([_transition()])
    assert capsys.readouterr().err == ""
    configure_logging(level=None, default=logging.INFO, environ={})
    await EventBus().publish([_transition()])
    assert (
        capsys.readouterr()
        .err.rstrip()
        .endswith("info taskorch.events: workflow:transition wf-1 from=processing to=merged")
    )


def test_debug_namespaces() -> None:
    assert debug_loggers("orchestration:*") == ["taskorch"]
    assert debug_loggers("express:*,orchestration:runtime") == ["taskorch.runtime"]
    assert debug_loggers(None) == []
    configure_logging(level="warning", environ={"DEBUG": "orchestration:runtime"})
    assert logging.getLogger("taskorch.runtime.worker").isEnabledFor(logging.DEBUG)
    assert not logging.getLogger("taskorch.engine").isEnabledFor(logging.INFO)


def test_bad_level_or_format_is_one_line() -> None:
    with pytest.raises(ConfigError, match="invalid log level 'loud'"):
        configure_logging(level="loud")
    with pytest.raises(ConfigError, match="invalid log format 'xml'"):
        configure_logging(level=None, fmt="xml")
