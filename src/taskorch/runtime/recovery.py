"""``ErrorRecoveryManager``: classifies an attempt's error and decides what happens next.

The decision itself is :func:`taskorch.domain.retry.decide` (pure); this adds the table of policies
per error class, custom strategies registered by users (a :class:`RetryPolicy`, a function, or the
specification's dict with a recovery action: :mod:`taskorch.runtime.recovery_strategies`), a time
scale for tests and demos, and the random draw for jitter.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from taskorch.domain.errors import (
    AgentError,
    ConfigError,
    DatabaseUnavailableError,
    WorkspaceError,
)
from taskorch.domain.models import Subtask
from taskorch.domain.retry import (
    DEFAULT_POLICIES,
    ErrorClass,
    RetryDecision,
    RetryPolicy,
    decide,
    with_overrides,
)
from taskorch.runtime.recovery_strategies import (
    CustomRecovery,
    RecoveryContext,
    strategy_from_dict,
)

log = logging.getLogger(__name__)

CustomStrategy = Callable[[AgentError, int], RetryDecision]
"""(error, attempt number) -> decision, for cases a policy cannot express."""
ACTION_TIMEOUT_S = 60.0
"""How long a recovery action may take: the attempt's lease is not renewed meanwhile."""
_NOT_RECLASSIFIED = frozenset({ErrorClass.TIMEOUT, ErrorClass.ZOMBIE, ErrorClass.HOST})
"""Classes taskorch itself gives (a deadline, a lost lease, this host), never the agent's words."""


class ErrorRecoveryManager:
    def __init__(
        self,
        *,
        time_scale: float = 1.0,
        seed: int | None = None,
        max_attempts: int | None = None,
        base_delay_s: float | None = None,
    ) -> None:
        """``max_attempts`` and ``base_delay_s`` (``RETRY_ATTEMPTS``, ``RETRY_DELAY``) replace the
        defaults of every error class that is retried (see :func:`with_overrides`)."""
        defaults = with_overrides(DEFAULT_POLICIES, max_attempts, base_delay_s)
        self._policies: dict[str, RetryPolicy] = {
            cls.value: policy.scaled(time_scale) for cls, policy in defaults.items()
        }
        self._custom: dict[str, CustomStrategy] = {}
        self._strategies: dict[str, CustomRecovery] = {}
        self._time_scale = time_scale
        self._random = random.Random(seed)

    def register_recovery_strategy(
        self,
        error_type: str | ErrorClass,
        strategy: RetryPolicy | CustomStrategy | CustomRecovery | Mapping[str, Any],
    ) -> None:
        """Use ``strategy`` for errors of class ``error_type`` (a known class or a new one):
        a :class:`RetryPolicy`, a function ``(error, attempt) -> RetryDecision``, or the
        specification's dict ``{name, max_attempts, base_delay, recovery_action}`` (validated
        now: a bad one is a :class:`ConfigError` naming the key)."""
        key = str(error_type).strip()
        if not key:
            raise ConfigError("a recovery strategy needs an error type (e.g. 'CUSTOM_ERROR')")
        if isinstance(strategy, Mapping):
            strategy = strategy_from_dict(key, strategy)
        self._custom.pop(key, None)
        self._strategies.pop(key, None)
        if isinstance(strategy, RetryPolicy):
            self._policies[key] = strategy.scaled(self._time_scale)
        elif isinstance(strategy, CustomRecovery):
            self._policies[key] = strategy.policy.scaled(self._time_scale)
            self._strategies[key] = strategy
        elif callable(strategy):
            self._custom[key] = strategy
        else:
            raise ConfigError(
                f"recovery strategy {key!r}: give a dict, a RetryPolicy or a function, "
                f"not {type(strategy).__name__}"
            )

    def strategies(self) -> list[dict[str, Any]]:
        """The strategies registered beside the built-in policies (what plugins added)."""
        return [s.describe() for s in self._strategies.values()] + [
            {"error_type": key, "name": getattr(fn, "__qualname__", "function")}
            for key, fn in self._custom.items()
        ]

    def policy_for(self, error_class: str) -> RetryPolicy:
        return self._policies.get(error_class, self._policies[ErrorClass.AGENT.value])

    def classify(self, error: BaseException) -> AgentError:
        """Every failure as an :class:`AgentError` with a class; unknown errors are agent errors;
        an error a registered strategy claims (its code named, its ``match``) is of its class."""
        found = _built_in_class(error)
        if found.error_class in _NOT_RECLASSIFIED:
            return found
        for strategy in self._strategies.values():
            if strategy.claims(error, found.message):
                if found.error_class == strategy.error_type:
                    return found
                custom = AgentError(
                    found.message,
                    error_class=strategy.error_type,
                    retry_after_s=found.retry_after_s,
                )
                return custom.with_usage(found.tokens_in, found.tokens_out, found.cost_usd)
        return found

    def decide(self, error: AgentError, attempt: int) -> RetryDecision:
        custom = self._custom.get(error.error_class)
        if custom is not None:
            return custom(error, attempt)
        return decide(
            self.policy_for(error.error_class),
            attempt,
            retryable=error.retryable,
            retry_after_s=error.retry_after_s,
            draw=self._random.random(),
        )

    async def recover(self, error: AgentError, attempt: int, subtask: Subtask) -> RetryDecision:
        """:meth:`decide`, after running the recovery action of the error's strategy, if any,
        with the workflow id and a :class:`RecoveryContext`. An action that raises or takes
        longer than :data:`ACTION_TIMEOUT_S` ends the retries, with its error as the reason."""
        strategy = self._strategies.get(error.error_class)
        if strategy is None or strategy.action is None:
            return self.decide(error, attempt)
        context = RecoveryContext(
            workflow_id=subtask.workflow_id,
            subtask_id=subtask.id,
            subtask_key=subtask.key,
            subtask_title=subtask.title,
            agent_id=subtask.agent_id,
            error_class=error.error_class,
            error_message=error.message,
            attempt=attempt,
            max_attempts=strategy.policy.max_attempts,
            subtask=subtask,
            error=error,
        )
        try:
            async with asyncio.timeout(ACTION_TIMEOUT_S):
                answer = strategy.action(subtask.workflow_id, context)
                if inspect.isawaitable(answer):
                    answer = await answer
        except Exception as exc:
            log.warning("recovery action of %r failed: %s", strategy.name, exc)
            return RetryDecision(
                False, reason=f"recovery action {strategy.name!r} failed: {type(exc).__name__}"
            )
        if isinstance(answer, RetryDecision):
            return answer
        if answer is False:
            return RetryDecision(False, reason=f"recovery action {strategy.name!r} gave up")
        return self.decide(error, attempt)


def _built_in_class(error: BaseException) -> AgentError:
    if isinstance(error, AgentError):
        return error
    if isinstance(error, TimeoutError):
        return AgentError("attempt timed out", error_class=ErrorClass.TIMEOUT.value)
    if isinstance(error, DatabaseUnavailableError):  # the attempt's own reads: not the agent
        return AgentError(error.message, error_class=ErrorClass.SERVICE_UNAVAILABLE.value)
    if isinstance(error, WorkspaceError):  # git, the remote, this host: not the agent
        return AgentError(error.message, error_class=ErrorClass.HOST.value)
    if isinstance(error, ConnectionError | OSError):
        return AgentError(f"{type(error).__name__}: {error}", error_class="network")
    return AgentError(f"{type(error).__name__}: {error}", error_class="agent")
