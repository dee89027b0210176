"""The one interface every LLM provider implements, and the retry policy they share.

A provider turns a conversation (a system prompt, user and assistant turns, the JSON schema the
answer must follow) into the model's answer text. It knows its wire format and nothing about plans.

Retries are ours, not the SDKs' (the SDK clients are built with ``max_retries=0``): the policy is
data, the decision a pure function of the attempt and the server's ``Retry-After``, and the sleep
is injectable, so the behaviour is the same for every provider and testable without waiting.
"""

from __future__ import annotations

import asyncio
import email.utils
import math
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol, TypeVar

from taskorch.domain.errors import PlannerError

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class Message:
    role: Literal["user", "assistant"]
    content: str


@dataclass(frozen=True, slots=True)
class CompletionRequest:
    system: str
    messages: tuple[Message, ...]
    schema: Mapping[str, Any] = field(default_factory=dict)
    """JSON schema of the answer; providers that support structured output enforce it."""
    schema_name: str = "taskorch_plan"


class Provider(Protocol):
    """An LLM behind one wire format."""

    @property
    def name(self) -> str:
        """``anthropic``, ``openai`` or ``openai-compatible``."""
        ...

    @property
    def model(self) -> str: ...

    async def complete(self, request: CompletionRequest) -> str:
        """The model's answer text; :class:`PlannerError` when the request failed for good."""
        ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often and how long to retry a rate-limited (429) or failing (5xx, network) request.

    Without ``Retry-After`` the delay doubles from ``initial_delay_s`` up to ``max_delay_s``. With
    it, the server's delay is used as given; one longer than ``max_retry_after_s`` is not waited
    for (the call fails at once, naming the delay) rather than hanging a planner for an hour.
    """

    max_attempts: int = 4
    initial_delay_s: float = 0.5
    max_delay_s: float = 8.0
    max_retry_after_s: float = 60.0

    def __post_init__(self) -> None:
        if self.max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, not {self.max_attempts}")
        for name in ("initial_delay_s", "max_delay_s", "max_retry_after_s"):
            value = getattr(self, name)
            if not (value >= 0 and math.isfinite(value)):
                raise ValueError(f"{name} must be a finite number of seconds >= 0, not {value}")

    def delay_s(self, attempt: int, retry_after_s: float | None) -> float | None:
        """Seconds to wait after failed attempt number ``attempt`` (1-based); None: give up."""
        if attempt >= self.max_attempts:
            return None
        if retry_after_s is not None:
            return retry_after_s if retry_after_s <= self.max_retry_after_s else None
        return float(min(self.initial_delay_s * 2 ** (attempt - 1), self.max_delay_s))


@dataclass(frozen=True, slots=True)
class Failure:
    """What a provider tells the retry loop about one failed request."""

    description: str
    retryable: bool
    retry_after_s: float | None = None


@dataclass(frozen=True, slots=True)
class SdkErrors:
    """The exception classes of a Stainless-generated SDK (``anthropic``, ``openai``): an HTTP
    status error (with ``status_code``, ``message``, ``response``), a connection error, and the
    SDK's root error."""

    status: type[Exception]
    connection: type[Exception]
    root: type[Exception]


def classify_sdk_error(exc: Exception, errors: SdkErrors) -> Failure | None:
    """429, 408, 5xx and network errors are retried; other SDK errors are final; anything else
    is not the SDK's (None)."""
    if isinstance(exc, errors.status):
        failed: Any = exc
        return Failure(
            description=f"HTTP {failed.status_code}: {short_message(failed.message)}",
            retryable=retryable_status(failed.status_code),
            retry_after_s=parse_retry_after(failed.response.headers),
        )
    if isinstance(exc, errors.connection):
        return Failure(description=short_message(str(exc)) or "connection error", retryable=True)
    if isinstance(exc, errors.root):
        return Failure(description=short_message(str(exc)), retryable=False)
    return None


def short_message(text: str, limit: int = 300) -> str:
    """An error text on one line and of bounded length (servers may answer with whole pages)."""
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def retryable_status(status: int) -> bool:
    return status == 429 or status == 408 or status >= 500


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date), if given."""
    milliseconds = headers.get("retry-after-ms")
    if milliseconds is not None:
        try:
            return max(0.0, float(milliseconds) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        parsed = email.utils.parsedate_tz(value)
        if parsed is None:
            return None
        seconds = email.utils.mktime_tz(parsed) - (time.time() if now is None else now)
    return max(0.0, seconds) if math.isfinite(seconds) else None


async def call_with_retries(
    call: Callable[[], Awaitable[T]],
    *,
    what: str,
    classify: Callable[[Exception], Failure | None],
    policy: RetryPolicy,
    sleep: Sleep = asyncio.sleep,
) -> T:
    """Run ``call``, retrying what ``classify`` calls retryable, as ``policy`` allows.

    ``classify`` returns None for exceptions that are not the provider's (bugs propagate as they
    are); every provider failure that is not retried becomes one :class:`PlannerError` naming
    ``what`` failed and why.
    """
    attempt = 1
    while True:
        try:
            return await call()
        except Exception as exc:
            failure = classify(exc)
            if failure is None:
                raise
            delay = policy.delay_s(attempt, failure.retry_after_s) if failure.retryable else None
            if delay is None:
                raise PlannerError(_give_up(what, failure, attempt, policy)) from exc
        await sleep(delay)
        attempt += 1


def _give_up(what: str, failure: Failure, attempt: int, policy: RetryPolicy) -> str:
    if not failure.retryable:
        return f"{what} failed: {failure.description}"
    if failure.retry_after_s is not None and failure.retry_after_s > policy.max_retry_after_s:
        return (
            f"{what} failed: {failure.description}; the server asks to retry after "
            f"{failure.retry_after_s:.0f}s, longer than the {policy.max_retry_after_s:.0f}s "
            "taskorch waits"
        )
    return f"{what} failed after {attempt} attempt(s): {failure.description}"
