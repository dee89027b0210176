"""LLM providers behind one interface (:class:`Provider`), and choosing one from the settings.

``NLP_PROVIDER=auto`` (the default) picks Anthropic when ``ANTHROPIC_API_KEY`` is set, else OpenAI
when ``OPENAI_API_KEY`` is set, else the offline heuristic planner (:func:`build_provider` returns
None). Naming a provider whose key is missing is a configuration error, not a silent fallback.

The SDK-backed classes live in :mod:`.anthropic` and :mod:`.openai` and are imported only when a
provider is built: the two SDKs take over a second to import, which every ``taskorch`` command
would otherwise pay, model or not.
"""

from __future__ import annotations

from taskorch.domain.errors import ConfigError
from taskorch.planning.providers.base import (
    CompletionRequest,
    Failure,
    Message,
    Provider,
    RetryPolicy,
    Sleep,
    call_with_retries,
    parse_retry_after,
)
from taskorch.settings import Settings

__all__ = [
    "CompletionRequest",
    "Failure",
    "Message",
    "Provider",
    "RetryPolicy",
    "build_provider",
    "call_with_retries",
    "chosen_provider",
    "parse_retry_after",
]


def chosen_provider(settings: Settings) -> str:
    """The provider ``settings`` select: ``auto`` resolved against the keys that are set;
    ``ENABLE_NLP=false`` is the offline heuristic planner whatever else is set (no model call)."""
    if not settings.enable_nlp:
        return "heuristic"
    if settings.nlp_provider != "auto":
        return settings.nlp_provider
    if settings.anthropic_api_key is not None:
        return "anthropic"
    if settings.openai_api_key is not None:
        return "openai"
    return "heuristic"


def build_provider(
    settings: Settings,
    *,
    base_url: str | None = None,
    retry: RetryPolicy | None = None,
    sleep: Sleep | None = None,
) -> Provider | None:
    """The provider the settings choose, or None for the heuristic planner.

    ``base_url`` overrides the endpoint (for Anthropic too: a proxy or a test server).
    """
    name = chosen_provider(settings)
    model = settings.nlp_model or None
    if name == "heuristic":
        return None
    if name == "anthropic":
        if settings.anthropic_api_key is None:
            raise ConfigError("NLP_PROVIDER=anthropic needs ANTHROPIC_API_KEY")
        from taskorch.planning.providers.anthropic import AnthropicProvider

        return AnthropicProvider(
            api_key=settings.anthropic_api_key.get_secret_value(),
            model=model,
            base_url=base_url,
            retry=retry,
            sleep=sleep,
        )
    url = base_url or settings.openai_base_url
    key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else None
    if name == "openai" and key is None:
        raise ConfigError("NLP_PROVIDER=openai needs OPENAI_API_KEY")
    if name == "openai-compatible" and not url:
        raise ConfigError(
            "NLP_PROVIDER=openai-compatible needs OPENAI_BASE_URL (or --base-url), "
            "e.g. http://localhost:11434/v1 for Ollama"
        )
    if name == "openai-compatible" and not model:
        raise ConfigError("NLP_PROVIDER=openai-compatible needs NLP_MODEL (or --model)")
    from taskorch.planning.providers.openai import OpenAIProvider

    return OpenAIProvider(
        api_key=key,
        model=model,
        base_url=url,
        compatible=name == "openai-compatible",
        retry=retry,
        sleep=sleep,
    )
