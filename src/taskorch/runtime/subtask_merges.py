"""The subtask merges on a workflow branch: each computed without a checkout (``merge-tree``,
``commit-tree``) and landed by moving the branch from the value it was read at (with an origin:
there first, leased on that value), and read back from the branch's first-parent chain (which
subtasks landed, in which commit, changing which files). What merged is a fact of the repository.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskorch.runtime import ancestry, loose_commits, loose_objects
from taskorch.runtime import git as g
from taskorch.runtime.git import WorkspaceError
from taskorch.runtime.repository import merge_without_checkout
from taskorch.runtime.workflow_branch import WorkflowBranch
from taskorch.runtime.workspace_records import MergeResult, MergeStatus

_MERGE_SUBJECT = "taskorch: merge subtask {key} into {branch}"
_PREFIX = "taskorch: merge subtask "
MAX_MERGES_READ = 1000
"""The most subtask merges read back from one workflow branch."""


@dataclass(frozen=True, slots=True)
class SubtaskMerge:
    """A subtask's merge commit and its parents: the workflow branch's commit it was made on and
    the subtask branch's commit it merged."""

    commit: str
    first_parent: str
    subtask_tip: str


class SubtaskMerges:
    """The subtask merges on the workflow branch ``workflow``."""

    def __init__(self, workflow: WorkflowBranch) -> None:
        self._workflow = workflow
        self.repo = workflow.repo
        self.workflow_branch = workflow.workflow_branch
        self._landed: tuple[str, dict[str, tuple[str, list[str]]]] | None = None
        """:meth:`landed` as read at a commit of the workflow branch."""

    def _message(self, key: str) -> str:
        """The message of the subtask's merge commit (its subject is what :meth:`merges` reads)."""
        subject = _MERGE_SUBJECT.format(key=key, branch=self.workflow_branch)
        body = f"Taskorch-Workflow: {self._workflow.workflow_id}\nTaskorch-Subtask: {key}"
        return f"{subject}\n\n{body}"

    async def merge(
        self, key: str, branch: str, *, ask_origin: bool
    ) -> tuple[MergeResult | None, str | None]:
        """The merge's result (None: the origin moved meanwhile, try again) and the subtask
        branch's commit (None: no such branch). Merged, the workflow branch is moved and the
        subtask's branch (``branch``) deleted in one ref transaction. The caller holds the merge
        locks."""
        ref = f"refs/heads/{branch}"
        found = await self._workflow.sync(ref, ask_origin=ask_origin, follow_base=False)
        workflow_tip, tip = self._workflow.workflow_tip_in(found), found.get(ref)
        files = [] if tip is None else await self._changed(workflow_tip, tip)
        if not files and (tip is None or await g.is_ancestor(self.repo, tip, workflow_tip)):
            return await self._merged_before(key, branch, tip), tip
        assert tip is not None  # (no branch: merged before, or a WorkspaceError)
        message = self._message(key)
        try:
            commit = await merge_without_checkout(
                self.repo, branch, self.workflow_branch, workflow_tip, tip, message
            )
        except g.MergeConflictError as exc:
            status = MergeStatus.CONFLICT
            return MergeResult(key, status, branch, None, files, exc.files), tip
        workflow_ref = f"refs/heads/{self.workflow_branch}"
        here: dict[str, tuple[str | None, str | None]] = {
            workflow_ref: (commit, workflow_tip),
            ref: (None, tip),
        }
        if self._workflow.origin is None:
            await g.update_refs(self.repo, here)
        else:
            moved: dict[str, str | None] = {self.workflow_branch: commit}
            leased: dict[str, str | None] = {self.workflow_branch: workflow_tip}
            if not await self._workflow.move_on_origin(
                moved, leased, beyond=workflow_tip, here=here
            ):
                return None, tip
        self._note_landed(key, commit, workflow_tip, tip, files)
        return MergeResult(key, MergeStatus.MERGED, branch, commit, files), tip

    def _note_landed(
        self, key: str, commit: str, workflow_tip: str, tip: str, files: list[str]
    ) -> None:
        """What :meth:`landed` reads at ``commit`` (the merge just made on ``workflow_tip``),
        known without a ``git log`` when it is known at ``workflow_tip``: the same merges and
        this one, which changed ``files`` against its first parent when its tree is the
        subtask's (made on the branch as it was). Else :meth:`landed` asks git."""
        if not ancestry.known(workflow_tip, tip):
            return  # (a real merge: what it changed against its first parent, git says)
        before = self._landed_at(workflow_tip)
        if before is not None:
            self._landed = commit, {**before, key: (commit, list(files))}

    def _landed_at(self, commit: str) -> dict[str, tuple[str, list[str]]] | None:
        """:meth:`landed` at ``commit`` as far as this object knows it without git: read there
        before, or none at all when ``commit`` (from its loose file) is no subtask merge of this
        branch, where git's first-parent walk stops at once."""
        if self._landed is not None and self._landed[0] == commit:
            return self._landed[1]
        dirs = loose_objects.object_dirs(self.repo)
        try:
            body = loose_objects.read_any(dirs or [], commit, b"commit")
            if body is None:
                return None
            parents = loose_objects.commit_fields(body)[1]
        except loose_objects.Unreadable:
            return None
        said = loose_objects.subject(body)
        if said is None:
            return None
        return None if self._merge_key([commit, *parents], said) is not None else {}

    async def _changed(self, workflow_tip: str, tip: str) -> list[str]:
        """The files the subtask's branch changed (``git diff workflow_tip...tip``: from the
        merge base). Its commits were most likely made on the workflow branch as it still is:
        their loose objects say so (and the merge's tree is then the subtask's, no merge-tree),
        the merge base is the workflow branch's tip, and the two trees are read from their loose
        files too."""
        start: str | None = workflow_tip
        if not loose_commits.learn(self.repo, tip, workflow_tip):
            # Made on an older tip, most likely (the branch moved on while it ran): the diff
            # is from the merge base, that tip when the loose commits show it is.
            fork = loose_commits.fork_point(self.repo, tip, workflow_tip)
            start = fork and loose_commits.merge_base(self.repo, workflow_tip, tip, (fork,))
            if start:  # (the merge that follows starts from it too)
                ancestry.note_merge_base(workflow_tip, tip, start)
        if start:
            files = loose_objects.changed_paths(self.repo, start, tip)
            if files is not None:
                return files
        return await g.diff_names(self.repo, f"{workflow_tip}...{tip}")

    async def _merged_before(self, key: str, branch: str, tip: str | None) -> MergeResult:
        """A subtask branch with nothing beyond the workflow branch: its merge landed already, or
        it never had work."""
        merge = (await self.merges()).get(key)
        if merge is not None and tip in (None, merge.subtask_tip):
            return await self.already_merged(key, branch, merge)
        if tip is None:
            raise WorkspaceError(f"subtask {key} has no branch {branch}; prepare it first")
        return MergeResult(key, MergeStatus.NOTHING_TO_MERGE, branch, None)

    async def already_merged(self, key: str, branch: str, merge: SubtaskMerge) -> MergeResult:
        """The result of a subtask merge that landed before (``merge``): what it changed."""
        files = await g.diff_names(self.repo, merge.first_parent, merge.commit)
        return MergeResult(key, MergeStatus.ALREADY_MERGED, branch, merge.commit, files)

    async def merges(self) -> dict[str, SubtaskMerge]:
        """The subtask merges on the workflow branch: its first-parent chain of our merge commits,
        newest first, down to the commit the branch started from."""
        listed = await g.git(
            self.repo,
            *("log", "--first-parent", "-n", "1000", "--format=%H %P%x00%s"),
            f"refs/heads/{self.workflow_branch}",
            "--",
            check=False,
        )
        merges: dict[str, SubtaskMerge] = {}
        for line in listed.stdout.splitlines():
            shas, _, subject = line.partition("\0")
            parts = shas.split()
            key = self._merge_key(parts, subject)
            if key is None:
                break
            merges.setdefault(key, SubtaskMerge(parts[0], parts[1], parts[2]))
        return merges

    def _merge_key(self, commit_and_parents: list[str], subject: str) -> str | None:
        """The subtask key of a commit (its id and parents, ``subject``) when it is one of this
        branch's subtask merges (two parents, the subject :meth:`_message` writes), else None:
        where the first-parent walks down the branch stop."""
        suffix = f" into {self.workflow_branch}"
        if len(commit_and_parents) != 3 or not subject.startswith(_PREFIX):
            return None
        return subject[len(_PREFIX) : -len(suffix)] if subject.endswith(suffix) else None

    async def landed(self, tip: str, expected: int) -> dict[str, tuple[str, list[str]]]:
        """Subtask key -> (its merge commit, the files it changed) for every subtask merge at
        ``tip`` of the workflow branch (see :meth:`_with_files`)."""
        if self._landed is None or self._landed[0] != tip:
            # One git log for all of them (a diff per merge cost a process per subtask), read
            # once per commit of the workflow branch (the pipeline asks at each later step).
            known = len(self._landed[1]) if self._landed else 0
            self._landed = tip, await self._with_files(tip, max(expected, known))
        return dict(self._landed[1])

    async def _with_files(self, tip: str, expected: int) -> dict[str, tuple[str, list[str]]]:
        """:meth:`merges` at ``tip`` with the files each merge changed (against its first
        parent), from one ``git log`` of about ``expected`` merges and the commit before them.
        Git diffs every merge it lists, and below the workflow's own merges the first-parent
        chain goes on into the base branch, through every earlier workflow's merge: asked for a
        thousand, each verification grew with the repository's history. Only when all it gave
        were ours is it asked for more."""
        limit = expected + 2 if expected else 16
        while True:
            listed = await g.git(
                self.repo,
                *("log", "--first-parent", "-n", str(limit), "--diff-merges=first-parent"),
                *("--name-only", "-z", "--format=%x1e%H %P%x00%s", tip, "--"),
            )
            records = listed.stdout.split("\x1e")[1:]
            landed: dict[str, tuple[str, list[str]]] = {}
            for record in records:
                shas, _, rest = record.partition("\0")
                subject, _, names = rest.partition("\0")
                parts = shas.split()
                key = self._merge_key(parts, subject)
                if key is None:
                    return landed
                files = [name for name in names.removeprefix("\n").split("\0") if name]
                landed.setdefault(key, (parts[0], files))
            if len(records) < limit or limit >= MAX_MERGES_READ:
                return landed
            limit = min(limit * 4, MAX_MERGES_READ)
