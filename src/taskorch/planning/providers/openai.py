"""OpenAI's Chat Completions API through the official ``openai`` SDK, with the plan's JSON schema
as ``response_format``. The same class serves any OpenAI-compatible server by base URL (Ollama,
vLLM, LM Studio, ...): those often need no key, so a placeholder is sent when none is set.
"""

from __future__ import annotations

import asyncio

import openai
from openai.types.chat import ChatCompletionMessageParam
from openai.types.shared_params import ResponseFormatJSONSchema

from taskorch.planning.providers.base import (
    CompletionRequest,
    Failure,
    RetryPolicy,
    SdkErrors,
    Sleep,
    call_with_retries,
    classify_sdk_error,
)

DEFAULT_MODEL = "gpt-4.1-mini"
NO_KEY = "not-needed"
"""Sent to OpenAI-compatible servers that take no key: the SDK refuses to start without one."""


class OpenAIProvider:
    def __init__(
        self,
        *,
        api_key: str | None,
        model: str | None = None,
        base_url: str | None = None,
        compatible: bool = False,
        timeout_s: float = 120.0,
        retry: RetryPolicy | None = None,
        sleep: Sleep | None = None,
        structured_output: bool = True,
    ) -> None:
        self._model = model or DEFAULT_MODEL
        self._name = "openai-compatible" if compatible else "openai"
        self._retry = retry or RetryPolicy()
        self._sleep = sleep or asyncio.sleep
        self._structured = structured_output
        # Retries are ours (see providers.base), so the SDK must not retry on its own.
        self._client = openai.AsyncOpenAI(
            api_key=api_key or NO_KEY, base_url=base_url, timeout=timeout_s, max_retries=0
        )

    @property
    def name(self) -> str:
        return self._name

    @property
    def model(self) -> str:
        return self._model

    async def complete(self, request: CompletionRequest) -> str:
        return await call_with_retries(
            lambda: self._once(request),
            what=f"{self._name} ({self._model})",
            classify=classify_error,
            policy=self._retry,
            sleep=self._sleep,
        )

    async def _once(self, request: CompletionRequest) -> str:
        messages: list[ChatCompletionMessageParam] = [{"role": "system", "content": request.system}]
        for message in request.messages:
            if message.role == "user":
                messages.append({"role": "user", "content": message.content})
            else:
                messages.append({"role": "assistant", "content": message.content})
        if self._structured and request.schema:
            response_format: ResponseFormatJSONSchema = {
                "type": "json_schema",
                "json_schema": {
                    "name": request.schema_name,
                    "schema": dict(request.schema),
                    "strict": True,
                },
            }
            completion = await self._client.chat.completions.create(
                model=self._model, messages=messages, response_format=response_format
            )
        else:
            completion = await self._client.chat.completions.create(
                model=self._model, messages=messages
            )
        if not completion.choices:
            return ""
        return completion.choices[0].message.content or ""

    async def aclose(self) -> None:
        await self._client.close()


_ERRORS = SdkErrors(openai.APIStatusError, openai.APIConnectionError, openai.OpenAIError)


def classify_error(exc: Exception) -> Failure | None:
    """429, 408, 5xx and network errors are retried; other API errors are final."""
    return classify_sdk_error(exc, _ERRORS)
