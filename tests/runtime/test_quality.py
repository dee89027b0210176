"""The attempt's quality checks: the word pre-check in front of the failure regex never changes
what the regex alone says."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from taskorch.runtime.quality import _FAILURE, reports_failure

TRICKY = [
    "simulated: s1 done by simulated agent sim",
    "Traceback (most recent call last):\n  File x",
    "3 tests FAILED",
    "FA\u0130LED: 2 failed",
    "2 fa\u0131led",  # dotless i: the regex ignores case with it, str.lower keeps it
    "ERROR: disk full",
    "   fatal: not a git repository",
    "it COULD NOT be found",
    "Unable To connect",
    "all handled, installed, called",
    "error without a colon",
]
ALPHABET = "abcdefiklnorstuvABCDEFIKLNORSTUV0123 :\n()\u0131\u0130\u017f\u212a"


def test_known_outputs() -> None:
    for output in TRICKY:
        assert reports_failure(output) == bool(_FAILURE.search(output)), output


@given(st.text(alphabet=ALPHABET, max_size=40))
def test_the_pre_check_agrees_with_the_regex(output: str) -> None:
    assert reports_failure(output) == bool(_FAILURE.search(output[-20_000:]))


@given(st.sampled_from(TRICKY), st.text(alphabet=ALPHABET, max_size=20))
def test_failures_inside_other_text(failure: str, around: str) -> None:
    output = around + failure + around
    assert reports_failure(output) == bool(_FAILURE.search(output))
