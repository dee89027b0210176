"""Classifying requirement text: which kind of worker an item needs, which master owns it, and the
metadata of a whole requirement (type, domains, technologies, risk, simple or complex).

Keyword tables, not a model: deterministic, instant and offline. The leading verb decides first
("scan ..." is an audit whatever follows); keywords decide for noun phrases ("security audit").
"""

from __future__ import annotations

import re
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

from taskorch.domain.plan import MAX_FILES_PER_SUBTASK, Domain, WorkerType
from taskorch.planning.shapes import components, is_ci_setup, is_security_upgrade
from taskorch.planning.text import (
    ACTION_VERBS,
    MAX_ANALYZED_CHARS,
    Item,
    clean,
    extract_files,
    extract_languages,
    extract_technologies,
    leading_word,
    split_items,
    word_set,
    words,
)

PHASE_ORDER: tuple[WorkerType, ...] = (
    WorkerType.PLANNER,
    WorkerType.IMPLEMENTATION,
    WorkerType.TEST,
    WorkerType.AUDIT,
    WorkerType.DOCUMENTATION,
    WorkerType.DEPLOY,
)
"""The natural order of work when the requirement gives no explicit cue."""


def phase_rank(worker_type: WorkerType) -> int:
    return PHASE_ORDER.index(worker_type)


_VERB_WORKER = {
    **dict.fromkeys(("design", "architect", "plan", "draft", "research", "investigate",
                     "analyze", "analyse", "spec", "specify"), WorkerType.PLANNER),
    **dict.fromkeys(("test", "verify", "validate"), WorkerType.TEST),
    **dict.fromkeys(("audit", "scan", "review", "harden", "pentest", "assess"), WorkerType.AUDIT),
    **dict.fromkeys(("document", "describe"), WorkerType.DOCUMENTATION),
    **dict.fromkeys(("deploy", "release", "ship", "publish", "rollout"), WorkerType.DEPLOY),
}  # fmt: skip
_TEST_WORDS = r"tests?|testing|unit[- ]tests?|e2e|end[- ]to[- ]end tests?|coverage|qa"
_DOC_WORDS = r"documentation|docs|readme|guide|tutorial|changelog|docstrings?|manual|runbook"
_NOUN_WORKER: tuple[tuple[WorkerType, re.Pattern[str]], ...] = (
    (WorkerType.TEST, re.compile(rf"\b(?:{_TEST_WORDS})\b")),
    (WorkerType.DOCUMENTATION, re.compile(rf"\b(?:{_DOC_WORDS})\b")),
    (WorkerType.AUDIT, re.compile(
        r"\b(?:audit|vulnerabilit(?:y|ies)|pentest|penetration|threat model|cve|owasp|"
        r"security review|compliance)\b")),
    (WorkerType.DEPLOY, re.compile(
        r"\b(?:deploy(?:ment)?|release|rollout|ci/cd|pipeline|staging|production)\b")),
    (WorkerType.PLANNER, re.compile(
        r"\b(?:design|architecture|spec|specification|rfc|proposal|roadmap)\b")),
)  # fmt: skip
"""For items without a leading verb ("security audit", "documentation"): the first match wins."""
_OBJECT_WORKER: tuple[tuple[WorkerType, re.Pattern[str]], ...] = (
    (WorkerType.TEST, re.compile(rf"\b(?:{_TEST_WORDS})\b")),
    (WorkerType.DOCUMENTATION, re.compile(rf"\b(?:{_DOC_WORDS})\b")),
    (WorkerType.AUDIT, re.compile(r"\b(?:audit|security review|pentest|threat model)\b")),
    (WorkerType.DEPLOY, re.compile(r"\b(?:deployment|pipeline|ci/cd|release)\b")),
)
"""For "add tests", "write the docs": the object right after a general verb names the work."""
_OBJECT_WORDS = 4

_INVENTORY = re.compile(
    r"\b(?:inventory|portfolio|catalog(?:ue)?|enumerate|list (?:all|every|the)|"
    r"repositories|repos|count (?:all|the))\b"
)
_SECURITY = re.compile(
    r"\b(?:security|vulnerab\w*|cve|secrets?|owasp|xss|csrf|injection|pentest|malware|"
    r"encrypt\w*|exploit\w*)\b"
)
_CICD = re.compile(
    r"\b(?:ci|cd|ci/cd|pipeline|github actions|gitlab ci|jenkins|workflow file|build matrix|"
    r"dockerfile|helm chart)\b"
)
_SENSITIVE = re.compile(
    r"\b(?:auth\w*|login|log in|sign[- ]?in|password\w*|credential\w*|tokens?|jwt|oauth\w*|"
    r"session\w*|payments?|billing|crypto\w*|encrypt\w*|permissions?|roles?|secrets?|"
    r"security|pii|personal data)\b"
)
_SYSTEM = re.compile(
    r"\b(?:system|platform|application|app|service|subsystem|framework|portal|dashboard|"
    r"end[- ]to[- ]end|full[- ]stack|microservices?|architecture|website|site)\b"
)
_CREATION_VERBS = word_set(
    "add build create implement develop introduce design architect set setup make write"
)
_EXTERNAL = re.compile(
    r"\b(?:third[- ]party|external|integrat\w*|webhooks?|stripe|twilio|sendgrid|s3|"
    r"oauth provider|api key)\b"
)


def worker_type_of(text: str) -> WorkerType:
    """The worker an item needs: its leading verb's, else its object's, else implementation."""
    return _named_worker_type(text) or WorkerType.IMPLEMENTATION


def _named_worker_type(text: str) -> WorkerType | None:
    """The worker type an item names; None for a bare noun phrase that names no kind of work."""
    verb = leading_word(text)
    if verb in _VERB_WORKER:
        return _VERB_WORKER[verb]
    lowered = text.lower()
    if verb in ACTION_VERBS:
        table, scope = _OBJECT_WORKER, " ".join(words(lowered)[1 : 1 + _OBJECT_WORDS])
    else:
        table, scope = _NOUN_WORKER, lowered
    for worker_type, pattern in table:
        if pattern.search(scope):
            return worker_type
    return WorkerType.IMPLEMENTATION if verb in ACTION_VERBS else None


def item_kinds(items: list[Item]) -> list[WorkerType]:
    """The worker type of each item. A listed item that names no kind of work takes its
    umbrella's when that is supporting work: the sections of "Write a guide covering install
    and upgrades" are documentation, not code to build and test."""
    kinds: list[WorkerType] = []
    inherited: WorkerType | None = None
    for item in items:
        own = _named_worker_type(item.text)
        if item.umbrella:
            inherited = own if own not in (None, WorkerType.IMPLEMENTATION) else None
        elif (
            item.listed
            and inherited is not None
            and (own is None or (own is WorkerType.IMPLEMENTATION and not item.step))
        ):
            # "upgrade steps" in a guide's list is a section, not code; a step's verb is its own
            own = inherited
        kinds.append(own or WorkerType.IMPLEMENTATION)
    return kinds


def domain_of(text: str, worker_type: WorkerType) -> Domain:
    """The master that owns an item of this worker type."""
    if worker_type is WorkerType.AUDIT:
        return Domain.SECURITY
    if worker_type is WorkerType.DOCUMENTATION:
        return Domain.DOCS
    if worker_type is WorkerType.DEPLOY:
        return Domain.CICD
    lowered = text.lower()
    if worker_type is WorkerType.IMPLEMENTATION:
        if _INVENTORY.search(lowered) or leading_word(text) in {"list", "inventory", "count"}:
            return Domain.INVENTORY
        if _SECURITY.search(lowered):
            return Domain.SECURITY
        if _CICD.search(lowered):
            return Domain.CICD
    return Domain.DEVELOPMENT


def is_sensitive(text: str) -> bool:
    """Does the work touch authentication, secrets, money or permissions (worth an audit)?"""
    return bool(_SENSITIVE.search(text.lower()))


def is_system_scope(text: str) -> bool:
    """Does the item create a whole system (as opposed to changing something in one)?"""
    if leading_word(text) not in _CREATION_VERBS:
        return False
    without_files = " ".join(w for w in text[:MAX_ANALYZED_CHARS].split() if not extract_files(w))
    return bool(_SYSTEM.search(without_files.lower()))


class RiskLevel(StrEnum):
    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"


class TaskMetadata(BaseModel):
    """What the planner reads out of a requirement before it decomposes it."""

    model_config = ConfigDict(frozen=True)

    title: str
    task_type: WorkerType
    """The worker type of the requirement's main item."""
    primary_domain: Domain
    domains: list[Domain]
    technologies: list[str] = Field(default_factory=list)
    languages: list[str] = Field(default_factory=list)
    files: list[str] = Field(default_factory=list)
    risk_level: RiskLevel = RiskLevel.LOW
    external_dependencies: bool = False
    item_count: int = 1
    sequential: bool = False
    """The requirement orders its items explicitly ("then", "after", "before")."""
    system_scope: bool = False
    is_complex: bool = False
    reasons: list[str] = Field(default_factory=list)
    """Why the requirement counts as complex (empty for a simple one)."""


def extract_task_metadata(description: str, context: str | None = None) -> TaskMetadata:
    """Metadata of a requirement; ``context`` adds technologies and languages, never work items."""
    text = clean(description)
    return metadata_from_items(text, split_items(text), context)


def metadata_from_items(text: str, items: list[Item], context: str | None = None) -> TaskMetadata:
    """Metadata of the cleaned requirement ``text`` already cut into ``items``."""
    all_kinds = item_kinds(items)
    pairs = [(i, k) for i, k in zip(items, all_kinds, strict=True) if not i.umbrella]
    pairs = pairs or list(zip(items, all_kinds, strict=True))
    work = [item for item, _ in pairs]
    kinds = [kind for _, kind in pairs]
    domains = list(dict.fromkeys(domain_of(i.text, k) for i, k in zip(work, kinds, strict=True)))
    files = extract_files(text)
    both = f"{text}\n{clean(context or '')}"
    main_kind = kinds[0] if kinds else WorkerType.IMPLEMENTATION
    system = any(is_system_scope(item.text) for item in items)
    sequential = len({item.group for item in items}) > 1
    implementations = sum(
        _parts_of(item.text, len(work)) for item, kind in pairs if kind is WorkerType.IMPLEMENTATION
    )
    reasons = _complexity_reasons(len(work), implementations, domains, files, system, sequential)
    reasons.extend(shape_reasons(items))
    sensitive = is_sensitive(text)
    return TaskMetadata(
        title=text.split("\n", 1)[0],
        task_type=main_kind,
        primary_domain=domains[0] if domains else Domain.DEVELOPMENT,
        domains=domains or [Domain.DEVELOPMENT],
        technologies=extract_technologies(both),
        languages=extract_languages(both, files),
        files=files,
        risk_level=_risk(sensitive, bool(reasons), len(files)),
        external_dependencies=bool(_EXTERNAL.search(" ".join(words(text)))),
        item_count=len(work),
        sequential=sequential,
        system_scope=system,
        is_complex=bool(reasons),
        reasons=reasons,
    )


def _parts_of(text: str, item_count: int) -> int:
    """How many subtasks an implementation item makes: one per component it names, when the
    requirement has other work too ("fix the parser and the lexer, with tests")."""
    if item_count < 2:
        return 1
    named = components(text)
    return len(named[1]) if named else 1


def shape_reasons(items: list[Item]) -> list[str]:
    """Complexity reasons of the requirement shapes planned in stages of their own."""
    reasons: list[str] = []
    if any(is_ci_setup(item.text) for item in items):
        reasons.append("sets up a CI pipeline")
    if any(is_security_upgrade(item.text) for item in items):
        reasons.append("upgrades dependencies for security advisories")
    return reasons


def _complexity_reasons(
    items: int,
    implementations: int,
    domains: list[Domain],
    files: list[str],
    system: bool,
    sequential: bool,
) -> list[str]:
    """The original specification's tests for a complex task, each that holds as a reason."""
    reasons: list[str] = []
    if len(domains) > 1:
        reasons.append("spans domains: " + ", ".join(domains))
    if len(files) > MAX_FILES_PER_SUBTASK:
        reasons.append(f"touches {len(files)} files")
    if system:
        reasons.append("builds a whole system")
    if implementations > 1:
        reasons.append(f"{implementations} implementation items")
    elif items > 2:
        reasons.append(f"{items} work items")
    if sequential:
        reasons.append("explicit sequence of steps")
    return reasons


def _risk(sensitive: bool, complex_: bool, file_count: int) -> RiskLevel:
    if sensitive:
        return RiskLevel.HIGH
    if complex_ or file_count > MAX_FILES_PER_SUBTASK:
        return RiskLevel.MEDIUM
    return RiskLevel.LOW
