"""``taskorch gc``: old finished workflows' leftovers go; unmerged work and the records stay."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fakes.cli import ok, taskorch
from fakes.origins import bare_origin, git, url
from web.served import Served, wait_for

TEXT = "Fix bug in dashboard/server/index.js line 42"


def _run(home: Path, origin: Path, *extra: str) -> str:
    args = ["--repo", url(origin), "--agent", "sim", *extra]
    out = ok(taskorch("run", TEXT, *args, "--json", home=home))
    return str(json.loads(out)["workflow_id"])


def test_gc_removes_logs_events_and_merged_branches_never_unmerged_work(tmp_path: Path) -> None:
    origin = bare_origin(tmp_path)
    home = tmp_path / ".taskorch"
    merged = _run(home, origin)
    rejected = _run(home, origin, "--merge", "approve")
    ok(taskorch("reject", rejected, "--reason", "not now", home=home))
    logs = home / "logs" / "tasks"
    assert any(logs.glob(f"{merged}-*.json"))
    assert rejected in (home / "events.jsonl").read_text()
    files = home / "workflows"
    # Each command wrote its workflow's files before it exited: the reject too (its report).
    assert "- outcome: merged" in (files / merged / "report.md").read_text()
    assert "- why: rejected: not now" in (files / rejected / "report.md").read_text()

    assert (
        json.loads(ok(taskorch("gc", "--older-than", "1h", "--json", home=home)))["workflows"] == []
    )  # nothing is that old yet
    dry = json.loads(ok(taskorch("gc", "--older-than", "0s", "--dry-run", "--json", home=home)))
    assert sorted(dry["workflows"]) == sorted([merged, rejected])
    assert any(logs.glob(f"{merged}-*.json"))  # a dry run removes nothing
    assert dry["workflow_files"] == 2
    assert (files / merged).is_dir()

    report = json.loads(ok(taskorch("gc", "--older-than", "0s", "--json", home=home)))
    assert sorted(report["workflows"]) == sorted([merged, rejected])
    assert report["task_logs"] >= 2
    assert report["problems"] == []
    assert not list(logs.glob("*.json"))
    assert report["workflow_files"] == 2
    assert not (files / merged).exists()
    assert not (files / rejected).exists()
    assert merged not in (home / "events.jsonl").read_text()
    branches = git(origin, "branch", "--format=%(refname:short)")
    assert f"taskorch/{rejected}/main" in branches  # rejected work is never deleted
    assert f"taskorch/{merged}/" not in branches
    # The records stay, and a second pass finds nothing left to do.
    assert json.loads(ok(taskorch("status", merged, "--json", home=home)))["state"] == "merged"
    again = json.loads(ok(taskorch("gc", "--older-than", "0s", "--json", home=home)))
    assert again["workflows"] == []


def test_a_bad_age_is_one_line(tmp_path: Path) -> None:
    result = taskorch("gc", "--older-than", "soon", home=tmp_path / ".taskorch")
    assert result.returncode == 1
    assert result.stderr.startswith("error: --older-than 'soon' is not a duration")
    assert len(result.stderr.strip().splitlines()) == 1


def test_serve_collects_with_its_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    origin = bare_origin(tmp_path)
    home = tmp_path / ".taskorch"
    merged = _run(home, origin)
    monkeypatch.setenv("TASKORCH_GC_OLDER_THAN", "0s")
    served = Served.start(home)
    try:
        wait_for("serve to collect the finished workflow", lambda: _collected(home, merged))
    finally:
        code, _, err = served.stop()
    assert code == 0, err
    # Its log line is not waited for: a stop cuts a pass short, and the next pass redoes it.
    assert not any((home / "logs" / "tasks").glob(f"{merged}-*.json"))


def _collected(home: Path, workflow_id: str) -> bool | None:
    left = json.loads(ok(taskorch("gc", "--older-than", "0s", "--dry-run", "--json", home=home)))
    return workflow_id not in left["workflows"] or None


def test_a_bad_gc_setting_is_one_line(tmp_path: Path) -> None:
    result = taskorch(
        "status", home=tmp_path / ".taskorch", extra_env={"TASKORCH_GC_OLDER_THAN": "weekly"}
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid setting TASKORCH_GC_OLDER_THAN='weekly'")
