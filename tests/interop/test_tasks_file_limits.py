"""A tasks.json is read strictly and within bounds: what cannot be stored or written back is
refused with the field's path, before anything is stored; every field taskorch reads is checked."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TEXT_CHARS, MAX_TITLE_CHARS
from taskorch.engine import OrchestrationEngine
from taskorch.engine import taskmaster as engine_taskmaster
from taskorch.engine.taskmaster import export_taskmaster, import_taskmaster
from taskorch.interop.documents import MAX_DEPTH, load_json, read_limited
from taskorch.interop.taskmaster import read_tags
from taskorch.settings import load_settings
from taskorch.store import Store

GOOD = {"master": {"tasks": [{"id": 1, "title": "first", "status": "pending"}]}}


@pytest.fixture
def engine(store: Store, tmp_path: Path) -> OrchestrationEngine:
    return OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home"), store=store)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('{"tasks": [{"id": 1, "title": "a", "x": NaN}]}', r"tasks\[0\]\.x is NaN"),
        ('{"tasks": [{"id": 1, "title": "a", "x": -Infinity}]}', r"tasks\[0\]\.x is -Infinity"),
        ('{"tasks": [{"id": 1, "title": "a", "x": 1e999}]}', r"tasks\[0\]\.x is 1e999"),
        ('{"tasks": [{"id": 1, "title": "a", "x": 9223372036854775808}]}', "too large a whole"),
        ('{"tasks": [{"id": 1, "title": "a", "x": ' + "9" * 5000 + "}]}", "too large a whole"),
        ('{"tasks": [{"id": 1, "title": "a\\u0000"}]}', r"tasks\[0\]\.title contains U\+0000"),
        ('{"tasks": [{"id": 1, "title": "\\ud800"}]}', r"tasks\[0\]\.title contains U\+D800"),
        ('{"\\udfff": 1}', r"the key .* contains U\+DFFF"),
        ("[" * 100_000 + "]" * 100_000, "deeper than"),
        ("[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), "nests deeper than 64 levels"),
        ("\ufeff" + json.dumps(GOOD), None),
    ],
)
def test_json_that_cannot_be_stored_is_refused_with_its_path(
    text: str, message: str | None
) -> None:
    data = text.encode("utf-8", "surrogatepass")
    if message is None:
        assert load_json(data, "f.json") == GOOD
        return
    with pytest.raises(InputError, match=message):
        load_json(data, "f.json")


def test_bytes_that_are_not_utf8_are_refused() -> None:
    with pytest.raises(InputError, match=r"f\.json is not UTF-8 text \(byte 9\)"):
        load_json(b'{"tasks":\xff}', "f.json")


@pytest.mark.parametrize(
    ("task", "message"),
    [
        ({"id": 1, "title": 5}, r"tasks\[0\]\.title must be a string, not a number"),
        ({"id": 1, "title": "x" * (MAX_TITLE_CHARS + 1)}, r"tasks\[0\]\.title is 501 characters"),
        ({"id": 1, "title": "a\x1b]0;x\x07"}, r"tasks\[0\]\.title contains the control character"),
        ({"id": 1, "title": "a", "description": {"a": 1}}, r"description must be a string, not an"),
        ({"id": 1, "title": "a", "details": "x" * (MAX_TEXT_CHARS + 1)}, r"details is 100,001"),
        ({"id": 1, "title": "a", "status": ["done"]}, r"tasks\[0\]\.status must be a string"),
        ({"id": 1, "title": "a", "priority": 3}, r"tasks\[0\]\.priority must be a string"),
        ({"id": 1, "title": "a", "dependencies": "2"}, r"dependencies must be a list, not a str"),
        ({"id": 1, "title": "a", "dependencies": [None]}, r"dependencies\[0\] must be a task id"),
        ({"id": 1, "title": "a", "subtasks": {}}, r"tasks\[0\]\.subtasks must be a list"),
        ({"id": 1, "title": "a", "subtasks": [1]}, r"subtask must be a JSON object"),
        ({"id": 1, "title": "a", "subtasks": [{"title": 2}]}, r"subtasks\[0\]\.title must be"),
        ({"id": True, "title": "a"}, r"no usable id \(tasks\[0\]\.id\)"),
        ({"id": "x" * 101, "title": "a"}, r"tasks\[0\]\.id is 101 characters"),
    ],
)
def test_every_field_taskorch_reads_is_checked_by_path(task: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_tags({"tasks": [task]})


def test_windows_line_ends_are_fine() -> None:
    [tag] = read_tags({"tasks": [{"id": 1, "title": "a\r", "details": "one\r\ntwo"}]})
    assert tag.tasks[0]["details"] == "one\r\ntwo"  # the record is kept as it was


async def test_a_nan_is_refused_and_stores_nothing_so_later_imports_and_exports_work(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    poisoned = tmp_path / "poisoned.json"
    poisoned.write_text('{"tasks": [{"id": 1, "title": "a", "estimate": NaN}]}')
    with pytest.raises(InputError, match=r"tasks\[0\]\.estimate is NaN"):
        await import_taskmaster(engine, poisoned)
    assert await engine.list_tasks() == []
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    await import_taskmaster(engine, good)
    out = tmp_path / "out.json"
    await export_taskmaster(engine, out)
    assert json.loads(out.read_text())["master"]["tasks"] == GOOD["master"]["tasks"]


async def test_a_file_over_the_limit_is_refused_naming_it(
    engine: OrchestrationEngine, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_taskmaster, "MAX_TASKS_FILE_BYTES", 100)
    big = tmp_path / "big.json"
    big.write_text(json.dumps({"tasks": [{"id": 1, "title": "x" * 200}]}))
    with pytest.raises(InputError, match=r"over the limit of 100 bytes for a tasks\.json"):
        await import_taskmaster(engine, big)


async def test_endless_devices_are_refused_without_reading_them_all(
    engine: OrchestrationEngine,
) -> None:
    with pytest.raises(InputError, match="over the limit"):
        await import_taskmaster(engine, Path("/dev/zero"))
    with pytest.raises(InputError, match="over the limit"):
        await import_taskmaster(engine, Path("/dev/urandom"))


async def test_export_refuses_a_target_that_is_not_a_regular_file(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD))
    await import_taskmaster(engine, good)
    with pytest.raises(InputError, match="cannot write /dev/full: export writes a regular file"):
        await export_taskmaster(engine, Path("/dev/full"))
    assert Path("/dev/full").is_char_device()  # noqa: ASYNC240


def test_a_fifo_without_writer_reads_as_empty(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    assert read_limited(fifo, 10) == b""
