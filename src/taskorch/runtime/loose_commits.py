"""A commit's parents read from its loose object file, for the ancestry facts
(:mod:`taskorch.runtime.ancestry`) that spare a ``merge-tree`` or ``merge-base`` process.

An agent's commit in a worktree is written as a loose object of the mirror: ``<common
dir>/objects/<2 hex>/<rest>``, the zlib-compressed ``commit <size>\\0`` header and body whose
``parent`` lines name its parents. A commit id names that content, so what the file says is a fact
forever. Anything unusual (packed, missing, not a commit, unreadable) says nothing and the caller
asks git, as before.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from pathlib import Path

from taskorch.runtime import ancestry, loose_objects, ref_files

WALK = 16
"""At most this many loose commits are read by one :func:`learn`."""


PARENTS_KEPT = 8192
"""Commits whose parents, once read, are remembered (the least recently used are forgotten)."""

_parents: OrderedDict[str, list[str]] = OrderedDict()


def parents(common: Path, sha: str) -> list[str] | None:
    """The parents of the commit ``sha`` from its loose object in the repository whose common
    git folder is ``common``; None when that file does not say (packed, gone, not a commit).
    An id names its commit's content, parents included, so what was read once is kept: a
    repository that holds a commit's descendant holds the commit too."""
    known = _parents.get(sha)
    if known is not None:
        _parents.move_to_end(sha)
        return known
    if not ref_files.is_object_id(sha):
        return None
    try:
        body = loose_objects.read(common / "objects" / sha[:2] / sha[2:], b"commit")
        found = None if body is None else loose_objects.commit_fields(body)[1]
    except loose_objects.Unreadable:
        return None
    if found is not None:
        _parents[sha] = found
        while len(_parents) > PARENTS_KEPT:
            _parents.popitem(last=False)
    return found


def history_as_written(repo: Path) -> Path | None:
    """The common git folder of ``repo`` where git reads its commits as their files say: not
    shallow, no grafts, no replace refs (which give a commit other parents); else None."""
    common = ref_files.common_dir(repo)
    if common is None or os.environ.get("GIT_REPLACE_REF_BASE"):
        return None
    if (common / "shallow").exists() or (common / "info" / "grafts").exists():
        return None
    if (
        not (common / "refs" / "replace").exists()
        and ref_files.packed_under(common, "refs/replace/") is False
    ):
        return common
    return common if ref_files.read_matching(common, ("refs/replace",)) == {} else None


def learn(repo: Path, tip: str, until: str) -> bool:
    """Note as ancestry facts the parents of ``tip`` and of the loose commits below it (at most
    :data:`WALK`), stopping at ``until``; whether ``until`` is now known to be in ``tip``."""
    common = history_as_written(repo)
    if common is None:
        return False
    todo, seen = [tip], {tip}
    while todo and len(seen) <= WALK and not ancestry.known(until, tip):
        commit = todo.pop()
        for parent in parents(common, commit) or []:
            ancestry.note(parent, commit)
            if parent not in seen and parent != until:
                seen.add(parent)
                todo.append(parent)
    return ancestry.known(until, tip)


MERGE_BASE_WALK = 64
"""At most this many loose commits above a common ancestor are read per side by
:func:`merge_base`."""


def merge_base(repo: Path, one: str, other: str, candidates: tuple[str, ...] = ()) -> str | None:
    """The merge base of ``one`` and ``other`` as git would give it, where a candidate ``F`` (a
    remembered merge base, or one of ``candidates``) is in both (the facts say so, or the walk
    down from a side meets it) and the loose commits above ``F`` on each side share none: every
    common ancestor is then in ``F``'s history, and ``F`` is the one best. The landing after
    other workflows moved the base asks exactly this (``F``: the fork point the pull request's
    summary found). None: git must say."""
    common = history_as_written(repo)
    if common is None:
        return None
    for start in dict.fromkeys([*candidates, *ancestry.common_ancestors(one, other)]):
        above_one = _above(common, one, start)
        above_other = _above(common, other, start) if above_one is not None else None
        if above_one is not None and above_other is not None and not above_one & above_other:
            return start
    return None


def _above(common: Path, tip: str, start: str) -> set[str] | None:
    """The commits of ``tip``'s history outside ``start``'s: walked on loose commits down to
    ``start`` or a commit the facts place in it. None when one on the way is not loose, there
    are more than :data:`MERGE_BASE_WALK`, or ``start`` is not shown to be in ``tip``."""
    found: set[str] = set()
    todo = [tip]
    met = ancestry.known(start, tip)
    in_start = ancestry.known_below(start)
    while todo:
        commit = todo.pop()
        if commit == start:
            met = True
            continue
        if commit in found or commit in in_start:
            continue
        if len(found) >= MERGE_BASE_WALK:
            return None
        above = parents(common, commit)
        if above is None:
            return None
        found.add(commit)
        todo += above
    return found if met else None


def fork_point(repo: Path, tip: str, onto: str) -> str | None:
    """The commit a line of loose single-parent commits down from ``tip`` (an agent's) starts
    at, when the facts place it in ``onto``'s history (the workflow branch's tip it was cut
    from, moved on since); None otherwise. A candidate for :func:`merge_base`, not an answer."""
    common = history_as_written(repo)
    if common is None:
        return None
    below = ancestry.known_below(onto) | {onto}
    commit = tip
    for _ in range(WALK):
        if commit in below:
            return commit
        above = parents(common, commit)
        if above is None or len(above) != 1:
            return None
        commit = above[0]
    return None


def meeting_points(repo: Path, tip: str, onto: str) -> tuple[str, ...]:
    """The commits where the loose commits down from ``tip`` (at most :data:`WALK`, merges
    too) meet what the facts place in ``onto``'s history: candidates for :func:`merge_base`
    (a workflow branch's subtask merges come down to the base's tip it started from)."""
    common = history_as_written(repo)
    if common is None:
        return ()
    below = ancestry.known_below(onto) | {onto}
    met: dict[str, None] = {}
    todo, seen = [tip], {tip}
    while todo and len(seen) <= WALK:
        commit = todo.pop(0)
        if commit in below:
            met[commit] = None
            continue
        for parent in parents(common, commit) or []:
            if parent not in seen:
                seen.add(parent)
                todo.append(parent)
    return tuple(met)
