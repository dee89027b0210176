"""Rows decoded into value objects: a large JSON text read again (a workflow's metadata with its
plan, at every step) is parsed once, and a changed text is parsed anew."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from taskorch.domain.models import Workflow
from taskorch.store import records

NOW = datetime(2026, 12, 3, tzinfo=UTC).isoformat()


def workflow_row(metadata: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": "wf-1", "task_id": 1, "status": "processing", "start_time": NOW, "end_time": None,
        "result": None, "metadata": json.dumps(metadata), "created_at": NOW, "updated_at": NOW,
        "budget_usd": None, "budget_tokens": None, "subtask_budget_usd": None,
    }  # fmt: skip


def plan(size: int, title: str) -> dict[str, Any]:
    subtasks = [
        {"subtask_id": f"s-{i}", "title": title, "files": [f"f{i}.py"]} for i in range(size)
    ]
    return {"plan": {"subtasks": subtasks}}


def test_a_large_text_read_again_is_parsed_once_and_a_changed_one_anew() -> None:
    big = workflow_row(plan(200, "first"))
    assert len(big["metadata"]) >= records._PARSED_MIN_CHARS
    again = dict(big, metadata=(big["metadata"] + " ")[:-1])  # equal text, another object

    first, second = records.decode(Workflow, big), records.decode(Workflow, again)
    assert first == second
    assert first.metadata["plan"] is second.metadata["plan"]  # parsed once
    assert first.metadata is not second.metadata  # each object has its own top level

    changed = records.decode(Workflow, workflow_row(plan(200, "second")))
    assert changed.metadata["plan"]["subtasks"][0]["title"] == "second"
    assert records.decode(Workflow, big).metadata["plan"]["subtasks"][0]["title"] == "first"


def test_small_texts_are_not_kept_and_the_kept_ones_are_bounded() -> None:
    small = records.decode(Workflow, workflow_row({"a": [1]}))
    assert small.metadata == {"a": [1]}
    assert json.dumps({"a": [1]}) not in records._parsed
    for n in range(records._PARSED_KEPT * 2):
        records.decode(Workflow, workflow_row(plan(100, f"title {n}")))
    assert len(records._parsed) == records._PARSED_KEPT
