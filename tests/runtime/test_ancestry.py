"""The remembered ancestry facts: chained, per commit, bounded, never a yes git would not say."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from taskorch.runtime import ancestry


def _id(n: int) -> str:
    return hashlib.sha1(str(n).encode()).hexdigest()


@pytest.fixture(autouse=True)
def fresh() -> Iterator[None]:
    ancestry.forget()
    yield
    ancestry.forget()


def test_facts_chain_through_merges_and_never_run_backwards() -> None:
    base, first, second, side = _id(0), _id(1), _id(2), _id(3)
    ancestry.note(base, first)  # first merge: its parents are the base and a subtask's tip
    ancestry.note(first, second)
    ancestry.note(side, second)

    assert ancestry.known(base, second)
    assert ancestry.known(side, second)
    assert ancestry.known(second, second)
    assert not ancestry.known(second, base)
    assert not ancestry.known(side, first)


def test_only_commit_ids_are_facts() -> None:
    ancestry.note("refs/heads/main", _id(1))
    ancestry.note(_id(1), "HEAD")
    assert not ancestry.known("refs/heads/main", _id(1))
    assert not ancestry.known(_id(1), "HEAD")
    assert not ancestry.known("HEAD", "HEAD")  # (a name can point elsewhere next time)


def test_the_least_recently_used_commits_are_forgotten(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ancestry, "KEPT", 3)
    for n in range(1, 5):
        ancestry.note(_id(0), _id(n))
    assert not ancestry.known(_id(0), _id(1))
    assert all(ancestry.known(_id(0), _id(n)) for n in range(2, 5))


def test_a_look_up_walks_a_bounded_number_of_commits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ancestry, "WALK", 10)
    for n in range(30):  # a chain of 30 merges
        ancestry.note(_id(n), _id(n + 1))
    assert ancestry.known(_id(25), _id(30))
    assert not ancestry.known(_id(0), _id(30))  # (true, but not said within the walk: ask git)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 11), st.integers(0, 11)), max_size=40))
def test_a_yes_is_exactly_what_the_facts_reach(edges: list[tuple[int, int]]) -> None:
    """Random facts (a pair (a, d) with a < d: history has no cycles): ``known`` is reachability
    through them."""
    ancestry.forget()
    facts = {(a, d) for a, d in edges if a < d}
    for a, d in facts:
        ancestry.note(_id(a), _id(d))
    for a in range(12):
        for d in range(12):
            assert ancestry.known(_id(a), _id(d)) == _reaches(facts, d, a)
    for d in range(12):  # the closure below a commit is the same reachability, itself left out
        below = {_id(a) for a in range(12) if a != d and _reaches(facts, d, a)}
        assert ancestry.known_below(_id(d)) == below


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=25))
def test_walks_kept_between_facts_never_answer_stale(edges: list[tuple[int, int]]) -> None:
    """The walks are kept between questions: each new fact, noted between the questions, must
    still be seen by every answer after it (the walks it could take further are forgotten)."""
    ancestry.forget()
    facts: set[tuple[int, int]] = set()
    for a, d in edges:
        if a < d:
            facts.add((a, d))
            ancestry.note(_id(a), _id(d))
        for x in range(10):
            for y in range(10):
                assert ancestry.known(_id(x), _id(y)) == _reaches(facts, y, x)


def test_a_new_commits_first_facts_keep_the_other_walks() -> None:
    for n in range(5):
        ancestry.note(_id(n), _id(n + 1))
    assert ancestry.known(_id(0), _id(5))
    kept = dict(ancestry._closures)
    ancestry.note(_id(5), _id(6))  # (a landing on top: a commit no walk has reached)
    assert kept.items() <= ancestry._closures.items()
    assert ancestry.known(_id(0), _id(6))
    ancestry.note(_id(9), _id(1))  # (a fact about a commit inside the walks: they go)
    assert _id(5) not in ancestry._closures
    assert ancestry.known(_id(9), _id(6))


def _reaches(facts: set[tuple[int, int]], start: int, goal: int) -> bool:
    seen, todo = {start}, [start]
    while todo:
        node = todo.pop()
        if node == goal:
            return True
        for a, d in facts:
            if d == node and a not in seen:
                seen.add(a)
                todo.append(a)
    return False


def test_a_landing_on_a_walked_tip_joins_the_walks(monkeypatch: pytest.MonkeyPatch) -> None:
    walked: list[str] = []
    real = ancestry._walk_below

    def counted(descendant: str) -> frozenset[str]:
        walked.append(descendant)
        return real(descendant)

    monkeypatch.setattr(ancestry, "_walk_below", counted)
    ancestry.note(_id(0), _id(1))
    assert ancestry.known_below(_id(1)) == {_id(0)}
    for n in range(1, 20):  # a landing on each tip in turn, each tip asked about
        ancestry.note(_id(n), _id(n + 1))
        assert ancestry.known(_id(0), _id(n + 1))
    assert walked == [_id(1)]
    assert ancestry.known_below(_id(20)) == {_id(n) for n in range(20)}
