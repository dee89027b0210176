"""Fixtures of the planner tests: a fake LLM server and an environment without provider keys."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from fakes.llm_servers import FakeLLMServer

_PLANNER_ENV = (
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_BASE_URL",
    "OPENAI_API_KEY",
    "OPENAI_BASE_URL",
    "NLP_PROVIDER",
    "NLP_MODEL",
    "NLP_FALLBACK",
    "TASKORCH_CONFIG",
)


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory) -> None:
    """No key or provider from the developer's shell leaks into a test; no config file is read."""
    for name in _PLANNER_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TASKORCH_HOME", str(tmp_path_factory.mktemp("home") / ".taskorch"))
