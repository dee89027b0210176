"""Rate windows: how long an agent that answered "rate limited" or "usage limit" is left alone.

Pure: the time a window ends is a function of now, the answer and how often the agent was limited
lately. Where the answer says when the limit resets, that time wins, in this order:

1. the HTTP ``Retry-After`` the adapter read (seconds);
2. Claude Code's ``Claude AI usage limit reached|<epoch seconds>``;
3. a reset time of day: ``5-hour limit reached ∙ resets 3pm``, ``resets at 15:30 (Europe/Paris)``
   (a named zone when given, else the host's local zone; the next such time after now);
4. a delay: ``Please try again in 20s``, ``try again in 1m30.5s``, ``retry after 2 minutes``
   (the wording of OpenAI, Anthropic and litellm's ``RateLimitError``).

Else an exponential backoff from the ``rate_limit`` retry policy: ``base * factor^(strikes-1)``
up to its maximum, where ``strikes`` counts the agent's limits in a row.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from taskorch.domain.retry import RetryPolicy

MAX_WINDOW = timedelta(days=7)
"""The longest window believed (a weekly limit); a reset further away is a misread."""

_EPOCH = re.compile(r"limit reached\|(\d{9,11})\b", re.IGNORECASE)
_RESETS_AT = re.compile(
    r"\bresets?(?:\s+at)?\s+(\d{1,2})(?::(\d{2}))?\s*(am|pm)?(?:\s*\(([A-Za-z_]+(?:/[A-Za-z_+-]+)*)\))?",
    re.IGNORECASE,
)
_UNIT = r"(?:milliseconds?|ms|seconds?|secs?|s|minutes?|mins?|m|hours?|hrs?|h)(?![a-z])"
_DELAY = re.compile(
    rf"\b(?:try again|retry)\s+(?:in|after)\s+((?:\d+(?:\.\d+)?\s*{_UNIT}\s*)+)",
    re.IGNORECASE,
)
_DELAY_PART = re.compile(r"(\d+(?:\.\d+)?)\s*([a-z]+)", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class RateWindow:
    """An agent left alone until ``until`` (UTC) because it answered with a limit."""

    agent_id: str
    until: datetime
    strikes: int = 1
    """The agent's limits in a row (each one without a reset time doubles the backoff)."""
    source: str = "backoff"
    """Where ``until`` came from: ``retry-after``, ``reset time``, ``delay`` or ``backoff``."""

    def open_at(self, now: datetime) -> bool:
        return self.until > now

    def describe(self) -> str:
        return f"{self.agent_id} rate-limited until {self.until.astimezone(UTC):%H:%M:%S} UTC"

    def to_json(self) -> dict[str, object]:
        return {
            "agent": self.agent_id,
            "until": self.until.isoformat(),
            "strikes": self.strikes,
            "source": self.source,
        }


def reset_hint(
    text: str, now: datetime, local: tzinfo | None = None
) -> tuple[datetime, str] | None:
    """When the limit ``text`` reports resets and how it says it (the module's list, 2-4)."""
    if match := _EPOCH.search(text):
        return datetime.fromtimestamp(int(match[1]), UTC), "reset time"
    if match := _RESETS_AT.search(text):
        found = _time_of_day(match, now, local)
        if found is not None:
            return found, "reset time"
    if match := _DELAY.search(text):
        return now + timedelta(seconds=_seconds(match[1])), "delay"
    return None


def open_window(
    agent_id: str,
    now: datetime,
    *,
    retry_after_s: float | None,
    text: str,
    strikes: int,
    policy: RetryPolicy,
    local: tzinfo | None = None,
) -> RateWindow:
    """The window an agent gets for a limit answered at ``now`` (its ``strikes``-th in a row)."""
    until, source = None, "backoff"
    if retry_after_s is not None and retry_after_s >= 0:
        until, source = now + timedelta(seconds=retry_after_s), "retry-after"
    elif (hint := reset_hint(text, now, local)) is not None:
        until, source = hint
    if until is None or not now < until <= now + MAX_WINDOW:
        backoff = policy.base_delay_s * policy.factor ** max(strikes - 1, 0)
        until = now + timedelta(seconds=min(backoff, policy.max_delay_s))
        source = "backoff"
    return RateWindow(agent_id, until, strikes, source)


def _time_of_day(match: re.Match[str], now: datetime, local: tzinfo | None) -> datetime | None:
    hour, minute, half, zone = int(match[1]), int(match[2] or 0), match[3], match[4]
    if half is None and match[2] is None:
        return None  # "resets 5" is no time of day
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half.lower() == "pm" else 0)
    if hour > 23 or minute > 59:
        return None
    where: tzinfo | None = local
    if zone:
        try:
            where = ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            where = local
    there = now.astimezone(where) if where is not None else now.astimezone()
    at = there.replace(hour=hour, minute=minute, second=0, microsecond=0)
    if at <= there:
        at += timedelta(days=1)
    return at.astimezone(UTC)


def _seconds(text: str) -> float:
    return sum(float(n) * _unit_s(unit) for n, unit in _DELAY_PART.findall(text))


def _unit_s(unit: str) -> float:
    unit = unit.lower()
    if unit == "ms" or unit.startswith("millisecond"):
        return 0.001
    if unit.startswith("h"):
        return 3600.0
    if unit.startswith("m"):
        return 60.0
    return 1.0
