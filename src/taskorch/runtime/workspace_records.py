"""What the git workspace reports: merge results, cleanup reports, pull-request data.

Frozen value objects with ``to_json()`` for workflow history and the pull request record.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from taskorch.domain.models import JSONDict


class MergeStatus(StrEnum):
    MERGED = "merged"
    """The subtask's branch was merged into the workflow branch just now."""
    ALREADY_MERGED = "already_merged"
    """A re-run: the merge had landed before (e.g. a crash before the cleanup that follows it)."""
    NOTHING_TO_MERGE = "nothing_to_merge"
    """The branch holds no commit that the workflow branch lacks: the subtask changed nothing."""
    CONFLICT = "conflict"
    """The merge conflicted and was aborted; both branches are as they were."""


@dataclass(frozen=True, slots=True)
class MergeResult:
    key: str
    status: MergeStatus
    branch: str
    commit: str | None
    """The merge commit on the workflow branch (merged, already_merged), else None."""
    files: list[str] = field(default_factory=list)
    """Files the subtask's branch changed."""
    conflicts: list[str] = field(default_factory=list)

    @property
    def merged(self) -> bool:
        return self.status in (MergeStatus.MERGED, MergeStatus.ALREADY_MERGED)

    @property
    def message(self) -> str:
        if self.status is MergeStatus.CONFLICT:
            return f"merge of subtask {self.key} ({self.branch}) conflicts in: " + ", ".join(
                self.conflicts
            )
        if self.status is MergeStatus.NOTHING_TO_MERGE:
            return f"subtask {self.key} left no change to merge"
        return f"subtask {self.key} merged as {self.commit}"

    def to_json(self) -> JSONDict:
        return {
            "subtask": self.key,
            "status": self.status.value,
            "branch": self.branch,
            "commit": self.commit,
            "files": list(self.files),
            "conflicts": list(self.conflicts),
        }


@dataclass(frozen=True, slots=True)
class BaseMerge:
    base_branch: str
    commit: str
    """The base branch's tip after the merge."""
    fast_forward: bool
    already_merged: bool

    def to_json(self) -> JSONDict:
        return {
            "base_branch": self.base_branch,
            "commit": self.commit,
            "fast_forward": self.fast_forward,
            "already_merged": self.already_merged,
        }


@dataclass(frozen=True, slots=True)
class CleanupReport:
    removed_worktrees: list[str]
    deleted_branches: list[str]
    kept_branches: list[str]
    """Branches left in place because their work is not merged."""

    def to_json(self) -> JSONDict:
        return {
            "removed_worktrees": list(self.removed_worktrees),
            "deleted_branches": list(self.deleted_branches),
            "kept_branches": list(self.kept_branches),
        }


@dataclass(frozen=True, slots=True)
class CommitInfo:
    sha: str
    subject: str


@dataclass(frozen=True, slots=True)
class FileStat:
    path: str
    insertions: int
    deletions: int
    binary: bool = False


@dataclass(frozen=True, slots=True)
class DiffStat:
    files: list[FileStat]

    @property
    def insertions(self) -> int:
        return sum(f.insertions for f in self.files)

    @property
    def deletions(self) -> int:
        return sum(f.deletions for f in self.files)

    @property
    def lines(self) -> int:
        return self.insertions + self.deletions

    def to_json(self) -> JSONDict:
        return {
            "files": [
                {"path": f.path, "insertions": f.insertions, "deletions": f.deletions}
                | ({"binary": True} if f.binary else {})
                for f in self.files
            ],
            "files_changed": len(self.files),
            "insertions": self.insertions,
            "deletions": self.deletions,
        }


def parse_numstat(text: str) -> DiffStat:
    """``git diff --numstat`` output (``-`` counts, for binary files, as 0)."""
    files: list[FileStat] = []
    for line in text.splitlines():
        parts = line.split("\t", 2)
        if len(parts) != 3:
            continue
        added, removed, path = parts
        binary = added == "-" or removed == "-"
        files.append(
            FileStat(path, 0 if binary else int(added), 0 if binary else int(removed), binary)
        )
    return DiffStat(files)


@dataclass(frozen=True, slots=True)
class PullRequestSummary:
    base_branch: str
    head_branch: str
    base_commit: str
    """The merge base of the two branches: what the diff is against."""
    head_commit: str
    commits: list[CommitInfo]
    """Oldest first."""
    diff: DiffStat

    def to_json(self) -> JSONDict:
        return {
            "base_branch": self.base_branch,
            "head_branch": self.head_branch,
            "base_commit": self.base_commit,
            "head_commit": self.head_commit,
            "commits": [{"sha": c.sha, "subject": c.subject} for c in self.commits],
            **self.diff.to_json(),
        }
