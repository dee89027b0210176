"""The CLI as a user runs it: a real subprocess, on SQLite and on PostgreSQL."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from fakes.cli import ok, taskorch
from fakes.origins import git


def one_line_error(result: subprocess.CompletedProcess[str], *fragments: str) -> None:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr + result.stdout
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    for fragment in fragments:
        assert fragment in lines[0]


def test_init_add_list_round_trip(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    assert "schema" in ok(taskorch("init", home=home, database_url=database_url))
    ok(taskorch("task", "add", "Add login", home=home, database_url=database_url))
    ok(
        taskorch(
            "task",
            "add",
            "Add logout",
            "--priority",
            "high",
            "--depends-on",
            "task-1",
            "--description",
            "after login",
            home=home,
            database_url=database_url,
        )
    )
    listed = json.loads(
        ok(taskorch("task", "list", "--json", home=home, database_url=database_url))
    )
    assert [(t["ref"], t["title"], t["priority"]) for t in listed] == [
        ("task-1", "Add login", "medium"),
        ("task-2", "Add logout", "high"),
    ]
    assert listed[1]["dependencies"] == [1]
    shown = json.loads(
        ok(taskorch("task", "show", "2", "--json", home=home, database_url=database_url))
    )
    assert shown["description"] == "after login"
    assert shown["status"] == "pending"


def test_sqlite_is_the_default_under_taskorch_home(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    out = ok(taskorch("init", home=home))
    assert (home / "taskorch.db").is_file()
    assert "sqlite" in out
    ok(taskorch("task", "add", "Add login", home=home))
    table = ok(taskorch("task", "list", home=home))
    assert "task-1" in table
    assert "Add login" in table


def test_list_filters_by_status_and_shows_titles_verbatim(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    ok(taskorch("task", "add", "[bold]not markup[/]", home=home))
    assert "[bold]not markup[/]" in ok(taskorch("task", "list", home=home))
    assert json.loads(ok(taskorch("task", "list", "--status", "failed", "--json", home=home))) == []


@pytest.mark.parametrize(
    ("args", "fragments"),
    [
        (("task", "show", "99"), ("no task with id 99",)),
        (("task", "show", "abc"), ("invalid task id 'abc'",)),
        (("task", "add", "   "), ("task title is empty",)),
        (("task", "add", "x", "--priority", "urgent"), ("invalid priority 'urgent'", "critical")),
        (("task", "add", "x", "--depends-on", "41"), ("unknown task id 41",)),
        (("task", "list", "--status", "weird"), ("invalid status 'weird'",)),
    ],
)
def test_bad_input_is_one_clear_line(
    args: tuple[str, ...], fragments: tuple[str, ...], tmp_path: Path
) -> None:
    ok(taskorch("init", home=tmp_path / ".taskorch"))
    one_line_error(taskorch(*args, home=tmp_path / ".taskorch"), *fragments)


@pytest.mark.parametrize(
    "args",
    [
        ("status",),
        ("status", "wf-1"),
        ("task", "list"),
        ("task", "show", "1"),
        ("metrics",),
        ("agents", "list"),
        ("cancel", "wf-1"),
        ("monitor", "wf-1"),
        ("task", "export", "."),
    ],
)
def test_read_commands_in_an_empty_folder_create_nothing(
    args: tuple[str, ...], tmp_path: Path
) -> None:
    home = tmp_path / ".taskorch"
    result = taskorch(*args, home=home)
    one_line_error(result, f"no taskorch database at {home / 'taskorch.db'}", "taskorch init")
    assert list(tmp_path.iterdir()) == []


def test_health_in_an_empty_folder_says_where_it_looked(tmp_path: Path) -> None:
    result = taskorch("health", home=tmp_path / ".taskorch")
    assert result.returncode == 1
    assert "down     database: no taskorch database at" in result.stdout
    assert list(tmp_path.iterdir()) == []


def test_unreachable_database_is_one_clear_line(tmp_path: Path) -> None:
    url = "postgresql://postgres:hunter2@127.0.0.1:1/nowhere"
    result = taskorch("task", "list", home=tmp_path / ".taskorch", database_url=url)
    one_line_error(result, "cannot reach PostgreSQL", "127.0.0.1:1")
    assert "hunter2" not in result.stderr


def test_invalid_setting_names_the_variable(tmp_path: Path) -> None:
    env_bad = dict(os.environ, MAX_CONCURRENT_WORKFLOWS="many", TASKORCH_HOME=str(tmp_path))
    result = subprocess.run(
        [sys.executable, "-m", "taskorch", "task", "list"],
        capture_output=True,
        text=True,
        env=env_bad,
        timeout=60,
        check=False,
    )
    one_line_error(result, "MAX_CONCURRENT_WORKFLOWS")


def test_health_reports_database(database_url: str, tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    ok(taskorch("init", home=home, database_url=database_url))
    report = json.loads(ok(taskorch("health", "--json", home=home, database_url=database_url)))
    database = report["components"]["database"]
    assert report["status"] == "ok"
    assert database["schema_version"] == database["latest_schema_version"] >= 2
    assert database["backend"] in {"sqlite", "postgres"}
    assert report["components"]["nlp"] == report["components"]["planner"]
    text = ok(taskorch("health", home=home, database_url=database_url))
    assert "planner (nlp): heuristic" in text


def test_health_down_when_database_unreachable(tmp_path: Path) -> None:
    result = taskorch(
        "health", "--json", home=tmp_path, database_url="postgresql://postgres@127.0.0.1:1/x"
    )
    assert result.returncode == 1
    assert json.loads(result.stdout)["components"]["database"]["status"] == "down"


def test_init_db_saves_the_url_for_later_commands(sqlite_url: str, tmp_path: Path) -> None:
    home = tmp_path / "home"
    ok(taskorch("init", "--db", sqlite_url, home=home))
    assert "database_url" in (home / "config.toml").read_text()
    ok(taskorch("task", "add", "Saved", home=home))
    report = json.loads(ok(taskorch("health", "--json", home=home)))
    assert report["components"]["database"]["location"] == sqlite_url


def test_a_task_with_its_repository_and_merge_policy(tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    repo = tmp_path / "app"
    repo.mkdir()
    git(repo, "init", "-q", "-b", "trunk")
    git(repo, "commit", "-q", "--allow-empty", "-m", "first")
    ok(taskorch("task", "add", "Add login", "--repo", "app", "--merge", "APPROVE", home=home))
    shown = json.loads(ok(taskorch("task", "show", "1", "--json", home=home)))
    # a relative path is stored as the repository's absolute root
    assert shown["metadata"] == {"repo": str(repo), "merge_policy": "approve"}
    text = ok(taskorch("task", "show", "1", home=home))
    assert f"repository  {repo}\n" in text
    assert "merge       approve\n" in text
    plain = ok(taskorch("task", "add", "Add logout", "--json", home=home))
    assert json.loads(plain)["metadata"] == {}
    one_line_error(
        taskorch("task", "add", "x", "--repo", str(repo), "--base-branch", "main", home=home),
        "base branch 'main' does not exist in",
    )
    one_line_error(
        taskorch("task", "add", "x", "--merge", "sometimes", home=home),
        "merge policy 'sometimes' is not one of: auto, approve",
    )


def test_process_refuses_a_task_whose_dependency_has_not_completed(tmp_path: Path) -> None:
    """The specification's dependent tasks: task-2 must not merge while task-1 is pending."""
    home = tmp_path / ".taskorch"
    ok(taskorch("task", "add", "Add login", home=home))
    ok(taskorch("task", "add", "Add logout", "--depends-on", "task-1", home=home))
    one_line_error(
        taskorch("process", "task-2", "--agent", "sim", home=home),
        "task-2 depends on task-1, which is pending: process task-1 first",
    )
    shown = json.loads(ok(taskorch("task", "show", "2", "--json", home=home)))
    assert shown["status"] == "pending"  # refused before anything was claimed
    ok(taskorch("process", "task-1", "--agent", "sim", home=home))
    ok(taskorch("process", "task-2", "--agent", "sim", home=home))
    done = json.loads(ok(taskorch("task", "list", "--json", home=home)))
    assert [t["status"] for t in done] == ["completed", "completed"]
