"""Words the heuristic planner writes: subjects, id prefixes and slugs, titles, success criteria.

Kept apart from the planning logic so the plan's shape and its prose can change independently.
"""

from __future__ import annotations

import hashlib
import re

from taskorch.domain.plan import WorkerType
from taskorch.planning.text import ACTION_VERBS, extract_files, leading_word, shorten, word_set

TITLE_CHARS = 80
SUBJECT_CHARS = 60
_STOPWORDS = word_set(
    """a an the all any every each new our some this that these those for of to in on at by and
    or with from into as is are be it its their your my via using up"""
)
_ABBREVIATIONS = {
    "authentication": "auth", "authorization": "auth", "authn": "auth", "authz": "auth",
    "application": "app", "applications": "app", "database": "db", "databases": "db",
    "documentation": "docs", "configuration": "config", "repository": "repo",
    "repositories": "repo", "infrastructure": "infra", "kubernetes": "k8s",
    "management": "mgmt", "development": "dev", "environment": "env", "dependencies": "deps",
    "dependency": "deps", "notifications": "notify", "notification": "notify",
}  # fmt: skip
_WORD = re.compile(r"[A-Za-z0-9]+")
_GENERIC = re.compile(
    r"(?:(?:a|an|the|full|complete|thorough|proper|some)\s+)?(?:security\s+|code\s+|unit\s+|"
    r"integration\s+|automated\s+|user\s+|developer\s+|api\s+)?(?:tests?|testing|audit|review|"
    r"scan|documentation|docs|deployment|release|design|architecture)"
)
"""Items that name only a kind of work ("security audit", "docs"); their title names the subject."""
_LEADING_FILLER = word_set("a an the all new our some every")
_PREFIX_CHARS = 12
_SLUG_WORDS = 3
_SLUG_CHARS = 24


def subject_of(text: str) -> str:
    """What an instruction is about: "Create a REST API for X" -> "REST API for X"."""
    words = text.split()
    start = 0  # an index, not slices: dropping leading words one slice at a time is quadratic
    if words and leading_word(words[0]) in ACTION_VERBS:
        start = 1
        if start < len(words) and words[start].lower() == "up":  # "set up X"
            start += 1
    while start < len(words) and words[start].lower() in _LEADING_FILLER:
        start += 1
    if start == len(words):
        return shorten(text, SUBJECT_CHARS)
    return shorten(" ".join(words[start:]), SUBJECT_CHARS)


def _without_files(text: str) -> str:
    """``text`` without file names (their words make poor ids), or their stems if nothing else."""
    words = text.split()
    kept = [w for w in words if not extract_files(w)]
    if any(_WORD.search(w) for w in kept):
        return " ".join(kept)
    return " ".join(w.rsplit("/", 1)[-1].split(".", 1)[0] for w in words)


def prefix_of(subject: str) -> str:
    """The id prefix of a plan: its subject's first significant word, abbreviated ("auth")."""
    for word in _WORD.findall(_without_files(subject)):
        lowered = word.lower()
        if lowered in _STOPWORDS or lowered in ACTION_VERBS or lowered.isdigit():
            continue
        return _ABBREVIATIONS.get(lowered) or lowered[:_PREFIX_CHARS]
    return "task"


def slug_of(text: str) -> str:
    """A short id slug of an item: "password reset for users" -> "password-reset-users"."""
    kept = [w.lower() for w in _WORD.findall(_without_files(text)) if w.lower() not in _STOPWORDS]
    slug = "-".join(kept[:_SLUG_WORDS])[:_SLUG_CHARS].strip("-")
    return slug or "work"


def task_reference(task_ref: str | int | None, text: str) -> str:
    """The parent task id: the caller's, ``task-<n>`` for a number, or one derived from the text
    (so planning the same requirement twice gives the same ids)."""
    if isinstance(task_ref, int):
        return f"task-{task_ref}"
    if task_ref is not None and task_ref.strip():
        return task_ref.strip()
    return "task-" + hashlib.sha256(text.encode("utf-8")).hexdigest()[:8]


_VERBS: dict[WorkerType, str] = {
    WorkerType.PLANNER: "Design",
    WorkerType.IMPLEMENTATION: "Implement",
    WorkerType.TEST: "Test",
    WorkerType.AUDIT: "Security audit of",
    WorkerType.DOCUMENTATION: "Document",
    WorkerType.DEPLOY: "Deploy",
}


def verb_for(worker_type: WorkerType) -> str:
    return _VERBS[worker_type]


def title_for(item_text: str, worker_type: WorkerType, subject: str) -> tuple[str, str]:
    """(title, label) of an item: an instruction keeps its wording; a bare noun phrase gets the
    verb of its worker type ("login" -> "Implement login", "docs" -> "Document <subject>")."""
    if leading_word(item_text) in ACTION_VERBS:
        return shorten(_capitalised(item_text), TITLE_CHARS), subject_of(item_text)
    if worker_type is WorkerType.IMPLEMENTATION:
        label = shorten(item_text, SUBJECT_CHARS)
        return shorten(f"{verb_for(worker_type)} {label}", TITLE_CHARS), label
    if _GENERIC.fullmatch(item_text.lower()):
        return shorten(f"{verb_for(worker_type)} {subject}", TITLE_CHARS), subject
    return shorten(_capitalised(item_text), TITLE_CHARS), shorten(item_text, SUBJECT_CHARS)


def merged_title(verbs: list[str], labels: list[str], titles: list[str]) -> str:
    """One title for merged items: "Implement a, b and c" when they share a verb."""
    if len(set(verbs)) == 1:
        return shorten(f"{verbs[0]} {_join(labels)}", TITLE_CHARS)
    return shorten("; ".join(titles), TITLE_CHARS)


_KIND_OF_WORK = {
    WorkerType.TEST: re.compile(r"(?:[\w-]+ )?tests? (?:for|of|on) ", re.IGNORECASE),
    WorkerType.AUDIT: re.compile(r"(?:[\w-]+ )?(?:audit|review) (?:for|of|on) ", re.IGNORECASE),
    WorkerType.DOCUMENTATION: re.compile(
        r"(?:[\w-]+ )?(?:docs|documentation) (?:for|of|on) ", re.IGNORECASE
    ),
}
"""A label that already names the kind of work ("unit tests for billing") says it twice in
that kind's criteria ("Automated tests for unit tests for billing")."""


def success_criteria_for(worker_type: WorkerType, label: str, files: list[str]) -> str:
    where = f" in {', '.join(files)}" if files else ""
    kind = _KIND_OF_WORK.get(worker_type)
    if kind is not None and (named := kind.match(label)) and label[named.end() :].strip():
        label = label[named.end() :]
    criteria = {
        WorkerType.PLANNER: (
            f"A design for {label}{where} names its components, interfaces and data model and "
            "maps every requirement item to a subtask"
        ),
        WorkerType.IMPLEMENTATION: (
            f"{_capitalised(label)} works as described{where}; the code builds and the existing "
            "test suite passes"
        ),
        WorkerType.TEST: (
            f"Automated tests for {label}{where} cover the main path and the failure cases, and "
            "the whole suite passes"
        ),
        WorkerType.AUDIT: (
            f"An audit report for {label} lists every finding with severity, file and line; "
            "no high or critical finding is left open"
        ),
        WorkerType.DOCUMENTATION: (
            f"Documentation for {label}{where} explains setup, usage and configuration, and its "
            "examples run as written"
        ),
        WorkerType.DEPLOY: (
            f"{_capitalised(label)} is deployed by the pipeline and its health check passes"
        ),
    }
    return criteria[worker_type]


def _capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(labels: list[str]) -> str:
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]
