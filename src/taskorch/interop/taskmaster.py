"""claude-task-master's ``.taskmaster/tasks/tasks.json``, read and written without I/O.

The file comes in two layouts: tagged, ``{"master": {"tasks": [...], "metadata": {...}},
"feature-x": {...}}``, and the legacy flat ``{"tasks": [...], "metadata": {...}}``, which
task-master reads as the single tag ``master``. A task has ``id`` (an int, or a string such as
``"3"`` in files written by tm-core), ``title``, ``description``, ``details``, ``testStrategy``,
``status``, ``dependencies`` (task ids), ``priority`` and ``subtasks``; a subtask's
``dependencies`` are sibling ids (``1`` or ``"1"``) or ``"parent.sub"`` strings (``"12.3"``).
Both carry whatever else task-master or its plugins put there.

One task-master task becomes one taskorch task. The whole original record travels in the task's
``metadata["taskmaster"]`` and export writes it back, so unknown fields survive; export only
changes ``status`` (and, for a task done in taskorch, its open subtasks' statuses), and only when
taskorch's status has moved away from what the imported status maps to, so a file imported and
exported untouched comes back the same.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TEXT_CHARS, check_text
from taskorch.domain.models import JSONDict, Priority, Task, TaskStatus
from taskorch.interop.records import TEXT_FIELDS, check_record, record_key, text_field

DEFAULT_TAG = "master"
META_KEY = "taskmaster"
"""Where a task imported from task-master keeps its origin (tag, id, original record)."""

TO_TASKORCH: Mapping[str, TaskStatus] = {
    "pending": TaskStatus.PENDING,
    "in-progress": TaskStatus.PROCESSING,
    "review": TaskStatus.PROCESSING,
    "done": TaskStatus.COMPLETED,
    "deferred": TaskStatus.PENDING,
    "blocked": TaskStatus.PENDING,
    "cancelled": TaskStatus.CANCELLED,
}
"""task-master status -> taskorch status. Any other status reads as pending."""

FROM_TASKORCH: Mapping[TaskStatus, str] = {
    TaskStatus.PENDING: "pending",
    TaskStatus.PROCESSING: "in-progress",
    TaskStatus.COMPLETED: "done",
    TaskStatus.FAILED: "blocked",
    TaskStatus.CANCELLED: "cancelled",
}
"""taskorch status -> task-master status, used once taskorch has changed a task's status."""

_CLOSED_SUBTASK = {"done", "cancelled"}


@dataclass(frozen=True, slots=True)
class Tag:
    """One tag of a tasks.json: its task records and its metadata, as found."""

    name: str
    tasks: list[JSONDict]
    metadata: JSONDict = field(default_factory=dict)
    path: str = "tasks"
    """Where its task list is in the file (``master.tasks``), for errors that name a field."""


@dataclass(frozen=True, slots=True)
class ImportItem:
    """What one task-master task becomes in taskorch."""

    tag: str
    key: str
    """The task-master id as text: ``"12"`` for both ``12`` and ``"12"``."""
    title: str
    description: str
    priority: Priority
    status: TaskStatus
    depends_on: list[str]
    """Keys of tasks of the same tag this one waits for: its own dependencies and the tasks of
    subtasks its subtasks depend on (``"12.3"`` -> ``"12"``)."""
    unknown_dependencies: list[str]
    metadata: JSONDict


# --- reading ---------------------------------------------------------------------------------


def read_tags(document: Any) -> list[Tag]:
    """The tags of a parsed tasks.json, flat or tagged; a file that is neither is an error."""
    if not isinstance(document, dict):
        raise InputError("not a task-master tasks.json: the top level must be a JSON object")
    if "tasks" in document and isinstance(document["tasks"], list):
        return [_tag(DEFAULT_TAG, document, "tasks")]
    tags = [_tag(name, body, f"{name}.tasks") for name, body in document.items() if _is_tag(body)]
    if not tags:
        raise InputError(
            'not a task-master tasks.json: expected {"tasks": [...]} or tags like '
            '{"master": {"tasks": [...]}}'
        )
    return tags


def select_tags(tags: Sequence[Tag], name: str | None) -> list[Tag]:
    """Every tag, or the one named; an unknown name is an error that lists the tags there are."""
    if name is None:
        return list(tags)
    chosen = [t for t in tags if t.name == name]
    if not chosen:
        there = ", ".join(t.name for t in tags)
        raise InputError(f"no tag {name!r} in the file: it has {there}")
    return chosen


def import_items(tag: Tag, source: str) -> list[ImportItem]:
    """What each task of ``tag`` becomes in taskorch, in file order."""
    keys = {task_key(t) for t in tag.tasks}
    items = []
    for position, record in enumerate(tag.tasks):
        where = f"{tag.path}[{position}]"
        key = task_key(record)
        wanted = _task_dependencies(record, key)
        status_text = str(record.get("status") or "pending")
        description = check_text(
            f"{where} (its {', '.join(TEXT_FIELDS)} and subtask titles together)",
            describe(record),
            MAX_TEXT_CHARS,
        )
        items.append(
            ImportItem(
                tag=tag.name,
                key=key,
                title=str(record["title"]).strip(),
                description=description,
                priority=_priority(record.get("priority")),
                status=TO_TASKORCH.get(status_text, TaskStatus.PENDING),
                depends_on=[k for k in wanted if k in keys],
                unknown_dependencies=[k for k in wanted if k not in keys],
                metadata={
                    META_KEY: {
                        "tag": tag.name,
                        "id": key,
                        "position": position,
                        "status": status_text,
                        "source": source,
                        "tag_metadata": tag.metadata,
                        "record": record,
                    }
                },
            )
        )
    return items


def task_key(record: Mapping[str, Any], where: str | None = None) -> str:
    return record_key(record, where)


def describe(record: Mapping[str, Any]) -> str:
    """The requirement text the planner reads: description, details, test strategy, subtasks."""
    description, details, strategy = (text_field(record, name, "a task") for name in TEXT_FIELDS)
    parts = [description.strip()]
    if details := details.strip():
        parts.append(details)
    if strategy := strategy.strip():
        parts.append(f"Test strategy: {strategy}")
    subtasks = [s for s in record.get("subtasks") or [] if isinstance(s, dict)]
    if subtasks:
        lines = [f"- {s.get('title', '')}".rstrip() for s in subtasks]
        parts.append("Subtasks:\n" + "\n".join(lines))
    return "\n\n".join(p for p in parts if p)


def _is_tag(body: Any) -> bool:
    return isinstance(body, dict) and isinstance(body.get("tasks"), list)


def _tag(name: str, body: JSONDict, path: str) -> Tag:
    tasks = body["tasks"]
    seen: set[str] = set()
    for position, record in enumerate(tasks):
        check_record(record, f"{path}[{position}]")
        key = task_key(record, f"{path}[{position}]")
        if key in seen:
            raise InputError(f"tag {name!r}: task id {key} appears twice ({path}[{position}])")
        seen.add(key)
    metadata = body.get("metadata")
    return Tag(name, tasks, metadata if isinstance(metadata, dict) else {}, path)


def _task_dependencies(record: Mapping[str, Any], key: str) -> list[str]:
    wanted = [str(d).strip() for d in _list(record.get("dependencies"))]
    for subtask in _list(record.get("subtasks")):
        if not isinstance(subtask, dict):
            continue
        for dependency in _list(subtask.get("dependencies")):
            text = str(dependency).strip()
            if "." in text:  # "12.3": subtask 3 of task 12; a bare id is a sibling
                wanted.append(text.split(".", 1)[0])
    return [k for k in dict.fromkeys(wanted) if k and k != key]


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _priority(value: Any) -> Priority:
    try:
        return Priority(str(value).strip().lower())
    except ValueError:
        return Priority.MEDIUM


# --- writing ---------------------------------------------------------------------------------


def origin(task: Task) -> JSONDict | None:
    """The task-master origin of a taskorch task, or None for a task made in taskorch."""
    found = task.metadata.get(META_KEY)
    return found if isinstance(found, dict) and "record" in found else None


def export_status(task: Task) -> str:
    """The task-master status for ``task``: the imported one while taskorch's status still maps
    to it (a deferred task stays deferred), else taskorch's status mapped back."""
    found = origin(task) or {}
    imported = str(found.get("status") or "")
    if imported and TO_TASKORCH.get(imported, TaskStatus.PENDING) == task.status:
        return imported
    return FROM_TASKORCH[task.status]


def export_record(task: Task) -> JSONDict:
    """The task-master record of an imported task, its status brought up to date."""
    found = origin(task)
    if found is None:
        raise InputError(f"{task.ref} was not imported from task-master")
    record: JSONDict = copy.deepcopy(found["record"])
    status = export_status(task)
    if status == str(found.get("status") or ""):
        return record  # untouched: byte for byte what was imported
    record["status"] = status
    if status == "done":  # as task-master's own set-status does for a parent
        for subtask in _list(record.get("subtasks")):
            if isinstance(subtask, dict) and subtask.get("status") not in _CLOSED_SUBTASK:
                subtask["status"] = "done"
    return record


def merge_tag(
    document: JSONDict,
    tag: str,
    records: Sequence[JSONDict],
    *,
    originals: Sequence[JSONDict],
    metadata: JSONDict,
    now: str,
) -> JSONDict:
    """``document`` (tagged) with ``records`` written into ``tag``: a task of the same id is
    replaced where it stands, a new one appended; tasks of the tag that taskorch does not know
    and every other tag stay as they are. ``originals`` (the records as imported) and
    ``metadata`` (the tag's metadata as imported) stand in for a tag the document lacks; the
    tag's ``updated``/``lastModified``/counts change only when its tasks did."""
    merged = dict(document)
    found = merged.get(tag)
    present = _is_tag(found)
    body: JSONDict = found if isinstance(found, dict) and present else {}
    existing: list[Any] = list(body.get("tasks") or [])
    ours = {task_key(r): r for r in records}
    tasks = [ours.pop(task_key(r), r) if isinstance(r, dict) else r for r in existing]
    tasks.extend(ours.values())
    kept = body.get("metadata") if present else metadata
    tag_metadata = copy.deepcopy(kept) if isinstance(kept, dict) and kept else {}
    if not tag_metadata:
        tag_metadata = {"created": now, "updated": now, "description": f"Tasks for {tag} context"}
    if tasks != (existing if present else list(originals)):
        _touch(tag_metadata, tasks, now)
    new_body = dict(body)
    new_body["tasks"] = tasks
    new_body["metadata"] = tag_metadata
    merged[tag] = new_body
    return merged


def tagged(document: Any) -> JSONDict:
    """A parsed existing file in the tagged layout (a flat one becomes its ``master`` tag)."""
    if document is None:
        return {}
    if not isinstance(document, dict):
        raise InputError("the target is not a task-master tasks.json: not a JSON object")
    if isinstance(document.get("tasks"), list):
        return {DEFAULT_TAG: document}
    return document


def _touch(metadata: JSONDict, tasks: Sequence[Any], now: str) -> None:
    """Bring the keys task-master keeps about a tag up to date (only those already there)."""
    for key in ("updated", "lastModified"):
        if key in metadata:
            metadata[key] = now
    if "taskCount" in metadata:
        metadata["taskCount"] = len(tasks)
    if "completedCount" in metadata:
        metadata["completedCount"] = sum(
            1 for t in tasks if isinstance(t, dict) and t.get("status") == "done"
        )
