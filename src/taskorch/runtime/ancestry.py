"""Which commit contains which, as git and taskorch's own merges have said it: remembered, so that
the pipeline's later questions (is the workflow in the base? which branches are merged? is a
merge into the base a fast-forward?) need no ``merge-base`` process.

A commit id names the commit's content, its parents included: once ``A`` is in ``D``'s history
it is so in every repository that holds ``D``, forever. So the facts are kept per commit, not per
repository (a fact the mirror's merge taught holds in the user's repository too), and they chain:
a merge commit contains its parents and everything they contain. Only yeses are kept (a no can
become a yes once the branch moves); a look-up walks the facts a bounded number of steps, and
where they do not say, git is asked.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict
from typing import cast

from taskorch.runtime.ref_files import is_object_id

KEPT = 4096
"""Commits whose known ancestors are remembered (the least recently used are forgotten)."""
WALK = 256
"""At most this many commits are visited by one look-up through the chained facts."""
CANDIDATES = 16
"""Remembered merge bases tried by :func:`common_ancestors`."""

_below: OrderedDict[str, set[str]] = OrderedDict()
"""commit -> commits known to be in its history (the chain goes on from each of them)."""


def note(ancestor: str, descendant: str) -> None:
    """Remember that ``descendant`` contains ``ancestor`` (full commit ids; anything else, such
    as a ref name, is not a fact about commits and is ignored)."""
    if ancestor == descendant or not (is_object_id(ancestor) and is_object_id(descendant)):
        return
    known_here = _below.setdefault(descendant, set())
    if ancestor not in known_here:
        known_here.add(ancestor)
        _forget_walks_through(descendant)
    _below.move_to_end(descendant)
    while len(_below) > KEPT:
        _below.popitem(last=False)


def known(ancestor: str, descendant: str) -> bool:
    """Whether the remembered facts say that ``descendant`` contains ``ancestor`` (False means
    only that they do not say: ask git)."""
    if ancestor == descendant:
        return is_object_id(ancestor)
    if descendant not in _below:
        return False
    # (the walk kept: a batch asks of the same tips again and again, and a new fact seldom
    # changes a walk already made, see _forget_walks_through)
    found = ancestor in known_below(descendant)
    if found:
        _below.move_to_end(descendant)
    return found


def known_below(descendant: str) -> frozenset[str]:
    """Every commit the remembered facts place in ``descendant``'s history (as far as
    :data:`WALK` steps go): for a caller with many questions about one commit, where
    :func:`known` walks the facts again for each. Kept until a new fact is noted."""
    closure = _closures.get(descendant)
    if closure is None:
        closure = _closures[descendant] = _joined(descendant) or _walk_below(descendant)
    return closure


def _joined(descendant: str) -> frozenset[str] | None:
    """The walk below ``descendant`` as its known parents' kept walks joined (a landing on a
    base whose tip was walked: no new walk), up to twice :data:`WALK` commits; None when one is
    not kept (then it is walked)."""
    below = _below.get(descendant)
    if not below:
        return None
    walks = [_closures.get(commit) for commit in below]
    if any(walk is None for walk in walks):
        return None
    joined = frozenset(below).union(*cast(list[frozenset[str]], walks))
    return joined if len(joined) <= 2 * WALK else None


_closures: dict[str, frozenset[str]] = {}
""":func:`known_below` as walked, until a new fact could change the walk."""
CLOSURES_KEPT = 128


def _forget_walks_through(commit: str) -> None:
    """Forget the walks a new fact about ``commit``'s history could take further: its own and
    those that reached it. A new commit's first facts (a landing's, a merge's) change none."""
    if len(_closures) > CLOSURES_KEPT:
        _closures.clear()
        return
    stale = [key for key, walked in _closures.items() if key == commit or commit in walked]
    for key in stale:
        del _closures[key]


def _walk_below(descendant: str) -> frozenset[str]:
    seen = {descendant}
    todo = [descendant]
    while todo and len(seen) <= WALK:
        below = _below.get(todo.pop())
        if below:
            fresh = below - seen
            seen |= fresh
            todo += fresh
    seen.discard(descendant)
    return frozenset(seen)


_bases: OrderedDict[frozenset[str], str] = OrderedDict()
"""{commit, commit} -> their best common ancestor, as git said it."""


def note_merge_base(one: str, other: str, start: str) -> None:
    """Remember git's merge base of ``one`` and ``other``: a fact of the two commits' histories,
    which never change (the pull request's summary and the landing ask it of the same pair
    while the base has not moved)."""
    if not (is_object_id(one) and is_object_id(other) and is_object_id(start)):
        return  # (no common ancestor, or not commit ids: nothing to keep)
    _bases[frozenset((one, other))] = start
    note(start, one)  # (a merge base is in both)
    note(start, other)
    while len(_bases) > KEPT:
        _bases.popitem(last=False)


def common_ancestors(one: str, other: str) -> list[str]:
    """Remembered merge bases (of any two commits, the newest first, at most
    :data:`CANDIDATES`) that the facts place in ``one`` or in ``other``: candidates for theirs,
    for the caller to check."""
    below = known_below(one) | known_below(other) | {one, other}
    recent = itertools.islice(reversed(_bases.values()), CANDIDATES)
    return [s for s in dict.fromkeys(recent) if s in below]


def merge_base(one: str, other: str) -> str | None:
    """The merge base of ``one`` and ``other`` remembered by :func:`note_merge_base`, else None."""
    return _bases.get(frozenset((one, other)))


def forget() -> None:
    """Forget every fact (tests)."""
    _below.clear()
    _closures.clear()
    _bases.clear()
