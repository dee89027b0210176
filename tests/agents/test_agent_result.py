"""An agent's result as stored on its subtask: the pull request summary reads the usage from it."""

from __future__ import annotations

from taskorch.agents.base import AgentResult


def test_stored_result_carries_the_agents_tokens_and_cost() -> None:
    result = AgentResult(True, "done", {"session_id": "s1"}, 26_116, 30, 0.1044)
    assert result.to_json() == {
        "success": True,
        "output": "done",
        "session_id": "s1",
        "tokens_in": 26_116,
        "tokens_out": 30,
        "cost_usd": 0.1044,
    }


def test_stored_result_leaves_out_usage_an_agent_did_not_report() -> None:
    assert AgentResult(True, "ok").to_json() == {"success": True, "output": "ok"}
