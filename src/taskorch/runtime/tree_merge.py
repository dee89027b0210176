"""The tree of a clean merge of two commits written by taskorch itself, where git's
``merge-tree --write-tree`` is certain to write exactly that tree: one process less per landing
and per conflict check.

That is the case when, against their merge base, the two sides changed different paths only
(or the same ones alike), and neither side deleted a path in a folder both sides changed. Then
there is nothing for git to merge inside a file, and no rename that matters: git's rename
detection pairs a path one side deleted with one it added, and a rename matters to the merge
only where the other side changed the old path, renamed it too (perhaps to another place), or
added files into a folder that was renamed away, all of which show here as a deletion in a
folder both sides changed. The merged tree is then the base's with each side's changes put in:
the walk below goes down only the folders both sides changed, takes whole the entries one side
alone changed, and writes the new trees (loose, as git writes them) in git's tree order.

Anything else is git's: a path both changed in different ways, a deletion where both sides
changed a folder (alike or not), a file that became a folder, a mode git would write otherwise,
a tree not loose, or more than :data:`WALK` folders. The walk then writes nothing.
"""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Sequence
from pathlib import Path

from taskorch.runtime import loose_objects
from taskorch.runtime.loose_objects import TREE_MODE, Entry, Unreadable

WALK = 64
"""At most this many folders both sides changed are merged here."""

_CANONICAL = {TREE_MODE, b"100644", b"100755", b"120000", loose_objects.GITLINK_MODE}
"""The modes git writes (it reads others, from old trees, as one of these)."""


def merged(dirs: Sequence[Path], base: str, one: str, other: str) -> str | None:
    """The id of the tree of the clean merge of the trees ``one`` and ``other`` of the merge
    base's tree ``base``, written into ``dirs[0]`` as needed; None where git must merge."""
    if one == other or base == other:
        return one
    if base == one:
        return other
    size = len(base) // 2
    written: list[tuple[str, bytes]] = []
    try:
        tree = _merge(dirs, base, one, other, size, written, [WALK])
    except Unreadable:
        return None
    for sha, data in written:  # (after the whole walk: a refusal half-way writes nothing)
        if not loose_objects.holds(dirs, sha, b"tree"):
            loose_objects.write_file(dirs[0] / sha[:2], sha[2:], zlib.compress(data))
    return tree


def _merge(
    dirs: Sequence[Path],
    base: str | None,
    one: str,
    other: str,
    size: int,
    written: list[tuple[str, bytes]],
    budget: list[int],
) -> str:
    """The merged tree of the trees ``one`` and ``other`` (both changed from ``base``, None:
    both added this folder); the trees it makes are appended to ``written``."""
    budget[0] -= 1
    if budget[0] < 0:
        raise Unreadable
    before, ours, theirs = (_tree(dirs, sha, size) for sha in (base, one, other))
    result: dict[bytes, Entry] = {}
    for name in before.keys() | ours.keys() | theirs.keys():
        sides = before.get(name), ours.get(name), theirs.get(name)
        entry = _entry(dirs, *sides, size, written, budget)
        if entry is not None:
            result[name] = entry
    return _written(result, size, written)


def _entry(
    dirs: Sequence[Path],
    before: Entry | None,
    ours: Entry | None,
    theirs: Entry | None,
    size: int,
    written: list[tuple[str, bytes]],
    budget: list[int],
) -> Entry | None:
    """One name's merged entry (None: absent on both sides)."""
    if ours == theirs:
        if ours is None and before is not None:
            raise Unreadable  # (deleted on both sides: renamed to two places, perhaps)
        if before is None or ours is None or before == ours:
            return ours  # (unchanged, or added alike)
        # Changed alike: what both sides deleted on the way (a file that became a folder, the
        # files a folder lost) each may have renamed to a place of its own, which git finds
        # and calls a conflict; so the folder is walked like one they changed differently.
        if (before[0] == TREE_MODE) != (ours[0] == TREE_MODE):
            raise Unreadable
        if ours[0] == TREE_MODE:
            return TREE_MODE, _merge(dirs, before[1], ours[1], ours[1], size, written, budget)
        return ours  # (a file changed alike)
    if before == ours:
        taken = theirs
    elif before == theirs:
        taken = ours
    elif (
        ours is not None
        and theirs is not None
        and ours[0] == theirs[0] == TREE_MODE
        and (before is None or before[0] == TREE_MODE)
    ):
        base = before[1] if before is not None else None
        return TREE_MODE, _merge(dirs, base, ours[1], theirs[1], size, written, budget)
    else:
        raise Unreadable  # (both changed it: git merges the file, or finds the conflict)
    if taken is None:
        raise Unreadable  # (a deletion, where the other side changed this folder)
    return taken


def _tree(dirs: Sequence[Path], sha: str | None, size: int) -> dict[bytes, Entry]:
    return {} if sha is None else loose_objects.read_tree(dirs, sha, size)


def _written(entries: dict[bytes, Entry], size: int, written: list[tuple[str, bytes]]) -> str:
    """The id of the tree of ``entries``, its object appended to ``written``: entries in git's
    order (a folder sorts as its name with a ``/``), each ``<mode> <name>\\0<raw id>``."""
    parts = []
    for name in sorted(entries, key=lambda n: n + b"/" if entries[n][0] == TREE_MODE else n):
        mode, sha = entries[name]
        if mode not in _CANONICAL:
            raise Unreadable  # (git writes it as the mode it stands for)
        parts.append(b"%s %s\0%s" % (mode, name, bytes.fromhex(sha)))
    content = b"".join(parts)
    data = b"tree %d\0" % len(content) + content
    sha = (hashlib.sha1 if size == 20 else hashlib.sha256)(data).hexdigest()
    written.append((sha, data))
    return sha
