"""``events.jsonl``: a burst of events is appended in the event loop's thread (a hop to a thread
and back cost four times the append, a dozen times per workflow), a large one in a thread; the
lines are the same either way, in the order published."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from taskorch.runtime.events import INLINE_RECORDS, EventBus
from taskorch.store.queue import QueueEvent


def _hops(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    hops: list[str] = []
    real = asyncio.to_thread

    async def counted(work: Callable[..., Any], *args: Any) -> Any:
        hops.append(getattr(work, "__name__", repr(work)))
        return await real(work, *args)

    monkeypatch.setattr(asyncio, "to_thread", counted)
    return hops


def _events(count: int, workflow_id: str) -> list[QueueEvent]:
    return [QueueEvent("task:enqueued", workflow_id, i, {"key": f"s{i}"}) for i in range(count)]


async def test_a_burst_is_appended_without_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _hops(monkeypatch)
    path = tmp_path / "home" / "events.jsonl"  # its folder made on the first append
    bus = EventBus(jsonl_path=path)
    await bus.publish(_events(2, "wf-1"))
    await bus.publish(_events(1, "wf-2"))
    assert hops == []
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["workflow_id"], r["subtask_id"]) for r in lines] == [
        ("wf-1", 0),
        ("wf-1", 1),
        ("wf-2", 0),
    ]


async def test_a_large_burst_goes_to_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    hops = _hops(monkeypatch)
    path = tmp_path / "events.jsonl"
    bus = EventBus(jsonl_path=path)
    await bus.publish(_events(INLINE_RECORDS + 1, "wf-1"))
    assert hops == ["_append_lines"]
    assert len(path.read_text().splitlines()) == INLINE_RECORDS + 1
