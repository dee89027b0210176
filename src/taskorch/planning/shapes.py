"""Shapes of requirement the heuristic planner plans in a known way, recognised from the text:
a CI pipeline to set up, dependencies to upgrade for security advisories, the dependent steps of a
data migration, and one change applied to several named components.

Pure text tests (no plan building here), each linear in the analysed text.
"""

from __future__ import annotations

import re

from taskorch.planning.text import (
    ACTION_VERBS,
    MAX_ANALYZED_CHARS,
    extract_files,
    leading_word,
    word_set,
)

# --- CI pipelines ----------------------------------------------------------------------------

_CI = re.compile(
    r"\b(?:ci|ci/cd|cd pipeline|pipelines?|github actions?|gitlab[- ]ci|jenkins(?:file)?|"
    r"circleci|buildkite|azure pipelines|workflow files?|build matrix)\b",
    re.IGNORECASE,
)
_CI_SETUP_VERBS = word_set(
    "add build create implement develop introduce set setup configure write make automate "
    "migrate move port establish"
)
_CI_JOBS = re.compile(
    r"\b(?:that|which|to)?\s*(?:runs?|running|executes?|executing|performs?|with(?:\s+jobs?\s+"
    r"for)?|jobs?(?:\s+for)?|stages?(?:\s+for)?)\s+(?P<list>.+?)"
    r"(?=\s+\b(?:on|for|when|whenever|after|before|against|in|at|across|using|via)\b|$)",
    re.IGNORECASE,
)
_JOB_SEPARATOR = re.compile(r"\s*(?:,\s*(?:and|or|&)\s+|,|\s+and\s+|\s+&\s+|\s+plus\s+)\s*")


def is_ci_setup(text: str) -> bool:
    """Does the item set up (or move) a CI pipeline, as opposed to changing something in one?
    The pipeline must be the verb's object: "set up a CI pipeline", not "add tests to the CI"."""
    if leading_word(text) not in _CI_SETUP_VERBS:
        return False
    words = text[:MAX_ANALYZED_CHARS].split()[1:9]
    if words and words[0].lower() == "up":  # "set up"
        words = words[1:]
    end = next((i for i, w in enumerate(words) if i and w.lower() in _BOUNDARY), len(words))
    return bool(_CI.search(" ".join(words[:end])))


def ci_name(subject: str) -> str:
    """The pipeline's name in a subject: "CI pipeline that runs lint" -> "CI pipeline"."""
    words = cut_clause(subject).split()
    end = next((i for i, w in enumerate(words) if i and w.lower() in _BOUNDARY), len(words))
    name = " ".join(words[:end])
    return f"{name} workflow" if name.lower().endswith("actions") else name


_JOB_SUFFIX = re.compile(r"\s+(?:jobs?|stages?|steps?|checks?)$", re.IGNORECASE)
MAX_JOB_WORDS = 3


def job_name(text: str) -> str | None:
    """The job a short list item names ("deploy stages" -> "deploy"), None for a longer one."""
    words = text.split()
    if not words or len(words) > MAX_JOB_WORDS:
        return None
    return _JOB_SUFFIX.sub("", " ".join(words)) or None


def ci_jobs(text: str) -> list[str]:
    """The jobs a CI item names: "... that runs lint, type checks and tests on every push"."""
    match = _CI_JOBS.search(text[:MAX_ANALYZED_CHARS])
    if not match:
        return []
    jobs = [_JOB_SUFFIX.sub("", j.strip(" ,.;:")) for j in _JOB_SEPARATOR.split(match["list"])]
    return list(dict.fromkeys(re.sub(r"^(?:the|a|an)\s+", "", j) for j in jobs if j))


# --- dependency upgrades for security advisories ---------------------------------------------

_UPGRADE_VERBS = word_set("upgrade update bump patch pin")
_REMEDY_VERBS = word_set("fix resolve address remediate mitigate close")
_UPGRADE_WORDS = re.compile(r"\b(?:upgrad\w*|bump\w*|updat\w*|newer versions?|patched)\b", re.I)
_DOCS_OBJECT = re.compile(
    r"\b(?:docs?|documentation|guide|readme|changelog|policy|runbook|manual)\b", re.IGNORECASE
)
_ADVISORY = re.compile(
    r"\b(?:cves?|cve-\d{4}-\d+|ghsa(?:-\w{4}){3}|vulnerab\w*|security (?:advisor\w*|alerts?|"
    r"fix\w*|patch\w*|issues?)|dependabot|known exploits?|snyk|osv)\b",
    re.IGNORECASE,
)


def is_security_upgrade(text: str) -> bool:
    """Does the item upgrade dependencies because of security advisories (CVEs)? ("Update the
    docs on CVE handling" updates documentation, not dependencies.)"""
    verb = leading_word(text)
    analysed = text[:MAX_ANALYZED_CHARS]
    if _DOCS_OBJECT.search(" ".join(analysed.split()[1:5])):
        return False
    if verb in _REMEDY_VERBS:
        return bool(_ADVISORY.search(analysed)) and bool(_UPGRADE_WORDS.search(analysed))
    return verb in _UPGRADE_VERBS and bool(_ADVISORY.search(analysed))


# --- migrations ------------------------------------------------------------------------------

MIGRATION_STEPS = ("schema", "models", "data", "cutover", "cleanup")
"""The dependent steps of a data migration, in the order they must run."""
_MIGRATION = re.compile(
    r"(?P<cleanup>\b(?:drop|remove|delete|decommission)\s+(?:the\s+)?(?:old|legacy|previous)\b)|"
    r"(?P<cutover>\b(?:switch|cut\s*over|cutover|point|flip|route)\b)|"
    r"(?P<data>\b(?:backfill\w*|data migration|"
    r"migrate (?:the )?(?:existing )?(?:data|rows|records)|copy|import|transform the data|"
    r"existing (?:rows|records|data|users|sessions|entries)|"
    r"move (?:the )?(?:data|rows|records))\b)|"
    r"(?P<models>\b(?:orm|models?|entit(?:y|ies)|sqlalchemy|prisma|repositor(?:y|ies)|dao)\b)|"
    r"(?P<schema>\b(?:schema|tables?|columns?|index(?:es)?|constraints?|ddl|alembic|"
    r"migration (?:file|script)s?)\b)",
    re.IGNORECASE,
)


def migration_step(text: str) -> int:
    """The rank of a migration step an item names (1 schema ... 5 cleanup), 0 for none; the
    earliest mention decides ("backfill the new column" is data, "add a column" schema)."""
    match = _MIGRATION.search(text[:MAX_ANALYZED_CHARS])
    if not match or match.lastgroup is None:
        return 0
    return MIGRATION_STEPS.index(match.lastgroup) + 1


# --- components ------------------------------------------------------------------------------

COMPONENT_NOUNS = word_set(
    """service api client server backend frontend module library lib package parser lexer
    formatter exporter importer scheduler worker handler controller router middleware component
    widget page screen view endpoint cli database cache queue daemon plugin adapter driver sdk app
    dashboard gateway proxy engine job store model tool script bot consumer producer listener
    renderer validator serializer resolver loader uploader downloader crawler indexer collector
    extension form modal dialog panel sidebar navbar menu report command subcommand table column"""
)
_PLURALS = {f"{n}s": n for n in COMPONENT_NOUNS} | {"libraries": "library", "caches": "cache"}
_CONJUNCTION = re.compile(r"\s*(?:,\s*(?:and\s+)?|\s+and\s+|\s+as\s+well\s+as\s+)\s*", re.I)
_BOUNDARY = word_set("to in into on for of from across within inside between at by with")
_FILLER = word_set("both the a an our its their each")
_MAX_COMPONENTS = 6


def components(text: str) -> tuple[str, list[str], str] | None:
    """One change to several components: "Add retries to the client and the scheduler" is
    ("Add retries to", ["the client", "the scheduler"], ""); None unless every part names a
    component (a component noun or a file), so "add login and logout" stays one change."""
    words = text[:MAX_ANALYZED_CHARS].split()
    if len(words) > 60 or not re.search(r"\band\b|,", text):
        return None
    lowered = [w.lower().strip(",.;:") for w in words]
    # The list starts after the verb or the last preposition before the first "and"/",".
    first = next((i for i, w in enumerate(words) if w.lower() == "and" or w.endswith(",")), None)
    if first is None:
        return None
    start = 1
    for i in range(1, first + 1):
        if lowered[i] in _BOUNDARY:
            start = i + 1
    end = len(words)
    for i in range(first + 1, len(words)):
        if lowered[i] in _BOUNDARY:
            end = i
            break
    body = " ".join(words[start:end])
    parts = [p.strip(" ,") for p in _CONJUNCTION.split(body) if p.strip(" ,")]
    if not 2 <= len(parts) <= _MAX_COMPONENTS:
        return None
    parts = _distributed(parts)
    parts[0] = re.sub(r"^(?:both|either)\s+", "", parts[0], flags=re.IGNORECASE)
    if not all(_is_component(p) for p in parts):
        return None
    return " ".join(words[:start]), parts, " ".join(words[end:])


def _head(part: str) -> str:
    tokens = [t.lower() for t in part.split() if t.lower() not in _FILLER]
    return tokens[-1] if tokens else ""


def _is_component(part: str) -> bool:
    head = _head(part)
    return head in COMPONENT_NOUNS or head in _PLURALS or bool(extract_files(part))


def _distributed(parts: list[str]) -> list[str]:
    """ "the auth and billing services" names two: "the auth service", "billing service"."""
    plural = _PLURALS.get(_head(parts[-1]))
    if plural is None or any(_is_component(p) for p in parts[:-1]):
        return parts
    last = parts[-1].rsplit(" ", 1)[0]
    return [f"{p} {plural}" for p in [*parts[:-1], last]]


# --- clauses ---------------------------------------------------------------------------------

_CLAUSE_WORDS = word_set("that which who whenever when so because whose where")
_PREDICATE = word_set(
    "pass passes passed fail fails succeed succeeds work works is are be run runs exist exists "
    "green"
)


def cut_clause(phrase: str) -> str:
    """A noun phrase without the clause that follows it: "lodash to fix CVE-1" -> "lodash",
    "CI pipeline that runs lint" -> "CI pipeline", "smoke tests pass" -> "smoke tests"."""
    words = phrase.split()
    lowered = [w.lower().strip(",.;:") for w in words]
    end = len(words)
    for i in range(1, len(words)):
        after = lowered[i + 1] if i + 1 < len(words) else ""
        purpose = lowered[i] == "to" and (after in ACTION_VERBS or after in _PREDICATE)
        if (
            lowered[i] in _CLAUSE_WORDS
            or words[i - 1].endswith(",")
            or purpose
            or (lowered[i] == "in" and after == "order")
        ):
            end = i
        if end < len(words):
            break
    kept = words[:end]
    while len(kept) > 1 and kept[-1].lower().strip(".,") in _PREDICATE:
        kept.pop()
    return " ".join(kept).strip(" ,") or phrase
