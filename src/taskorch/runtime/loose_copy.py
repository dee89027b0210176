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
one the mirror does not hold loose must already lie loose in the origin. Anything else (a packed
object, a tag, a walk over :data:`WALK` objects, a file that does not parse) says "ask git", and
the caller copies with ``pack-objects`` as before.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import struct
import zlib
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from taskorch.runtime import ancestry, ref_files

WALK = 256
"""At most this many objects are looked at by one copy; a bigger change goes to git."""

_TREE_MODE = b"40000"
_GITLINK_MODE = b"160000"  # (a submodule's commit: not an object of this repository)


class _Unsure(Exception):
    """The files do not say enough: git copies."""


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
    except _Unsure:
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

    def commit(self, sha: str) -> None:
        if not self._first_look(sha) or self._origin_has(sha):
            return
        body = self._own(sha, b"commit")
        if body is None:
            raise _Unsure  # (not the mirror's, not known to be the origin's)
        tree, parents = _commit_fields(body)
        below = next((p for p in parents if self._origin_has(p)), None)
        self.tree(tree, self._tree_of(below))
        for parent in parents:
            self.commit(parent)
        self.order.append(sha)

    def _origin_has(self, commit: str) -> bool:
        """Whether ``commit`` is one of ``known`` or, as the ancestry facts say, in one."""
        return commit in self.known or any(ancestry.known(commit, k) for k in self.known)

    def tree(self, sha: str, base: str | None) -> None:
        if not self._first_look(sha) or sha == base:
            return
        body = self._own(sha, b"tree")
        if body is None:
            self._in_target(sha)
            return
        size = len(sha) // 2
        before = _entries(self._read(base, b"tree"), size) if base else {}
        for name, (mode, entry) in _entries(body, size).items():
            if before.get(name) == (mode, entry) or mode == _GITLINK_MODE:
                continue
            if mode == _TREE_MODE:
                old = before.get(name)
                self.tree(entry, old[1] if old and old[0] == _TREE_MODE else None)
            elif self._first_look(entry):
                if _is_loose(self.source / entry[:2] / entry[2:], b"blob"):
                    self.order.append(entry)
                else:
                    self._in_target(entry)
        self.order.append(sha)

    def _first_look(self, sha: str) -> bool:
        if sha in self._seen or sha in self.known:
            return False
        if len(self._seen) >= WALK or not ref_files.OBJECT_ID.fullmatch(sha.encode()):
            raise _Unsure
        self._seen.add(sha)
        return True

    def _own(self, sha: str, kind: bytes) -> bytes | None:
        """The object's content when ``source`` holds it loose (None: it does not)."""
        return _loose(self.source / sha[:2] / sha[2:], kind)

    def _read(self, sha: str | None, kind: bytes) -> bytes | None:
        """The object's content from either repository's loose files (None: neither has it)."""
        if sha is None:
            return None
        found = _loose(self.source / sha[:2] / sha[2:], kind)
        return found if found is not None else _loose(self.target / sha[:2] / sha[2:], kind)

    def _tree_of(self, commit: str | None) -> str | None:
        body = self._read(commit, b"commit")
        return _commit_fields(body)[0] if body is not None else None

    def _in_target(self, sha: str) -> None:
        if not ((self.target / sha[:2] / sha[2:]).is_file() or _packed(self.target, sha)):
            raise _Unsure  # (borrowed from elsewhere, or not there: git knows)


def _packed(objects: Path, sha: str) -> bool:
    """Whether a pack of the object folder ``objects`` holds ``sha``, by its index (version 2:
    a fan-out table of 256 counts, then the sorted ids), read once per file as it is now."""
    wanted = bytes.fromhex(sha)
    for index in sorted((objects / "pack").glob("*.idx")):
        try:
            ids = _pack_ids(index, len(wanted))
        except OSError as exc:  # (repacked meanwhile)
            raise _Unsure from exc
        first = ids.fanout[wanted[0] - 1] if wanted[0] else 0
        low, high = first, ids.fanout[wanted[0]]
        while low < high:
            middle = (low + high) // 2
            found = ids.data[ids.start + middle * ids.size : ids.start + (middle + 1) * ids.size]
            if found == wanted:
                return True
            low, high = (middle + 1, high) if found < wanted else (low, middle)
    return False


@dataclass(frozen=True, slots=True)
class _PackIds:
    data: bytes
    fanout: tuple[int, ...]
    start: int
    size: int


_indexes: dict[str, tuple[tuple[int, int], _PackIds]] = {}
"""A pack index's path -> its file's (mtime, size) and ids as read then."""


def _pack_ids(index: Path, size: int) -> _PackIds:
    stat = index.stat()
    signature = (stat.st_mtime_ns, stat.st_size)
    cached = _indexes.get(str(index))
    if cached is None or cached[0] != signature:
        data = index.read_bytes()
        if data[:8] != b"\377tOc\0\0\0\2":
            raise _Unsure  # (an index of another version)
        fanout = struct.unpack(">256I", data[8 : 8 + 1024])
        cached = signature, _PackIds(data, fanout, 8 + 1024, size)
        _indexes[str(index)] = cached
    return cached[1]


def _loose(path: Path, kind: bytes) -> bytes | None:
    """The content of the loose object file at ``path`` when it is a ``kind``; None when there
    is no such file; :class:`_Unsure` when there is one that is not a whole ``kind``."""
    try:
        data = zlib.decompress(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, zlib.error) as exc:
        raise _Unsure from exc
    header, _, body = data.partition(b"\0")
    if header != b"%s %d" % (kind, len(body)):
        raise _Unsure
    return body


def _commit_fields(body: bytes) -> tuple[str, list[str]]:
    """A commit's tree and parents (its headers end at the first empty line)."""
    tree, parents = None, []
    for line in body.split(b"\n"):
        if not line:
            break
        if line.startswith(b"tree "):
            tree = line[5:].decode()
        elif line.startswith(b"parent "):
            parents.append(line[7:].decode())
    if tree is None:
        raise _Unsure
    return tree, parents


def _entries(body: bytes | None, size: int) -> dict[bytes, tuple[bytes, str]]:
    """A tree's entries: name -> (mode, object id). Each is ``<mode> <name>\\0<raw id>``, the
    id ``size`` bytes (20 for SHA-1, 32 for SHA-256)."""
    if body is None:
        return {}
    found: dict[bytes, tuple[bytes, str]] = {}
    at = 0
    try:
        while at < len(body):
            space = body.index(b" ", at)
            end = body.index(b"\0", space)
            found[body[space + 1 : end]] = body[at:space], body[end + 1 : end + 1 + size].hex()
            at = end + 1 + size
    except ValueError as exc:
        raise _Unsure from exc
    if at != len(body):
        raise _Unsure
    return found


def _is_loose(path: Path, kind: bytes) -> bool:
    """Whether ``path`` is a loose object file of a ``kind`` (its header read, not the rest:
    a blob may be large)."""
    try:
        head = zlib.decompressobj().decompress(path.read_bytes(), 64)
    except FileNotFoundError:
        return False
    except (OSError, zlib.error) as exc:
        raise _Unsure from exc
    if not head.startswith(kind + b" "):
        raise _Unsure
    return True


def _place(source: Path, folder: Path, name: str) -> None:
    """The file ``source`` as ``folder/name`` (already there: left as it is), whole or not at
    all, read-only, as git writes an object."""
    final = folder / name
    if final.exists():
        return
    data = source.read_bytes()
    folder.mkdir(exist_ok=True)
    temporary = folder / f"tmp_obj_{secrets.token_hex(6)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        with contextlib.suppress(FileExistsError):  # (another copy got there first: same bytes)
            os.link(temporary, final)
    finally:
        temporary.unlink()
