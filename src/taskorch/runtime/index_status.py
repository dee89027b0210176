"""Whether a checkout is clean, read from git's own index file where that file can say so: the
``git status`` process (two per workflow: after the agent, and on the checkout a landing moves)
is run only where it cannot.

``git status`` lists nothing when the index's tree is HEAD's tree, every tracked file has the stat
data the index recorded for it (git reads a file again only when its stat changed, or when it was
written in the same instant as the index: "racily clean"), and, where untracked files count, every
file under the checkout is in the index. :func:`clean` checks exactly that and says True only when
it holds; for anything it does not read (a stat that changed, a racy entry, a file not in the
index, a conflict, a submodule or link, a split, sparse or version-4 index, an index whose
checksum is wrong, a cache-tree not valid at the root, a HEAD commit that is not loose, more than
:data:`LIMIT` entries or files) it says False: ask git, as before.

A racily clean entry (a landing's ``read-tree`` writes its files and the index within one tick of
the clock) is read as git reads it: its content must hash to the entry's blob. Only where no
attributes could change what git hashes (a filter, ``ident``, an encoding): no ``.gitattributes``
tracked or on the file's way, none of the repository's, the user's or the system's, no config
that names another attributes file or includes one.

The comparison is stricter than git's (every stat field the index holds, ctime and the executable
bit included, whatever ``core.trustctime``, ``core.checkStat`` or ``core.fileMode`` say): a check
that is stricter only sends more cases to git.
"""

from __future__ import annotations

import hashlib
import os
import stat
import struct
from pathlib import Path

from taskorch.runtime import git_attributes, loose_objects, ref_files

LIMIT = 500
"""Entries (and files, for untracked ones) read at most: a larger checkout is git's to read (an
entry costs about 4 µs here, parsed, stat'ed and compared; ``git status`` about 2.5 ms a process
and well under a microsecond an entry: even at 500 this is the cheaper)."""

_HEADER = struct.Struct(">4sII")
_STAT = struct.Struct(">10I")
_FLAGS = struct.Struct(">H")
_ASSUME_VALID, _EXTENDED, _STAGE = 0x8000, 0x4000, 0x3000
_SKIP_WORKTREE, _INTENT_TO_ADD = 0x4000, 0x2000
_NAME_MASK = 0x0FFF
_FILE_MODES = {0o100644: False, 0o100755: True}
"""Index modes read here, with whether the file is executable (links, submodules: git's)."""
_MASK = 0xFFFFFFFF


class _Unread(Exception):
    """The index says something this module does not read: ask git."""


def clean(worktree: Path, *, untracked: bool) -> bool:
    """True when git's files say ``git status`` would list nothing in ``worktree`` (with
    ``untracked``: no untracked file either, nor an ignored one); False when git must be asked."""
    try:
        return _clean(worktree, untracked)
    except (_Unread, loose_objects.Unreadable, OSError, ValueError, struct.error):
        return False


def _clean(worktree: Path, untracked: bool) -> bool:
    git_dir = ref_files.checkout_git_dir(worktree)
    if git_dir is None:
        return False
    head_tree = _head_tree(worktree, git_dir)
    index = git_dir / "index"
    with index.open("rb") as handle:
        data = handle.read()
        written_ns = os.fstat(handle.fileno()).st_mtime_ns
    size = len(head_tree) // 2
    entries, tree = _read_index(data, size)
    if tree != head_tree:
        return False
    racy = []
    for path, (fields, blob) in entries.items():
        if _racy(fields, written_ns):
            racy.append((path, fields, blob))
        elif not _unchanged(worktree, path, fields):
            return False
    if racy and (
        _attributes_could_apply(worktree, git_dir, entries, [path for path, _, _ in racy])
        or not all(_hashes_to(worktree, *entry) for entry in racy)
    ):
        return False
    return not untracked or _only_tracked(worktree, entries.keys() | {b".git"})


def _head_tree(worktree: Path, git_dir: Path) -> str:
    head = (git_dir / "HEAD").read_text().strip()
    if head.startswith("ref: "):
        name = head.removeprefix("ref: ")
        found = ref_files.read_refs(worktree, (name,))
        if not found or name not in found:
            raise _Unread
        head = found[name]
    if not ref_files.is_object_id(head):
        raise _Unread
    dirs = loose_objects.object_dirs(worktree)
    if dirs is None:
        raise _Unread
    return loose_objects.commit_tree(dirs, head)


_Entries = dict[bytes, tuple[tuple[int, ...], bytes]]
"""path -> the ten stat fields (the mode among them) and the blob's id."""


def _read_index(data: bytes, size: int) -> tuple[_Entries, str]:
    """The entries and the cache-tree's root tree."""
    signature, version, count = _HEADER.unpack_from(data)
    if signature != b"DIRC" or version not in (2, 3) or count > LIMIT:
        raise _Unread
    body, checksum = data[:-size], data[-size:]
    digest = hashlib.sha1 if size == 20 else hashlib.sha256
    if checksum != bytes(size) and digest(body).digest() != checksum:
        raise _Unread  # (all zeros: index.skipHash, no checksum written)
    entries: _Entries = {}
    offset = _HEADER.size
    for _ in range(count):
        fields = _STAT.unpack_from(data, offset)
        (flags,) = _FLAGS.unpack_from(data, offset + _STAT.size + size)
        start = offset + _STAT.size + size + _FLAGS.size
        if flags & (_ASSUME_VALID | _STAGE) or fields[6] not in _FILE_MODES:
            raise _Unread
        if flags & _EXTENDED:
            (extended,) = _FLAGS.unpack_from(data, start)
            if version < 3 or extended & (_SKIP_WORKTREE | _INTENT_TO_ADD):
                raise _Unread
            start += _FLAGS.size
        length = flags & _NAME_MASK
        end = start + length if length < _NAME_MASK else data.index(b"\0", start + length)
        if data[end] != 0:
            raise _Unread
        blob = data[offset + _STAT.size : offset + _STAT.size + size]
        entries[data[start:end]] = fields, blob
        offset += (end - offset + 8) & ~7  # (the entry, padded with 1-8 NULs to 8 bytes)
    return entries, _root_tree(body, offset, size)


def _root_tree(body: bytes, offset: int, size: int) -> str:
    """The cache-tree extension's root tree (valid only: a -1 count means not written yet)."""
    while offset + 8 <= len(body):
        signature, length = body[offset : offset + 4], int.from_bytes(body[offset + 4 : offset + 8])
        start = offset + 8
        if signature in (b"link", b"sdir"):  # (a split or sparse index)
            raise _Unread
        if signature == b"TREE":
            if body[start : start + 1] != b"\0":
                raise _Unread
            line_end = body.index(b"\n", start)
            entry_count = int(body[start + 1 : line_end].split(b" ")[0])
            if entry_count < 0:
                raise _Unread
            return body[line_end + 1 : line_end + 1 + size].hex()
        offset = start + length
    raise _Unread


def _racy(fields: tuple[int, ...], written_ns: int) -> bool:
    """Written no earlier than the index: its stat cannot tell a later change (git reads it)."""
    return fields[2] * 1_000_000_000 + fields[3] >= written_ns


def _unchanged(worktree: Path, path: bytes, fields: tuple[int, ...]) -> bool:
    ctime_s, ctime_ns, mtime_s, mtime_ns, dev, ino, mode, uid, gid, size = fields
    found = os.lstat(os.path.join(bytes(worktree), path))
    return (
        stat.S_ISREG(found.st_mode)
        and bool(found.st_mode & 0o100) == _FILE_MODES[mode]
        and divmod(found.st_mtime_ns, 1_000_000_000) == (mtime_s, mtime_ns)
        and divmod(found.st_ctime_ns, 1_000_000_000) == (ctime_s, ctime_ns)
        and found.st_size & _MASK == size
        and found.st_ino & _MASK == ino
        and found.st_dev & _MASK == dev
        and (found.st_uid, found.st_gid) == (uid, gid)
    )


RACY_MAX_BYTES = 1 << 20
"""A racily clean file is hashed up to this size (a larger one is git's to read)."""


def _hashes_to(worktree: Path, path: bytes, fields: tuple[int, ...], blob: bytes) -> bool:
    """Whether the racily clean file at ``path`` is the entry's blob (its mode as recorded)."""
    with open(os.path.join(bytes(worktree), path), "rb") as handle:
        found = os.fstat(handle.fileno())
        if not stat.S_ISREG(found.st_mode) or found.st_size > RACY_MAX_BYTES:
            return False
        if bool(found.st_mode & 0o100) != _FILE_MODES[fields[6]]:
            return False
        content = handle.read(RACY_MAX_BYTES + 1)
    digest = hashlib.sha1 if len(blob) == 20 else hashlib.sha256
    return digest(b"blob %d\0" % len(content) + content).digest() == blob


_CONFIG_WORDS = (b"attributesfile", b"include")


def _attributes_could_apply(
    worktree: Path, git_dir: Path, entries: _Entries, racy: list[bytes]
) -> bool:
    """Whether attributes could make git hash a file otherwise than as its bytes (a filter,
    ``ident``, an encoding): any attributes file git could read, or config that could name one."""
    if any(path == b".gitattributes" or path.endswith(b"/.gitattributes") for path in entries):
        return True
    if git_attributes.in_checkout(worktree, racy):
        return True
    common = ref_files.common_dir(worktree)
    if common is None or any(name.startswith("GIT_CONFIG") for name in os.environ):
        return True
    if any(place.exists() for place in git_attributes.outside_the_trees(common)):
        return True
    home = Path(os.environ.get("HOME", "/"))
    xdg = Path(os.environ.get("XDG_CONFIG_HOME") or home / ".config")
    configs = [common / "config", git_dir / "config.worktree", home / ".gitconfig"]
    configs += [xdg / "git" / "config", Path("/etc/gitconfig")]
    for config in configs:
        try:
            text = config.read_bytes().lower()
        except FileNotFoundError:
            continue
        if any(word in text for word in _CONFIG_WORDS):
            return True
    return False


def _only_tracked(worktree: Path, tracked: set[bytes]) -> bool:
    """Whether every file under ``worktree`` is one of ``tracked`` (folders without files are
    not listed by git)."""
    seen = 0
    folders = [b""]
    while folders:
        folder = folders.pop()
        with os.scandir(os.path.join(bytes(worktree), folder)) as listing:
            for entry in listing:
                seen += 1
                if seen > LIMIT:
                    return False
                name = folder + b"/" + entry.name if folder else entry.name
                if name == b".git":
                    continue
                if entry.is_dir(follow_symlinks=False):
                    folders.append(name)
                elif name not in tracked:
                    return False
    return True
