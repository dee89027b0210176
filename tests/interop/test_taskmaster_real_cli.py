"""The real task-master CLI reads what taskorch exports (skipped without it).

Install it with ``npm install task-master-ai`` and put its ``task-master`` on PATH, or point
``TASKMASTER_BIN`` at it. It runs offline here: no API key, no telemetry, no self-update.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from test_taskmaster_cli import DATA, taskorch

from fakes.cli import ok


def task_master() -> str:
    found = os.environ.get("TASKMASTER_BIN") or shutil.which("task-master")
    if not found:
        pytest.skip("the task-master CLI is not installed (npm install task-master-ai)")
    return found


def run_task_master(binary: str, project: Path, *args: str) -> str:
    env = dict(os.environ, TASKMASTER_SKIP_AUTO_UPDATE="1")
    result = subprocess.run(
        [binary, *args],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def as_json(text: str) -> Any:
    """The JSON document in the CLI's output (it may print notices after it)."""
    found, _ = json.JSONDecoder().raw_decode(text, text.index("{"))
    return found


def test_task_master_reads_the_export(tmp_path: Path) -> None:
    binary = task_master()
    project = tmp_path / "project"
    (project / ".taskmaster" / "tasks").mkdir(parents=True)
    shutil.copy(DATA, project / ".taskmaster" / "tasks" / "tasks.json")
    (project / ".taskmaster" / "config.json").write_text(
        json.dumps({"global": {"anonymousTelemetry": False}}), encoding="utf-8"
    )
    home = tmp_path / ".taskorch"
    imported = json.loads(ok(taskorch("task", "import", str(project), "--json", home=home)))
    [login] = [t for t in imported["tasks"] if t["title"] == "Add login"]
    ok(taskorch("process", login["ref"], "--agent", "sim", home=home))
    ok(taskorch("task", "export", str(project), home=home))

    # Each task-master start costs seconds of CPU: the three reads run at once.
    calls = [
        ("list", "--tag", "feature-auth", "--json", "--with-subtasks"),
        *(("validate-dependencies", "--tag", tag) for tag in ("master", "feature-auth")),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        listing, *reports = pool.map(lambda args: run_task_master(binary, project, *args), calls)
    listed = as_json(listing)
    assert [(t["id"], t["status"]) for t in listed["tasks"]] in (
        [(1, "done"), (2, "blocked")],
        [("1", "done"), ("2", "blocked")],
    )
    for report in reports:
        assert "All Dependencies Are Valid" in report
