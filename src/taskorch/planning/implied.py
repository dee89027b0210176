"""Work a plan needs that the requirement left implicit.

A design step when something is being built, tests after implementing, a security audit after
sensitive work (authentication, secrets, money, permissions). Work planned by a recipe brings its
own stages and documentation alone is not tested. A complex plan that still has fewer than 3
subtasks gets the step its work calls for: an outline and a review for documentation, reproducing
a bug before fixing it, a design (or a plan of the change) before building, else a check of the
last step.
"""

from __future__ import annotations

from taskorch.domain.plan import MIN_COMPLEX_SUBTASKS, Domain, WorkerType
from taskorch.planning.classify import domain_of, is_sensitive, phase_rank
from taskorch.planning.text import ACTION_VERBS, Item, leading_word, shorten, word_set
from taskorch.planning.wording import implied_title, prefix_of, verify_title
from taskorch.planning.work import KIND_SLUGS, Work, bounded

_BEFORE_ALL = -1
_CREATION = word_set("add build create implement develop introduce design make set setup")
_REPAIR = word_set("fix repair patch debug resolve troubleshoot")


def implied_work(
    text: str, items: list[Item], works: list[Work], subject: str, anchor: Item
) -> list[Work]:
    """Design before building, tests after implementing, an audit after sensitive work. Work
    planned by a recipe brings its own stages; documentation alone is not tested."""
    kinds = {w.worker_type for w in works}
    built = [w for w in works if w.worker_type is WorkerType.IMPLEMENTATION]
    unshaped = [w for w in built if not w.shaped]
    implied: list[Work] = []
    creates = any(leading_word(w.source) in _CREATION for w in unshaped) or (
        any(leading_word(i.text) in _CREATION for i in items if i.umbrella)
    )
    if WorkerType.PLANNER not in kinds and creates and unshaped:
        implied.append(_implied(WorkerType.PLANNER, _BEFORE_ALL, subject, anchor, unshaped))
    if unshaped and WorkerType.TEST not in kinds:
        last_group = max(w.key[0] for w in unshaped)
        implied.append(_implied(WorkerType.TEST, last_group, subject, anchor, unshaped))
    if built and WorkerType.AUDIT not in kinds and is_sensitive(text):
        last_group = max(w.key[0] for w in built)
        implied.append(_implied(WorkerType.AUDIT, last_group, subject, anchor, built))
    return implied


_IMPLIED_DESCRIPTIONS = {
    WorkerType.PLANNER: "Design the components, interfaces and data model for: {whole}.{scope}",
    WorkerType.TEST: "Write and run automated tests for the implementation.{scope}",
    WorkerType.AUDIT: (
        "Review the implementation for security flaws: authentication and session handling, "
        "secrets, input validation, access control.{scope}"
    ),
    WorkerType.DOCUMENTATION: "Review the documentation: run its examples, check its links.",
}


def _implied(
    kind: WorkerType,
    group: int,
    subject: str,
    anchor: Item,
    built: list[Work],
    title: str | None = None,
    owner: Domain | None = None,
) -> Work:
    labels = [w.label for w in built]
    scope = f" Covers: {'; '.join(labels)}." if labels else ""
    files = [f"docs/{prefix_of(subject)}-architecture.md"] if kind is WorkerType.PLANNER else []
    return Work(
        key=(group, phase_rank(kind), 0),
        worker_type=kind,
        domain=owner or domain_of(subject, kind),
        title=title or implied_title(kind, anchor.text, subject),
        label=subject,
        slug=KIND_SLUGS[kind],
        description=_IMPLIED_DESCRIPTIONS[kind].format(whole=bounded(anchor.text), scope=scope),
        files=files,
    )


def pad(levels: list[list[Work]], subject: str, anchor: Item) -> None:
    """A complex plan has at least 3 subtasks. Add the step the work calls for: an outline and a
    review for documentation, reproducing a bug before fixing it, a design (or plan of the change)
    before building, else a check of the last step; then tests."""
    works = [w for level in levels for w in level]
    if len(works) >= MIN_COMPLEX_SUBTASKS:
        return
    first, last = levels[0][0].key[0] - 1, levels[-1][0].key[0] + 1
    verb = leading_word(anchor.text)
    if levels[-1][0].worker_type is WorkerType.DOCUMENTATION:
        outline = _implied(WorkerType.PLANNER, first, subject, anchor, [], f"Outline {subject}")
        outline.domain, outline.files = Domain.DOCS, []
        outline.description = f"Outline the documentation for: {bounded(anchor.text)}."
        review = _implied(WorkerType.DOCUMENTATION, last, subject, anchor, [], f"Review {subject}")
        review.domain = Domain.DOCS
        if all(w.worker_type is WorkerType.DOCUMENTATION for w in works):
            levels.insert(0, [outline])
        levels.append([review])
    elif verb in _REPAIR:
        title = shorten(f"Reproduce {subject}", 80)
        owner = levels[0][0].domain
        levels.insert(0, [_implied(WorkerType.PLANNER, first, subject, anchor, [], title, owner)])
    elif verb in ACTION_VERBS and any(w.worker_type is WorkerType.IMPLEMENTATION for w in works):
        levels.insert(0, [_implied(WorkerType.PLANNER, first, subject, anchor, [])])
    else:
        final = levels[-1][0]
        check = verify_title(final.source) if final.source else None
        levels.append([_implied(WorkerType.TEST, last, subject, anchor, [], check, final.domain)])
    if sum(map(len, levels)) < MIN_COMPLEX_SUBTASKS:
        levels.append([_implied(WorkerType.TEST, last + 1, subject, anchor, [])])
