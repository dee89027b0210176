"""The git workspace of one workflow: its branch, a worktree per subtask, merges, cleanup.

Names (everything a workflow touches lives under ``refs/heads/taskorch/<workflow_id>/``):

- ``taskorch/<wf>/main``: the workflow branch, created from the base branch; merges of subtasks
  land on it without a checkout (``merge-tree``, ``commit-tree``, a leased ref update). Its
  worktree ``<worktrees>/<wf>/main`` is made only for a test command to run in.
- ``taskorch/<wf>/sub/<key>``: a subtask's branch, in the worktree
  ``<worktrees>/<wf>/subtasks/<key>``, created from the workflow branch as it stands when the
  subtask is prepared (so it sees its dependencies' merged work); once merged, the worktree is a
  spare the next subtask starts from (see :mod:`taskorch.runtime.worktree_folders`).
- ``taskorch/<wf>/kept/<key>/<n>``: unmerged work of an earlier attempt, kept when a subtask is
  prepared afresh.

``<worktrees>`` is ``TASKORCH_WORKTREES``, by default a folder of this host's cache outside the
data folder (``<home>``: the database, the config), which agents working in a worktree must not
reach.

(Git cannot hold both ``taskorch/<wf>`` and ``taskorch/<wf>/<key>``: a branch name cannot also
be a directory of branch names. Hence ``/main`` and ``/sub/``.)

Guarantees: a branch is deleted only when its tip is contained in the workflow branch (or, for
the workflow branch, in the base branch), so no unmerged commit ever loses its name; uncommitted
work in a worktree is committed to its branch before the worktree is removed; only branches under
this workflow's namespace and worktrees under its directory are ever touched. Every operation is
idempotent: re-running it after a crash finishes or redoes it cleanly. Operations that change a
workflow's git state hold a file lock per workflow (merges into the base branch: one per
repository), so concurrent coroutines and processes on one host take turns.

With an ``origin`` (see :mod:`taskorch.runtime.remote`) ``repo`` is this host's mirror of it: the
workflow branch and the base branch follow the origin's (fetched before each step that reads them),
merges are pushed with a lease on the value they started from (a refused push refetches and merges
again), and a database-held lock (``exclusive``) makes one merger per workflow at a time across
hosts. The origin, never a host's disk, holds finished work.

:class:`Workspace` is the face of the parts, a module each: the workflow branch, its locks and
its following the origin (:mod:`~taskorch.runtime.workflow_branch`); subtask branches and
worktrees, earlier work kept (:mod:`~taskorch.runtime.subtask_branches`); merging a subtask and
reading the merges back (:mod:`~taskorch.runtime.subtask_merges`); the workflow branch meeting the
base branch (:mod:`~taskorch.runtime.base_landing`); the worktree a test command runs in
(:mod:`~taskorch.runtime.workflow_worktree`); the clean-up
(:mod:`~taskorch.runtime.workspace_cleanup`).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from taskorch.domain.errors import HostError
from taskorch.runtime import git as g
from taskorch.runtime import spare_pools
from taskorch.runtime.base_landing import BaseLanding, files_with_markers
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.remote import Origin
from taskorch.runtime.repository import (
    check_repository,
    scratch_repository,
    summarise,
)
from taskorch.runtime.subtask_branches import SubtaskBranches
from taskorch.runtime.subtask_merges import SubtaskMerges
from taskorch.runtime.workflow_branch import PUSH_TRIES, Exclusive, WorkflowBranch
from taskorch.runtime.workflow_worktree import WorkflowWorktree
from taskorch.runtime.workspace_cleanup import WorkspaceCleanup
from taskorch.runtime.workspace_records import (
    BaseMerge,
    CleanupReport,
    DiffStat,
    MergeResult,
    MergeStatus,
    PullRequestSummary,
    parse_numstat,
)
from taskorch.runtime.worktree_folders import WorktreeFolders
from taskorch.settings import default_worktrees_root

__all__ = [
    "BaseMerge",
    "CleanupReport",
    "DiffStat",
    "MergeResult",
    "MergeStatus",
    "PullRequestSummary",
    "Workspace",
    "WorkspaceError",
    "check_repository",
]

SYNC_REUSE_S = 1.0
"""Checking whether a subtask merged, then preparing it, is one look at the origin, not two: the
preparation uses the check's fetch when it is this recent (as if it had run that much earlier;
the check came after the subtask was claimed, so its dependencies' merges are in). Merges always
fetch afresh (their push is leased on what they saw)."""


class Workspace:
    """One workflow's branches and worktrees in ``repo``: worktrees under ``worktrees`` (default:
    :func:`~taskorch.settings.default_worktrees_root` of ``home``), locks under ``home``."""

    def __init__(
        self,
        repo: Path,
        workflow_id: str,
        base_branch: str | None = None,
        *,
        home: Path,
        worktrees: Path | None = None,
        origin: Origin | None = None,
        exclusive: Exclusive | None = None,
    ) -> None:
        self.repo = repo.absolute()
        self.origin = origin
        self.workflow_id = g.check_name("workflow id", workflow_id)
        self.home = home.absolute().resolve()
        self._workflow = WorkflowBranch(
            self.repo,
            self.workflow_id,
            base_branch,
            home=self.home,
            origin=origin,
            exclusive=exclusive,
        )
        self.namespace = self._workflow.namespace
        self.workflow_branch = self._workflow.workflow_branch
        worktrees = (worktrees or default_worktrees_root(self.home)).absolute().resolve()
        self.root = worktrees / workflow_id
        self.workflow_worktree = self.root / "main"
        # (a mirror's spares are pooled between workflows; a repository of the user's keeps
        # no worktree of taskorch's once its workflows end)
        pool = spare_pools.pool_for(worktrees, self.repo) if origin is not None else None
        self.folders = WorktreeFolders(self.repo, self.root, pool)
        self._workflow_checkout = WorkflowWorktree(
            self.folders, self.workflow_branch, self.workflow_worktree
        )
        self._subtasks = SubtaskBranches(self._workflow, self.folders)
        self._landing = BaseLanding(self._workflow)
        self._merges = SubtaskMerges(self._workflow)
        self._checked: dict[str, float] = {}
        """Subtask -> when :meth:`is_merged` last looked at the origin for it."""

    @classmethod
    async def for_repo(
        cls,
        path: Path,
        workflow_id: str,
        *,
        home: Path,
        worktrees: Path | None = None,
        base_branch: str | None = None,
        require_clean: bool = True,
    ) -> Workspace:
        """A workspace in the repository at ``path``, validated (see :func:`check_repository`)."""
        root, base = await check_repository(path, base_branch, require_clean=require_clean)
        return cls(root, workflow_id, base, home=home, worktrees=worktrees)

    @classmethod
    async def managed(
        cls,
        home: Path,
        workflow_id: str,
        *,
        name: str = "scratch",
        worktrees: Path | None = None,
    ) -> Workspace:
        """A workspace in the scratch repository ``<home>/repos/<name>`` (created with an initial
        commit on ``main`` when missing)."""
        path = await scratch_repository(home, name)
        return await cls.for_repo(path, workflow_id, home=home, worktrees=worktrees)

    # --- names -----------------------------------------------------------------------------------

    @property
    def base_branch(self) -> str:
        return self._workflow.base_branch

    def subtask_branch(self, key: str) -> str:
        return self._subtasks.branch(key)

    def subtask_worktree(self, key: str) -> Path:
        return self._subtasks.worktree(key)

    # --- the workflow branch ---------------------------------------------------------------------

    async def start(self) -> None:
        """Create the workflow branch (from the base branch); idempotent. Its worktree is made
        only when a step runs commands in it (see :meth:`refresh`): merges need no checkout."""
        await self._workflow.start()

    # --- subtasks --------------------------------------------------------------------------------

    async def prepare_subtask(self, key: str, *, merge_base: bool = False) -> Path:
        """See :meth:`_prepare`; with ``merge_base`` the base branch is then merged into the
        fresh worktree without committing, conflicts left in the files for the agent to resolve
        (a fix-up after the final merge conflicted)."""
        path = await self._prepare(key)
        if merge_base:
            async with self._workflow.lock():
                await self._workflow.sync()  # (the base as it is now: the conflict is with it)
                await self._landing.merge_into(path)
        return path

    async def base_conflicts(self) -> list[str]:
        """Files where merging the workflow branch into the base branch would conflict (computed
        by ``merge-tree``, nothing checked out)."""
        return await self._landing.conflicts()

    async def conflict_markers(self, key: str) -> list[str]:
        """Files of the subtask's worktree that still hold conflict markers."""
        return await files_with_markers(await self._subtasks.existing_worktree(key))

    async def _prepare(self, key: str) -> Path:
        """The subtask's worktree on its branch, starting at the workflow branch as it is now
        (the workflow's first, perhaps at the base as it is now: see
        :meth:`WorkflowBranch.fresh_start`; and see :meth:`SubtaskBranches.prepare`: work an
        earlier attempt left is kept, never dropped)."""
        branch = self.subtask_branch(key)
        await self.start()
        async with self._workflow.lock():
            checked = self._checked.pop(key, None)
            self._subtasks.pristine.discard(key)
            recent = checked is not None and time.monotonic() - checked < SYNC_REUSE_S
            found = await self._workflow.sync(
                f"refs/heads/{branch}", ask_origin=not recent, follow_base=False
            )
            workflow_tip = self._workflow.workflow_tip_in(found)
            tip = found.get(f"refs/heads/{branch}")
            if tip is None:
                workflow_tip = await self._workflow.fresh_start(workflow_tip)
            elif self.origin is not None:
                # An earlier attempt's branch: what other hosts kept of it is read when its work
                # is kept.
                await self._workflow.sync(full=True)
                workflow_tip, tip = await self._workflow.tips(branch)
            return await self._subtasks.prepare(key, workflow_tip, tip)

    async def commit_all(self, key: str, message: str) -> str | None:
        """Commit everything left uncommitted in the subtask's worktree (as ``taskorch``); the new
        commit, or None when there was nothing to commit."""
        path = await self._subtasks.existing_worktree(key)
        return await self._subtasks.commit(key, path, message)

    async def changed_files(self, key: str) -> list[str]:
        """Files the subtask changed since its branch point: its commits plus uncommitted
        changes in its worktree (paths relative to the repository root, sorted)."""
        branch = self.subtask_branch(key)
        tip = await g.rev(self.repo, f"refs/heads/{branch}")
        files: set[str] = set()
        if tip is not None:
            files.update(await g.diff_names(self.repo, f"{self.workflow_branch}...{tip}"))
        if not files:  # nothing unmerged: perhaps merged already
            merge = (await self._merges.merges()).get(key)
            if merge is not None and tip in (None, merge.subtask_tip):
                files.update(await g.diff_names(self.repo, merge.first_parent, merge.commit))
            elif tip is None:
                raise WorkspaceError(f"subtask {key} has no branch {branch}; prepare it first")
        path = self.subtask_worktree(key)
        if await asyncio.to_thread(path.is_dir):
            files.update(await g.status_paths(path))
        return sorted(files)

    async def diff_stat(self, key: str) -> DiffStat:
        """Committed changes of the subtask's branch since its branch point (lines per file)."""
        branch = self.subtask_branch(key)
        tip = await g.rev(self.repo, f"refs/heads/{branch}")
        if tip is None:
            raise WorkspaceError(f"subtask {key} has no branch {branch}; prepare it first")
        span = f"{self.workflow_branch}...{tip}"
        return parse_numstat(await g.out(self.repo, "diff", "--numstat", "--no-renames", span))

    async def is_merged(self, key: str) -> bool:
        """Whether a merge of this subtask landed on the workflow branch (the origin's)."""
        if self.origin is not None:
            await self.start()
            async with self._workflow.lock():
                started = time.monotonic()
                await self._workflow.sync(follow_base=False)
                self._checked[key] = started
        return key in await self._merges.merges()

    async def merge_subtask(
        self, key: str, *, candidate: str | None = None, committed: bool = False
    ) -> MergeResult:
        """Merge the subtask's branch into the workflow branch (``--no-ff``, one merge commit per
        subtask), then remove its worktree and branch. With ``candidate`` (a best-of-N winner's
        key) that candidate's work becomes the subtask's branch first, under the same locks, and
        only if no merge of the subtask has landed (then: ``already_merged``, the candidate
        dropped).

        The merge is computed without a checkout (``merge-tree``, ``commit-tree``) and the
        workflow branch moved from the value it was read at (with an origin: pushed there with
        that lease first; a refused push refetches and merges again). Uncommitted work in the
        subtask's worktree is committed first (``committed``: the caller just did). A conflict
        moves nothing and leaves both branches and the subtask's worktree as they were: status
        ``conflict`` with the files. A branch with nothing beyond the workflow branch gives
        ``nothing_to_merge``; a re-run after the merge landed gives ``already_merged``.
        """
        await self.start()
        for attempt in range(PUSH_TRIES):
            async with self._workflow.merging(), self._workflow.lock():
                if candidate is not None:
                    # (its adoption may keep earlier work: it reads the kept branches)
                    await self._workflow.sync(full=True)
                    landed = await self._adopt_unless_merged(key, candidate)
                    if landed is not None:
                        return landed
                path = self.subtask_worktree(key)
                if not committed and await asyncio.to_thread(path.is_dir):
                    message = f"taskorch: uncommitted work of subtask {key}"
                    await self._subtasks.commit(key, path, message)
                committed = True
                # The mirror's view is enough for a first try: the push is leased on it.
                branch = self.subtask_branch(key)
                result, tip = await self._merges.merge(key, branch, ask_origin=attempt > 0)
                if result is None:
                    continue  # another host merged meanwhile: merge onto theirs
                if result.status is MergeStatus.CONFLICT and self.origin is not None:
                    await self._workflow.keep_on_origin(branch)
            # Outside the workflow's lock: the next subtask's merge need not wait for it.
            if result.status is MergeStatus.MERGED:
                await self._subtasks.drop_merged(key)  # (its branch went with the merge)
            elif result.merged:
                await self._subtasks.drop_merged(key, tip, delete_branch=True)
            return result
        raise HostError(
            f"could not push the merge of subtask {key}: the origin's {self.workflow_branch} "
            f"moved {PUSH_TRIES} times in a row"
        )

    # --- best-of-N candidates --------------------------------------------------------------------

    async def merge_candidate(self, key: str, candidate: str) -> MergeResult:
        """Merge the winning candidate's work as the subtask's own: exactly once, whichever host
        or coroutine gets here too (a second winner finds the subtask merged and is dropped).
        See :meth:`merge_subtask`."""
        return await self.merge_subtask(key, candidate=candidate)

    async def _adopt_unless_merged(self, key: str, candidate: str) -> MergeResult | None:
        """Under the merge locks: the subtask's merge when it has landed already (the candidate
        is dropped), else None with the candidate's work made the subtask's branch."""
        landed = (await self._merges.merges()).get(key)
        if landed is not None:
            await self.drop_candidate(candidate)
            return await self._merges.already_merged(key, self.subtask_branch(key), landed)
        chosen = await g.rev(self.repo, f"refs/heads/{self.subtask_branch(candidate)}")
        if chosen is not None:  # (None: adopted by an earlier try of this merge)
            await self._subtasks.adopt(key, candidate, chosen)
        return None

    async def drop_candidate(self, candidate: str) -> None:
        """Remove a candidate's worktree and branch: a loser's work is not wanted (a winner's
        is on the subtask's branch by now). Idempotent."""
        await self._subtasks.drop_candidate(candidate)

    # --- the end of a workflow -------------------------------------------------------------------

    async def pr_summary(self) -> PullRequestSummary:
        """Commits and diff stat of the workflow branch against its merge base with the base
        branch: the data of the pull request record."""
        local = self._workflow.local_origin
        if local is not None:
            # An origin on this disk holds both branches: read there, the base as it is now,
            # without copying it into the mirror first.
            await self.start()
            return await summarise(local, self.base_branch, self.workflow_branch)
        found = await self._workflow.synced()
        head = self._workflow.workflow_tip_in(found)
        return await summarise(self.repo, self.base_branch, self.workflow_branch, head)

    async def refresh(self) -> Path:
        """The workflow worktree (made when missing), with the files of the origin's workflow
        branch as it stands now: where the test command runs."""
        await self.start()
        async with self._workflow.lock():
            await self._workflow.sync(follow_base=False)
            return await self._workflow_checkout.check_out()

    async def sync(self) -> dict[str, str]:
        """The origin's base and workflow branches, fetched when they moved (see
        :meth:`WorkflowBranch.sync`); no checkout."""
        return await self._workflow.synced()

    async def _workflow_refs(self) -> dict[str, str]:
        """:meth:`sync` for a step that reads the workflow branch alone."""
        return await self._workflow.synced(follow_base=False)

    async def merge_to_base(self) -> BaseMerge:
        """Land the workflow branch on the base branch (see
        :func:`~taskorch.runtime.repository.merge_into_base`); with an origin, on the origin's
        base branch. Idempotent: a re-run after the merge landed reports ``already_merged`` with
        the base's commit."""
        return await self._landing.land()

    async def workflow_tip(self) -> str:
        """The workflow branch's commit on the origin, now."""
        return self._workflow.workflow_tip_in(await self._workflow_refs())

    async def base_contains_workflow(self, *, from_url: str | None = None) -> str | None:
        """The origin's base branch commit when it contains the workflow branch (read from git
        just now), else None: ``merged`` is a fact of the repository, not a row. ``from_url``
        reads the base branch from that repository instead (a local repository's GitHub)."""
        return await self._landing.contains_workflow(from_url)

    async def landed_merges(self, expected: int = 0) -> dict[str, tuple[str, list[str]]]:
        """Subtask key -> (its merge commit, the files it changed) for every subtask merge on
        the origin's workflow branch. ``expected``: about how many there are (the workflow's
        subtasks), which bounds how far back git is asked to look at first."""
        tip = self._workflow.workflow_tip_in(await self._workflow_refs())
        return await self._merges.landed(tip, expected)

    async def cleanup(self, cancelled: bool = True) -> CleanupReport:
        """Remove this workflow's worktrees and the branches whose work is merged.

        Uncommitted work in a subtask's worktree is committed to its branch first. A subtask or
        kept branch is deleted only when the workflow branch contains it, the workflow branch
        only when the base branch contains it; the rest are kept (and reported). Nothing outside
        ``taskorch/<workflow_id>/`` and ``<worktrees>/<workflow_id>/`` is touched.
        """
        why = "the workflow was cancelled" if cancelled else "the workflow ended"
        async with self._workflow.lock():
            cleanup = WorkspaceCleanup(self._workflow, self.folders)
            report = await cleanup.run(why)
        self._workflow.forget()
        self._workflow_checkout.forget()
        return report
