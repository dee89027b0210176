"""The offline planner: deterministic, instant, no key needed.

A requirement is cut into items (:mod:`taskorch.planning.text`), each item classified by worker type
and owner (:mod:`taskorch.planning.classify`). A simple requirement becomes one subtask for one
master. A complex one becomes levels of work: explicit cues ("then", "after", "before") order items
first, the natural phase order (design, implement, test, audit, document, deploy) orders them
within a cue, and items of the same level run in parallel. Every level depends on the one before.

The planner adds what a complex plan needs and the requirement left implicit: a design step when
something is being built, tests after implementation, a security audit when the work touches
authentication, secrets, money or permissions. It then fits the plan to the rules (at most 10
subtasks, at most 3 files each) by merging the smallest neighbours and splitting file-heavy items,
and hands it to :func:`taskorch.planning.rules.enforce` like any other producer's plan.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field, replace

from taskorch.domain.plan import (
    MAX_FILES_PER_SUBTASK,
    MAX_SUBTASKS,
    MIN_COMPLEX_SUBTASKS,
    Complexity,
    Domain,
    Plan,
    PlanSubtask,
    WorkerType,
)
from taskorch.planning.classify import (
    TaskMetadata,
    domain_of,
    is_sensitive,
    is_system_scope,
    metadata_from_items,
    phase_rank,
    worker_type_of,
)
from taskorch.planning.estimate import subtask_minutes, subtask_tokens
from taskorch.planning.rules import enforce
from taskorch.planning.text import (
    ACTION_VERBS,
    MAX_ANALYZED_CHARS,
    Item,
    extract_files,
    leading_word,
    require_text,
    shorten,
    split_items,
    word_set,
)
from taskorch.planning.wording import (
    merged_title,
    prefix_of,
    slug_of,
    subject_of,
    success_criteria_for,
    task_reference,
    title_for,
    verb_for,
)

DESCRIPTION_CHARS = 4_000
"""A subtask carries at most this much of the requirement; agents get the rest as context."""
_BEFORE_ALL = -1
_CREATION = word_set("add build create implement develop introduce design make set setup")
_BACKEND_ONLY = ("api", "backend", "server", "endpoint", "cli", "database", "library", "service")
_FRONTEND_ONLY = ("ui", "frontend", "page", "component", "screen", "form", "widget")
_FRONTEND_EXTENSIONS = ("tsx", "jsx", "vue", "svelte", "css", "scss", "sass", "less", "html")


@dataclass(slots=True)
class _Work:
    """A subtask in the making; ``key`` (group, phase) orders it."""

    key: tuple[int, int]
    worker_type: WorkerType
    domain: Domain
    title: str
    label: str
    slug: str
    description: str
    files: list[str] = field(default_factory=list)
    undeclared: list[str] = field(default_factory=list)
    minutes: int = 0
    size: int = 1
    """How many items were merged into it."""


class HeuristicPlanner:
    """Plans a requirement without a model. Same input, same plan."""

    def plan(
        self, description: str, context: str | None = None, task_ref: str | int | None = None
    ) -> Plan:
        text = require_text(description)
        return self.plan_items(text, split_items(text), context, task_ref)

    def plan_items(
        self,
        text: str,
        items: list[Item],
        context: str | None = None,
        task_ref: str | int | None = None,
    ) -> Plan:
        """Plan ``text`` already cut into ``items`` (the items decide the subtasks)."""
        items = items or [Item(text[:MAX_ANALYZED_CHARS], 0)]
        metadata = metadata_from_items(text, items, context)
        parent = task_reference(task_ref, text)
        if metadata.is_complex:
            levels = _complex_levels(text, items, metadata)
            complexity = Complexity.HIGH if _high(levels) else Complexity.MEDIUM
        else:
            levels = [[_simple_work(text, metadata)]]
            complexity = Complexity.SIMPLE
        prefix = prefix_of(subject_of(_anchor(items).text))
        plan = Plan(
            orchestration_id=f"orch-{parent}",
            parent_task_id=parent,
            task_title=shorten(metadata.title, 120),
            complexity=complexity,
            subtasks=_subtasks(levels, prefix, parent),
        )
        return enforce(plan)


def _high(levels: list[list[_Work]]) -> bool:
    return sum(map(len, levels)) >= 6 or len(levels) >= 5


def _anchor(items: list[Item]) -> Item:
    """The item that names the whole: an enumeration's head, else the first implementation."""
    for item in items:
        if item.umbrella:
            return item
    for item in items:
        if worker_type_of(item.text) is WorkerType.IMPLEMENTATION:
            return item
    return items[0]


# --- simple ----------------------------------------------------------------------------------


def _simple_work(text: str, metadata: TaskMetadata) -> _Work:
    files = metadata.files[:MAX_FILES_PER_SUBTASK]
    verb = leading_word(text)
    subject = subject_of(metadata.title)
    return _Work(
        key=(0, phase_rank(metadata.task_type)),
        worker_type=metadata.task_type,
        domain=metadata.primary_domain,
        title=shorten(metadata.title, 80),
        label=subject,
        slug=verb if verb in ACTION_VERBS else slug_of(metadata.task_type.value),
        description=_bounded(text),
        files=files,
        minutes=subtask_minutes(metadata.task_type, len(files), simple=True),
    )


def _bounded(text: str) -> str:
    if len(text) <= DESCRIPTION_CHARS:
        return text
    return shorten(text, DESCRIPTION_CHARS) + f" [requirement truncated: {len(text)} characters]"


# --- complex ---------------------------------------------------------------------------------


def _complex_levels(text: str, items: list[Item], metadata: TaskMetadata) -> list[list[_Work]]:
    anchor = _anchor(items)
    subject = subject_of(anchor.text)
    works: list[_Work] = []
    work_items = [item for item in items if not item.umbrella] or items
    implementations = [i for i in work_items if worker_type_of(i.text) is WorkerType.IMPLEMENTATION]
    for item in work_items:
        kind = worker_type_of(item.text)
        if (
            kind is WorkerType.IMPLEMENTATION
            and len(implementations) == 1
            and is_system_scope(item.text)
        ):
            works.extend(_layers(item, subject))
        else:
            works.append(_item_work(item, kind, subject, anchor))
    works.extend(_implied_work(text, items, works, subject, anchor))
    _distribute(works, [f for f in metadata.files if not any(f in w.files for w in works)])
    levels = _levels(works)
    _fit_count(levels)
    _fit_files(levels)
    _pad(levels, subject, anchor)
    return levels


def _item_work(item: Item, kind: WorkerType, subject: str, anchor: Item) -> _Work:
    title, label = title_for(item.text, kind, subject)
    part_of = f" Part of: {_bounded(anchor.text)}." if anchor is not item else ""
    return _Work(
        key=(item.group, phase_rank(kind)),
        worker_type=kind,
        domain=domain_of(item.text, kind),
        title=title,
        label=label,
        slug=slug_of(label) if kind is WorkerType.IMPLEMENTATION else _KIND_SLUGS[kind],
        description=f"{_bounded(item.text)}.{part_of}",
        files=extract_files(item.text),
    )


def _layers(item: Item, subject: str) -> list[_Work]:
    """A whole system is built as a backend and a frontend in parallel, unless it names one side."""
    lowered = subject.lower().split()
    sides = ["backend", "frontend"]
    if any(word in lowered for word in _BACKEND_ONLY):
        sides = ["backend"]
    elif any(word in lowered for word in _FRONTEND_ONLY):
        sides = ["frontend"]
    files = extract_files(item.text)
    works: list[_Work] = []
    for side in sides:
        front = side == "frontend"
        mine = [f for f in files if f.rsplit(".", 1)[-1] in _FRONTEND_EXTENSIONS] if front else []
        if not front:
            mine = [f for f in files if f.rsplit(".", 1)[-1] not in _FRONTEND_EXTENSIONS]
        label = f"{subject} {side}" if len(sides) > 1 else subject
        works.append(
            _Work(
                key=(item.group, phase_rank(WorkerType.IMPLEMENTATION)),
                worker_type=WorkerType.IMPLEMENTATION,
                domain=Domain.DEVELOPMENT,
                title=shorten(f"Implement {label}", 80),
                label=label,
                slug=side if len(sides) > 1 else slug_of(subject),
                description=f"{_bounded(item.text)}: the {side} part.",
                files=mine,
            )
        )
    return works


def _implied_work(
    text: str, items: list[Item], works: list[_Work], subject: str, anchor: Item
) -> list[_Work]:
    """Design before building, tests after implementing, an audit after sensitive work."""
    kinds = {w.worker_type for w in works}
    built = [w for w in works if w.worker_type is WorkerType.IMPLEMENTATION]
    implied: list[_Work] = []
    if WorkerType.PLANNER not in kinds and any(leading_word(i.text) in _CREATION for i in items):
        implied.append(_implied(WorkerType.PLANNER, _BEFORE_ALL, subject, anchor, built))
    if built:
        last_group = max(w.key[0] for w in built)
        if WorkerType.TEST not in kinds:
            implied.append(_implied(WorkerType.TEST, last_group, subject, anchor, built))
        if WorkerType.AUDIT not in kinds and is_sensitive(text):
            implied.append(_implied(WorkerType.AUDIT, last_group, subject, anchor, built))
    return implied


_KIND_SLUGS = {
    WorkerType.PLANNER: "design",
    WorkerType.IMPLEMENTATION: "build",
    WorkerType.TEST: "tests",
    WorkerType.AUDIT: "audit",
    WorkerType.DOCUMENTATION: "docs",
    WorkerType.DEPLOY: "deploy",
}
_IMPLIED_DESCRIPTIONS = {
    WorkerType.PLANNER: "Design the components, interfaces and data model for: {whole}.{scope}",
    WorkerType.TEST: "Write and run automated tests for the implementation.{scope}",
    WorkerType.AUDIT: (
        "Review the implementation for security flaws: authentication and session handling, "
        "secrets, input validation, access control.{scope}"
    ),
}


def _implied(kind: WorkerType, group: int, subject: str, anchor: Item, built: list[_Work]) -> _Work:
    labels = [w.label for w in built]
    scope = f" Covers: {'; '.join(labels)}." if labels else ""
    files = [f"docs/{prefix_of(subject)}-architecture.md"] if kind is WorkerType.PLANNER else []
    return _Work(
        key=(group, phase_rank(kind)),
        worker_type=kind,
        domain=domain_of(subject, kind),
        title=shorten(f"{verb_for(kind)} {subject}", 80),
        label=subject,
        slug=_KIND_SLUGS[kind],
        description=_IMPLIED_DESCRIPTIONS[kind].format(whole=_bounded(anchor.text), scope=scope),
        files=files,
    )


def _distribute(works: list[_Work], files: list[str]) -> None:
    """Files named outside any item go to the implementation work, round robin."""
    targets = [w for w in works if w.worker_type is WorkerType.IMPLEMENTATION] or works
    for work, path in zip(itertools.cycle(targets), files, strict=False):
        work.files.append(path)


def _levels(works: list[_Work]) -> list[list[_Work]]:
    ordered = sorted(works, key=lambda w: w.key)  # stable: reading order within a level
    return [list(level) for _, level in itertools.groupby(ordered, key=lambda w: w.key)]


def _fit_count(levels: list[list[_Work]]) -> None:
    """Merge work until at most :data:`MAX_SUBTASKS` remain: the smallest neighbours of the
    widest level first (parallel work), then consecutive levels (sequential work)."""
    while sum(map(len, levels)) > MAX_SUBTASKS:
        widest = max(range(len(levels)), key=lambda i: (len(levels[i]), -i))
        level = levels[widest]
        if len(level) > 1:
            j = min(range(len(level) - 1), key=lambda k: (level[k].size + level[k + 1].size, k))
            level[j : j + 2] = [_merge(level[j], level[j + 1])]
            continue
        pairs = range(len(levels) - 1)
        same = [i for i in pairs if levels[i][0].worker_type is levels[i + 1][0].worker_type]
        i = same[0] if same else len(levels) - 2
        levels[i : i + 2] = [[_merge(levels[i][0], levels[i + 1][0])]]


def _merge(first: _Work, second: _Work) -> _Work:
    verbs = [first.title.split(" ", 1)[0], second.title.split(" ", 1)[0]]
    return replace(
        first,
        title=merged_title(verbs, [first.label, second.label], [first.title, second.title]),
        label=f"{first.label}; {second.label}",
        description=f"{first.description}\n{second.description}",
        files=list(dict.fromkeys([*first.files, *second.files])),
        undeclared=[*first.undeclared, *second.undeclared],
        minutes=_minutes(first) + _minutes(second),
        size=first.size + second.size,
    )


def _pad(levels: list[list[_Work]], subject: str, anchor: Item) -> None:
    """A complex plan has at least 3 subtasks: add a planning step, then a verification step."""
    if sum(map(len, levels)) < MIN_COMPLEX_SUBTASKS:
        levels.insert(0, [_implied(WorkerType.PLANNER, _BEFORE_ALL, subject, anchor, [])])
    if sum(map(len, levels)) < MIN_COMPLEX_SUBTASKS:
        last = levels[-1][0].key[0] + 1
        levels.append([_implied(WorkerType.TEST, last, subject, anchor, [])])


def _fit_files(levels: list[list[_Work]]) -> None:
    """At most 3 files per subtask: split file-heavy work into parallel parts while the subtask
    budget allows, otherwise keep 3 and name the rest in the description."""
    budget = MAX_SUBTASKS - sum(map(len, levels))
    for level in levels:
        for index in range(len(level) - 1, -1, -1):
            work = level[index]
            if len(work.files) <= MAX_FILES_PER_SUBTASK:
                continue
            chunks = [
                work.files[i : i + MAX_FILES_PER_SUBTASK]
                for i in range(0, len(work.files), MAX_FILES_PER_SUBTASK)
            ]
            chunks = chunks[: budget + 1]
            budget -= len(chunks) - 1
            level[index : index + 1] = _parts(work, chunks)


def _parts(work: _Work, chunks: list[list[str]]) -> list[_Work]:
    declared = {f for chunk in chunks for f in chunk}
    rest = [f for f in work.files if f not in declared]
    if len(chunks) == 1:
        return [replace(work, files=chunks[0], undeclared=[*work.undeclared, *rest])]
    return [
        replace(
            work,
            title=shorten(f"{work.title} (part {n} of {len(chunks)})", 80),
            slug=f"{work.slug}-p{n}",
            files=chunk,
            undeclared=[*work.undeclared, *rest] if n == len(chunks) else list(work.undeclared),
            minutes=0,
        )
        for n, chunk in enumerate(chunks, start=1)
    ]


# --- subtasks --------------------------------------------------------------------------------


def _subtasks(levels: list[list[_Work]], prefix: str, parent: str) -> list[PlanSubtask]:
    subtasks: list[PlanSubtask] = []
    previous: list[str] = []
    counter = itertools.count(1)
    for level in levels:
        ids: list[str] = []
        for work in level:
            subtask_id = f"{prefix}-{next(counter):03d}-{work.slug}"
            minutes = _minutes(work)
            subtasks.append(
                PlanSubtask(
                    subtask_id=subtask_id,
                    parent_task_id=parent,
                    title=work.title,
                    description=_with_undeclared(work),
                    assigned_to=work.domain,
                    worker_type=work.worker_type,
                    dependencies=list(previous),
                    estimated_duration_minutes=minutes,
                    estimated_tokens=subtask_tokens(minutes),
                    files_affected=work.files,
                    success_criteria=success_criteria_for(work.worker_type, work.label, work.files),
                )
            )
            ids.append(subtask_id)
        previous = ids
    return subtasks


def _minutes(work: _Work) -> int:
    return work.minutes or subtask_minutes(work.worker_type, len(work.files))


def _with_undeclared(work: _Work) -> str:
    if not work.undeclared:
        return work.description
    shown = ", ".join(work.undeclared[:10])
    more = f" and {len(work.undeclared) - 10} more" if len(work.undeclared) > 10 else ""
    return (
        f"{work.description}\nAlso named in the requirement, not declared here (a subtask "
        f"declares at most {MAX_FILES_PER_SUBTASK} files): {shown}{more}."
    )
