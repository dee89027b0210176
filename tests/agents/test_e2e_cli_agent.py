"""Done when (2): the same run through a registered fake CLI agent script, to ``merged``."""

from __future__ import annotations

import json
from pathlib import Path

from agents.e2e import (
    REQUIREMENT,
    agents_by_name,
    base_branch_files,
    cli_agent_command,
    demo_repo,
    routing_of,
    taskorch,
)


def test_run_goes_through_a_registered_cli_agent_to_merged(tmp_path: Path) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    taskorch(home, "agents", "add", "cli-1", "--command", cli_agent_command(tmp_path))
    final = json.loads(taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json"))

    assert final["state"] == "merged"
    [subtask] = final["subtasks"]
    assert (subtask["agent"], subtask["attempts"]) == ("cli-1", 1)
    assert "tests/test_billing_cli.py" in base_branch_files(repo)
    assert routing_of(final)[subtask["key"]]["agent"] == "cli-1"
    assert agents_by_name(home)["cli-1"]["track_record"]["successes"] == 1

    shown = taskorch(home, "status", final["workflow_id"])
    assert "agent cli-1" in shown
    assert "routed to cli-1: score" in shown
    assert "fit: capability " in shown
