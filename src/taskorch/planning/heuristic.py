"""The offline planner: deterministic, instant, no key needed.

A requirement is cut into items (:mod:`taskorch.planning.text`), each item classified by worker type
and owner (:mod:`taskorch.planning.classify`). A simple requirement becomes one subtask for one
master. A complex one becomes levels of work: explicit cues ("then", "after", "before", arrows,
"Steps:" lists) order items first, the natural phase order (design, implement, test, audit,
document, deploy) orders them within a cue, migration steps (schema, models, data) within a phase,
and items of the same level run in parallel. Every level depends on the one before. Known shapes
(a CI pipeline, a security upgrade, one change to several components) get the stages of
:mod:`taskorch.planning.recipes`.

The planner adds what a complex plan needs and the requirement left implicit
(:mod:`taskorch.planning.implied`). It then fits the plan to the rules (at most 10
subtasks, at most 3 files each) by merging the smallest neighbours and splitting file-heavy items,
and hands it to :func:`taskorch.planning.rules.enforce` like any other producer's plan.
"""

from __future__ import annotations

import itertools
from dataclasses import replace

from taskorch.domain.plan import (
    MAX_FILES_PER_SUBTASK,
    MAX_SUBTASKS,
    Complexity,
    Domain,
    Plan,
    PlanSubtask,
    WorkerType,
)
from taskorch.planning.classify import (
    TaskMetadata,
    domain_of,
    is_system_scope,
    item_kinds,
    metadata_from_items,
    phase_rank,
)
from taskorch.planning.estimate import subtask_minutes, subtask_tokens
from taskorch.planning.implied import implied_work, pad
from taskorch.planning.notices import PlanWarning, limit_warnings
from taskorch.planning.recipes import ci_works, component_works, order_migration, upgrade_works
from taskorch.planning.rules import enforce
from taskorch.planning.shapes import (
    ci_jobs,
    components,
    is_ci_setup,
    is_security_upgrade,
    job_name,
)
from taskorch.planning.text import (
    ACTION_VERBS,
    MAX_ANALYZED_CHARS,
    MAX_ITEMS,
    Item,
    all_items,
    extract_files,
    leading_word,
    require_text,
    shorten,
)
from taskorch.planning.wording import (
    merged_title,
    plan_subject,
    prefix_of,
    slug_of,
    subject_of,
    success_criteria_for,
    task_reference,
    title_for,
)
from taskorch.planning.work import DESCRIPTION_CHARS, KIND_SLUGS, Work, bounded

__all__ = ["DESCRIPTION_CHARS", "HeuristicPlanner"]

_BACKEND_ONLY = ("api", "backend", "server", "endpoint", "cli", "database", "library", "service")
_FRONTEND_ONLY = ("ui", "frontend", "page", "component", "screen", "form", "widget")
_FRONTEND_EXTENSIONS = ("tsx", "jsx", "vue", "svelte", "css", "scss", "sass", "less", "html")


class HeuristicPlanner:
    """Plans a requirement without a model. Same input, same plan."""

    def plan(
        self, description: str, context: str | None = None, task_ref: str | int | None = None
    ) -> Plan:
        return self.plan_with_warnings(description, context, task_ref)[0]

    def plan_with_warnings(
        self, description: str, context: str | None = None, task_ref: str | int | None = None
    ) -> tuple[Plan, list[PlanWarning]]:
        """The plan and what the planner could not take into account (items beyond the limit)."""
        text = require_text(description)
        items = all_items(text)
        plan = self.plan_items(text, items[:MAX_ITEMS], context, task_ref)
        return plan, limit_warnings(text, items)

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
        prefix = prefix_of(subject_of(_anchor(items, item_kinds(items)).text))
        plan = Plan(
            orchestration_id=f"orch-{parent}",
            parent_task_id=parent,
            task_title=shorten(metadata.title, 120),
            complexity=complexity,
            subtasks=_subtasks(levels, prefix, parent),
        )
        return enforce(plan)


def _high(levels: list[list[Work]]) -> bool:
    return sum(map(len, levels)) >= 6 or len(levels) >= 5


def _anchor(items: list[Item], kinds: list[WorkerType]) -> Item:
    """The item that names the whole: an enumeration's head, else the first implementation."""
    for item in items:
        # a header line ("Acceptance criteria:") names a list, not the whole
        if item.umbrella and (item is items[0] or leading_word(item.text) in ACTION_VERBS):
            return item
    for item, kind in zip(items, kinds, strict=True):
        if kind is WorkerType.IMPLEMENTATION:
            return item
    return items[0]


# --- simple ----------------------------------------------------------------------------------


def _simple_work(text: str, metadata: TaskMetadata) -> Work:
    files = metadata.files[:MAX_FILES_PER_SUBTASK]
    verb = leading_word(text)
    subject = subject_of(metadata.title)
    return Work(
        key=(0, phase_rank(metadata.task_type), 0),
        worker_type=metadata.task_type,
        domain=metadata.primary_domain,
        title=shorten(metadata.title, 80),
        label=subject,
        slug=verb if verb in ACTION_VERBS else slug_of(metadata.task_type.value),
        description=bounded(text),
        files=files,
        minutes=subtask_minutes(metadata.task_type, len(files), simple=True),
    )


# --- complex ---------------------------------------------------------------------------------


def _complex_levels(text: str, items: list[Item], metadata: TaskMetadata) -> list[list[Work]]:
    kinds = item_kinds(items)
    anchor = _anchor(items, kinds)
    subject = plan_subject(anchor.text)
    pairs = [(i, k) for i, k in zip(items, kinds, strict=True) if not i.umbrella]
    pairs = pairs or list(zip(items, kinds, strict=True))
    explicit_tests = any(kind is WorkerType.TEST for _, kind in pairs)
    works: list[Work] = []
    if anchor.umbrella and is_ci_setup(anchor.text):
        # "Set up CI including lint, tests and a Docker build": the list is the jobs.
        jobs = [i for i, _ in pairs if i.listed]
        works.extend(ci_works(anchor, [subject_of(f"add {i.text}") for i in jobs]))
        pairs = [(i, k) for i, k in pairs if not i.listed]
    pairs = _jobs_after_pipelines(pairs)
    implementations = [i for i, k in pairs if k is WorkerType.IMPLEMENTATION]
    for item, kind in pairs:
        works.extend(_work_of(item, kind, subject, anchor, len(pairs), explicit_tests))
        whole_system = is_system_scope(item.text) and not components(item.text)
        if kind is WorkerType.IMPLEMENTATION and len(implementations) == 1 and whole_system:
            works[-1:] = _layers(item, subject)
    order_migration(works)
    works.extend(implied_work(text, items, works, subject, anchor))
    _distribute(works, [f for f in metadata.files if not any(f in w.files for w in works)])
    levels = _levels(works)
    _fit_count(levels)
    _fit_files(levels)
    pad(levels, subject, anchor)
    return levels


def _jobs_after_pipelines(
    pairs: list[tuple[Item, WorkerType]],
) -> list[tuple[Item, WorkerType]]:
    """ "A pipeline with build, test and deploy stages": the short items split off after a CI
    item in its group are its jobs, folded back into it."""
    result: list[tuple[Item, WorkerType]] = []
    for item, kind in pairs:
        if result and is_ci_setup(result[-1][0].text) and item.group == result[-1][0].group:
            job = job_name(item.text)
            if job is not None:
                ci, ci_kind = result[-1]
                result[-1] = (replace(ci, text=f"{ci.text}, {job}"), ci_kind)
                continue
        result.append((item, kind))
    return result


def _work_of(
    item: Item, kind: WorkerType, subject: str, anchor: Item, count: int, explicit_tests: bool
) -> list[Work]:
    """The work of one item: a recipe's stages for a known shape, else one subtask."""
    if is_ci_setup(item.text):
        return ci_works(item, ci_jobs(item.text))
    if is_security_upgrade(item.text):
        return upgrade_works(item, with_tests=not explicit_tests)
    named = components(item.text) if kind is WorkerType.IMPLEMENTATION and count > 1 else None
    if named is not None:
        return component_works(item, *named)
    return [_item_work(item, kind, subject, anchor)]


def _item_work(item: Item, kind: WorkerType, subject: str, anchor: Item) -> Work:
    title, label = title_for(item.text, kind, subject)
    part_of = f" Part of: {bounded(anchor.text)}." if anchor is not item else ""
    return Work(
        key=(item.group, phase_rank(kind), 0),
        worker_type=kind,
        domain=domain_of(item.text, kind),
        title=title,
        label=label,
        slug=slug_of(label) if kind is WorkerType.IMPLEMENTATION else KIND_SLUGS[kind],
        description=f"{bounded(item.text)}.{part_of}",
        files=extract_files(item.text),
        source=item.text,
    )


def _layers(item: Item, subject: str) -> list[Work]:
    """A whole system is built as a backend and a frontend in parallel, unless it names one side."""
    lowered = subject.lower().split()
    sides = ["backend", "frontend"]
    if any(word in lowered for word in _BACKEND_ONLY):
        sides = ["backend"]
    elif any(word in lowered for word in _FRONTEND_ONLY):
        sides = ["frontend"]
    files = extract_files(item.text)
    works: list[Work] = []
    for side in sides:
        front = side == "frontend"
        mine = [f for f in files if f.rsplit(".", 1)[-1] in _FRONTEND_EXTENSIONS] if front else []
        if not front:
            mine = [f for f in files if f.rsplit(".", 1)[-1] not in _FRONTEND_EXTENSIONS]
        label = f"{subject} {side}" if len(sides) > 1 else subject
        works.append(
            Work(
                key=(item.group, phase_rank(WorkerType.IMPLEMENTATION), 0),
                worker_type=WorkerType.IMPLEMENTATION,
                domain=Domain.DEVELOPMENT,
                title=shorten(f"Implement {label}", 80),
                label=label,
                slug=side if len(sides) > 1 else slug_of(subject),
                description=f"{bounded(item.text)}: the {side} part.",
                files=mine,
                source=item.text,
            )
        )
    return works


def _distribute(works: list[Work], files: list[str]) -> None:
    """Files named outside any item go to the implementation work, round robin."""
    targets = [w for w in works if w.worker_type is WorkerType.IMPLEMENTATION] or works
    for work, path in zip(itertools.cycle(targets), files, strict=False):
        work.files.append(path)


def _levels(works: list[Work]) -> list[list[Work]]:
    ordered = sorted(works, key=lambda w: w.key)  # stable: reading order within a level
    return [list(level) for _, level in itertools.groupby(ordered, key=lambda w: w.key)]


def _fit_count(levels: list[list[Work]]) -> None:
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


def _merge(first: Work, second: Work) -> Work:
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
        criteria=f"{first.criteria}; {second.criteria}"
        if first.criteria and second.criteria
        else "",
    )


def _fit_files(levels: list[list[Work]]) -> None:
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


def _parts(work: Work, chunks: list[list[str]]) -> list[Work]:
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


def _subtasks(levels: list[list[Work]], prefix: str, parent: str) -> list[PlanSubtask]:
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
                    success_criteria=work.criteria
                    or success_criteria_for(work.worker_type, work.label, work.files),
                )
            )
            ids.append(subtask_id)
        previous = ids
    return subtasks


def _minutes(work: Work) -> int:
    return work.minutes or subtask_minutes(work.worker_type, len(work.files))


def _with_undeclared(work: Work) -> str:
    if not work.undeclared:
        return work.description
    shown = ", ".join(work.undeclared[:10])
    more = f" and {len(work.undeclared) - 10} more" if len(work.undeclared) > 10 else ""
    return (
        f"{work.description}\nAlso named in the requirement, not declared here (a subtask "
        f"declares at most {MAX_FILES_PER_SUBTASK} files): {shown}{more}."
    )
