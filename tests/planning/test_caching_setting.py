"""``NLP_ENABLE_CACHING`` (the specification's ``nlp.enableCaching``): on, the same requirement
costs one model call; off, every plan asks the model again and nothing is kept on disk."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from fakes.llm_servers import FakeLLMServer, Reply, login_plan
from taskorch.planning import TaskNLP
from taskorch.planning.cache import CACHE_SUBDIR
from taskorch.settings import load_settings

REQUIREMENT = "Build the user API with login and registration"


@pytest.fixture
def llm_server() -> Iterator[FakeLLMServer]:
    with FakeLLMServer() as server:
        yield server


@pytest.mark.parametrize(("caching", "calls"), [("true", 1), ("false", 2)])
async def test_a_second_identical_parse_asks_the_model_only_without_caching(
    caching: str,
    calls: int,
    llm_server: FakeLLMServer,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NLP_ENABLE_CACHING", caching)
    settings = load_settings(
        taskorch_home=tmp_path,
        nlp_provider="openai-compatible",
        openai_base_url=llm_server.openai_base_url,
        nlp_model="llama-test",
        nlp_fallback=False,
    )
    llm_server.reply(Reply.plan(login_plan()), Reply.plan(login_plan()))
    for _ in range(2):  # a new planner each time, as each command and workflow makes one
        async with TaskNLP.from_settings(settings) as nlp:
            result = await nlp.plan(REQUIREMENT)
        assert result.planner == "openai-compatible"
    assert len(llm_server.requests) == calls
    assert result.cached is (caching == "true")
    kept = list((tmp_path / CACHE_SUBDIR).glob("*.json"))
    assert len(kept) == (1 if caching == "true" else 0)
