"""Named warnings a planner attaches to a plan: what it could not take into account.

Nothing a requirement asks for is dropped without a word. The offline planner cuts the first
:data:`~taskorch.planning.text.MAX_ANALYZED_CHARS` characters into at most
:data:`~taskorch.planning.text.MAX_ITEMS` items; beyond either limit it still plans, and the
warning says how much was left out and what to do. ``taskorch parse`` prints the warnings, the
workflow's ``planner`` metadata and the HTTP/MCP ``planner`` field carry them.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskorch.planning.draft import MAX_PROMPT_CHARS
from taskorch.planning.text import MAX_ANALYZED_CHARS, MAX_ITEMS, Item, shorten

ITEMS_BEYOND_LIMIT = "items-beyond-limit"
TEXT_BEYOND_LIMIT = "text-beyond-limit"


@dataclass(frozen=True, slots=True)
class PlanWarning:
    """``code`` names the warning (stable, for scripts); ``message`` says it in one line."""

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"


def limit_warnings(text: str, items: list[Item]) -> list[PlanWarning]:
    """The warnings of a requirement cut into ``items`` (all of them, see ``all_items``)."""
    warnings: list[PlanWarning] = []
    if len(items) > MAX_ITEMS:
        first = shorten(items[MAX_ITEMS].text, 60)
        warnings.append(
            PlanWarning(
                ITEMS_BEYOND_LIMIT,
                f"the requirement has {len(items)} items; the offline planner planned the "
                f"first {MAX_ITEMS} and left out {len(items) - MAX_ITEMS}, from {first!r} on: "
                "split the requirement into smaller tasks or plan it with a model (--provider)",
            )
        )
    if len(text) > MAX_ANALYZED_CHARS:
        warnings.append(
            PlanWarning(
                TEXT_BEYOND_LIMIT,
                f"the requirement is {len(text):,} characters; the offline planner read work "
                f"items from the first {MAX_ANALYZED_CHARS:,} only, the rest is background for "
                "the agents: split the requirement into smaller tasks or plan it with a model",
            )
        )
    return warnings


def prompt_warnings(text: str) -> list[PlanWarning]:
    """The warnings of a requirement sent to a model (which reads at most its first
    :data:`~taskorch.planning.draft.MAX_PROMPT_CHARS` characters)."""
    if len(text) <= MAX_PROMPT_CHARS:
        return []
    return [
        PlanWarning(
            TEXT_BEYOND_LIMIT,
            f"the requirement is {len(text):,} characters; the model was sent the first "
            f"{MAX_PROMPT_CHARS:,}: split the requirement into smaller tasks",
        )
    ]
