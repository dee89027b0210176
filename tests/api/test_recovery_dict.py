"""``ErrorRecoveryManager.register_recovery_strategy`` with the specification's dict: validated at
registration, the custom class spotted in what the agent said, the action told the workflow id and
context; plugins load by setting and by entry point."""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.models import Subtask
from taskorch.domain.plan import Domain, WorkerType
from taskorch.domain.retry import RetryDecision
from taskorch.engine.recovery_plugins import recovery_manager
from taskorch.runtime.recovery import ErrorRecoveryManager
from taskorch.runtime.recovery_strategies import RecoveryContext


def subtask() -> Subtask:
    now = datetime.now(UTC)
    return Subtask(
        id=7,
        workflow_id="wf-abc",
        key="api-001-build",
        title="Build the API",
        assigned_to=Domain.DEVELOPMENT,
        worker_type=WorkerType.IMPLEMENTATION,
        agent_id="claude-1",
        created_at=now,
        updated_at=now,
    )


async def test_the_specifications_dict_runs_its_action_with_the_workflow_id_and_context() -> None:
    seen: list[tuple[str, RecoveryContext]] = []

    async def recovery_action(workflow_id: str, context: RecoveryContext) -> None:
        seen.append((workflow_id, context))

    manager = ErrorRecoveryManager(seed=1)
    manager.register_recovery_strategy(
        "CUSTOM_ERROR",
        {
            "name": "Custom Recovery",
            "max_attempts": 3,
            "base_delay": 1000,
            "recovery_action": recovery_action,
        },
    )
    error = manager.classify(AgentError("claude-1 exited 2: CUSTOM_ERROR: disk quota"))
    assert error.error_class == "CUSTOM_ERROR"
    first = await manager.recover(error, 1, subtask())
    assert first.retry
    assert 0.9 <= first.delay_s <= 1.1  # base_delay is the specification's milliseconds
    last = await manager.recover(error, 3, subtask())
    assert not last.retry
    assert last.reason == "all 3 attempts used"
    assert [(w, c.attempt) for w, c in seen] == [("wf-abc", 1), ("wf-abc", 3)]
    context = seen[0][1]
    assert context.subtask.key == "api-001-build"
    assert context.error is error
    assert context.to_json()["agent_id"] == "claude-1"


async def test_an_action_can_give_up_or_decide_and_a_failing_action_ends_the_retries() -> None:
    manager = ErrorRecoveryManager()
    answers: list[Any] = [False, RetryDecision(True, 42.0, reason="mine")]

    def action(workflow_id: str, context: RecoveryContext) -> Any:
        return answers.pop(0)

    manager.register_recovery_strategy("QUOTA", {"recoveryAction": action, "maxAttempts": 5})
    error = AgentError("x", error_class="QUOTA")
    assert (await manager.recover(error, 1, subtask())).reason == (
        "recovery action 'QUOTA' gave up"
    )
    assert (await manager.recover(error, 1, subtask())).delay_s == 42.0

    def broken(workflow_id: str, context: RecoveryContext) -> None:
        raise RuntimeError("no")

    manager.register_recovery_strategy("QUOTA", {"recovery_action": broken})
    decision = await manager.recover(error, 1, subtask())
    assert not decision.retry
    assert decision.reason == "recovery action 'QUOTA' failed: RuntimeError"


@pytest.mark.parametrize(
    ("strategy", "message"),
    [
        ({"max_attempts": "3"}, "max_attempts must be a whole number, got '3'"),
        ({"max_attempts": 0}, "retry max_attempts must be >= 1, got 0"),
        ({"base_delay": -5}, "base_delay must be a finite number >= 0, got -5"),
        ({"base_delay": 10, "base_delay_s": 1}, "give base_delay (ms) or base_delay_s"),
        ({"recovery_action": "restart"}, "recovery_action must be a function"),
        ({"retries": 3}, "unknown key 'retries'"),
        ({"match": "("}, "match is not a regular expression"),
    ],
)
def test_a_bad_dict_is_a_one_line_error_at_registration(
    strategy: dict[str, Any], message: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        ErrorRecoveryManager().register_recovery_strategy("CUSTOM_ERROR", strategy)
    assert raised.value.message.startswith("recovery strategy 'CUSTOM_ERROR': ")
    assert message in raised.value.message
    assert "\n" not in raised.value.message


def test_a_custom_class_is_spotted_by_name_code_or_pattern_but_not_inside_other_words() -> None:
    manager = ErrorRecoveryManager()
    manager.register_recovery_strategy("CUSTOM_ERROR", {})
    manager.register_recovery_strategy("flaky_tests", {"match": r"\d+ tests? flaked"})
    assert manager.classify(AgentError("MY_CUSTOM_ERROR_2")).error_class == "agent"
    assert manager.classify(AgentError("3 tests flaked")).error_class == "flaky_tests"

    class Coded(Exception):
        code = "CUSTOM_ERROR"

    assert manager.classify(Coded("boom")).error_class == "CUSTOM_ERROR"
    # taskorch's own classes (a deadline) are never re-read from the text
    assert manager.classify(TimeoutError("CUSTOM_ERROR")).error_class == "timeout"
    # registering a built-in class by dict changes its policy, not what counts as one
    manager.register_recovery_strategy("network", {"max_attempts": 1})
    assert manager.classify(AgentError("the network said no")).error_class == "agent"
    assert manager.policy_for("network").max_attempts == 1


def test_plugins_load_from_the_setting_and_entry_points(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "recovery_plugin_a.py").write_text(
        "def register(manager):\n"
        "    manager.register_recovery_strategy('A_ERROR', {'name': 'from the setting'})\n"
    )
    (tmp_path / "recovery_plugin_b.py").write_text(
        "def register(manager):\n"
        "    manager.register_recovery_strategy('B_ERROR', {'name': 'from an entry point'})\n"
    )
    dist = tmp_path / "recovery_plugin_b-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: recovery-plugin-b\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[taskorch.recovery]\nb = recovery_plugin_b:register\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    manager = recovery_manager("recovery_plugin_a:register")
    names = {s["error_type"]: s["name"] for s in manager.strategies()}
    assert names == {"A_ERROR": "from the setting", "B_ERROR": "from an entry point"}


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("no_such_module_xyz:register", "cannot import 'no_such_module_xyz'"),
        ("json", "is not 'package.module:function'"),
        ("json:no_such_function", "'json' has no 'no_such_function'"),
        ("json:__name__", "is not a function taking the ErrorRecoveryManager"),
        ("json:dumps", "recovery plugin json:dumps failed: TypeError"),
    ],
)
def test_a_bad_plugin_setting_is_a_one_line_error(setting: str, message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        recovery_manager(setting)
    assert message in raised.value.message
    assert "\n" not in raised.value.message
    assert "no_such_module_xyz" not in sys.modules


def test_a_bad_plugin_setting_stops_the_cli_at_start_in_one_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from taskorch.cli.main import invoke

    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path / ".taskorch"))
    monkeypatch.delenv("DATABASE_URL", raising=False)
    monkeypatch.setenv("TASKORCH_RECOVERY_STRATEGIES", "no_such_plugin_abc:register")
    assert invoke(["worker", "--once"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: invalid setting TASKORCH_RECOVERY_STRATEGIES: cannot import")
    assert err.count("\n") == 1


async def test_every_worker_the_engine_builds_has_the_plugins_strategies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``run``/``process``/``batch`` and ``resume`` build their worker with ``create_worker``,
    as ``serve`` and ``worker`` do (tested end to end in test_recovery_plugins)."""
    from taskorch.agents.sim import SimAgent
    from taskorch.engine import OrchestrationEngine
    from taskorch.settings import load_settings

    (tmp_path / "recovery_plugin_c.py").write_text(
        "def register(manager):\n"
        "    manager.register_recovery_strategy('C_ERROR', {'max_attempts': 4})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    settings = load_settings(
        taskorch_home=tmp_path / "home", recovery_strategies="recovery_plugin_c:register"
    )
    engine = OrchestrationEngine(settings)
    worker = engine.create_worker({None: SimAgent()})
    assert worker.recovery is engine.recovery
    assert worker.recovery.policy_for("C_ERROR").max_attempts == 4
    assert engine.create_worker({None: SimAgent()}).recovery is worker.recovery
