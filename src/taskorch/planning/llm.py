"""Planning with a model: ask, validate, repair once, cache.

The model's answer must parse as a :class:`~taskorch.planning.draft.PlanDraft` and keep the plan
rules. If it does not, the error goes back to the model in the same conversation, once; a second
bad answer is a :class:`PlannerError` (which :class:`~taskorch.planning.planner.TaskNLP` may turn
into the heuristic fallback). Validated answers are cached, so the same question costs one call.
"""

from __future__ import annotations

from dataclasses import dataclass

from taskorch.domain.errors import PlanError, PlannerError
from taskorch.domain.plan import Plan
from taskorch.planning.cache import PlanCache, cache_key
from taskorch.planning.draft import (
    PLAN_DRAFT_SCHEMA,
    SYSTEM_PROMPT,
    answer_to_plan,
    repair_prompt,
    user_prompt,
)
from taskorch.planning.providers.base import CompletionRequest, Message, Provider

MAX_ECHOED_ANSWER_CHARS = 20_000
"""A bad answer is sent back for repair cut to this length (it only needs to be recognisable)."""


@dataclass(frozen=True, slots=True)
class LLMOutcome:
    plan: Plan
    cached: bool = False
    repaired: bool = False


class LLMPlanner:
    def __init__(self, provider: Provider, cache: PlanCache | None = None) -> None:
        self.provider = provider
        self.cache = cache if cache is not None else PlanCache()

    @property
    def label(self) -> str:
        return f"{self.provider.name} ({self.provider.model})"

    async def plan(self, description: str, context: str | None, parent_task_id: str) -> LLMOutcome:
        prompt = user_prompt(description, context)
        key = cache_key(
            self.provider.name, self.provider.model, f"{SYSTEM_PROMPT}\n\n{prompt}", context
        )
        cached = self._from_cache(key, parent_task_id)
        if cached is not None:
            return LLMOutcome(cached, cached=True)
        conversation = [Message("user", prompt)]
        answer = await self._ask(conversation)
        try:
            plan, draft = answer_to_plan(answer, parent_task_id)
            repaired = False
        except (PlannerError, PlanError) as first:
            conversation += [
                Message("assistant", answer[:MAX_ECHOED_ANSWER_CHARS] or "(empty answer)"),
                Message("user", repair_prompt(first.message)),
            ]
            answer = await self._ask(conversation)
            try:
                plan, draft = answer_to_plan(answer, parent_task_id)
            except (PlannerError, PlanError) as second:
                raise PlannerError(
                    f"{self.label} answered an invalid plan twice (one repair attempt): "
                    f"{second.message}"
                ) from None
            repaired = True
        self.cache.put(key, draft)
        return LLMOutcome(plan, repaired=repaired)

    async def _ask(self, conversation: list[Message]) -> str:
        request = CompletionRequest(
            system=SYSTEM_PROMPT, messages=tuple(conversation), schema=PLAN_DRAFT_SCHEMA
        )
        return await self.provider.complete(request)

    def _from_cache(self, key: str, parent_task_id: str) -> Plan | None:
        hit = self.cache.get(key)
        if hit is None:
            return None
        try:
            plan, _ = answer_to_plan(hit, parent_task_id)
        except (PlannerError, PlanError):
            return None  # written by an older taskorch with other rules: ask again
        return plan
