"""Retry policy as data, and the retry decision as a pure function of the error and the attempt.

Each error class has a :class:`RetryPolicy`; :func:`decide` turns (policy, attempt number, the
agent's Retry-After hint, a random draw) into a :class:`RetryDecision`. No clock, no I/O: the
runtime stores the decision's ``delay_s`` as the subtask's ``run_after`` so it survives restarts.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import StrEnum

from taskorch.domain.errors import ConfigError


class ErrorClass(StrEnum):
    NETWORK = "network"
    TIMEOUT = "timeout"
    RATE_LIMIT = "rate_limit"
    SERVICE_UNAVAILABLE = "service_unavailable"
    AUTH = "auth"
    DEPENDENCY = "dependency"
    RESOURCE = "resource"
    VALIDATION = "validation"
    AGENT = "agent"
    ZOMBIE = "zombie"
    """The attempt's lease expired: its worker died or its agent hung."""
    HOST = "host"
    """This host could not do the work (repository out of reach, program missing): the subtask
    goes back to the queue for another host, and the agent's track record does not count it."""
    BUSY = "busy"
    """The agent is busy with another turn (agentapi's "agent is busy"): nothing was sent. Not
    the agent's try: the subtask goes to another capable agent at once, or waits for this one."""


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_attempts: int
    """Attempts in all, the first included; 1 means never retry."""
    base_delay_s: float = 1.0
    factor: float = 2.0
    max_delay_s: float = 60.0
    jitter: float = 0.1
    """Fraction of the delay added or removed at random, so retries of many subtasks spread out."""
    reassign: bool = False
    """Try another capable agent next time (the agent itself was the problem)."""

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ConfigError(f"retry max_attempts must be >= 1, got {self.max_attempts}")
        if self.base_delay_s < 0 or self.max_delay_s < 0:
            raise ConfigError("retry delays must not be negative")
        if self.factor < 1:
            raise ConfigError(f"retry factor must be >= 1, got {self.factor}")
        if not 0 <= self.jitter <= 1:
            raise ConfigError(f"retry jitter must be between 0 and 1, got {self.jitter}")

    def scaled(self, time_scale: float) -> RetryPolicy:
        """The same policy with every delay multiplied (tests and demos run on a faster clock)."""
        return RetryPolicy(
            self.max_attempts,
            self.base_delay_s * time_scale,
            self.factor,
            self.max_delay_s * time_scale,
            self.jitter,
            self.reassign,
        )


@dataclass(frozen=True, slots=True)
class RetryDecision:
    retry: bool
    delay_s: float = 0.0
    reassign: bool = False
    reason: str = ""


DEFAULT_POLICIES: dict[ErrorClass, RetryPolicy] = {
    ErrorClass.NETWORK: RetryPolicy(5, 1.0, 2.0, 60.0),
    ErrorClass.TIMEOUT: RetryPolicy(3, 5.0, 2.0, 120.0),
    ErrorClass.RATE_LIMIT: RetryPolicy(6, 5.0, 2.0, 300.0),
    ErrorClass.SERVICE_UNAVAILABLE: RetryPolicy(5, 2.0, 2.0, 120.0),
    ErrorClass.AUTH: RetryPolicy(1),
    ErrorClass.DEPENDENCY: RetryPolicy(3, 10.0, 2.0, 120.0),
    ErrorClass.RESOURCE: RetryPolicy(3, 5.0, 2.0, 120.0),
    ErrorClass.VALIDATION: RetryPolicy(2, 1.0),
    ErrorClass.AGENT: RetryPolicy(3, 1.0, 2.0, 30.0, reassign=True),
    ErrorClass.ZOMBIE: RetryPolicy(5, 0.0, 1.0, 0.0, jitter=0.0),
    ErrorClass.HOST: RetryPolicy(5, 2.0, 2.0, 30.0),
    ErrorClass.BUSY: RetryPolicy(10, 5.0, 1.5, 60.0, reassign=True),
}


INTERRUPTIONS = frozenset({ErrorClass.ZOMBIE, ErrorClass.HOST})
"""Classes of attempts the agent did not end (counted apart, see below): their policies are not
the agent's retry budget, so ``RETRY_ATTEMPTS`` and ``RETRY_DELAY`` leave them alone."""


def with_overrides(
    policies: dict[ErrorClass, RetryPolicy],
    max_attempts: int | None,
    base_delay_s: float | None,
) -> dict[ErrorClass, RetryPolicy]:
    """``policies`` with one attempt count and one first delay for every class that is retried
    at all (the specification's single ``retryAttempts`` and ``retryDelay``). A class that is
    never retried (``auth``: a wrong key stays wrong) and the interruptions keep their own."""
    changed: dict[ErrorClass, RetryPolicy] = {}
    for cls, policy in policies.items():
        if cls in INTERRUPTIONS or policy.max_attempts == 1:
            changed[cls] = policy
            continue
        attempts = policy.max_attempts if max_attempts is None else max_attempts
        base = policy.base_delay_s if base_delay_s is None else base_delay_s
        changed[cls] = replace(
            policy,
            max_attempts=attempts,
            base_delay_s=base,
            max_delay_s=max(policy.max_delay_s, base),
        )
    return changed


MAX_INTERRUPTED_ATTEMPTS = 10
"""Attempts ended not by the agent but by a kill, a lost lease (zombie), a stopping worker or the
host (git, the network, a missing program) that a subtask may have before it fails. They are
counted apart from the agent's own tries (``Subtask.interrupted``) and never use up the retry
budget of the agent's error classes; this larger, separate cap still ends a subtask that kills
its worker every time."""


def agent_tries(attempts: int, interrupted: int) -> int:
    """The attempts that count as the agent's own tries (at least 1: the one just ended)."""
    return max(attempts - interrupted, 1)


def decide(
    policy: RetryPolicy,
    attempt: int,
    *,
    retryable: bool = True,
    retry_after_s: float | None = None,
    draw: float = 0.5,
) -> RetryDecision:
    """Whether attempt number ``attempt`` (1-based, just failed) gets another, and after how long.

    ``draw`` is a uniform random number in [0, 1) supplied by the caller, so this stays pure.
    A Retry-After hint from the agent wins over the computed delay.
    """
    if not retryable:
        return RetryDecision(False, reason="the error is not retryable")
    if attempt >= policy.max_attempts:
        return RetryDecision(False, reason=f"all {policy.max_attempts} attempts used")
    if retry_after_s is not None:
        return RetryDecision(True, max(retry_after_s, 0.0), policy.reassign, "agent's Retry-After")
    backoff = min(policy.base_delay_s * policy.factor ** (attempt - 1), policy.max_delay_s)
    spread = backoff * policy.jitter * (2 * draw - 1)
    return RetryDecision(True, max(backoff + spread, 0.0), policy.reassign, "backoff")
