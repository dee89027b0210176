"""Where a workflow's work goes, as a user names it on a face (a CLI flag, an API field, an MCP
argument): the repository (a local path or a git URL), its base branch and the merge policy.

The faces check what was given here, in one line, before anything is stored or started; at
workflow start ``GitDelivery.target`` settles what was not given (the task's metadata, then
``TASKORCH_REPO`` and ``TASKORCH_MERGE_POLICY``, then this host's scratch repository) and records
it in the workflow's options, which :func:`describe_target` reads back.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from taskorch.domain.errors import InputError
from taskorch.domain.models import JSONDict

# git and delivery are imported where a target is checked: `taskorch status` shows a target only.

__all__ = ["check_base_branch", "check_target", "describe_target", "repository"]

_BRANCH = re.compile(r"^[A-Za-z0-9._/][A-Za-z0-9._/+-]*$")


async def repository(
    text: str,
    base_branch: str | None = None,
    *,
    require_clean: bool = False,
    reach: bool = False,
) -> str:
    """The repository ``text`` names, checked: a URL as given (no password, a known scheme), or
    a local path's repository root (a git repository whose base branch exists; with
    ``require_clean``, not checked out with uncommitted changes). With ``reach`` a URL is asked
    for its branches now (work is about to start); else that waits for a workflow's start,
    which may be on another host."""
    from taskorch.runtime import remote
    from taskorch.runtime.remote import parse_origin
    from taskorch.runtime.repository import check_repository

    try:
        origin = parse_origin(text)
    except ValueError as exc:  # what urllib makes of a URL it cannot split ("http://[")
        raise InputError(f"repository {text.strip()!r} is not a valid URL: {exc}") from None
    if origin.path is None:
        if reach:
            await remote.remote_base(origin, Path(tempfile.gettempdir()), base_branch)
        return origin.url
    try:
        root, _ = await check_repository(origin.path, base_branch, require_clean=require_clean)
    except OSError as exc:  # a path the system refuses to look at (too long, no permission)
        raise InputError(f"repository path cannot be read: {exc.strerror}") from None
    return str(root)


def check_base_branch(name: str) -> str:
    name = name.strip()
    if not _BRANCH.match(name) or ".." in name or name.endswith((".lock", "/", ".")):
        raise InputError(f"base branch {name!r} is not a valid branch name")
    return name


async def check_target(
    repo: str | None = None,
    base_branch: str | None = None,
    merge_policy: str | None = None,
    *,
    require_clean: bool = False,
    reach: bool = False,
) -> JSONDict:
    """The ``repo``, ``base_branch`` and ``merge_policy`` options (those given), each checked
    with a one-line error (see :func:`repository`); a local repository is given as its root."""
    options: JSONDict = {}
    if merge_policy is not None:
        from taskorch.engine.delivery import check_merge_policy

        options["merge_policy"] = check_merge_policy(merge_policy.strip().lower())
    if base_branch is not None:
        options["base_branch"] = base_branch = check_base_branch(base_branch)
    if repo is not None:
        options["repo"] = await repository(
            repo, base_branch, require_clean=require_clean, reach=reach
        )
    return options


def describe_target(options: Mapping[str, Any]) -> str:
    """Where a started workflow merges, from its recorded options: ``main of /srv/app (merge
    policy approve)``."""
    base = options.get("base_branch") or "the base branch"
    repo = options.get("repo") or "the scratch repository"
    return f"{base} of {repo} (merge policy {options.get('merge_policy') or 'auto'})"
