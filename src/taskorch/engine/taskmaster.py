"""claude-task-master interop behind the engine: ``import_taskmaster`` reads a tasks.json into
taskorch tasks, ``export_taskmaster`` writes their state back into a tasks.json.

The format itself (layouts, status mapping, records) is the pure :mod:`taskorch.interop.taskmaster`;
this module adds the file and the store. A task is keyed by (tag, task-master id), so importing
the same file again updates its tasks instead of adding them twice; a task whose status taskorch
has moved on (a workflow started or finished it) keeps taskorch's status. Export writes the
tagged layout into the target file atomically (a temporary file renamed over it), replacing only
the tasks taskorch knows in the tags it exports; other tags and other tasks stay as they were.
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_TASKS_FILE_BYTES
from taskorch.domain.models import JSONDict, Task
from taskorch.engine.engine import OrchestrationEngine
from taskorch.interop.documents import load_json, read_limited
from taskorch.interop.taskmaster import (
    TO_TASKORCH,
    ImportItem,
    export_record,
    export_status,
    import_items,
    merge_tag,
    origin,
    read_tags,
    select_tags,
    tagged,
)
from taskorch.store.task_sync import TaskWrite, list_imported_tasks, write_tasks

TASKS_FILE = Path(".taskmaster") / "tasks" / "tasks.json"


@dataclass(frozen=True, slots=True)
class TagReport:
    tag: str
    created: int = 0
    updated: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    """Tasks by taskorch status (import) or by task-master status (export)."""
    unknown_dependencies: list[str] = field(default_factory=list)
    """``id -> dependency`` pairs naming a task the tag does not have (left out)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "tag": self.tag,
            "created": self.created,
            "updated": self.updated,
            "statuses": self.statuses,
            "unknown_dependencies": self.unknown_dependencies,
        }


@dataclass(frozen=True, slots=True)
class InteropReport:
    path: Path
    tags: list[TagReport]
    tasks: list[Task] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "tags": [t.to_dict() for t in self.tags],
            "tasks": [
                {
                    "id": t.id,
                    "ref": t.ref,
                    "taskmaster_id": _key(t),
                    "tag": _tag(t),
                    "title": t.title,
                    "status": t.status.value,
                }
                for t in self.tasks
            ],
        }


def tasks_file(path: Path) -> Path:
    """``path`` itself, or the tasks.json of the task-master project at ``path``."""
    return path / TASKS_FILE if path.is_dir() else path


async def import_taskmaster(
    engine: OrchestrationEngine, path: Path, tag: str | None = None
) -> InteropReport:
    """Read every tag of the file (or only ``tag``) into taskorch tasks, in one transaction."""
    source = await asyncio.to_thread(tasks_file, path)
    document = await asyncio.to_thread(_read_json, source)
    tags = select_tags(read_tags(document), tag)
    location = str(await asyncio.to_thread(source.resolve))
    items: list[ImportItem] = []
    for each in tags:
        items.extend(import_items(each, location))
    _refuse_cycles(items)
    stored = {(_tag(t), _key(t)): t for t in await list_imported_tasks(engine.store)}
    index = {(item.tag, item.key): n for n, item in enumerate(items)}
    writes = [_write(item, stored.get((item.tag, item.key)), index) for item in items]
    saved = await write_tasks(engine.store, writes)
    reports = []
    for each in tags:
        mine = [
            (item, task) for item, task in zip(items, saved, strict=True) if item.tag == each.name
        ]
        updated = sum((item.tag, item.key) in stored for item, _ in mine)
        reports.append(
            TagReport(
                each.name,
                created=len(mine) - updated,
                updated=updated,
                statuses=dict(Counter(task.status.value for _, task in mine)),
                unknown_dependencies=[
                    f"{item.key} -> {d}" for item, _ in mine for d in item.unknown_dependencies
                ],
            )
        )
    return InteropReport(source, reports, saved)


async def export_taskmaster(
    engine: OrchestrationEngine, path: Path, tag: str | None = None
) -> InteropReport:
    """Write the imported tasks of every tag (or only ``tag``) into the tasks.json at ``path``."""
    tasks = await list_imported_tasks(engine.store, tag)
    if not tasks:
        which = f"from tag {tag!r} " if tag else ""
        raise InputError(
            f"no tasks imported {which}yet: import a tasks.json first with `taskorch task import`"
        )
    target = await asyncio.to_thread(tasks_file, path)
    existing = await asyncio.to_thread(_existing_target, target)
    document = tagged(existing)
    now = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    reports = []
    for name, members in _by_tag(tasks).items():
        document = merge_tag(
            document,
            name,
            [export_record(t) for t in members],
            originals=[_origin(t)["record"] for t in members],
            metadata=_origin(members[0]).get("tag_metadata") or {},
            now=now,
        )
        statuses = Counter(export_status(t) for t in members)
        reports.append(TagReport(name, updated=len(members), statuses=dict(statuses)))
    await asyncio.to_thread(_write_atomically, target, document)
    return InteropReport(target, reports, tasks)


def _refuse_cycles(items: list[ImportItem]) -> None:
    """Tasks that wait for each other in a ring would stay pending for ever: refuse the file,
    naming the ring, before anything is stored."""
    waits = {(i.tag, i.key): [(i.tag, d) for d in i.depends_on if d != i.key] for i in items}
    done: set[tuple[str, str]] = set()
    for start in waits:
        path: list[tuple[str, str]] = []
        on_path: set[tuple[str, str]] = set()
        stack = [(start, iter(waits[start]))]
        path.append(start)
        on_path.add(start)
        while stack:
            node, rest = stack[-1]
            following = next(rest, None)
            if following is None:
                stack.pop()
                path.pop()
                on_path.discard(node)
                done.add(node)
                continue
            if following in on_path:
                ring = [*path[path.index(following) :], following]
                raise InputError(
                    f"tasks of tag {following[0]!r} depend on each other in a cycle: "
                    + " -> ".join(key for _, key in ring)
                    + "; remove one of these dependencies, then import again"
                )
            if following in done or following not in waits:
                continue
            stack.append((following, iter(waits[following])))
            path.append(following)
            on_path.add(following)


def _write(item: ImportItem, stored: Task | None, index: dict[tuple[str, str], int]) -> TaskWrite:
    previous = str(_origin(stored).get("status") or "") if stored else ""
    return TaskWrite(
        title=item.title,
        description=item.description,
        priority=item.priority,
        status=item.status,
        metadata=item.metadata,
        depends_on=[index[(item.tag, key)] for key in item.depends_on],
        task_id=stored.id if stored else None,
        keep_status_unless=TO_TASKORCH.get(previous) if stored else None,
    )


def _by_tag(tasks: list[Task]) -> dict[str, list[Task]]:
    groups: dict[str, list[Task]] = {}
    for task in tasks:
        groups.setdefault(_tag(task), []).append(task)
    for members in groups.values():
        members.sort(key=lambda t: (int(_origin(t).get("position") or 0), t.id))
    return groups


def _origin(task: Task) -> JSONDict:
    return origin(task) or {}


def _tag(task: Task) -> str:
    return str(_origin(task).get("tag") or "")


def _key(task: Task) -> str:
    return str(_origin(task).get("id") or "")


def _read_json(path: Path) -> Any:
    """The parsed tasks.json at ``path``: at most :data:`MAX_TASKS_FILE_BYTES` read (a device
    or an endless stream is refused, not read for ever), strict JSON (see
    :mod:`taskorch.interop.documents`)."""
    data = read_limited(path, MAX_TASKS_FILE_BYTES)
    if len(data) > MAX_TASKS_FILE_BYTES:
        raise InputError(
            f"{path} is over the limit of {MAX_TASKS_FILE_BYTES:,} bytes for a tasks.json"
        )
    return load_json(data, str(path))


def _existing_target(path: Path) -> Any:
    """The tasks.json export writes into, parsed, or None when there is none yet. Only a regular
    file: export replaces the file whole (a new file renamed over it), which for a device such
    as /dev/full would replace the device."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise InputError(f"cannot write {path}: export writes a regular file, and this is not one")
    return _read_json(path)


def _write_atomically(path: Path, document: JSONDict) -> None:
    """Write the file whole or not at all: a temporary file beside it, renamed over it."""
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(
            dir=path.parent, prefix=f".{path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                out.write(text)
                out.flush()
                os.fsync(out.fileno())
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise
    except OSError as exc:
        raise InputError(f"cannot write {path}: {exc.strerror}") from None
