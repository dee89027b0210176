"""The planner: natural-language requirements to plans (DAGs of small subtasks).

The public face is :class:`TaskNLP` (and the one-shot :func:`plan`); :class:`HeuristicPlanner` is
the offline planner and :func:`enforce` the rules every plan keeps, whoever produced it. The
SDK-backed providers are in :mod:`taskorch.planning.providers.anthropic` and ``.openai``.
"""

from __future__ import annotations

from taskorch.planning.cache import PlanCache, cache_key
from taskorch.planning.classify import RiskLevel, TaskMetadata, extract_task_metadata
from taskorch.planning.completion import CompletionCheck, RequirementItem, Requirements
from taskorch.planning.heuristic import HeuristicPlanner
from taskorch.planning.notices import PlanWarning
from taskorch.planning.planner import HEURISTIC, PlanResult, TaskNLP, plan
from taskorch.planning.providers import (
    Provider,
    RetryPolicy,
    build_provider,
    chosen_provider,
)
from taskorch.planning.rules import enforce

__all__ = [
    "HEURISTIC",
    "CompletionCheck",
    "HeuristicPlanner",
    "PlanCache",
    "PlanResult",
    "PlanWarning",
    "Provider",
    "RequirementItem",
    "Requirements",
    "RetryPolicy",
    "RiskLevel",
    "TaskMetadata",
    "TaskNLP",
    "build_provider",
    "cache_key",
    "chosen_provider",
    "enforce",
    "extract_task_metadata",
    "plan",
]
