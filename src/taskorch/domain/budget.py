"""Budgets: what an attempt is charged, what the next one is predicted to cost, and whether it may
start.

A workflow may carry caps (USD, tokens, USD per subtask). Before an attempt is dispatched its
cost is predicted from the subtask's ``estimated_tokens`` and the agent's own history (what it
spent per estimated token on earlier subtasks); an attempt starts only if what the workflow spent,
plus what its running attempts are predicted to cost, plus this prediction stays within the caps.
Running attempts are never stopped for the budget.

An attempt is charged what its agent reported. An agent that reports no cost is counted by the
tokens it reported (priced at its measured rate, else :data:`DEFAULT_USD_PER_TOKEN`), and one that
reports nothing by the plan's estimate; the figures say which (``counted_by``). Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

DEFAULT_USD_PER_TOKEN = 10.0 / 1_000_000
"""The price of a token where an agent's own history has none: $10 per million tokens (a
mid-range hosted model, input and output together)."""

DEFAULT_ESTIMATE_TOKENS = 5_000
"""The estimate of a subtask whose plan gives none (``estimated_tokens`` 0)."""


class CountedBy(StrEnum):
    """How precisely a spend is known, from best to worst (a sum is as good as its worst part)."""

    COST = "cost"
    """Every attempt reported its cost."""
    TOKENS = "tokens"
    """Some reported tokens but no cost: priced per token."""
    ESTIMATE = "estimate"
    """Some reported nothing: the plan's estimate stands in."""


_RANK = {CountedBy.COST: 0, CountedBy.TOKENS: 1, CountedBy.ESTIMATE: 2}


def worst(*counted: CountedBy) -> CountedBy:
    return max(counted, key=_RANK.__getitem__, default=CountedBy.COST)


@dataclass(frozen=True, slots=True)
class Caps:
    """A workflow's caps; None: no cap of that kind."""

    usd: float | None = None
    tokens: int | None = None
    subtask_usd: float | None = None
    """What one subtask's attempts together may cost."""

    @property
    def any(self) -> bool:
        return self.usd is not None or self.tokens is not None or self.subtask_usd is not None


@dataclass(frozen=True, slots=True)
class AgentRate:
    """What an agent spent per estimated token (and per reported token) on its finished attempts;
    None where its history has nothing to say."""

    usd_per_estimated_token: float | None = None
    tokens_per_estimated_token: float | None = None
    usd_per_token: float | None = None


NO_HISTORY = AgentRate()


@dataclass(frozen=True, slots=True)
class Charge:
    """A cost in USD and tokens, and how it is known."""

    usd: float
    tokens: int
    counted_by: CountedBy

    def __add__(self, other: Charge) -> Charge:
        counted = worst(self.counted_by, other.counted_by)
        return Charge(self.usd + other.usd, self.tokens + other.tokens, counted)

    def counted(self, by: CountedBy) -> Charge:
        return Charge(self.usd, self.tokens, by)


NOTHING = Charge(0.0, 0, CountedBy.COST)


def total(charges: Iterable[Charge]) -> Charge:
    result = NOTHING
    for one in charges:
        result = result + one
    return result


def measured_rate(
    cost_usd: float,
    cost_estimate: int,
    tokens: int,
    tokens_estimate: int,
    priced_cost_usd: float,
    priced_tokens: int,
) -> AgentRate:
    """An agent's rates from the sums over its finished attempts: cost and estimate over those
    that reported a cost, tokens and estimate over those that reported tokens, cost and tokens
    over those that reported both."""
    return AgentRate(
        usd_per_estimated_token=cost_usd / cost_estimate if cost_estimate > 0 else None,
        tokens_per_estimated_token=tokens / tokens_estimate if tokens_estimate > 0 else None,
        usd_per_token=priced_cost_usd / priced_tokens if priced_tokens > 0 else None,
    )


def estimate_of(estimated_tokens: int) -> int:
    return estimated_tokens if estimated_tokens > 0 else DEFAULT_ESTIMATE_TOKENS


def predict(estimated_tokens: int, rate: AgentRate = NO_HISTORY) -> Charge:
    """The predicted cost of an attempt: the subtask's estimate times the agent's measured cost
    per estimated token; without history, the estimate (or the agent's measured tokens per
    estimated token) at the agent's price per token, else the default price."""
    estimate = estimate_of(estimated_tokens)
    tokens_rate = rate.tokens_per_estimated_token
    tokens = round(estimate * tokens_rate) if tokens_rate is not None else estimate
    if rate.usd_per_estimated_token is not None:
        return Charge(estimate * rate.usd_per_estimated_token, tokens, CountedBy.COST)
    per_token = rate.usd_per_token if rate.usd_per_token is not None else DEFAULT_USD_PER_TOKEN
    counted = CountedBy.TOKENS if tokens_rate is not None else CountedBy.ESTIMATE
    return Charge(tokens * per_token, tokens, counted)


@dataclass(frozen=True, slots=True)
class Usage:
    """What one finished attempt reported (None: not reported), and its subtask's estimate."""

    cost_usd: float | None
    tokens_in: int | None
    tokens_out: int | None
    estimated_tokens: int
    counts: bool = True
    """False for an attempt that was not the agent's try (cancelled, released, refused because
    busy, a host failure): charged only what it reported."""


def charge(usage: Usage, rate: AgentRate = NO_HISTORY) -> Charge:
    """What a finished attempt counts against the budget."""
    reported = None
    if usage.tokens_in is not None or usage.tokens_out is not None:
        reported = (usage.tokens_in or 0) + (usage.tokens_out or 0)
    if usage.cost_usd is not None:
        return Charge(usage.cost_usd, reported or 0, CountedBy.COST)
    if reported is not None:
        per_token = rate.usd_per_token if rate.usd_per_token is not None else DEFAULT_USD_PER_TOKEN
        return Charge(reported * per_token, reported, CountedBy.TOKENS)
    if not usage.counts:
        return NOTHING
    return predict(usage.estimated_tokens, rate).counted(CountedBy.ESTIMATE)


_SLACK = 1e-9
"""Float sums of reported costs must not hold an attempt that lands exactly on the cap."""


def crossed_cap(
    caps: Caps, spent: Charge, in_flight: Charge, attempt: Charge, subtask_spent_usd: float = 0.0
) -> str | None:
    """Which cap starting ``attempt`` would cross (``usd``, ``tokens``, ``subtask_usd``), or None
    when it fits: spent + predicted for the running attempts + this prediction."""
    if caps.usd is not None and spent.usd + in_flight.usd + attempt.usd > caps.usd + _SLACK:
        return "usd"
    if caps.tokens is not None and spent.tokens + in_flight.tokens + attempt.tokens > caps.tokens:
        return "tokens"
    if caps.subtask_usd is not None and subtask_spent_usd + attempt.usd > caps.subtask_usd + _SLACK:
        return "subtask_usd"
    return None


@dataclass(frozen=True, slots=True)
class Ready:
    """A subtask ready to start: its prediction and what its earlier attempts cost."""

    key: str
    prediction: Charge
    spent_usd: float = 0.0


@dataclass(frozen=True, slots=True)
class BudgetFigures:
    """A workflow's budget as it stands (``status WF --json`` carries :meth:`to_dict`)."""

    caps: Caps
    spent: Charge
    in_flight: Charge
    next: Ready | None
    """The next attempt to start: the first ready subtask that does not fit when waiting."""
    crossed: str | None
    """The cap the next attempt would cross (None: it fits, or nothing is ready)."""

    @property
    def waiting(self) -> bool:
        return self.crossed is not None

    def to_dict(self) -> dict[str, Any]:
        return {
            "cap_usd": self.caps.usd,
            "spent_usd": round(self.spent.usd, 6),
            "predicted_usd": round(self.next.prediction.usd, 6) if self.next else None,
            "waiting": self.waiting,
            "cap_tokens": self.caps.tokens,
            "spent_tokens": self.spent.tokens,
            "counted_by": self.spent.counted_by.value,
        }

    def line(self) -> str | None:
        """``waiting: budget (spent $X of $Y, next attempt ~$Z)``; None when not waiting."""
        if self.crossed is None or self.next is None:
            return None
        nxt = self.next.prediction
        if self.crossed == "tokens":
            figures = (
                f"spent {self.spent.tokens:,} of {self.caps.tokens or 0:,} tokens, "
                f"next attempt ~{nxt.tokens:,} tokens"
            )
        elif self.crossed == "subtask_usd":
            figures = (
                f"subtask {self.next.key} spent {_usd(self.next.spent_usd)} of "
                f"{_usd(self.caps.subtask_usd or 0.0)}, next attempt ~{_usd(nxt.usd)}"
            )
        else:
            figures = (
                f"spent {_usd(self.spent.usd)} of {_usd(self.caps.usd or 0.0)}, "
                f"next attempt ~{_usd(nxt.usd)}"
            )
        return f"waiting: budget ({figures})"


def figures(caps: Caps, spent: Charge, in_flight: Charge, ready: Iterable[Ready]) -> BudgetFigures:
    """The workflow's figures: it waits when none of its ready subtasks fits (one that fits
    starts at the next claim)."""
    first: Ready | None = None
    for candidate in ready:
        crossed = crossed_cap(caps, spent, in_flight, candidate.prediction, candidate.spent_usd)
        if crossed is None:
            return BudgetFigures(caps, spent, in_flight, candidate, None)
        if first is None:
            first = candidate
            first_crossed = crossed
    if first is None:
        return BudgetFigures(caps, spent, in_flight, None, None)
    return BudgetFigures(caps, spent, in_flight, first, first_crossed)


def _usd(value: float) -> str:
    return f"${value:.2f}" if value >= 0.01 or value == 0 else f"${value:.4f}"
