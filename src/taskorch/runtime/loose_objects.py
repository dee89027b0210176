"""Git objects read from their loose files (and a pack's index, for whether it holds one),
without a process: what :mod:`taskorch.runtime.loose_copy` copies and what
:func:`changed_paths` compares.

A loose object is ``<objects>/<2 hex>/<rest of the id>``, the zlib-compressed ``<type> <size>\\0``
header and content; its id names that content, so what the file says is a fact forever.
Anything unusual (packed where content is needed, a header that does not match, a tree that
does not parse) raises :class:`Unreadable` or gives None, and the caller asks git.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import secrets
import struct
import zlib
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from taskorch.runtime import ref_files

TREE_MODE = b"40000"
GITLINK_MODE = b"160000"  # (a submodule's commit: not an object of this repository)
DIFF_WALK = 64
"""At most this many trees are read by one :func:`changed_paths`."""


class Unreadable(Exception):
    """The files do not say enough: ask git."""


def object_dirs(repo: Path) -> list[Path] | None:
    """The object folders the repository at ``repo`` reads: its own, then those its
    alternates name (None: not a repository whose files can be read)."""
    common = ref_files.common_dir(repo)
    if common is None:
        return None
    own = common / "objects"
    try:
        listed = (own / "info" / "alternates").read_text().splitlines()
    except FileNotFoundError:
        listed = []
    except OSError:
        return None
    named = [line.strip() for line in listed if line.strip() and not line.startswith("#")]
    return [own, *(own / line for line in named)]  # (an absolute one stays as it is)


def read_any(dirs: Sequence[Path], sha: str, kind: bytes) -> bytes | None:
    """The content of ``sha`` from the first of ``dirs`` that holds it loose; None when none
    does (packed, or absent)."""
    for objects in dirs:
        found = read(objects / sha[:2] / sha[2:], kind)
        if found is not None:
            return found
    return None


def changed_paths(repo: Path, one: str, other: str) -> list[str] | None:
    """The paths whose entries differ between the commits ``one`` and ``other``, as ``git diff
    --name-only --no-renames one other`` lists them (in its order), read from loose objects; None
    when they do not say (a packed tree on a path that changed: ask git)."""
    dirs = object_dirs(repo)
    if dirs is None or not (ref_files.is_object_id(one) and ref_files.is_object_id(other)):
        return None
    try:
        trees = [commit_tree(dirs, commit) for commit in (one, other)]
        changes = tree_changes(dirs, trees[0], trees[1])
    except Unreadable:
        return None
    return [change.name for change in changes]


Entry = tuple[bytes, str]
"""A tree entry's mode and object id."""


@dataclass(frozen=True, slots=True)
class Change:
    """A path whose entry differs between two trees (None: not there on that side)."""

    path: bytes
    old: Entry | None
    new: Entry | None

    @property
    def name(self) -> str:
        return self.path.decode(errors="surrogateescape")


def tree_changes(
    dirs: Sequence[Path], one: str, other: str, folders: list[dict[bytes, Entry]] | None = None
) -> list[Change]:
    """The paths whose entries differ between the trees ``one`` and ``other``, in the order git
    lists them, read from loose objects (:class:`Unreadable`: a packed tree on a path that
    changed, or more than :data:`DIFF_WALK` trees). The trees read are added to ``folders``."""
    found: list[Change] = []
    _diff(dirs, one, other, b"", len(one) // 2, found, [DIFF_WALK], folders)
    return found


def _diff(
    dirs: Sequence[Path],
    one: str | None,
    other: str | None,
    prefix: bytes,
    size: int,
    found: list[Change],
    budget: list[int],
    folders: list[dict[bytes, Entry]] | None,
) -> None:
    """Append to ``found`` the paths under ``prefix`` that differ between the trees ``one`` and
    ``other`` (None: no tree there), walking both in git's tree order (a folder sorts as its
    name with a ``/``)."""
    if one == other:
        return
    budget[0] -= 1
    if budget[0] < 0:
        raise Unreadable
    before, after = _tree(dirs, one, size), _tree(dirs, other, size)
    if folders is not None:
        folders += [before, after]
    keyed_before = {_order_key(n, m): (m, s) for n, (m, s) in before.items()}
    keyed_after = {_order_key(n, m): (m, s) for n, (m, s) in after.items()}
    for key in sorted(keyed_before.keys() | keyed_after.keys()):
        old, new = keyed_before.get(key), keyed_after.get(key)
        if old == new:
            continue
        path = prefix + key
        if key.endswith(b"/"):  # (a folder, on either side or both)
            subtrees = old[1] if old else None, new[1] if new else None
            _diff(dirs, *subtrees, path, size, found, budget, folders)
        else:
            found.append(Change(path, old, new))


def _order_key(name: bytes, mode: bytes) -> bytes:
    return name + b"/" if mode == TREE_MODE else name


def _tree(dirs: Sequence[Path], sha: str | None, size: int) -> dict[bytes, Entry]:
    return {} if sha is None else read_tree(dirs, sha, size)


TREES_KEPT = 512
"""Trees whose entries, once read, are remembered (the least recently used are forgotten)."""

_trees: OrderedDict[str, dict[bytes, Entry]] = OrderedDict()


def read_tree(dirs: Sequence[Path], sha: str, size: int) -> dict[bytes, Entry]:
    """The entries of the tree ``sha`` from its loose file (:class:`Unreadable`: packed, or
    not a tree); an id names its content, so one read is kept (do not change what it gives)."""
    entries = _trees.get(sha)
    if entries is not None:
        _trees.move_to_end(sha)
        return entries
    body = read_any(dirs, sha, b"tree")
    if body is None:
        raise Unreadable  # (packed: git reads it)
    entries = _trees[sha] = tree_entries(body, size)
    while len(_trees) > TREES_KEPT:
        _trees.popitem(last=False)
    return entries


def holds(dirs: Sequence[Path], sha: str, kind: bytes) -> bool:
    """Whether one of ``dirs`` holds ``sha``: as a loose ``kind`` (a loose file of another kind
    is :class:`Unreadable`), or in a pack (whose index says only that it is there)."""
    if not ref_files.is_object_id(sha):
        raise Unreadable
    if any(is_loose(objects / sha[:2] / sha[2:], kind) for objects in dirs):
        return True
    return any(packed(objects, sha) for objects in dirs)


def packed(objects: Path, sha: str) -> bool:
    """Whether a pack of the object folder ``objects`` holds ``sha``, by its index (version 2:
    a fan-out table of 256 counts, then the sorted ids), read once per file as it is now."""
    wanted = bytes.fromhex(sha)
    for index in sorted((objects / "pack").glob("*.idx")):
        try:
            ids = _pack_ids(index, len(wanted))
        except OSError as exc:  # (repacked meanwhile)
            raise Unreadable from exc
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
            raise Unreadable  # (an index of another version)
        fanout = struct.unpack(">256I", data[8 : 8 + 1024])
        cached = signature, _PackIds(data, fanout, 8 + 1024, size)
        _indexes[str(index)] = cached
    return cached[1]


def read(path: Path, kind: bytes) -> bytes | None:
    """The content of the loose object file at ``path`` when it is a ``kind``; None when there
    is no such file; :class:`Unreadable` when there is one that is not a whole ``kind``."""
    try:
        data = zlib.decompress(path.read_bytes())
    except FileNotFoundError:
        return None
    except (OSError, zlib.error) as exc:
        raise Unreadable from exc
    header, _, body = data.partition(b"\0")
    if header != b"%s %d" % (kind, len(body)):
        raise Unreadable
    return body


def commit_tree(dirs: Sequence[Path], sha: str) -> str:
    """The tree of the loose commit ``sha`` (:class:`Unreadable`: not loose here)."""
    body = read_any(dirs, sha, b"commit")
    if body is None:
        raise Unreadable
    return commit_fields(body)[0]


def commit_fields(body: bytes) -> tuple[str, list[str]]:
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
        raise Unreadable
    return tree, parents


def subject(body: bytes) -> str | None:
    """A commit's subject as ``%s`` prints it: blank lines skipped, then the lines of the first
    paragraph with their trailing white space cut, joined by spaces (git's ``format_subject``).
    None for a message in another encoding (an ``encoding`` header, or not UTF-8): git may
    re-encode it."""
    headers, _, message = body.partition(b"\n\n")
    if b"\nencoding " in b"\n" + headers:
        return None
    lines = [line.rstrip(_GIT_SPACE) for line in message.split(b"\n")]
    first = list(itertools.takewhile(bool, itertools.dropwhile(lambda line: not line, lines)))
    try:
        return b" ".join(first).decode()
    except UnicodeDecodeError:
        return None


_GIT_SPACE = b" \t\n\r"
"""What git's own ``isspace`` takes for white space."""


def tree_entries(body: bytes | None, size: int) -> dict[bytes, Entry]:
    """A tree's entries: name -> (mode, object id). Each is ``<mode> <name>\\0<raw id>``, the
    id ``size`` bytes (20 for SHA-1, 32 for SHA-256)."""
    if body is None:
        return {}
    found: dict[bytes, Entry] = {}
    at = 0
    try:
        while at < len(body):
            space = body.index(b" ", at)
            end = body.index(b"\0", space)
            found[body[space + 1 : end]] = body[at:space], body[end + 1 : end + 1 + size].hex()
            at = end + 1 + size
    except ValueError as exc:
        raise Unreadable from exc
    if at != len(body):
        raise Unreadable
    return found


def is_loose(path: Path, kind: bytes) -> bool:
    """Whether ``path`` is a loose object file of a ``kind`` (its header read, not the rest:
    a blob may be large)."""
    try:
        head = zlib.decompressobj().decompress(path.read_bytes(), 64)
    except FileNotFoundError:
        return False
    except (OSError, zlib.error) as exc:
        raise Unreadable from exc
    if not head.startswith(kind + b" "):
        raise Unreadable
    return True


def write_file(folder: Path, name: str, data: bytes) -> None:
    """``data`` (a compressed object) as the loose object file ``folder/name``: whole or not at
    all, read-only, as git writes one (a temporary file linked into place; one there already is
    the same bytes and stays)."""
    folder.mkdir(exist_ok=True)
    temporary = folder / f"tmp_obj_{secrets.token_hex(6)}"
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o444)
    try:
        with os.fdopen(descriptor, "wb") as file:
            file.write(data)
        with contextlib.suppress(FileExistsError):
            os.link(temporary, folder / name)
    finally:
        temporary.unlink()
