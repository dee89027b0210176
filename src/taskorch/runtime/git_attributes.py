"""Where git reads attributes files (which can make it hash, count or diff a file otherwise than
as its bytes: a filter, ``ident``, an encoding, ``binary``): what taskorch checks before it
answers a question of git's from git's own files."""

from __future__ import annotations

import os
from pathlib import Path

SYSTEM_ATTRIBUTES = (Path("/etc/gitattributes"), Path("/usr/local/etc/gitattributes"))
"""Where git built for ``/usr`` or ``/usr/local`` reads the system's attributes."""


def outside_the_trees(common: Path) -> list[Path]:
    """The attributes files outside the trees git may read for the repository whose common
    folder is ``common``: its ``info/attributes``, the system's and the user's (git's own order:
    the XDG folder, else ``~/.config``). ``core.attributesFile`` is the caller's to ask."""
    places = [common / "info" / "attributes", *SYSTEM_ATTRIBUTES]
    config_home = os.environ.get("XDG_CONFIG_HOME") or (
        os.path.join(os.environ["HOME"], ".config") if os.environ.get("HOME") else None
    )
    if config_home is not None:
        places.append(Path(config_home) / "git" / "attributes")
    return places


def in_checkout(checkout: Path, paths: list[bytes]) -> bool:
    """Whether ``checkout`` holds a ``.gitattributes`` (a dangling link counted) in a folder on
    the way to one of ``paths``: git reads those before the trees'."""
    folders = {b""}
    for path in paths:
        parts = path.split(b"/")[:-1]
        folders.update(b"/".join(parts[:depth]) for depth in range(1, len(parts) + 1))
    top = bytes(checkout)
    return any(
        os.path.lexists(os.path.join(top, folder, b".gitattributes")) for folder in sorted(folders)
    )
