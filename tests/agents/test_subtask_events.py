"""Subtask-level events beside the workflow's transitions (submitted, validated, routed with the
agent and its score, assigned, started, complete), and a quality score per attempt: in the
result, the task log and ``status``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from agents.test_routed_pipeline import sim_agent
from taskorch.domain.models import NewTask, Subtask
from taskorch.domain.plan import Domain, WorkerType
from taskorch.engine.setup import agents_for_run, open_engine
from taskorch.runtime.quality import attempt_quality
from taskorch.settings import load_settings

SIMPLE = "Fix bug in dashboard/server/index.js line 42"
LIFECYCLE = [
    "task:submitted",
    "task:validated",
    "task:routed",
    "task:assigned",
    "task:started",
    "task:complete",
]


async def test_each_subtask_is_submitted_validated_routed_assigned_started_and_completed(
    tmp_path: Path,
) -> None:
    settings = load_settings(taskorch_home=tmp_path / ".taskorch")
    async with open_engine(settings) as engine:
        await engine.add_agent(sim_agent("dev", ["development"]))
        pool = await agents_for_run(engine, "auto")
        seen = engine.events.subscribe()
        task = await engine.add_task(NewTask.create(SIMPLE))
        status = await engine.process_task(task.id, agents=pool, options={"agent": "auto"})
        records: list[dict[str, Any]] = []
        while not seen.empty():
            records.append(seen.get_nowait())

    assert status.state == "merged"
    for sub in status.subtasks:
        mine = [r for r in records if r.get("key") == sub.key and r["event"] in LIFECYCLE]
        assert [r["event"] for r in mine] == LIFECYCLE, sub.key
        routed = mine[2]
        assert routed["agent"] == sub.agent_id
        assert 0 < routed["score"] <= 1.2
        assert routed["reason"].startswith(f"{sub.agent_id}: score ")
        assert (mine[3]["agent"], mine[3]["attempt"]) == (sub.agent_id, 1)
        assert 0 < mine[5]["quality"] <= 1
    [first] = [s for s in status.to_dict()["subtasks"] if s["key"] == status.subtasks[0].key]
    assert first["quality"] == status.subtasks[0].result["quality"]["score"]  # type: ignore[index]
    log = json.loads(
        (settings.home / "logs" / "tasks" / f"{status.workflow.id}-{first['key']}.json").read_text()
    )
    assert [a["quality"] for a in log["attempts"]] == [first["quality"]]


def subtask(files: list[str]) -> Subtask:
    return Subtask.model_validate(
        {
            "id": 1,
            "workflow_id": "wf",
            "key": "k-001",
            "title": "Add tests",
            "assigned_to": Domain.DEVELOPMENT,
            "worker_type": WorkerType.TEST,
            "files_affected": files,
            "created_at": "2026-01-01T00:00:00Z",
            "updated_at": "2026-01-01T00:00:00Z",
        }
    )


def test_the_quality_score_is_the_share_of_checks_passed() -> None:
    scoped = subtask(["tests/test_a.py"])
    good = attempt_quality(
        scoped, True, "Added tests; 3 passed", {"changed_files": ["tests/test_a.py"]}
    )
    assert (good.score, good.checks["in_scope"]) == (1.0, 1.0)
    wide = attempt_quality(
        scoped, True, "Added tests", {"changed_files": ["tests/test_a.py", "src/a.py"]}
    )
    assert (wide.checks["in_scope"], wide.score) == (0.5, 0.9)
    failing = attempt_quality(subtask([]), True, "Done, but 2 tests failed", {})
    assert (failing.checks["no_failure_reported"], failing.score) == (0.0, 0.67)
    assert attempt_quality(scoped, False, "boom", {}).score == 0.0
