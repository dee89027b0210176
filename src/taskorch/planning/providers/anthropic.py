"""Anthropic's Messages API through the official ``anthropic`` SDK.

The answer is constrained by structured output (``output_config.format`` with the plan's JSON
schema); the planner still validates it, since a proxy or an older model may ignore the schema.
"""

from __future__ import annotations

import asyncio

import anthropic
from anthropic.types import MessageParam, TextBlock

from taskorch.planning.providers.base import (
    CompletionRequest,
    Failure,
    RetryPolicy,
    SdkErrors,
    Sleep,
    call_with_retries,
    classify_sdk_error,
)

DEFAULT_MODEL = "claude-sonnet-4-5"
MAX_OUTPUT_TOKENS = 8_192


class AnthropicProvider:
    def __init__(
        self,
        *,
        api_key: str,
        model: str | None = None,
        base_url: str | None = None,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        structured_output: bool = True,
    ) -> None:
        self._model = model or DEFAULT_MODEL
        self._retry = retry or RetryPolicy()
        self._sleep = sleep or asyncio.sleep
        self._structured = structured_output
        # Retries are ours (see providers.base), so the SDK must not retry on its own.
        self._client = anthropic.AsyncAnthropic(
            api_key=api_key, base_url=base_url, timeout=timeout_s, max_retries=0
        )

    @property
    def name(self) -> str:
        return "anthropic"

    @property
    def model(self) -> str:
        return self._model

    async def complete(self, request: CompletionRequest) -> str:
        return await call_with_retries(
            lambda: self._once(request),
            what=f"anthropic ({self._model})",
            classify=classify_error,
            policy=self._retry,
            sleep=self._sleep,
        )

    async def _once(self, request: CompletionRequest) -> str:
        messages: list[MessageParam] = []
        for turn in request.messages:
            if turn.role == "user":
                messages.append({"role": "user", "content": turn.content})
            else:
                messages.append({"role": "assistant", "content": turn.content})
        if self._structured and request.schema:
            answer = await self._client.messages.create(
                model=self._model,
                max_tokens=MAX_OUTPUT_TOKENS,
                system=request.system,
                messages=messages,
                output_config={"format": {"type": "json_schema", "schema": dict(request.schema)}},
            )
        else:
            answer = await self._client.messages.create(
                model=self._model,
                max_tokens=MAX_OUTPUT_TOKENS,
                system=request.system,
                messages=messages,
            )
        return "".join(block.text for block in answer.content if isinstance(block, TextBlock))

    async def aclose(self) -> None:
        await self._client.close()


_ERRORS = SdkErrors(
    anthropic.APIStatusError, anthropic.APIConnectionError, anthropic.AnthropicError
)


def classify_error(exc: Exception) -> Failure | None:
    """429, 408 and 5xx (Anthropic's 529 "overloaded" included) and network errors are retried."""
    return classify_sdk_error(exc, _ERRORS)
