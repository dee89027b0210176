"""The budget's arithmetic: what an attempt is charged, what the next one is predicted to cost,
and which cap it would cross."""

from __future__ import annotations

import pytest

from taskorch.domain.budget import (
    DEFAULT_ESTIMATE_TOKENS,
    DEFAULT_USD_PER_TOKEN,
    NOTHING,
    Caps,
    Charge,
    CountedBy,
    Ready,
    Usage,
    charge,
    crossed_cap,
    figures,
    measured_rate,
    predict,
    total,
)


def test_a_prediction_uses_the_agents_own_rate_else_the_default_price() -> None:
    fresh = predict(10_000)
    assert fresh.usd == pytest.approx(10_000 * DEFAULT_USD_PER_TOKEN)
    assert (fresh.tokens, fresh.counted_by) == (10_000, CountedBy.ESTIMATE)
    # it spent $0.40 on subtasks estimated at 20k tokens, and used 30k tokens on them
    rate = measured_rate(0.40, 20_000, 30_000, 20_000, 0.40, 30_000)
    measured = predict(5_000, rate)
    assert measured.usd == pytest.approx(0.10)
    assert (measured.tokens, measured.counted_by) == (7_500, CountedBy.COST)
    assert predict(0).tokens == DEFAULT_ESTIMATE_TOKENS  # a plan with no estimate


def test_an_attempt_is_charged_what_it_reported_else_its_tokens_else_the_estimate() -> None:
    reported = charge(Usage(0.25, 1_000, 200, 5_000))
    assert (reported.usd, reported.tokens, reported.counted_by) == (0.25, 1_200, CountedBy.COST)
    tokens_only = charge(Usage(None, 1_000, 200, 5_000))
    assert tokens_only.usd == pytest.approx(1_200 * DEFAULT_USD_PER_TOKEN)
    assert tokens_only.counted_by is CountedBy.TOKENS
    silent = charge(Usage(None, None, None, 5_000))
    assert (silent.tokens, silent.counted_by) == (5_000, CountedBy.ESTIMATE)
    assert charge(Usage(None, None, None, 5_000, counts=False)) == NOTHING
    spent = total([reported, tokens_only])
    assert spent.counted_by is CountedBy.TOKENS  # as good as its worst part
    assert total([spent, silent]).counted_by is CountedBy.ESTIMATE


def test_an_attempt_that_would_cross_a_cap_does_not_start() -> None:
    spent = Charge(0.50, 25_000, CountedBy.COST)
    running = Charge(0.20, 10_000, CountedBy.COST)
    attempt = Charge(0.30, 15_000, CountedBy.COST)
    assert crossed_cap(Caps(usd=0.95), spent, running, attempt) == "usd"
    assert crossed_cap(Caps(usd=1.0), spent, running, attempt) is None  # lands on the cap
    assert crossed_cap(Caps(tokens=40_000), spent, NOTHING, attempt) is None
    assert crossed_cap(Caps(tokens=39_999), spent, NOTHING, attempt) == "tokens"
    assert crossed_cap(Caps(subtask_usd=0.5), spent, NOTHING, attempt, 0.25) == "subtask_usd"
    assert crossed_cap(Caps(), spent, running, attempt) is None


def test_the_figures_wait_only_when_no_ready_subtask_fits() -> None:
    caps = Caps(usd=1.0)
    spent = Charge(0.80, 40_000, CountedBy.COST)
    dear = Ready("backend", Charge(0.30, 15_000, CountedBy.COST))
    cheap = Ready("docs", Charge(0.10, 5_000, CountedBy.COST))
    assert not figures(caps, spent, NOTHING, [dear, cheap]).waiting  # the docs start
    held = figures(caps, spent, NOTHING, [dear])
    assert held.waiting
    assert held.line() == "waiting: budget (spent $0.80 of $1.00, next attempt ~$0.30)"
    assert held.to_dict() == {
        "cap_usd": 1.0,
        "spent_usd": 0.8,
        "predicted_usd": 0.3,
        "waiting": True,
        "cap_tokens": None,
        "spent_tokens": 40_000,
        "counted_by": "cost",
    }
    per_subtask = figures(
        Caps(subtask_usd=0.5), spent, NOTHING, [Ready("api", dear.prediction, 0.4)]
    )
    assert per_subtask.line() == (
        "waiting: budget (subtask api spent $0.40 of $0.50, next attempt ~$0.30)"
    )
    assert figures(caps, spent, NOTHING, []).line() is None
