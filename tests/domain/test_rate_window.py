"""Where a limit answer says when it resets, and the backoff where it does not."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from taskorch.agents.outcome import classify_failure
from taskorch.domain.rate_window import open_window, reset_hint
from taskorch.domain.retry import ErrorClass, RetryPolicy

NOW = datetime(2026, 12, 2, 13, 20, 0, tzinfo=UTC)
POLICY = RetryPolicy(6, 5.0, 2.0, 300.0)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Claude AI usage limit reached|1796230800", datetime.fromtimestamp(1796230800, UTC)),
        ("5-hour limit reached ∙ resets 3pm", datetime(2026, 12, 2, 15, 0, tzinfo=UTC)),
        ("You've hit your limit · resets 1am (UTC)", datetime(2026, 12, 3, 1, 0, tzinfo=UTC)),
        (
            "usage limit reached, resets at 15:30 (Europe/Paris)",
            datetime(2026, 12, 2, 14, 30, tzinfo=UTC),
        ),
        (
            "litellm.RateLimitError: OpenAIException - Rate limit reached for gpt-4o. "
            "Please try again in 1m30.5s.",
            NOW + timedelta(seconds=90.5),
        ),
        ("429 Too Many Requests: please retry after 2 minutes", NOW + timedelta(minutes=2)),
        ("Rate limited. Try again in 850ms", NOW + timedelta(seconds=0.85)),
    ],
)
def test_the_reset_an_answer_names(text: str, expected: datetime) -> None:
    hint = reset_hint(text, NOW, UTC)
    assert hint is not None
    assert hint[0] == expected
    assert classify_failure(text)[0] == ErrorClass.RATE_LIMIT


def test_a_time_of_day_is_read_in_the_hosts_zone_and_numbers_alone_are_no_time() -> None:
    hint = reset_hint("limit reached, resets 3pm", NOW, ZoneInfo("America/New_York"))
    assert hint is not None
    assert hint[0] == datetime(2026, 12, 2, 20, 0, tzinfo=UTC)
    assert reset_hint("rate limit: resets 5 times a day", NOW, UTC) is None
    assert reset_hint("Retrying in 0.2 seconds...", NOW, UTC) is None  # Aider's own retry


def test_retry_after_wins_then_the_text_then_a_backoff_that_doubles() -> None:
    said = "usage limit reached|1796230800"
    window = open_window("a", NOW, retry_after_s=30, text=said, strikes=1, policy=POLICY)
    assert (window.until, window.source) == (NOW + timedelta(seconds=30), "retry-after")
    window = open_window("a", NOW, retry_after_s=None, text=said, strikes=1, policy=POLICY)
    assert window.source == "reset time"
    backoffs = [
        open_window("a", NOW, retry_after_s=None, text="429", strikes=n, policy=POLICY).until - NOW
        for n in (1, 2, 3, 9)
    ]
    assert [b.total_seconds() for b in backoffs] == [5.0, 10.0, 20.0, 300.0]
    past = open_window(
        "a", NOW, retry_after_s=None, text="limit reached|1000000000", strikes=1, policy=POLICY
    )
    assert past.source == "backoff"  # a reset in the past is a misread: back off instead
    assert past.describe() == "a rate-limited until 13:20:05 UTC"
