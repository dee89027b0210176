"""``taskorch task import|export`` as a user runs them: import a tagged tasks.json, carry one of
its tasks to merged code with the simulated agent, export it back as done."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from fakes.cli import ok
from fakes.cli import taskorch as run_taskorch

DATA = Path(__file__).parent / "data" / "tasks.json"
SHARED = Path(__file__).resolve().parents[3] / "shared" / "fixtures" / "taskmaster"


def taskorch(*args: str, home: Path) -> subprocess.CompletedProcess[str]:
    # 120 s, not 60: some of these commands carry a whole workflow to merged code.
    return run_taskorch(*args, home=home, timeout_s=120)


def read(path: Path) -> Any:
    return json.loads(path.read_text(encoding="utf-8"))


def test_import_process_export(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    project = tmp_path / "project"
    target = project / ".taskmaster" / "tasks" / "tasks.json"
    target.parent.mkdir(parents=True)
    shutil.copy(DATA, target)

    imported = json.loads(ok(taskorch("task", "import", str(project), "--json", home=home)))
    assert [(t["tag"], t["created"]) for t in imported["tags"]] == [
        ("master", 5),
        ("feature-auth", 2),
    ]
    [login] = [
        t for t in imported["tasks"] if (t["tag"], t["taskmaster_id"]) == ("feature-auth", "1")
    ]
    again = ok(taskorch("task", "import", str(target), "--tag", "feature-auth", home=home))
    assert "imported tag feature-auth: 0 new, 2 updated" in again

    final = json.loads(ok(taskorch("process", login["ref"], "--json", home=home)))
    assert final["state"] == "merged"

    shown = ok(taskorch("task", "export", str(target), "--tag", "feature-auth", home=home))
    assert "exported tag feature-auth: 2 (1 blocked, 1 done)" in shown
    after = read(target)
    assert after["master"] == read(DATA)["master"]
    auth = after["feature-auth"]["tasks"]
    assert auth[0]["status"] == "done"
    assert auth[0]["subtasks"][0]["status"] == "done"
    assert auth[1]["status"] == "blocked"  # untouched in taskorch: as it was
    assert auth[0]["updatedAt"] == "2026-11-22T12:00:00.000Z"  # unknown fields kept


def test_bad_input_is_one_line(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    broken = tmp_path / "tasks.json"
    broken.write_text('{"master": {"tasks": [', encoding="utf-8")
    for args in (
        ("task", "import", str(broken)),
        ("task", "import", str(tmp_path / "missing.json")),
        ("task", "import", str(DATA), "--tag", "nope"),
        ("task", "export", str(tmp_path / "out.json")),
    ):
        result = taskorch(*args, home=home)
        assert result.returncode == 1
        assert "Traceback" not in result.stderr
        assert result.stderr.startswith("error: ")
        assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_tasks_that_wait_for_each_other_in_a_ring_are_refused(tmp_path: Path) -> None:
    """Imported, they stayed pending for ever under ``serve`` without a word."""
    home = tmp_path / ".taskorch"
    ring = tmp_path / "tasks.json"
    tasks = [
        {"id": 1, "title": "Schema", "dependencies": [3], "status": "pending"},
        {"id": 2, "title": "API", "dependencies": [1], "status": "pending"},
        {"id": 3, "title": "Client", "dependencies": [2], "status": "pending"},
        {"id": 4, "title": "Docs", "dependencies": [], "status": "pending"},
    ]
    ring.write_text(json.dumps({"master": {"tasks": tasks}}), encoding="utf-8")
    result = taskorch("task", "import", str(ring), home=home)
    assert result.returncode == 1
    assert result.stderr.strip() == (
        "error: tasks of tag 'master' depend on each other in a cycle: 1 -> 3 -> 2 -> 1; "
        "remove one of these dependencies, then import again"
    )
    assert json.loads(ok(taskorch("task", "list", "--json", home=home))) == []


def test_the_real_multi_tag_file_round_trips(tmp_path: Path) -> None:
    source = SHARED / "tasks.json"
    if not source.exists():
        pytest.skip(f"the real task-master file is not here: {source}")
    home = tmp_path / ".taskorch"
    imported = json.loads(ok(taskorch("task", "import", str(source), "--json", home=home)))
    assert len(imported["tags"]) == 9
    assert len(imported["tasks"]) == 182
    out = tmp_path / "tasks.json"
    ok(taskorch("task", "export", str(out), home=home))
    assert read(out) == read(source)
    # A second import of the same file changes nothing.
    again = json.loads(ok(taskorch("task", "import", str(source), "--json", home=home)))
    assert sum(t["created"] for t in again["tags"]) == 0
    assert sum(t["updated"] for t in again["tags"]) == 182


@pytest.mark.parametrize("name", ["flat-tasks.json", "cli-built-tasks.json"])
def test_the_files_the_real_cli_wrote_round_trip(tmp_path: Path, name: str) -> None:
    source = SHARED / name
    if not source.exists():
        pytest.skip(f"the task-master fixture is not here: {source}")
    home = tmp_path / ".taskorch"
    ok(taskorch("task", "import", str(source), home=home))
    out = tmp_path / "tasks.json"
    ok(taskorch("task", "export", str(out), home=home))
    original = read(source)
    expected = {"master": original} if "tasks" in original else original
    assert read(out) == expected
