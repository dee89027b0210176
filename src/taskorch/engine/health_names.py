"""The specification's names for health components beside taskorch's: ``nlp`` is the planner,
``agentCoordinator`` the agents. Looking either name up works; listing shows taskorch's names once
(the CLI, HTTP and MCP faces print each component once)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

V = TypeVar("V")

SPEC_COMPONENT_NAMES: Mapping[str, str] = {"nlp": "planner", "agentCoordinator": "agents"}


class AliasedComponents(dict[str, V]):
    """A dict of components that also answers to the specification's names."""

    def __missing__(self, key: str) -> V:
        own = SPEC_COMPONENT_NAMES.get(key)
        if own is None or not dict.__contains__(self, own):
            raise KeyError(key)
        return self[own]

    def __contains__(self, key: object) -> bool:
        own = SPEC_COMPONENT_NAMES.get(key) if isinstance(key, str) else None
        return dict.__contains__(self, key) or (own is not None and dict.__contains__(self, own))
