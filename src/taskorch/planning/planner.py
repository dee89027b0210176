"""``TaskNLP``: the planner's face. Requirements in, plans out, and which planner made each plan.

The engine calls :meth:`TaskNLP.plan` (or the module-level :func:`plan`). With a provider, the plan
comes from the model; when the provider fails or answers garbage twice, ``fallback`` decides between
a :class:`PlannerError` and the heuristic plan, and :class:`PlanResult` says which happened. Without
a provider the heuristic planner answers, offline, and says so.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self

from taskorch.domain.briefing import Briefing, with_briefing
from taskorch.domain.errors import PlannerError
from taskorch.domain.plan import Plan, PlanSubtask
from taskorch.planning.cache import CACHE_SUBDIR, PlanCache
from taskorch.planning.classify import TaskMetadata, metadata_from_items
from taskorch.planning.completion import (
    CompletionCheck,
    RequirementItem,
    Requirements,
    check_completion,
    infer_dependencies,
    instructions_for,
    requirement_items,
)
from taskorch.planning.heuristic import HeuristicPlanner
from taskorch.planning.llm import LLMPlanner
from taskorch.planning.notices import PlanWarning, limit_warnings, prompt_warnings
from taskorch.planning.providers import Provider, build_provider, chosen_provider
from taskorch.planning.text import (
    MAX_ANALYZED_CHARS,
    MAX_ITEMS,
    Item,
    all_items,
    clean,
    require_text,
    split_items,
)
from taskorch.planning.wording import task_reference
from taskorch.settings import Settings, load_settings

log = logging.getLogger("taskorch.planning")

HEURISTIC = "heuristic"


@dataclass(frozen=True, slots=True)
class PlanResult:
    """A plan and how it was made: ``plan`` is the plan format, the rest is not part of it."""

    plan: Plan
    planner: str
    """``heuristic``, ``anthropic``, ``openai`` or ``openai-compatible``: who produced ``plan``."""
    model: str | None = None
    fallback_reason: str | None = None
    """Set when a provider was configured but failed and the heuristic plan was used instead."""
    cached: bool = False
    repaired: bool = False
    """The model's first answer was invalid and its one repair attempt succeeded."""
    warnings: tuple[PlanWarning, ...] = ()
    """What the planner left out (items beyond its limit); shown by :meth:`describe`."""

    @property
    def used_fallback(self) -> bool:
        return self.fallback_reason is not None

    def describe(self) -> str:
        """One line for people: "anthropic (claude-...), cached" or "heuristic (fallback: ...)",
        then any warning by name: "; warning items-beyond-limit: ..."."""
        return self._made_by() + "".join(f"; warning {w}" for w in self.warnings)

    def _made_by(self) -> str:
        if self.fallback_reason is not None:
            return f"heuristic (fallback: {self.fallback_reason})"
        if self.planner == HEURISTIC:
            return "heuristic (offline, deterministic)"
        notes = [n for n, on in (("cached", self.cached), ("repaired", self.repaired)) if on]
        return f"{self.planner} ({self.model})" + "".join(f", {n}" for n in notes)


class TaskNLP:
    """Natural-language requirements to plans.

    ``provider`` None means the offline heuristic planner. ``fallback`` (``NLP_FALLBACK``) turns a
    provider failure into the heuristic plan instead of an error. Use ``async with`` or
    :meth:`aclose` to close the provider's HTTP client.
    """

    def __init__(
        self,
        provider: Provider | None = None,
        *,
        fallback: bool = True,
        cache: PlanCache | None = None,
    ) -> None:
        self.provider = provider
        self.fallback = fallback
        self.heuristic = HeuristicPlanner()
        self._llm = LLMPlanner(provider, cache) if provider is not None else None

    @classmethod
    def from_settings(
        cls, settings: Settings | None = None, *, base_url: str | None = None
    ) -> TaskNLP:
        """The planner the settings describe; answers are cached on disk once the taskorch home
        exists (``taskorch init``), and in memory always, unless ``NLP_ENABLE_CACHING=false``."""
        settings = settings or load_settings()
        directory = settings.home / CACHE_SUBDIR if settings.home.is_dir() else None
        cache = PlanCache(directory) if settings.nlp_enable_caching else PlanCache.off()
        log.debug(
            "planner %s (ENABLE_NLP=%s, NLP_PROVIDER=%s), cache %s",
            chosen_provider(settings),
            str(settings.enable_nlp).lower(),
            settings.nlp_provider,
            (directory or "in memory") if settings.nlp_enable_caching else "off",
        )
        return cls(
            build_provider(settings, base_url=base_url),
            fallback=settings.nlp_fallback,
            cache=cache,
        )

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self.provider is not None:
            await self.provider.aclose()

    async def plan(
        self, description: str, context: str | None = None, task_ref: str | int | None = None
    ) -> PlanResult:
        """The plan of a requirement. ``task_ref`` names the parent task (``task-42`` or 42);
        without it the id is derived from the text, so the same text gives the same ids."""
        text = require_text(description)
        parent = task_reference(task_ref, text)
        if self._llm is None:
            plan, warnings = await self._heuristic_plan(text, context, parent)
            return PlanResult(plan, HEURISTIC, warnings=tuple(warnings))
        try:
            outcome = await self._llm.plan(text, context, parent)
        except PlannerError as exc:
            if not self.fallback:
                raise
            log.warning("planner %s failed, using the heuristic plan: %s", self._llm.label, exc)
            plan, warnings = await self._heuristic_plan(text, context, parent)
            return PlanResult(
                plan, HEURISTIC, fallback_reason=exc.message, warnings=tuple(warnings)
            )
        return PlanResult(
            outcome.plan,
            self._llm.provider.name,
            model=self._llm.provider.model,
            cached=outcome.cached,
            repaired=outcome.repaired,
            warnings=tuple(prompt_warnings(text)),
        )

    async def _heuristic_plan(
        self, text: str, context: str | None, parent: str
    ) -> tuple[Plan, list[PlanWarning]]:
        # A requirement document can be large: keep the event loop free while it is read.
        return await asyncio.to_thread(self.heuristic.plan_with_warnings, text, context, parent)

    async def parse_requirements(
        self, description: str, context: str | None = None
    ) -> Requirements:
        """The actionable items of a requirement, classified, with the requirement's metadata."""
        text = require_text(description)
        every = all_items(text)
        items = every[:MAX_ITEMS] or [Item(text[:MAX_ANALYZED_CHARS], 0)]
        return Requirements(
            text=text,
            items=requirement_items(items),
            metadata=metadata_from_items(text, items, context),
            warnings=[str(w) for w in limit_warnings(text, every)],
        )

    async def extract_task_metadata(self, description: str) -> TaskMetadata:
        """Type, domains, technologies, languages, files, risk and simple-or-complex of a text."""
        text = require_text(description)
        return metadata_from_items(text, split_items(text) or [Item(text[:MAX_ANALYZED_CHARS], 0)])

    async def decompose_task(
        self, items: Sequence[str | RequirementItem], original_task: str
    ) -> list[PlanSubtask]:
        """Subtasks (with dependencies) for ``items`` of ``original_task``; no items: its own."""
        text = require_text(original_task)
        given = [
            Item(i, 0) if isinstance(i, str) else Item(i.text, i.group, i.umbrella) for i in items
        ]
        given = [i for i in given if clean(i.text)]
        plan = self.heuristic.plan_items(text, given or split_items(text))
        return plan.subtasks

    async def identify_dependencies(self, tasks: Sequence[PlanSubtask]) -> dict[str, list[str]]:
        """Each subtask's dependencies: its declared ones, else the natural phase order's (tests
        after implementation, ...); validated as a DAG (a cycle raises :class:`PlanError`)."""
        return infer_dependencies(tasks)

    async def generate_instructions(
        self, subtask: PlanSubtask, context: str | None = None, briefing: Briefing | None = None
    ) -> str:
        """The instructions an agent gets for ``subtask``; with ``briefing`` (its dependencies
        done and what they did, the subtasks waiting on it, the parallel ones, the requirement),
        the text the worker sends a registered agent (see :mod:`taskorch.agents.briefed`)."""
        text = instructions_for(subtask, context)
        return with_briefing(text, briefing) if briefing is not None else text

    async def validate_completion(
        self, subtask: PlanSubtask, result: str | Mapping[str, Any]
    ) -> CompletionCheck:
        """Does an agent's reported result complete ``subtask``? Says why not."""
        return check_completion(subtask, result)


async def plan(
    description: str,
    context: str | None = None,
    task_ref: str | int | None = None,
    *,
    settings: Settings | None = None,
) -> PlanResult:
    """Plan one requirement with the planner the settings describe (a one-shot :class:`TaskNLP`)."""
    async with TaskNLP.from_settings(settings) as nlp:
        return await nlp.plan(description, context, task_ref)
