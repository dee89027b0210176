"""The clean-up at the end of a workflow: its worktrees removed (uncommitted work committed to
its branch first) and its branches deleted where their work is merged, in this host's mirror and
on the origin.

A subtask or kept branch is deleted only when the workflow branch contains it, the workflow branch
only when the base branch contains it, and each only at the commit found merged (a branch that
moved meanwhile stays): no unmerged commit loses its name. Only branches under the workflow's
namespace and worktrees under its folder are touched.
"""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path

from taskorch.runtime import git as g
from taskorch.runtime import remote, worktree_admin
from taskorch.runtime.repository import commit_all as commit_worktree
from taskorch.runtime.workflow_branch import WorkflowBranch
from taskorch.runtime.workspace_records import CleanupReport
from taskorch.runtime.worktree_folders import WorktreeFolders, is_under, usable


class WorkspaceCleanup:
    """One clean-up of the workflow whose branch is ``workflow`` and whose worktrees are
    ``folders``."""

    def __init__(self, workflow: WorkflowBranch, folders: WorktreeFolders) -> None:
        self._workflow = workflow
        self.repo = workflow.repo
        self.origin = workflow.origin
        self.namespace = workflow.namespace
        self.workflow_branch = workflow.workflow_branch
        self.base_branch = workflow.base_branch
        self.folders = folders
        self.root = folders.root

    async def run(self, why: str) -> CleanupReport:
        """Remove the worktrees (their work committed first, ``why`` said in the message) and
        the branches whose work is merged; the caller holds the workflow lock."""
        local = self._workflow.local_origin
        # The origin's branches of the workflow, other hosts' too: read there when it is on
        # this disk (it holds every merged commit: containment is asked there), else fetched.
        there = await self._branches_and_base(local, "refs/heads/") if local else None
        if there is None:
            await self._workflow.sync(full=True)
        async with g.admin_lock(self.repo):
            self.folders.give_spares_to_pool()
            listed = worktree_admin.linked_worktrees(self.repo, self._owns)
            if listed is None:
                listed = await g.worktrees(self.repo)
            entries = [e for e in listed if self._owns(e.path, e.branch)]
        # (spare worktrees hold no work: removed with the folder, unreported)
        entries = [e for e in entries if not is_under(e.path, self.folders.spares)]
        for entry in entries:
            if entry.branch != self.workflow_branch and usable(entry):
                await commit_worktree(entry.path, f"taskorch: unfinished work kept ({why})")
        if entries:
            async with g.admin_lock(self.repo):
                for entry in entries:
                    await self.folders.remove(entry.path, entry.branch)
        deleted, kept, deletions = await self._merged_branches(there)
        await self._delete_merged(there, deletions)
        # The folder goes last: while it is there, a kill anywhere above leaves the workflow
        # found as not cleaned up (engine/leftovers.py), and its merged branches are deleted
        # then; gone first, a kill before the deletion left them in the repository for good.
        if self.root.exists():  # (a stat: in the loop's thread, as the hop would cost more)
            # The files go without the admin lock (the workflow lock keeps this workflow's
            # steps out; git reads a worktree's record, not its files); only the records of the
            # worktrees that were there are git's business.
            await asyncio.to_thread(shutil.rmtree, self.root, True)
            async with g.admin_lock(self.repo):
                if not worktree_admin.forget_gone(self.repo, self.root):  # (small records)
                    await g.git(self.repo, "worktree", "prune")
        return CleanupReport([str(e.path) for e in entries], deleted, kept)

    def _owns(self, path: Path, branch: str | None) -> bool:
        """Whether the worktree at ``path`` on ``branch`` is this workflow's."""
        if self.folders.pooled(path):
            return False  # (a spare between workflows: its branch's name is an ended one's)
        mine = branch is not None and branch.startswith(self.namespace)
        return mine or is_under(path, self.root)

    async def _branches_and_base(
        self, where: Path, prefix: str
    ) -> tuple[dict[str, str], str | None]:
        """The workflow's branches (short name -> commit) and the base branch's commit, as
        ``where`` has them under ``prefix`` (``refs/heads/``, ``refs/remotes/origin/``): one
        look-up."""
        listed = await g.matching_refs(where, prefix + self.namespace, prefix + self.base_branch)
        refs = {ref.removeprefix(prefix): sha for ref, sha in listed.items()}
        found = {name: sha for name, sha in refs.items() if name.startswith(self.namespace)}
        return found, refs.get(self.base_branch)

    async def _merged_among(
        self, where: Path, found: dict[str, str], base_tip: str | None, workflow_tip: str | None
    ) -> dict[str, str]:
        """The branches of ``found`` whose work is merged (the workflow branch into the base,
        the others into the workflow branch), asked in ``where`` (a commit it lacks is not
        merged there)."""
        merged = {}
        for name, tip in sorted(found.items()):
            container = base_tip if name == self.workflow_branch else workflow_tip
            if container is None:
                continue
            if await g.is_ancestor(where, tip, container) or (
                name.startswith(f"{self.namespace}kept/")
                and await _same_work_in(where, tip, container)
            ):
                merged[name] = tip
        return merged

    async def _delete_merged(
        self,
        there: tuple[dict[str, str], str | None] | None,
        here: dict[str, tuple[str | None, str | None]],
    ) -> None:
        """The mirror's merged branches (``here``) deleted in the same transaction as the
        origin's tracking refs when the origin has merged branches to delete too, else on
        their own."""
        if self.origin is None or not await self._delete_merged_on_origin(there, here):
            await g.update_refs(self.repo, here)

    async def _delete_merged_on_origin(
        self,
        there: tuple[dict[str, str], str | None] | None,
        here: dict[str, tuple[str | None, str | None]],
    ) -> bool:
        """The origin's branches of this workflow whose work is merged, deleted with the
        mirror's ``here`` (one transaction there); a branch that moved meanwhile stays. False,
        ``here`` not done, when there was nothing to delete or the origin moved meanwhile.
        ``there``: the origin's, read on this disk (else as last fetched)."""
        local = self._workflow.local_origin
        if there is not None and local is not None:
            where, (found, base_tip) = local, there
        else:
            where = self.repo
            found, base_tip = await self._branches_and_base(where, f"refs/remotes/{remote.REMOTE}/")
        gone = await self._merged_among(where, found, base_tip, found.get(self.workflow_branch))
        if not gone:
            return False
        return await self._workflow.move_on_origin(
            dict.fromkeys(gone), dict(gone.items()), here=here
        )

    async def _merged_branches(
        self, there: tuple[dict[str, str], str | None] | None
    ) -> tuple[list[str], list[str], dict[str, tuple[str | None, str | None]]]:
        """This mirror's branches of the workflow whose work is merged (deleted, kept, and the
        deletions for one transaction, each only at the commit found merged); with ``there``
        (a local origin's branches) containment is asked in the origin, against its branches."""
        found, base_tip = await self._branches_and_base(self.repo, "refs/heads/")
        where, workflow_tip = self.repo, found.get(self.workflow_branch)
        if there is not None and self.origin is not None and self.origin.path is not None:
            theirs, their_base = there
            where = self.origin.path
            workflow_tip = theirs.get(self.workflow_branch) or workflow_tip
            base_tip = their_base or base_tip
        merged = await self._merged_among(where, found, base_tip, workflow_tip)
        deletions: dict[str, tuple[str | None, str | None]] = {
            f"refs/heads/{name}": (None, tip) for name, tip in merged.items()
        }
        return sorted(merged), sorted(set(found) - set(merged)), deletions


async def _same_work_in(where: Path, tip: str, container: str) -> bool:
    """Whether every file the commits of ``tip`` changed (from where it left ``container``'s
    history) is, in ``container``, as ``tip`` has it: a kept attempt that was cut off (a kill
    after its agent committed) and whose retry merged the same work holds nothing unmerged."""
    found = await g.git(where, "merge-base", container, tip, check=False)
    fork = found.stdout.strip()
    if not found.ok or not fork:
        return False
    changed = await g.git(
        where, "diff", "--name-only", "-z", "--no-renames", fork, tip, check=False
    )
    if not changed.ok:
        return False
    paths = [f":(literal){path}" for path in changed.stdout.split("\0") if path]
    if not paths:
        return True
    same = await g.git(
        where, "diff", "--quiet", "--no-renames", container, tip, "--", *paths, check=False
    )
    return same.returncode == 0
