"""Done when (3): the fake agentapi server is killed mid-subtask; the attempt ends with a
classified error, the subtask is retried, reassigned to the other registered agent (a CLI agent),
and the workflow still reaches ``merged``."""

from __future__ import annotations

import json
import time
from pathlib import Path

from agents.e2e import (
    CLI_TIMEOUT_S,
    REQUIREMENT,
    agents_by_name,
    base_branch_files,
    cli_agent_command,
    demo_repo,
    routing_of,
    start_taskorch,
    taskorch,
)
from agents.fake_agentapi import FakeAgentApi


def test_killing_the_agentapi_server_mid_subtask_reassigns_to_the_other_agent(
    tmp_path: Path,
) -> None:
    repo = demo_repo(tmp_path)
    home = tmp_path / ".taskorch"
    fake = FakeAgentApi(hang=True)  # works on the subtask until it dies
    fake.start()
    try:
        # Same type, same capabilities: routing breaks the tie by name, so api-1 goes first.
        taskorch(home, "agents", "add", "api-1", "--type", "claude-code", "--url", fake.base_url)
        taskorch(
            home, "agents", "add", "cli-1", "--type", "claude-code",
            "--command", cli_agent_command(tmp_path),
        )  # fmt: skip
        run = start_taskorch(home, "run", REQUIREMENT, "--repo", str(repo), "--json")
        deadline = time.monotonic() + CLI_TIMEOUT_S
        # Mid-subtask: the message was accepted and the adapter follows the turn's events.
        while not (fake.user_messages and fake.streams_opened) and run.poll() is None:
            assert time.monotonic() < deadline, "the subtask never reached the agentapi agent"
            time.sleep(0.05)
        assert fake.status == "running"
        fake.kill()
        stdout, stderr = run.communicate(timeout=CLI_TIMEOUT_S)
    finally:
        fake.stop()

    assert "Traceback" not in stderr, stderr
    assert run.returncode == 0, stderr
    final = json.loads(stdout)
    assert final["state"] == "merged"
    [subtask] = final["subtasks"]
    assert routing_of(final)[subtask["key"]]["agent"] == "api-1"  # first choice
    assert (subtask["agent"], subtask["attempts"], subtask["status"]) == ("cli-1", 2, "completed")
    assert "tests/test_billing_cli.py" in base_branch_files(repo)

    events = [json.loads(line) for line in (home / "events.jsonl").read_text().splitlines()]
    [retry] = [e for e in events if e.get("event") == "task:retry"]
    assert retry["agent"] == "api-1"
    assert retry["reassigned_to"] == "cli-1"
    assert retry["error_class"] == "network"  # classified: the server stopped answering

    agents = agents_by_name(home)
    failed, succeeded = agents["api-1"]["track_record"], agents["cli-1"]["track_record"]
    assert (failed["attempts"], failed["successes"]) == (1, 0)
    assert failed["last_error"].startswith("network: agentapi at ")
    assert "stopped answering" in failed["last_error"]
    assert (succeeded["attempts"], succeeded["successes"]) == (1, 1)
