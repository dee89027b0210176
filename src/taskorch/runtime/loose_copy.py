"""What a mirror made, copied into the origin on this disk as the loose object files it is.

A subtask's commits reach a local origin before its branch moves there: ``pack-objects`` in the
mirror piped into ``unpack-objects`` in the origin, two processes per merged subtask. What they
move is a handful of loose objects the mirror just wrote (the agent's commit, its trees and
blobs, taskorch's merge commit), and a loose object file is the same bytes in every repository
(zlib of ``<type> <size>\\0<content>``, named by its id). So they are copied as files, the way
``unpack-objects`` leaves them: written under a temporary name, linked into place, read-only.

Which objects: those reachable from the new commits and not from ``known`` (commits the origin
has, with their history), as ``pack-objects --revs`` picks them. A tree is compared with the
tree at the same place in its commit's first known parent: entries the same there are the
origin's already. The rest are walked; each object the mirror holds loose is copied after
everything it names (a kill between two copies leaves no object whose parts are missing), and
one the mirror does not hold loose must already be in the origin (loose, or in a pack its index
lists). Anything else (an object packed in the mirror, a tag, a walk over :data:`WALK` objects,
a file that does not parse) says "ask git", and the caller copies with ``pack-objects`` as before;
so does an origin whose configuration shares it with a group or asks for objects flushed to disk
(the caller asks :func:`commit_objects.writes_allowed` first).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from taskorch.runtime import ancestry, ref_files
from taskorch.runtime.loose_objects import (
    GITLINK_MODE,
    TREE_MODE,
    Unreadable,
    commit_fields,
    holds,
    is_loose,
    read,
    read_any,
    tree_entries,
    write_file,
)

WALK = 256
"""At most this many objects are looked at by one copy; a bigger change goes to git."""


def copy(source: Path, target: Path, tips: Iterable[str], known: Iterable[str]) -> bool:
    """Copy into the repository ``target`` the loose objects of ``source`` that the commits
    ``tips`` hold beyond ``known``; whether it could (False: nothing was written, the caller
    asks git)."""
    source_common, target_common = ref_files.common_dir(source), ref_files.common_dir(target)
    if source_common is None or target_common is None:
        return False
    walk = _Walk(source_common / "objects", target_common / "objects", set(known))
    try:
        for tip in tips:
            walk.commit(tip)
    except Unreadable:
        return False
    try:
        for sha in walk.order:
            _place(walk.source / sha[:2] / sha[2:], walk.target / sha[:2], sha[2:])
    except OSError:
        return False  # (a full disk, say: git tries, and says so in its own words)
    return True


class _Walk:
    """The objects to copy, in the order they may be written (an object after its parts)."""

    def __init__(self, source: Path, target: Path, known: set[str]) -> None:
        self.source = source
        self.target = target
        self.known = known
        self.order: list[str] = []
        self._seen: set[str] = set()
        self._in_known: frozenset[str] | None = None

    def commit(self, sha: str) -> None:
        if not self._first_look(sha) or self._origin_has(sha):
            return
        body = self._own(sha, b"commit")
        if body is None:
            raise Unreadable  # (not the mirror's, not known to be the origin's)
        tree, parents = commit_fields(body)
        below = next((p for p in parents if self._origin_has(p)), None)
        self.tree(tree, self._tree_of(below))
        for parent in parents:
            self.commit(parent)
        self.order.append(sha)

    def _origin_has(self, commit: str) -> bool:
        """Whether ``commit`` is one of ``known`` or, as the ancestry facts say, in one."""
        if self._in_known is None:
            self._in_known = frozenset().union(*map(ancestry.known_below, self.known))
        return commit in self.known or commit in self._in_known

    def tree(self, sha: str, base: str | None) -> None:
        if not self._first_look(sha) or sha == base:
            return
        body = self._own(sha, b"tree")
        if body is None:
            self._in_target(sha, b"tree")
            return
        size = len(sha) // 2
        before = tree_entries(self._read(base, b"tree"), size) if base else {}
        for name, (mode, entry) in tree_entries(body, size).items():
            if before.get(name) == (mode, entry) or mode == GITLINK_MODE:
                continue
            if mode == TREE_MODE:
                old = before.get(name)
                self.tree(entry, old[1] if old and old[0] == TREE_MODE else None)
            elif self._first_look(entry):
                if is_loose(self.source / entry[:2] / entry[2:], b"blob"):
                    self.order.append(entry)
                else:
                    self._in_target(entry, b"blob")
        self.order.append(sha)

    def _first_look(self, sha: str) -> bool:
        if sha in self._seen or sha in self.known:
            return False
        if len(self._seen) >= WALK or not ref_files.is_object_id(sha):
            raise Unreadable
        self._seen.add(sha)
        return True

    def _own(self, sha: str, kind: bytes) -> bytes | None:
        """The object's content when ``source`` holds it loose (None: it does not)."""
        return read(self.source / sha[:2] / sha[2:], kind)

    def _read(self, sha: str | None, kind: bytes) -> bytes | None:
        """The object's content from either repository's loose files (None: neither has it)."""
        return None if sha is None else read_any([self.source, self.target], sha, kind)

    def _tree_of(self, commit: str | None) -> str | None:
        body = self._read(commit, b"commit")
        return commit_fields(body)[0] if body is not None else None

    def _in_target(self, sha: str, kind: bytes) -> None:
        if not holds([self.target], sha, kind):
            raise Unreadable  # (borrowed from elsewhere, or not there: git knows)


def _place(source: Path, folder: Path, name: str) -> None:
    """The file ``source`` as ``folder/name`` (already there: left as it is)."""
    if not (folder / name).exists():
        write_file(folder, name, source.read_bytes())
