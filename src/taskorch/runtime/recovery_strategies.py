"""Custom recovery strategies: the specification's dict form, what a recovery action is told, and
how an error comes to belong to a custom class.

The specification registers a strategy as a dict::

    manager.register_recovery_strategy("CUSTOM_ERROR", {
        "name": "Custom Recovery", "max_attempts": 3, "base_delay": 1000,
        "recovery_action": fix_things,       # fix_things(workflow_id, context), sync or async
    })

:func:`strategy_from_dict` validates it at once (a bad dict is a one-line :class:`ConfigError`
naming the key, never a ``TypeError`` when an error later arrives). ``base_delay`` is in the
specification's milliseconds; ``base_delay_s`` is taskorch's seconds; camelCase keys
(``maxAttempts``, ``baseDelay``, ``recoveryAction``) are accepted as the specification wrote them.

An error belongs to a custom class when the agent names the class (the word ``CUSTOM_ERROR`` in
what it printed, or an exception whose ``code`` or ``error_class`` is it) or when the strategy's
``match`` pattern finds its message. The action runs on every failure of its class, before the
retry decision: it returns nothing (the strategy's retry policy decides), ``False`` (give up
now), ``True`` (the policy decides) or a :class:`RetryDecision` of its own.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.models import Subtask
from taskorch.domain.retry import ErrorClass, RetryDecision, RetryPolicy


@dataclass(frozen=True, slots=True)
class RecoveryContext:
    """What a recovery action is told about the failure it is asked to recover from."""

    workflow_id: str
    subtask_id: int
    subtask_key: str
    subtask_title: str
    agent_id: str | None
    error_class: str
    error_message: str
    attempt: int
    """The agent's tries so far, the failed one included (1 on the first failure)."""
    max_attempts: int
    subtask: Subtask
    error: AgentError

    def to_json(self) -> dict[str, Any]:
        return {
            "workflow_id": self.workflow_id,
            "subtask_id": self.subtask_id,
            "subtask_key": self.subtask_key,
            "subtask_title": self.subtask_title,
            "agent_id": self.agent_id,
            "error_class": self.error_class,
            "error_message": self.error_message,
            "attempt": self.attempt,
            "max_attempts": self.max_attempts,
        }


ActionAnswer = RetryDecision | bool | None
RecoveryAction = Callable[[str, RecoveryContext], ActionAnswer | Awaitable[ActionAnswer]]
"""``action(workflow_id, context)``, a plain function or a coroutine function."""


@dataclass(frozen=True, slots=True)
class CustomRecovery:
    """A registered strategy for one error class: its retry policy, action and how to spot it."""

    error_type: str
    name: str
    policy: RetryPolicy
    action: RecoveryAction | None = None
    match: re.Pattern[str] | None = None

    def claims(self, error: BaseException, message: str) -> bool:
        """Whether ``error`` (shown as ``message``) belongs to this strategy's class."""
        for attribute in ("code", "error_class"):
            if getattr(error, attribute, None) == self.error_type:
                return True
        if self.match is not None:
            return self.match.search(message) is not None
        if self.error_type in _BUILT_IN:
            return False  # "network" in a message is no sign of anything
        return _named(self.error_type).search(message) is not None

    def describe(self) -> dict[str, Any]:
        return {
            "error_type": self.error_type,
            "name": self.name,
            "max_attempts": self.policy.max_attempts,
            "base_delay_s": self.policy.base_delay_s,
            "action": _callable_name(self.action) if self.action else None,
            "match": self.match.pattern if self.match else None,
        }


_BUILT_IN = frozenset(c.value for c in ErrorClass)
_KEYS = {
    "name": "name",
    "max_attempts": "max_attempts",
    "maxattempts": "max_attempts",
    "base_delay": "base_delay_ms",
    "basedelay": "base_delay_ms",
    "base_delay_ms": "base_delay_ms",
    "base_delay_s": "base_delay_s",
    "max_delay_s": "max_delay_s",
    "factor": "factor",
    "backoff_factor": "factor",
    "jitter": "jitter",
    "reassign": "reassign",
    "recovery_action": "action",
    "recoveryaction": "action",
    "action": "action",
    "match": "match",
}
DEFAULT_MAX_ATTEMPTS = 3
DEFAULT_BASE_DELAY_S = 1.0
DEFAULT_MAX_DELAY_S = 300.0


def strategy_from_dict(error_type: str, given: Mapping[str, Any]) -> CustomRecovery:
    """A validated strategy from the specification's dict (see the module docstring)."""
    where = f"recovery strategy {error_type!r}"
    values: dict[str, Any] = {}
    for key, value in given.items():
        field = _KEYS.get(str(key).lower().replace("-", "_"))
        if field is None:
            known = "name, max_attempts, base_delay (ms), base_delay_s, max_delay_s, factor, "
            known += "jitter, reassign, recovery_action, match"
            raise ConfigError(f"{where}: unknown key {key!r}; known keys: {known}")
        values[field] = value
    if "base_delay_ms" in values and "base_delay_s" in values:
        raise ConfigError(f"{where}: give base_delay (ms) or base_delay_s (seconds), not both")
    name = values.get("name", error_type)
    if not isinstance(name, str) or not name.strip():
        raise ConfigError(f"{where}: name must be a non-empty string")
    base_s = (
        _number(where, "base_delay", values["base_delay_ms"]) / 1000
        if "base_delay_ms" in values
        else _number(where, "base_delay_s", values.get("base_delay_s", DEFAULT_BASE_DELAY_S))
    )
    attempts = values.get("max_attempts", DEFAULT_MAX_ATTEMPTS)
    if isinstance(attempts, bool) or not isinstance(attempts, int):
        raise ConfigError(f"{where}: max_attempts must be a whole number, got {attempts!r}")
    reassign = values.get("reassign", False)
    if not isinstance(reassign, bool):
        raise ConfigError(f"{where}: reassign must be true or false, got {reassign!r}")
    max_delay = _number(where, "max_delay_s", values.get("max_delay_s", DEFAULT_MAX_DELAY_S))
    try:
        policy = RetryPolicy(
            attempts,
            base_s,
            _number(where, "factor", values.get("factor", 2.0)),
            max(max_delay, base_s),
            _number(where, "jitter", values.get("jitter", 0.1)),
            reassign,
        )
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc.message}") from None
    action = values.get("action")
    if action is not None and not callable(action):
        raise ConfigError(
            f"{where}: recovery_action must be a function (workflow_id, context), "
            f"got {type(action).__name__}"
        )
    return CustomRecovery(error_type, name.strip(), policy, action, _pattern(where, values))


def _number(where: str, key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{where}: {key} must be a number, got {value!r}")
    if value != value or value in (float("inf"), float("-inf")) or value < 0:
        raise ConfigError(f"{where}: {key} must be a finite number >= 0, got {value!r}")
    return float(value)


def _pattern(where: str, values: Mapping[str, Any]) -> re.Pattern[str] | None:
    given = values.get("match")
    if given is None:
        return None
    if isinstance(given, re.Pattern):
        return given
    if not isinstance(given, str) or not given:
        raise ConfigError(f"{where}: match must be a regular expression (a string)")
    try:
        return re.compile(given)
    except re.error as exc:
        raise ConfigError(f"{where}: match is not a regular expression: {exc}") from None


def _named(error_type: str) -> re.Pattern[str]:
    return re.compile(rf"(?<![A-Za-z0-9_]){re.escape(error_type)}(?![A-Za-z0-9_])")


def _callable_name(action: object) -> str:
    module = getattr(action, "__module__", None) or "?"
    return f"{module}:{getattr(action, '__qualname__', type(action).__name__)}"
