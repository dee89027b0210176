"""Reading a requirement: cleaning it, cutting it into actionable items, and finding the files,
languages and technologies it names.

Everything here is linear in the input and bounded: a requirement document can be megabytes long,
but only its first :data:`MAX_ANALYZED_CHARS` characters are cut into items (beyond that a document
is background, not a to-do list), and no regular expression here can backtrack over a long token.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from taskorch.domain.errors import InputError

MAX_ANALYZED_CHARS = 20_000
MAX_ITEMS = 60
MAX_TOKEN_CHARS = 200
"""Longer whitespace-free runs are never file names; skipping them keeps extraction linear."""

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_SPACES = re.compile(r"[ \t\r\f\v]+")


def word_set(words: str) -> frozenset[str]:
    """The words of a blank-separated list (keeps long vocabularies readable)."""
    return frozenset(words.split())


def clean(text: str) -> str:
    """Printable, valid UTF-8 text, runs of blanks collapsed; newlines are kept (they end items)."""
    text = text.encode("utf-8", "replace").decode("utf-8")
    text = _CONTROL.sub(" ", text)
    lines = (_SPACES.sub(" ", line).strip() for line in text.split("\n"))
    return "\n".join(lines).strip()


def require_text(description: str) -> str:
    """The cleaned requirement, or an :class:`InputError` if it has no word to plan."""
    text = clean(description)
    if not any(ch.isalnum() for ch in text):
        raise InputError("the requirement is empty: describe the work to plan")
    return text


@dataclass(frozen=True, slots=True)
class Item:
    """One actionable piece of a requirement.

    ``group`` orders items by explicit cues ("then", "after", "before"): an item in a later group
    comes after every item of an earlier group. ``umbrella`` marks the head of an enumeration
    ("X, including a, b and c"): it names the whole, its list items are the work.
    """

    text: str
    group: int
    umbrella: bool = False
    listed: bool = False
    """An item of the list under an umbrella (it may take the umbrella's kind of work)."""
    step: bool = False
    """A step of an explicit step list ("design -> build"): its own verb names its work."""


# --- splitting -------------------------------------------------------------------------------

_BULLET = re.compile(r"^(?:[-*•+]|\(?\d{1,3}[.)]|\(?[a-zA-Z][.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z0-9\"'(])|;\s*")
_SEQUENCE = re.compile(
    r",?\s*(?:\b(?:and\s+then|then|afterwards|after\s+that|finally|followed\s+by)\b[,:]?|"
    r"(?<=\s)(?:-+>|=+>)(?=\s)|[→⇒⟶➔➜➝➞])\s*",
    re.IGNORECASE,
)
_ARROW = re.compile(r"\s(?:-+>|=+>)\s|[→⇒⟶➔➜➝➞]")
"""A step arrow: unicode anywhere, ASCII ones between blanks ("x->y" is code, not a step)."""
_ORDER_WORDS = re.compile(
    r",?\s*\b(?:(?:the\s+following\s+)?steps?|stages?|phases?|"
    r"in\s+(?:this|that|the\s+following|the\s+given)?\s*(?:order|sequence)|sequentially|"
    r"one\s+after\s+(?:the\s+)?(?:other|another)|step\s+by\s+step)\b",
    re.IGNORECASE,
)
"""Words that make a list a sequence: "steps:", "in this order:", "sequentially:"."""
_HEADED = re.compile(r"^(?P<head>[^:]+?):\s*(?P<rest>.*)$")
_STEP_SEPARATOR = re.compile(r"\s*(?:,\s*(?:and\s+|then\s+)?|;\s*|\s+and\s+then\s+)")
_AFTER = re.compile(r"^(?P<first>.+?),?\s+\b(?:after|once)\b\s+(?P<second>.+)$", re.IGNORECASE)
_BEFORE = re.compile(r"^(?P<first>.+?),?\s+\bbefore\b\s+(?P<second>.+)$", re.IGNORECASE)
_LEADING_AFTER = re.compile(r"^(?:once|after)\s+(?P<first>[^,]+),\s*(?P<second>.+)$", re.IGNORECASE)
_LEADING_BEFORE = re.compile(r"^before\s+(?P<first>[^,]+),\s*(?P<second>.+)$", re.IGNORECASE)
_ENUMERATION = re.compile(
    r"^(?P<head>.+?)(?:,?\s+\b(?:including|such\s+as|consisting\s+of|covering|namely)\b|:(?=\s))\s*"
    r"(?P<list>.+)$",
    re.IGNORECASE,
)
_WITH = re.compile(
    r"^(?P<head>.+?)\s+\b(?:with|plus|along\s+with)\b\s+(?P<tail>.+)$", re.IGNORECASE
)
_LIST_SEPARATOR = re.compile(r"\s*(?:,\s*(?:and|or|&)\s+|,|\s+and\s+|\s+or\s+|\s+&\s+)\s*")
_VERB_CONJUNCTION = re.compile(r"\s*(?:,\s*and|,|\band|\balso)\s+(?=(?P<verb>[A-Za-z]+)\b)")
_TRAILING_FILLER = re.compile(
    r"\s*\b(?:functionality|features?|capabilit(?:y|ies)|support)\s*$", re.IGNORECASE
)

ACTION_VERBS = word_set(
    """add build create implement develop introduce write fix repair patch refactor update upgrade
    migrate remove delete rename replace improve optimize optimise design architect plan draft
    document describe test verify validate check audit scan review deploy release ship publish
    configure set setup install integrate list inventory enumerate catalog count generate support
    enable disable extend rewrite port convert harden secure investigate research analyze analyse
    monitor clean cleanup expose provide move split merge wire make benchmark profile measure
    automate containerize dockerize localize translate lint debug troubleshoot resolve handle
    prevent ensure run execute bump pin sync send fetch parse backup restore schedule adopt use
    allow show display hide reduce increase speed backfill seed drop populate copy cover"""
)
"""Verbs that start an instruction; used to tell "and <new instruction>" from "a and b"."""


def split_items(text: str) -> list[Item]:
    """Cut a cleaned requirement into items, in reading order, at most :data:`MAX_ITEMS`."""
    return all_items(text)[:MAX_ITEMS]


def all_items(text: str) -> list[Item]:
    """Every item of the analysed part of a cleaned requirement (planners keep the first
    :data:`MAX_ITEMS` and say so when there are more)."""
    items: list[Item] = []
    group = 0
    ordered = False  # inside a list introduced by "Steps:" or "In this order:"
    for line in text[:MAX_ANALYZED_CHARS].split("\n"):
        stripped = line.strip()
        bullet = bool(_BULLET.match(stripped))
        body = _BULLET.sub("", stripped)
        if not _has_word(body):
            ordered = False
            continue
        if body.endswith(":"):
            # A header line names the list under it; its order words make the list a sequence.
            ordered = bool(_ORDER_WORDS.search(body))
            if ordered and any(not i.umbrella for i in items[-1:]):
                group += 1
            head = _ORDER_WORDS.sub("", body.rstrip(":")).strip(" ,")
            if _has_word(head):
                items.append(Item(head, group, umbrella=True))
            continue
        if ordered and bullet and any(not i.umbrella for i in items[-1:]):
            group += 1
        ordered = ordered and bullet
        for sentence in _line_sentences(body):
            group = _sentence_items(sentence, items, group)
    return items


def _sentence_items(sentence: str, items: list[Item], group: int) -> int:
    """Append the items of one sentence to ``items``; the group the next sentence starts in."""
    steps = _steps(sentence)
    if steps is not None:
        head, parts = steps
        if any(not i.umbrella for i in items[-1:]):
            group += 1
        if head:
            items.append(Item(head, group, umbrella=True))
        for position, part in enumerate(parts):
            group += 1 if position else 0
            found = _clause_items(part)
            items.extend(Item(p, group, umbrella, True, True) for p, umbrella in found)
        return group
    # "Then ..." at the start of a sentence orders it after the sentence before.
    follows = bool(items) and bool(_SEQUENCE.match(sentence))
    for position, clause in enumerate(_ordered_clauses(sentence)):
        if position or follows:
            group += 1
            follows = False
        found = _clause_items(clause)
        listed = any(umbrella for _, umbrella in found)
        items.extend(Item(part, group, umbrella, listed) for part, umbrella in found)
    return group


def _steps(sentence: str) -> tuple[str, list[str]] | None:
    """An explicit step list as (head, steps in order): "Build X: design → implement → test",
    "In this order: write the schema, generate the client, update the docs"; else None."""
    headed = _HEADED.match(sentence)
    head, rest = (headed["head"].strip(), headed["rest"]) if headed else ("", sentence)
    if _ARROW.search(rest):
        parts = _ARROW.split(rest)
    elif headed and _ORDER_WORDS.search(head):
        parts = _STEP_SEPARATOR.split(rest)
    else:
        return None
    steps = [p.strip(" ,.") for p in parts if _has_word(p)]
    if len(steps) < 2:
        return None
    return _ORDER_WORDS.sub("", head).strip(" ,"), steps


def _line_sentences(line: str) -> list[str]:
    sentences = (s.strip(" .!?") for s in _SENTENCE_END.split(line))
    return [s for s in sentences if _has_word(s)]


def _ordered_clauses(sentence: str) -> list[str]:
    """The clauses of a sentence in the order they must be done."""
    clauses: list[str] = []
    for part in _SEQUENCE.split(sentence):
        clauses.extend(_order_pair(part.strip(" ,")))
    return [c for c in clauses if _has_word(c)]


def _order_pair(clause: str) -> list[str]:
    """Apply "after"/"before" cues: "deploy after tests pass" is [tests pass, deploy].

    Only when the main part is an instruction and the other part names a step (an instruction, a
    gerund, or supporting work such as tests): "a button that appears after login" stays whole.
    """
    for pattern, reverse, leading in (
        (_LEADING_AFTER, False, True),
        (_LEADING_BEFORE, True, True),
        (_AFTER, True, False),
        (_BEFORE, False, False),
    ):
        match = pattern.match(clause)
        if not match:
            continue
        first, second = match["first"].strip(), match["second"].strip()
        main, other = (second, first) if leading else (first, second)
        if _starts_with_verb(main) and _is_step(other):
            return [second, first] if reverse else [first, second]
    return [clause]


def _is_step(text: str) -> bool:
    word = leading_word(text)
    return word in ACTION_VERBS or word.endswith("ing") or bool(_AUXILIARY_WORDS.search(text))


def _clause_items(clause: str) -> list[tuple[str, bool]]:
    """A clause's items as (text, umbrella) pairs; after an umbrella come its list's items."""
    enumeration = _ENUMERATION.match(clause)
    if enumeration and _has_word(enumeration["head"]):
        parts = [_tidy(p) for p in _LIST_SEPARATOR.split(enumeration["list"])]
        listed = [p for p in parts if _has_word(p)]
        if len(listed) >= 2:
            return [(enumeration["head"].strip(), True), *((p, False) for p in listed)]
    items: list[tuple[str, bool]] = []
    for instruction in _split_on_verbs(clause):
        items.extend((part, False) for part in _split_with_tail(instruction))
    return items


def _split_on_verbs(clause: str) -> list[str]:
    """ "add login and write tests" is two instructions; "add login and logout" is one."""
    parts: list[str] = []
    start = 0
    for match in _VERB_CONJUNCTION.finditer(clause):
        if match["verb"].lower() in ACTION_VERBS and match.start() > start:
            parts.append(clause[start : match.start()])
            start = match.end()
    parts.append(clause[start:])
    return [p.strip(" ,") for p in parts if _has_word(p)]


_AUXILIARY_WORDS = re.compile(
    r"\b(?:tests?|testing|audit|review|scan|documentation|docs|readme|guide|deploy(?:ment)?|"
    r"release|pipeline|ci|changelog)\b",
    re.IGNORECASE,
)


_SUPPORTING_VERBS = word_set(
    "test verify validate audit scan review document describe deploy release ship publish cover"
)
"""Verbs of supporting work: "deploy with the CI pipeline" is one step, not two."""


def _split_with_tail(instruction: str) -> list[str]:
    """ "X with a security audit and docs" is three items; "X with authentication" is one.

    A "with" tail is split off only when every part of it names supporting work (tests, audits,
    docs, deployment): anything else qualifies the head rather than adding work after it.
    """
    match = _WITH.match(instruction)
    if not match or leading_word(instruction) in _SUPPORTING_VERBS:
        return [instruction]
    tail = [_tidy(p) for p in _LIST_SEPARATOR.split(match["tail"])]
    tail = [p for p in tail if _has_word(p)]
    if tail and all(_AUXILIARY_WORDS.search(p) for p in tail):
        return [match["head"].strip(), *tail]
    return [instruction]


def _tidy(part: str) -> str:
    part = part.strip(" ,.;:")
    part = re.sub(r"^(?:and|or|also)\s+", "", part, flags=re.IGNORECASE)
    return _TRAILING_FILLER.sub("", part).strip(" ,")


def _has_word(text: str) -> bool:
    return any(ch.isalnum() for ch in text)


def _starts_with_verb(text: str) -> bool:
    first = leading_word(text)
    return first in ACTION_VERBS


def leading_word(text: str) -> str:
    match = re.match(r"\W*([A-Za-z]+)", text)
    return match[1].lower() if match else ""


# --- extraction ------------------------------------------------------------------------------

FILE_EXTENSIONS = word_set(
    """py pyi js jsx mjs cjs ts tsx json yaml yml toml ini cfg conf md rst txt go rs java kt kts
    rb php c h cc cpp cxx hpp cs swift m mm scala sql sh bash zsh ps1 html htm css scss sass less
    vue svelte xml gradle tf tfvars proto graphql gql lock env dockerfile ipynb r lua ex exs erl
    dart zig sol"""
)
_BARE_FILE_NAMES = frozenset({"Dockerfile", "Makefile", "Procfile", "Jenkinsfile", "Gemfile"})
_TOKEN_SPLIT = re.compile(r"[\s,;()\[\]{}<>\"'`|]+")
_FILE_TOKEN = re.compile(
    r"(?:\.{0,2}/)?(?:[\w@.+-]+/)*[\w@+-][\w@.+-]*\.(?P<ext>[A-Za-z0-9]{1,10})"
)
_LINE_SUFFIX = re.compile(r":\d+(?::\d+)?$")


def extract_files(text: str, limit: int = 200) -> list[str]:
    """File paths named in ``text``, in order of first mention, without duplicates.

    Only names with a known source extension (or a well-known bare name such as ``Dockerfile``)
    count, so "e.g." or "v1.2" are not taken for files; URLs are skipped.
    """
    found: dict[str, None] = {}
    for token in _TOKEN_SPLIT.split(text[: MAX_ANALYZED_CHARS * 5]):
        path = _as_file(token)
        if path and path not in found:
            found[path] = None
            if len(found) >= limit:
                break
    return list(found)


def _as_file(token: str) -> str | None:
    if not token or len(token) > MAX_TOKEN_CHARS or "://" in token:
        return None
    token = _LINE_SUFFIX.sub("", token.rstrip(".:!?"))
    if token.rsplit("/", 1)[-1] in _BARE_FILE_NAMES:
        return token
    match = _FILE_TOKEN.fullmatch(token)
    if match and match["ext"].lower() in FILE_EXTENSIONS:
        return token.removeprefix("./")
    return None


_EXTENSION_LANGUAGES = {
    "py": "python", "pyi": "python", "ipynb": "python", "js": "javascript", "jsx": "javascript",
    "mjs": "javascript", "cjs": "javascript", "ts": "typescript", "tsx": "typescript",
    "go": "go", "rs": "rust", "java": "java", "kt": "kotlin", "kts": "kotlin", "rb": "ruby",
    "php": "php", "c": "c", "h": "c", "cc": "c++", "cpp": "c++", "cxx": "c++", "hpp": "c++",
    "cs": "c#", "swift": "swift", "scala": "scala", "sql": "sql", "sh": "shell", "bash": "shell",
    "zsh": "shell", "ps1": "powershell", "dart": "dart", "lua": "lua", "ex": "elixir",
    "exs": "elixir", "erl": "erlang", "r": "r", "zig": "zig", "sol": "solidity",
}  # fmt: skip
_LANGUAGE_WORDS = {
    "python": "python", "javascript": "javascript", "typescript": "typescript",
    "golang": "go", "rust": "rust", "java": "java", "kotlin": "kotlin", "ruby": "ruby",
    "php": "php", "c#": "c#", "csharp": "c#", "c++": "c++", "cpp": "c++", "swift": "swift",
    "scala": "scala", "sql": "sql", "bash": "shell", "shell": "shell", "dart": "dart",
    "elixir": "elixir", "haskell": "haskell", "lua": "lua", "solidity": "solidity",
}  # fmt: skip
TECHNOLOGIES = {
    "react": "react", "vue": "vue", "angular": "angular", "svelte": "svelte",
    "next.js": "next.js", "nextjs": "next.js", "node.js": "node.js", "nodejs": "node.js",
    "express": "express", "django": "django", "flask": "flask", "fastapi": "fastapi",
    "spring": "spring", "rails": "rails", "laravel": "laravel", "postgres": "postgresql",
    "postgresql": "postgresql", "mysql": "mysql", "sqlite": "sqlite", "mongodb": "mongodb",
    "redis": "redis", "kafka": "kafka", "rabbitmq": "rabbitmq", "docker": "docker",
    "kubernetes": "kubernetes", "k8s": "kubernetes", "helm": "helm", "terraform": "terraform",
    "aws": "aws", "gcp": "gcp", "azure": "azure", "graphql": "graphql", "rest": "rest",
    "grpc": "grpc", "jwt": "jwt", "oauth": "oauth", "oauth2": "oauth", "saml": "saml",
    "websocket": "websocket", "websockets": "websocket", "celery": "celery",
    "elasticsearch": "elasticsearch", "nginx": "nginx", "jenkins": "jenkins",
    "github actions": "github actions", "gitlab ci": "gitlab ci", "tailwind": "tailwind",
    "prometheus": "prometheus", "grafana": "grafana", "pytest": "pytest", "jest": "jest",
}  # fmt: skip
_WORD = re.compile(r"[a-z0-9][a-z0-9.#+]*[a-z0-9#+]|[a-z0-9]")


def extract_languages(text: str, files: list[str]) -> list[str]:
    found: dict[str, None] = {}
    for path in files:
        ext = path.rsplit(".", 1)[-1].lower() if "." in path else ""
        if ext in _EXTENSION_LANGUAGES:
            found[_EXTENSION_LANGUAGES[ext]] = None
    for word in _words(text):
        if word in _LANGUAGE_WORDS:
            found[_LANGUAGE_WORDS[word]] = None
    return list(found)


def extract_technologies(text: str) -> list[str]:
    words = _words(text)
    found: dict[str, None] = {}
    for previous, word in zip(["", *words], words, strict=False):
        pair = f"{previous} {word}"
        if pair in TECHNOLOGIES:
            found[TECHNOLOGIES[pair]] = None
        elif word in TECHNOLOGIES:
            found[TECHNOLOGIES[word]] = None
    return list(found)


def _words(text: str) -> list[str]:
    return _WORD.findall(text[:MAX_ANALYZED_CHARS].lower())


def words(text: str) -> list[str]:
    """Lower-case words of the analysed part of ``text``."""
    return _words(text)


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, marked with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1].rsplit(" ", 1)[0] if " " in text[: limit - 1] else text[: limit - 1]
    return cut.rstrip(" ,.;:") + "…"
