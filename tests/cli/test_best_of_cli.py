"""``--best-of`` and ``--best-of-retry``: stored with the workflow's options, checked at parse
time, and each candidate shown under its subtask by ``status``."""

from __future__ import annotations

import pytest

from taskorch.cli.carry import start_options
from taskorch.cli.main import invoke
from taskorch.cli.workflows import candidate_lines
from taskorch.engine.agents import AgentPool


def test_the_options_are_stored_with_the_workflow() -> None:
    pool = AgentPool({}, mode="auto")
    options = start_options(pool, {"repo": "/r"}, None, None, best_of=3, best_of_retry=2)
    assert options == {"agent": "auto", "repo": "/r", "best_of": 3, "best_of_retry": 2}
    assert "best_of" not in start_options(pool, {}, None, None, best_of=1)


@pytest.mark.parametrize("value", ["0", "6"])
def test_a_count_out_of_range_is_a_one_line_usage_error(
    value: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert invoke(["run", "Fix bug in src/app.py", "--best-of", value]) == 2
    err = capsys.readouterr().err
    assert "--best-of" in err
    assert "Traceback" not in err


def test_status_shows_each_candidate_with_its_cost_and_reason() -> None:
    race = {
        "n": 2,
        "winner": 2,
        "candidates": [
            {"number": 1, "agent": "quick", "state": "rejected", "cost_usd": 0.01, "reason": "x"},
            {"number": 2, "agent": None, "state": "won", "cost_usd": None, "reason": ""},
        ],
    }
    assert candidate_lines(race, "sim") == [
        "best of 2: candidate 2 merged",
        "#1 quick  rejected  $0.0100  x",
        "#2 sim  won  cost unknown",
    ]
    assert candidate_lines(None, "sim") == []
