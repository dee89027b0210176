"""The heuristic planner stays linear on degenerate requirements: many one-letter words once
took minutes (every leading stop word was dropped by copying the rest of the list)."""

from __future__ import annotations

import time

import pytest

from taskorch.planning import HeuristicPlanner
from taskorch.planning.wording import subject_of

WORDS = 300_000
GENEROUS_S = 20.0
"""Quadratic code needed about 40-110 s for these; linear code well under a second."""


@pytest.mark.parametrize("word", ["a", "the"])
def test_many_stop_words_are_planned_in_linear_time(word: str) -> None:
    text = f"{word} " * WORDS
    started = time.monotonic()
    assert subject_of(text).startswith(f"{word} {word}")  # nothing but filler: the text itself
    HeuristicPlanner().plan(text)
    assert time.monotonic() - started < GENEROUS_S


def test_subject_drops_the_verb_and_leading_filler() -> None:
    assert subject_of("Set up the new CI pipeline") == "CI pipeline"
    assert subject_of("add a a a login page") == "login page"
    assert subject_of("the") == "the"
