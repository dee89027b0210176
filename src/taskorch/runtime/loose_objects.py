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
import os
import secrets
import struct
import zlib
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
        found: list[str] = []
        budget = [DIFF_WALK]
        _diff(dirs, trees[0], trees[1], b"", len(one) // 2, found, budget)
    except Unreadable:
        return None
    return found


def _diff(
    dirs: Sequence[Path],
    one: str | None,
    other: str | None,
    prefix: bytes,
    size: int,
    found: list[str],
    budget: list[int],
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
    keyed_before = {_order_key(n, m): (n, m, s) for n, (m, s) in before.items()}
    keyed_after = {_order_key(n, m): (n, m, s) for n, (m, s) in after.items()}
    for key in sorted(keyed_before.keys() | keyed_after.keys()):
        old, new = keyed_before.get(key), keyed_after.get(key)
        if old is not None and new is not None and old[1:] == new[1:]:
            continue
        path = prefix + key
        if key.endswith(b"/"):  # (a folder, on either side or both)
            _diff(dirs, old[2] if old else None, new[2] if new else None, path, size, found, budget)
        else:
            found.append(path.decode(errors="surrogateescape"))


def _order_key(name: bytes, mode: bytes) -> bytes:
    return name + b"/" if mode == TREE_MODE else name


def _tree(dirs: Sequence[Path], sha: str | None, size: int) -> dict[bytes, tuple[bytes, str]]:
    if sha is None:
        return {}
    body = read_any(dirs, sha, b"tree")
    if body is None:
        raise Unreadable  # (packed)
    return tree_entries(body, size)


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
    """A commit's subject (``%s``) when its message's first paragraph is one line of UTF-8 (None
    otherwise: git joins a longer one, and may re-encode, as it prints it)."""
    headers, _, message = body.partition(b"\n\n")
    if b"\nencoding " in b"\n" + headers:
        return None
    first = message.split(b"\n\n", 1)[0].rstrip(b"\n")
    if b"\n" in first:
        return None
    try:
        return first.decode()
    except UnicodeDecodeError:
        return None


def tree_entries(body: bytes | None, size: int) -> dict[bytes, tuple[bytes, str]]:
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
