"""A target repository as a whole: validating it, the managed scratch repository, landing a branch
on the base branch, and the pull-request data of a branch.

The one-line errors here are what ``taskorch run --repo PATH`` shows for a path that is not a git
repository or a base branch with uncommitted changes.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from pathlib import Path

from taskorch.runtime import (
    ancestry,
    commit_objects,
    index_status,
    loose_commits,
    loose_objects,
    loose_summary,
    tracing,
    tree_merge,
)
from taskorch.runtime import git as g
from taskorch.runtime.basemove import (
    dirty_refusal,
    finish_move,
    move_checked_out,
    repo_lock_path,
    update_ref_past_stale_locks,
)
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.ref_files import checkout_git_dir, common_dir
from taskorch.runtime.workspace_records import (
    BaseMerge,
    CommitInfo,
    PullRequestSummary,
    parse_numstat,
)

SCRATCH_README = "# taskorch scratch repository\n\nWork of taskorch runs without --repo.\n"

log = logging.getLogger(__name__)


async def check_repository(
    path: Path, base_branch: str | None = None, *, require_clean: bool = True
) -> tuple[Path, str]:
    """``(repository root, base branch)`` for ``path``, or a one-line :class:`WorkspaceError`.

    ``base_branch`` None means the branch checked out there. With ``require_clean`` a checkout of
    the base branch with uncommitted changes to tracked files is refused (untracked files are not
    counted: they are in no branch).
    """
    path = _absolute(path)
    if not await asyncio.to_thread(path.is_dir):
        raise WorkspaceError(f"repository path does not exist or is not a directory: {path}")
    await g.require_version(path)
    bare = await g.git(path, "rev-parse", "--is-bare-repository", check=False)
    if not bare.ok:
        raise WorkspaceError(f"repository path is not a git repository: {path}")
    if bare.stdout.strip() == "true":
        root = Path(await g.out(path, "rev-parse", "--absolute-git-dir"))
    else:
        root = Path(await g.out(path, "rev-parse", "--show-toplevel"))
    if root.resolve() != path.resolve():
        raise WorkspaceError(
            f"repository path is not a git repository: {path} (it lies inside the repository "
            f"{root}; pass that path)"
        )
    if base_branch is None:
        head = await g.git(root, "symbolic-ref", "-q", "--short", "HEAD", check=False)
        if not head.ok:
            raise WorkspaceError(
                f"HEAD of {root} is detached; check out the base branch or name it"
            )
        base_branch = head.stdout.strip()
        if await g.rev(root, f"refs/heads/{base_branch}") is None:
            raise WorkspaceError(
                f"branch {base_branch!r} of {root} has no commits yet; make a first commit"
            )
    elif await g.rev(root, f"refs/heads/{base_branch}") is None:
        raise WorkspaceError(f"base branch {base_branch!r} does not exist in {root}")
    if require_clean:
        async with g.admin_lock(root):
            entries = await g.worktrees(root)
        for entry in entries:
            if entry.branch != base_branch or entry.bare or not entry.path.is_dir():
                continue
            if await g.is_dirty(entry.path, untracked=False):
                raise WorkspaceError(
                    f"base branch {base_branch!r} has uncommitted changes in {entry.path}; "
                    "commit or stash them first"
                )
    return root, base_branch


async def scratch_repository(home: Path, name: str = "scratch") -> Path:
    """``<home>/repos/<name>``, created (branch ``main``, one commit) when missing; idempotent and
    safe when several processes ask at once."""
    home = _absolute(home)
    path = home / "repos" / g.check_name("scratch repository name", name)
    async with g.file_lock(home / "locks" / f"repo-{name}.lock"):
        if not await asyncio.to_thread((path / ".git").exists):
            await asyncio.to_thread(path.mkdir, parents=True, exist_ok=True)
            await g.git(path, "init", "-q", "-b", "main")
        if await g.rev(path, "HEAD") is None:
            await asyncio.to_thread((path / "README.md").write_text, SCRATCH_README)
            await g.git(path, "add", "README.md")
            await g.git(path, "commit", "-q", "--no-verify", "-m", "taskorch scratch repository")
    return path


async def clear_stale_index_lock(worktree: Path) -> None:
    """Remove an ``index.lock`` left by a git process that was killed (kill -9 of a worker).

    taskorch commits in a worktree only once its agent has finished and under the workspace's
    locks, so no live git process of ours can hold it then; without this, every later attempt on
    the subtask would fail with "remove the file manually to continue".
    """
    # (read without running git, in the loop's thread: this runs before every commit of every
    # subtask, and a hop to a thread cost more than these small reads)
    git_dir = checkout_git_dir(worktree)
    if git_dir is None:
        git_dir = Path(await g.out(worktree, "rev-parse", "--absolute-git-dir"))
    lock = git_dir / "index.lock"
    if lock.exists():
        log.warning("removing stale %s (left by a killed git process)", lock)
        lock.unlink(missing_ok=True)


async def commit_all(worktree: Path, message: str) -> str | None:
    """Commit everything uncommitted in ``worktree`` as ``taskorch`` (no hooks); the new commit,
    or None when there was nothing to commit."""
    return (await commit_all_and_look(worktree, message))[0]


async def commit_all_and_look(worktree: Path, message: str) -> tuple[str | None, bool]:
    """:func:`commit_all`, and whether ``worktree`` is left pristine: no file that is not
    committed, ignored ones included (so a later reuse needs no ``clean``). One ``status``
    tells both."""
    await clear_stale_index_lock(worktree)
    if index_status.clean(worktree, untracked=True):  # (git's files say so: no status process)
        return None, True
    listed = await g.out(
        worktree, "status", "--porcelain", "--untracked-files=all", "--ignored=matching"
    )
    lines = listed.splitlines()
    pristine = not any(line.startswith("!!") for line in lines)
    if all(line.startswith("!!") for line in lines):
        return None, pristine
    await g.git(worktree, "add", "-A")
    if await g.succeeds(worktree, "diff", "--cached", "--quiet"):
        return None, pristine
    await g.git(worktree, "commit", "-q", "--no-verify", "-m", message)
    return await g.rev(worktree, "HEAD"), pristine


async def merge_into_base(
    repo: Path, branch: str, base: str, message: str, *, home: Path
) -> BaseMerge:
    """Land ``branch`` on ``base``: fast-forward when possible, else a merge commit.

    The merge is computed without a checkout (``merge-tree``; a conflict is raised as
    :class:`~taskorch.runtime.git.MergeConflictError` and nothing moves) and ``base`` moved by an
    atomic ref update from the value it was read at. Where ``base`` is checked out, that checkout
    must be clean (else the one-line refusal, and nothing moves) and is brought along so that a
    kill at any point leaves it as it was or finishable (:mod:`taskorch.runtime.basemove`; a move
    a killed process left half-done is finished first). One merge into a repository's base at a
    time (a lock per repository under ``home``).
    """
    ref = f"refs/heads/{base}"
    async with g.file_lock(repo_lock_path(home, repo)):
        await finish_move(home, repo)
        head, base_tip = await tips(repo, f"refs/heads/{branch}", ref)
        start = await _merge_base(repo, head, base_tip)
        if start == head:
            return BaseMerge(base, base_tip, fast_forward=False, already_merged=True)
        holder = await _checkout_of(repo, base)
        if holder is not None and await g.is_dirty(holder, untracked=False):
            raise dirty_refusal(base, holder)
        if start == base_tip:
            new = head
        else:
            new = await merge_without_checkout(repo, branch, base, base_tip, head, message)
        if holder is not None:
            await move_checked_out(home, repo, holder, base, base_tip, new, message)
        else:
            await update_ref_past_stale_locks(repo, "-m", message, ref, new, base_tip)
        ancestry.note(head, new)
        return BaseMerge(base, new, fast_forward=new == head, already_merged=False)


_checkouts: dict[tuple[str, str], Path] = {}
"""(repository, branch) -> the worktree last found holding the branch."""


async def _checkout_of(repo: Path, branch: str) -> Path | None:
    """The worktree of ``repo`` that has ``branch`` checked out, None when none has. The one
    found last time is asked first, by its HEAD file (git checks a branch out in one worktree at
    a time), before every worktree is listed: one merge into the base per workflow."""
    key = (str(repo), branch)
    known = _checkouts.get(key)
    if known is not None and _holds(repo, known, branch):  # (two small files: no thread hop)
        return known
    async with g.admin_lock(repo):
        entries = await g.worktrees(repo)
    holder = next((e.path for e in entries if e.branch == branch and not e.bare), None)
    if holder is None or not await asyncio.to_thread(holder.is_dir):
        _checkouts.pop(key, None)
        return None
    _checkouts[key] = holder
    return holder


def _holds(repo: Path, checkout: Path, branch: str) -> bool:
    """Whether ``checkout``, a worktree of ``repo``, has ``branch`` checked out (its files say)."""
    git_dir = checkout_git_dir(checkout)
    if git_dir is None or common_dir(checkout) != common_dir(repo):
        return False
    try:
        return (git_dir / "HEAD").read_text().strip() == f"ref: refs/heads/{branch}"
    except OSError:
        return False


async def summarise(
    repo: Path, base: str, branch: str, head: str | None = None
) -> PullRequestSummary:
    """Commits (oldest first) and diff stat of ``branch`` (at ``head`` when the caller has just
    read it) against its merge base with ``base``."""
    if head is None:
        head, base_tip = await tips(repo, f"refs/heads/{branch}", f"refs/heads/{base}")
    else:
        (base_tip,) = await tips(repo, f"refs/heads/{base}")
    start, commits = await _commits_beyond(repo, base_tip, head)
    stat = await loose_summary.numstat(repo, start, head)
    if stat is None:
        stat = parse_numstat(await g.out(repo, "diff", "--numstat", "--no-renames", start, head))
    return PullRequestSummary(base, branch, start, head, commits, stat)


async def _commits_beyond(repo: Path, base_tip: str, head: str) -> tuple[str, list[CommitInfo]]:
    """The merge base of ``base_tip`` and ``head`` and the commits from it to ``head``, oldest
    first. Where the remembered facts do not give the merge base, one ``log --boundary`` gives
    both: a single boundary commit (an excluded parent of a listed commit) is the merge base,
    and then what the log lists is exactly what lies beyond it. Otherwise (criss-cross merges,
    unrelated histories) git's ``merge-base`` is asked, as before. Where the merge base is
    known (remembered, or shown by the loose commits down from ``head``) and the commits beyond
    it are a line of loose ones, they are read from their files (:mod:`loose_summary`)."""
    start = _remembered_merge_base(base_tip, head) or _loose_merge_base(repo, base_tip, head)
    listed = await loose_summary.commits(repo, start, head) if start is not None else None
    if start is not None and listed is not None:
        return start, listed
    if start is None:
        said = await g.out(
            repo, "log", "--reverse", "--boundary", "--format=%m%H%x00%s", head, f"^{base_tip}"
        )
        lines = [line for line in said.splitlines() if line]
        boundary = [line[1:].split("\0", 1)[0] for line in lines if line.startswith("-")]
        if len(boundary) == 1 or (not boundary and not lines):
            start = boundary[0] if boundary else head
            ancestry.note_merge_base(base_tip, head, start)
            ancestry.note(start, head)
            ancestry.note(start, base_tip)
            beyond = [line[1:] for line in lines if not line.startswith("-")]
            return start, [CommitInfo(*line.split("\0", 1)) for line in beyond]
        start = await _merge_base(repo, base_tip, head, check=True)
    log = await g.out(repo, "log", "--reverse", "--format=%H%x00%s", f"{start}..{head}")
    return start, [CommitInfo(*line.split("\0", 1)) for line in log.splitlines() if line]


def _loose_merge_base(repo: Path, base_tip: str, head: str) -> str | None:
    """The merge base the loose commits prove the one (:func:`loose_commits.merge_base`): a
    remembered common ancestor, or a commit where the loose commits down from ``head`` meet
    ``base_tip``'s known history."""
    met = loose_commits.meeting_points(repo, head, base_tip)
    start = loose_commits.merge_base(repo, base_tip, head, met)
    if start:
        ancestry.note_merge_base(base_tip, head, start)
    return start


def _remembered_merge_base(one: str, other: str) -> str | None:
    """The best common ancestor of two commits as the remembered facts give it (one of them when
    it is in the other: a fast-forward, or merged already), else None."""
    if ancestry.known(one, other):
        return one
    if ancestry.known(other, one):
        return other
    return ancestry.merge_base(one, other)


async def _merge_base(repo: Path, one: str, other: str, *, check: bool = False) -> str:
    """The best common ancestor of two commits: the remembered one (the usual case, and no
    process), else the one the loose commits above a remembered common ancestor show
    (:func:`loose_commits.merge_base`), else git's answer ("" when they share no history, or
    with ``check`` a GitError)."""
    start = _remembered_merge_base(one, other)
    if start is None:
        start = loose_commits.merge_base(repo, one, other)
        if start is None:
            start = (await g.git(repo, "merge-base", one, other, check=check)).stdout.strip()
        ancestry.note_merge_base(one, other, start)
    if start in (one, other):
        ancestry.note(start, other if start == one else one)
    return start


async def tips(cwd: Path, *names: str) -> list[str]:
    """The commits of the refs ``names`` (full names), in one look-up."""
    found = await g.refs(cwd, *names)
    missing = [name for name in names if name not in found]
    if missing:
        raise WorkspaceError(f"{missing[0]} does not exist in {cwd}")
    return [found[name] for name in names]


_MERGED_TREES_KEPT = 256
_merged_trees: OrderedDict[tuple[str, str, str], str] = OrderedDict()
"""(repository, commit, commit) -> the tree ``merge-tree`` wrote there for their clean merge."""


async def merged_tree(repo: Path, one: str, other: str) -> tuple[str | None, list[str]]:
    """The tree of a merge of the commits ``one`` and ``other`` (None: it conflicts) and the
    conflicting files, computed by ``merge-tree`` in ``repo`` (which keeps the tree), or, when
    the remembered facts say one commit contains the other, that one's own tree (as a tree-ish
    ``<commit>^{tree}``, which ``commit-tree`` reads), without a process. A clean
    merge's tree is remembered: the validation's check for conflicts with the base and the
    landing that follows it ask about the same two commits while the base has not moved."""
    if ancestry.known(one, other):  # a fast-forward: the merge is ``other``'s own tree
        return f"{other}^{{tree}}", []
    if ancestry.known(other, one):  # merged already
        return f"{one}^{{tree}}", []
    key = (str(repo), one, other)
    tree = _merged_trees.get(key)
    if tree is None:
        with tracing.span("tree merged") as notes:
            tree = await _merged_loose(repo, one, other)
            notes.set("taskorch.merged_by", "git" if tree is None else "taskorch")
    if tree is not None:
        _remember_merged_tree(key, tree)
        return tree, []
    merge = ("merge-tree", "--write-tree", "--name-only", "--no-messages", one, other)
    result = await g.git(repo, *merge, check=False)
    lines = result.stdout.splitlines()
    if result.returncode == 1:
        return None, sorted({line for line in lines[1:] if line})
    if not result.ok or not lines:
        raise g.GitError(merge, repo, result.returncode, result.stderr)
    _remember_merged_tree(key, lines[0])
    return lines[0], []


def _remember_merged_tree(key: tuple[str, str, str], tree: str) -> None:
    _merged_trees[key] = tree
    _merged_trees.move_to_end(key)
    while len(_merged_trees) > _MERGED_TREES_KEPT:
        _merged_trees.popitem(last=False)


async def _merged_loose(repo: Path, one: str, other: str) -> str | None:
    """The clean merge's tree as :mod:`taskorch.runtime.tree_merge` writes it from loose
    objects, where the loose commits prove the one merge base (:func:`loose_commits.merge_base`)
    and taskorch may write objects into ``repo``; None: git merges."""
    remembered = ancestry.merge_base(one, other)
    base = loose_commits.merge_base(repo, one, other, (remembered,) if remembered else ())
    dirs = loose_objects.object_dirs(repo)
    if base is None or not dirs or not await commit_objects.writes_allowed(repo):
        return None
    try:
        trees = [loose_objects.commit_tree(dirs, commit) for commit in (base, one, other)]
        return tree_merge.merged(dirs, *trees)
    except (loose_objects.Unreadable, OSError):
        return None


async def merge_without_checkout(
    repo: Path, branch: str, base: str, base_tip: str, head: str, message: str
) -> str:
    tree, conflicts = await merged_tree(repo, base_tip, head)
    if tree is None:
        raise g.MergeConflictError(f"merge of {branch} into {base}", conflicts)
    merged = await commit_objects.write_commit(repo, tree, [base_tip, head], message)
    try:
        if merged is None:
            merged = await g.out(
                repo, "commit-tree", tree, "-p", base_tip, "-p", head, "-m", message
            )
    except g.GitError:  # (a remembered tree pruned since, say: the next try computes it afresh)
        _merged_trees.pop((str(repo), base_tip, head), None)
        raise
    ancestry.note(base_tip, merged)  # (a commit contains its parents)
    ancestry.note(head, merged)
    return merged


def _absolute(path: Path) -> Path:
    return path.expanduser().absolute()
