"""Words the heuristic planner writes: subjects, id prefixes and slugs, titles, success criteria.

Kept apart from the planning logic so the plan's shape and its prose can change independently.
"""

from __future__ import annotations

import hashlib
import re

from taskorch.domain.plan import WorkerType
from taskorch.planning.classify import worker_type_of
from taskorch.planning.shapes import cut_clause
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
_SUBJECT_WORDS = 40
"""A subject is a noun phrase: words beyond these never make it into the 60 characters."""
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
    return shorten(cut_clause(" ".join(words[start : start + _SUBJECT_WORDS])), SUBJECT_CHARS)


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
    """(title, label) of an item, always a verb and its object: an instruction keeps its wording;
    a bare verb ("design" in "design → implement") takes the subject; a noun phrase gets the verb
    of its worker type ("login" -> "Implement login", "smoke tests pass" -> "Run smoke tests",
    "docs" -> "Document <subject>")."""
    verb = leading_word(item_text)
    if verb in _PRONOUNS and leading_word(item_text.split(" ", 1)[-1]) in ACTION_VERBS:
        return title_for(item_text.split(" ", 1)[1], worker_type, subject)  # "you write X"
    if verb in ACTION_VERBS and worker_type_of(item_text) is not worker_type:
        # a listed section that took its head's kind: "upgrade steps" in a guide is documented
        return title_for(f"the {item_text}", worker_type, subject)
    if verb in ACTION_VERBS:
        rest = subject_of(item_text)
        if rest == item_text or leading_word(rest) == verb:  # nothing but the verb
            return shorten(f"{capitalised(verb)} {subject}", TITLE_CHARS), subject
        return shorten(capitalised(item_text), TITLE_CHARS), rest
    if worker_type is WorkerType.IMPLEMENTATION:
        label = shorten(item_text, SUBJECT_CHARS)
        return shorten(f"{verb_for(worker_type)} {label}", TITLE_CHARS), label
    if _GENERIC.fullmatch(item_text.lower()):
        return shorten(f"{verb_for(worker_type)} {subject}", TITLE_CHARS), subject
    if ":" in item_text:  # a labelled line ("Done when: ..."): its own words read best
        return shorten(capitalised(item_text), TITLE_CHARS), shorten(item_text, SUBJECT_CHARS)
    phrase = cut_clause(item_text)
    first, _, rest = phrase.partition(" ")
    if first.lower() in _HAVING and rest:  # an acceptance criterion: "has tests"
        phrase = rest
    verb = _NOUN_VERBS[worker_type]
    if worker_type is WorkerType.DOCUMENTATION and not _DOC_NOUN.search(phrase):
        verb = verb_for(worker_type)  # "Document installation", but "Write a user guide"
    return shorten(f"{verb} {phrase}", TITLE_CHARS), shorten(phrase, SUBJECT_CHARS)


_NOUN_VERBS: dict[WorkerType, str] = {
    WorkerType.PLANNER: "Write",
    WorkerType.IMPLEMENTATION: "Implement",
    WorkerType.TEST: "Run",
    WorkerType.AUDIT: "Carry out",
    WorkerType.DOCUMENTATION: "Write",
    WorkerType.DEPLOY: "Carry out",
}
"""The verb a noun phrase of each kind of work takes: "Run smoke tests", "Write a user guide"."""
_DOC_NOUN = re.compile(
    r"\b(?:docs?|documentation|guides?|readme|manual|tutorials?|changelog|runbook|reference|"
    r"faq|notes|docstrings?|page)\b",
    re.IGNORECASE,
)
_CREATION = word_set("add build create implement develop introduce design make set setup write")
_HAVING = word_set("has have includes include with")
_PRONOUNS = word_set("you we i they someone")
_ADDING = word_set("add introduce integrate")
_NOUNS = {
    "migrate": "migration", "upgrade": "upgrade", "update": "update", "refactor": "refactoring",
    "replace": "replacement", "remove": "removal", "delete": "removal", "rename": "renaming",
    "move": "move", "port": "port", "convert": "conversion", "fix": "fix", "rewrite": "rewrite",
    "optimize": "optimisation", "optimise": "optimisation", "improve": "improvement",
    "extend": "extension", "integrate": "integration", "configure": "configuration",
    "install": "installation", "split": "split", "merge": "merge", "patch": "patch",
    "deploy": "deployment", "release": "release", "ship": "release", "publish": "publication",
}  # fmt: skip


def verify_title(step: str) -> str:
    """The title of a check after a step: "deploy to staging" -> "Verify the deployment to
    staging", "Run smoke tests" -> "Verify smoke tests"."""
    if leading_word(step) in _PRONOUNS:
        step = step.split(" ", 1)[-1]
    verb = leading_word(step)
    rest = subject_of(step)
    if verb in _NOUNS and rest != step:
        joint = " " if rest.split(" ", 1)[0].lower() in _STOPWORDS else " of "
        return shorten(f"Verify the {_NOUNS[verb]}{joint}{rest}", TITLE_CHARS)
    return shorten(f"Verify {rest}", TITLE_CHARS)


def plan_subject(anchor_text: str) -> str:
    """What a whole plan is about, as a noun phrase its steps' titles can name: "Add retries to
    the client" is about "retries in the client" ("Test retries in the client")."""
    subject = subject_of(anchor_text)
    if leading_word(anchor_text) in _ADDING:
        subject = re.sub(r"^(.+?) (?:to|into) ", r"\1 in ", subject, count=1)
    return subject


def implied_title(worker_type: WorkerType, anchor_text: str, subject: str) -> str:
    """The title of work the planner adds. Something being built is named by its subject
    ("Design authentication system"); a change to something existing by the change ("Plan the
    migration of user sessions from Redis to PostgreSQL")."""
    verb = leading_word(anchor_text)
    if verb in _CREATION or verb not in ACTION_VERBS:
        return shorten(f"{verb_for(worker_type)} {subject}", TITLE_CHARS)
    change = f"the {_NOUNS[verb]} of" if verb in _NOUNS else "the changes to"
    lead = "Plan" if worker_type is WorkerType.PLANNER else verb_for(worker_type)
    return shorten(f"{lead} {change} {subject}", TITLE_CHARS)


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
            f"{capitalised(label)} works as described{where}; the code builds and the existing "
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
            f"{capitalised(label)} is deployed by the pipeline and its health check passes"
        ),
    }
    return criteria[worker_type]


def capitalised(text: str) -> str:
    return text[:1].upper() + text[1:]


def _join(labels: list[str]) -> str:
    if len(labels) <= 1:
        return "".join(labels)
    return ", ".join(labels[:-1]) + " and " + labels[-1]
