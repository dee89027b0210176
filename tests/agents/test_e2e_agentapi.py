"""Done when (1): a fake agentapi server on 127.0.0.1, registered; ``taskorch run "Add unit
tests for the billing module" --repo DEMO_REPO`` runs the subtask through the agentapi adapter
end to end and the workflow reaches ``merged``."""

from __future__ import annotations

import json
from pathlib import Path

from agents.e2e import (
    REQUIREMENT,
    TESTS_FILE,
    agents_by_name,
    base_branch_files,
    demo_repo,
    routing_of,
    taskorch,
    write_tests_hook,
)
from agents.fake_agentapi import FakeAgentApi
from taskorch.settings import default_worktrees_root


def test_run_goes_through_a_registered_agentapi_agent_to_merged(
    database_url: str, tmp_path: Path
) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    with FakeAgentApi(hook=write_tests_hook, duration_s=0.3) as fake:
        added = taskorch(
            home, "agents", "add", "api-1", "--type", "claude-code", "--url", fake.base_url,
            database_url=database_url,
        )  # fmt: skip
        assert "registered api-1" in added
        final = json.loads(
            taskorch(
                home, "run", REQUIREMENT, "--repo", str(repo), "--json", database_url=database_url
            )
        )

        assert final["state"] == "merged"
        [subtask] = final["subtasks"]
        assert (subtask["agent"], subtask["status"], subtask["attempts"]) == (
            "api-1",
            "completed",
            1,
        )
        # The instructions told the agent (which runs wherever its server started) where to work.
        [message] = fake.user_messages
        assert message.startswith("Working directory: ")
        where = default_worktrees_root(home) / final["workflow_id"]
        assert f"{where}/" in message.splitlines()[0]
        assert REQUIREMENT in message

    assert TESTS_FILE in base_branch_files(repo)  # merged into the base branch
    choice = routing_of(final)[subtask["key"]]
    assert choice["agent"] == "api-1"
    assert set(choice["parts"]) == {
        "capability", "language", "load", "success", "latency", "exploration",
    }  # fmt: skip
    record = agents_by_name(home, database_url)["api-1"]["track_record"]
    assert (record["attempts"], record["successes"]) == (1, 1)
    assert record["mean_s"] > 0
