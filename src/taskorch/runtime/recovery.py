"""``ErrorRecoveryManager``: classifies an attempt's error and decides what happens next.

The decision itself is :func:`taskorch.domain.retry.decide` (pure); this adds the table of policies
per error class, custom strategies registered by users, a time scale for tests and demos, and the
random draw for jitter.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from taskorch.domain.errors import AgentError, DatabaseUnavailableError, WorkspaceError
from taskorch.domain.retry import (
    DEFAULT_POLICIES,
    ErrorClass,
    RetryDecision,
    RetryPolicy,
    decide,
    with_overrides,
)

CustomStrategy = Callable[[AgentError, int], RetryDecision]
"""(error, attempt number) -> decision, for cases a policy cannot express."""


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
        self._time_scale = time_scale
        self._random = random.Random(seed)

    def register_recovery_strategy(
        self, error_type: str | ErrorClass, strategy: RetryPolicy | CustomStrategy
    ) -> None:
        """Use ``strategy`` for errors of class ``error_type`` (a known class or a new one)."""
        key = str(error_type)
        if isinstance(strategy, RetryPolicy):
            self._policies[key] = strategy.scaled(self._time_scale)
            self._custom.pop(key, None)
        else:
            self._custom[key] = strategy

    def policy_for(self, error_class: str) -> RetryPolicy:
        return self._policies.get(error_class, self._policies[ErrorClass.AGENT.value])

    @staticmethod
    def classify(error: BaseException) -> AgentError:
        """Every failure as an :class:`AgentError` with a class; unknown errors are agent errors."""
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
