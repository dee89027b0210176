"""The pure task-master format: layouts, status mapping both ways, dependencies, records."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskorch.domain.errors import InputError
from taskorch.domain.models import Task, TaskStatus
from taskorch.interop.taskmaster import (
    FROM_TASKORCH,
    TO_TASKORCH,
    export_record,
    export_status,
    import_items,
    merge_tag,
    read_tags,
    select_tags,
    tagged,
)

DATA = Path(__file__).parent / "data" / "tasks.json"
NOW = "2026-11-26T12:00:00.000Z"


def document() -> Any:
    return json.loads(DATA.read_text(encoding="utf-8"))


def as_task(item_metadata: dict[str, Any], status: TaskStatus) -> Task:
    moment = datetime(2026, 11, 26, tzinfo=UTC)
    return Task(
        id=7,
        title="t",
        status=status,
        metadata=item_metadata,
        created_at=moment,
        updated_at=moment,
    )


def test_tagged_and_flat_layouts() -> None:
    tags = read_tags(document())
    assert [t.name for t in tags] == ["master", "feature-auth"]
    assert [len(t.tasks) for t in tags] == [5, 2]
    flat = {"tasks": document()["master"]["tasks"], "metadata": {"version": "1.0.0"}}
    [only] = read_tags(flat)
    assert only.name == "master"
    assert only.metadata == {"version": "1.0.0"}


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ([], "top level must be a JSON object"),
        ({"hello": "world"}, "expected"),
        ({"master": {"tasks": ["x"]}}, "every task must be a JSON object"),
        ({"master": {"tasks": [{"title": "no id"}]}}, "no usable id"),
        ({"tasks": [{"id": 1, "title": "a"}, {"id": "1", "title": "b"}]}, "id 1 appears twice"),
    ],
)
def test_files_that_are_not_task_master_files(bad: Any, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_tags(bad)


def test_a_task_without_title_is_refused() -> None:
    with pytest.raises(InputError, match=r"task 1 has no title \(tasks\[0\]\.title\)"):
        read_tags({"tasks": [{"id": 1, "title": " "}]})


def test_tag_selection() -> None:
    tags = read_tags(document())
    assert [t.name for t in select_tags(tags, "feature-auth")] == ["feature-auth"]
    assert len(select_tags(tags, None)) == 2
    with pytest.raises(InputError, match="no tag 'nope' in the file: it has master, feature-auth"):
        select_tags(tags, "nope")


def test_statuses_map_both_ways() -> None:
    assert set(TO_TASKORCH) == {
        "pending",
        "in-progress",
        "done",
        "review",
        "deferred",
        "cancelled",
        "blocked",
    }
    for status in TaskStatus:
        assert status in FROM_TASKORCH
    for taskorch_status, taskmaster_status in FROM_TASKORCH.items():
        if taskorch_status is not TaskStatus.FAILED:
            assert TO_TASKORCH[taskmaster_status] is taskorch_status


def test_import_items_map_ids_dependencies_and_fields() -> None:
    master, auth = read_tags(document())
    items = {item.key: item for item in import_items(master, "/p/tasks.json")}
    assert items["2"].status is TaskStatus.PROCESSING
    assert items["4"].status is TaskStatus.PENDING  # deferred
    assert items["1"].status is TaskStatus.COMPLETED
    assert items["1"].priority.value == "high"
    # "1.2" in a subtask of task 2 makes task 2 wait for task 1; sibling ids (1, "2") do not count.
    assert items["2"].depends_on == ["1"]
    # "2.3" in a subtask of task 5: task 5 waits for task 2 as well as for its own dependency 3.
    assert items["5"].depends_on == ["3", "2"]
    assert items["4"].depends_on == ["1", "3"]
    text = items["2"].description
    assert "Load settings from a TOML file" in text
    assert "Test strategy: Unit tests for precedence" in text
    assert "- Merge environment overrides" in text
    origin = items["2"].metadata["taskmaster"]
    assert origin["record"]["complexity"] == 5  # unknown fields travel with the task
    assert (origin["tag"], origin["id"], origin["status"]) == ("master", "2", "in-progress")
    string_ids = {item.key: item for item in import_items(auth, "/p/tasks.json")}
    assert string_ids["2"].depends_on == ["1"]
    assert string_ids["2"].status is TaskStatus.PENDING  # blocked


def test_unknown_dependencies_are_reported() -> None:
    [tag] = read_tags({"tasks": [{"id": 1, "title": "a", "dependencies": [9, 1]}]})
    [item] = import_items(tag, "x")
    assert item.depends_on == []
    assert item.unknown_dependencies == ["9"]


def test_export_keeps_the_imported_status_until_taskorch_changes_it() -> None:
    [master, _] = read_tags(document())
    items = {item.key: item for item in import_items(master, "x")}
    deferred = items["4"].metadata
    untouched = as_task(deferred, TaskStatus.PENDING)
    assert export_status(untouched) == "deferred"
    assert export_record(untouched) == master.tasks[3]
    review = items["2"].metadata
    assert export_record(as_task(review, TaskStatus.PROCESSING)) == master.tasks[1]
    merged = export_record(as_task(review, TaskStatus.COMPLETED))
    assert merged["status"] == "done"
    assert [s["status"] for s in merged["subtasks"]] == ["done", "done", "done"]
    assert merged["complexity"] == 5
    assert export_record(as_task(review, TaskStatus.FAILED))["status"] == "blocked"
    assert master.tasks[1]["status"] == "in-progress"  # the import's record is not changed


def test_merge_leaves_other_tags_and_unknown_tasks_alone() -> None:
    original = document()
    target = tagged(original)
    changed = dict(original["feature-auth"]["tasks"][0], status="done")
    added = {"id": "9", "title": "New", "status": "pending", "dependencies": []}
    result = merge_tag(
        target,
        "feature-auth",
        [changed, added],
        originals=[],
        metadata={},
        now=NOW,
    )
    assert result["master"] == original["master"]
    tasks = result["feature-auth"]["tasks"]
    assert [t["id"] for t in tasks] == ["1", "2", "9"]
    assert tasks[0]["status"] == "done"
    assert tasks[1] == original["feature-auth"]["tasks"][1]
    metadata = result["feature-auth"]["metadata"]
    assert metadata["lastModified"] == NOW
    assert (metadata["taskCount"], metadata["completedCount"]) == (3, 1)
    assert original["feature-auth"]["metadata"]["lastModified"] != NOW


def test_merge_into_an_empty_file_writes_the_tag_as_imported() -> None:
    master = document()["master"]
    result = merge_tag(
        tagged(None),
        "master",
        master["tasks"],
        originals=master["tasks"],
        metadata=master["metadata"],
        now=NOW,
    )
    assert result == {"master": master}


def test_a_flat_target_becomes_its_master_tag() -> None:
    flat = {"tasks": [{"id": 1, "title": "a"}], "metadata": {}}
    assert tagged(flat) == {"master": flat}
    with pytest.raises(InputError, match="not a JSON object"):
        tagged([1])
