"""Import and export through the engine, on SQLite and PostgreSQL: round trips, re-imports that
update, tag selection, targets whose other tags stay untouched."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from taskorch.domain.errors import InputError
from taskorch.domain.models import TaskStatus
from taskorch.engine import OrchestrationEngine
from taskorch.engine.taskmaster import export_taskmaster, import_taskmaster
from taskorch.settings import load_settings
from taskorch.store import Store

DATA = Path(__file__).parent / "data" / "tasks.json"


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.fixture
def engine(store: Store, tmp_path: Path) -> OrchestrationEngine:
    return OrchestrationEngine(load_settings(taskorch_home=tmp_path / "home"), store=store)


async def test_round_trip_gives_back_the_same_file(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    report = await import_taskmaster(engine, DATA)
    assert [(t.tag, t.created, t.updated) for t in report.tags] == [
        ("master", 5, 0),
        ("feature-auth", 2, 0),
    ]
    out = tmp_path / "out" / "tasks.json"
    await export_taskmaster(engine, out)
    assert read(out) == read(DATA)


async def test_dependencies_become_taskorch_ids(engine: OrchestrationEngine) -> None:
    report = await import_taskmaster(engine, DATA)
    ids = {
        (t.metadata["taskmaster"]["tag"], t.metadata["taskmaster"]["id"]): t for t in report.tasks
    }
    master = {key: ids[("master", key)] for key in ("1", "2", "3", "4", "5")}
    assert master["2"].dependencies == [master["1"].id]
    assert master["4"].dependencies == [master["1"].id, master["3"].id]
    assert master["5"].dependencies == [master["3"].id, master["2"].id]  # "2.3" -> task 2
    assert ids[("feature-auth", "2")].dependencies == [ids[("feature-auth", "1")].id]
    assert master["2"].status is TaskStatus.PROCESSING
    assert master["1"].status is TaskStatus.COMPLETED


async def test_reimport_updates_instead_of_duplicating(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    await import_taskmaster(engine, DATA)
    changed = read(DATA)
    changed["master"]["tasks"][2]["title"] = "Add the CLI entry point"
    changed["master"]["tasks"][2]["status"] = "in-progress"
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(changed), encoding="utf-8")
    report = await import_taskmaster(engine, source)
    assert [(t.tag, t.created, t.updated) for t in report.tags] == [
        ("master", 0, 5),
        ("feature-auth", 0, 2),
    ]
    tasks = await engine.list_tasks()
    assert len(tasks) == 7
    [cli] = [t for t in tasks if t.title == "Add the CLI entry point"]
    assert cli.status is TaskStatus.PROCESSING


async def test_reimport_keeps_a_status_taskorch_moved_on(
    engine: OrchestrationEngine, store: Store
) -> None:
    report = await import_taskmaster(engine, DATA, "feature-auth")
    login = report.tasks[0]
    await store.set_task_status(login.id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    await store.set_task_status(login.id, TaskStatus.PROCESSING, TaskStatus.COMPLETED)
    again = await import_taskmaster(engine, DATA, "feature-auth")
    assert again.tasks[0].id == login.id
    assert again.tasks[0].status is TaskStatus.COMPLETED


async def test_export_writes_one_tag_and_leaves_the_others(
    engine: OrchestrationEngine, store: Store, tmp_path: Path
) -> None:
    target = tmp_path / "project" / ".taskmaster" / "tasks" / "tasks.json"
    target.parent.mkdir(parents=True)
    shutil.copy(DATA, target)
    report = await import_taskmaster(engine, tmp_path / "project", "feature-auth")
    assert report.path == target
    login = report.tasks[0]
    await store.set_task_status(login.id, TaskStatus.PENDING, TaskStatus.PROCESSING)
    await store.set_task_status(login.id, TaskStatus.PROCESSING, TaskStatus.COMPLETED)
    # Someone edited the master tag in task-master meanwhile: export must not undo that.
    edited = read(target)
    edited["master"]["tasks"][2]["status"] = "done"
    target.write_text(json.dumps(edited, indent=2), encoding="utf-8")
    exported = await export_taskmaster(engine, tmp_path / "project", "feature-auth")
    assert [(t.tag, t.statuses) for t in exported.tags] == [
        ("feature-auth", {"done": 1, "blocked": 1})
    ]
    after = read(target)
    assert after["master"] == edited["master"]
    auth = after["feature-auth"]
    assert [t["status"] for t in auth["tasks"]] == ["done", "blocked"]
    assert auth["tasks"][0]["subtasks"][0]["status"] == "done"
    assert auth["metadata"]["completedCount"] == 1
    assert auth["metadata"]["lastModified"] != edited["feature-auth"]["metadata"]["lastModified"]
    assert not list(target.parent.glob(".tasks.json.*"))  # the temporary file was renamed


async def test_flat_files_import_as_master_and_export_tagged(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    flat = {
        "tasks": [
            {"id": "1", "title": "Set up CI", "status": "done", "dependencies": []},
            {"id": "2", "title": "Add config", "status": "pending", "dependencies": ["1"]},
        ],
        "metadata": {"version": "1.0.0", "taskCount": 2, "completedCount": 1},
    }
    source = tmp_path / "tasks.json"
    source.write_text(json.dumps(flat), encoding="utf-8")
    report = await import_taskmaster(engine, source)
    assert [t.tag for t in report.tags] == ["master"]
    assert report.tasks[1].dependencies == [report.tasks[0].id]
    await export_taskmaster(engine, source)
    assert read(source) == {"master": flat}


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "is not valid JSON: Expecting property name"),
        ('{"hello": 1}', "not a task-master tasks.json"),
    ],
)
async def test_bad_files_are_one_line_errors(
    engine: OrchestrationEngine, tmp_path: Path, content: str, message: str
) -> None:
    source = tmp_path / "tasks.json"
    source.write_text(content, encoding="utf-8")
    with pytest.raises(InputError, match=message):
        await import_taskmaster(engine, source)
    with pytest.raises(InputError, match="no such file"):
        await import_taskmaster(engine, tmp_path / "missing.json")
    assert await engine.list_tasks() == []


async def test_export_before_import_says_what_to_do(
    engine: OrchestrationEngine, tmp_path: Path
) -> None:
    with pytest.raises(InputError, match=r"import a tasks\.json first"):
        await export_taskmaster(engine, tmp_path / "tasks.json", "master")
