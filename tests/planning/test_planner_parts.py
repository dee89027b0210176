"""The planner's parts on their own: item splitting, extraction, retry policy, cache keys."""

from __future__ import annotations

import email.utils
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskorch.domain.errors import ConfigError
from taskorch.domain.plan import WorkerType
from taskorch.planning import (
    PlanCache,
    RetryPolicy,
    build_provider,
    cache_key,
)
from taskorch.planning.providers import parse_retry_after
from taskorch.planning.providers.anthropic import AnthropicProvider
from taskorch.planning.providers.openai import OpenAIProvider
from taskorch.planning.text import clean, extract_files, extract_technologies, split_items
from taskorch.planning.wording import success_criteria_for
from taskorch.settings import Settings


@pytest.fixture(autouse=True)
def offline_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Settings read the environment: no key or provider from the developer's shell leaks in."""
    for name in ("ANTHROPIC_API_KEY", "OPENAI_API_KEY", "OPENAI_BASE_URL", "NLP_PROVIDER"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("NLP_MODEL", raising=False)
    monkeypatch.setenv("TASKORCH_CONFIG", "/nonexistent/taskorch-config.toml")


def texts(requirement: str) -> list[tuple[str, int]]:
    return [(item.text, item.group) for item in split_items(clean(requirement))]


def test_items_split_on_lists_conjunctions_and_sequence_cues() -> None:
    assert texts("Add login and write tests for it") == [
        ("Add login", 0),
        ("write tests for it", 0),
    ]
    assert texts("Add login and logout") == [("Add login and logout", 0)]
    assert texts("Build the API, then deploy it") == [("Build the API", 0), ("deploy it", 1)]
    assert texts("Release version 2 before you write the changelog") == [
        ("Release version 2", 0),
        ("you write the changelog", 1),
    ]
    assert texts("- add a parser\n- add a printer\n2. Then document both") == [
        ("add a parser", 0),
        ("add a printer", 0),
        ("document both", 1),
    ]


def test_with_splits_only_supporting_work() -> None:
    assert [t for t, _ in texts("Add a cache with tests and docs")] == [
        "Add a cache",
        "tests",
        "docs",
    ]
    assert texts("Add a cache with LRU eviction") == [("Add a cache with LRU eviction", 0)]
    assert texts("Deploy with the CI pipeline") == [("Deploy with the CI pipeline", 0)]


def test_files_are_recognised_by_extension_not_by_dots() -> None:
    text = (
        "Fix src/app/main.py:42 and ./web/App.tsx, see https://x.io/a.py, e.g. v1.2.3; "
        "also Dockerfile and README.md."
    )
    assert extract_files(text) == ["src/app/main.py", "web/App.tsx", "Dockerfile", "README.md"]


@pytest.mark.parametrize(
    ("worker_type", "label", "starts"),
    [
        (WorkerType.TEST, "unit tests for the billing module", "Automated tests for the billing"),
        (WorkerType.TEST, "the billing module", "Automated tests for the billing module"),
        (WorkerType.TEST, "tests for", "Automated tests for tests for"),
        (WorkerType.AUDIT, "security audit of login", "An audit report for login lists"),
        (WorkerType.DOCUMENTATION, "API docs for billing", "Documentation for billing explains"),
    ],
)
def test_criteria_name_the_kind_of_work_once(
    worker_type: WorkerType, label: str, starts: str
) -> None:
    assert success_criteria_for(worker_type, label, []).startswith(starts)


def test_technologies() -> None:
    found = extract_technologies("A Next.js front end on Postgres with GitHub Actions and JWT")
    assert found == ["next.js", "postgresql", "github actions", "jwt"]


def test_retry_policy_is_data_and_its_decision_pure() -> None:
    policy = RetryPolicy(max_attempts=4, initial_delay_s=0.5, max_delay_s=1.5)
    assert [policy.delay_s(n, None) for n in (1, 2, 3, 4)] == [0.5, 1.0, 1.5, None]
    assert policy.delay_s(1, 12.0) == 12.0
    assert policy.delay_s(1, 600.0) is None, "longer than max_retry_after_s: do not wait"
    with pytest.raises(ValueError, match="max_attempts"):
        RetryPolicy(max_attempts=0)
    with pytest.raises(ValueError, match="initial_delay_s"):
        RetryPolicy(initial_delay_s=-1)


def test_retry_after_header_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert parse_retry_after({}) is None
    assert parse_retry_after({"retry-after": "soon"}) is None
    date = email.utils.formatdate(1_000_030, usegmt=True)
    assert parse_retry_after({"retry-after": date}, now=1_000_000) == 30.0


def test_cache_key_is_a_full_sha256_of_all_four_parts() -> None:
    key = cache_key("anthropic", "m", "prompt", None)
    assert len(key) == 64
    assert key != cache_key("openai", "m", "prompt", None)
    assert key != cache_key("anthropic", "m2", "prompt", None)
    assert key != cache_key("anthropic", "m", "prompt", "")
    assert cache_key("a", "b", "c", "d") != cache_key("a", "bc", "", "d")


def test_cache_is_bounded_and_survives_an_unwritable_directory(tmp_path: Path) -> None:
    cache = PlanCache(max_entries=2)
    for key in "abc":
        cache.put(key, key)
    assert len(cache) == 2
    assert cache.get("a") is None
    blocked = tmp_path / "file"
    blocked.write_text("")
    broken = PlanCache(blocked / "sub")
    broken.put("k", "v")
    assert broken.get("k") == "v"


def test_enable_nlp_false_makes_no_model_call(tmp_path: Path) -> None:
    """The specification's ``ENABLE_NLP=false``: the heuristic planner, whatever keys are set."""
    off = Settings(enable_nlp=False, nlp_provider="anthropic", anthropic_api_key="a")
    assert build_provider(off) is None
    env = {**os.environ, "ENABLE_NLP": "false", "NLP_PROVIDER": "anthropic"}
    env |= {"ANTHROPIC_API_KEY": "sk-never-used", "TASKORCH_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "taskorch", "parse", "Add login and logout", "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert "fallback" not in result.stderr  # no attempt at the API that could fail over
    assert json.loads(result.stdout)["subtasks"]


def test_provider_choice_from_settings() -> None:
    assert build_provider(Settings()) is None
    anthropic = build_provider(Settings(anthropic_api_key="a", openai_api_key="o"))
    assert isinstance(anthropic, AnthropicProvider)
    openai = build_provider(Settings(openai_api_key="o", nlp_model="gpt-x"))
    assert isinstance(openai, OpenAIProvider)
    assert openai.model == "gpt-x"
    assert build_provider(Settings(nlp_provider="heuristic", anthropic_api_key="a")) is None
    local = build_provider(
        Settings(nlp_provider="openai-compatible", openai_base_url="http://h/v1", nlp_model="m")
    )
    assert local is not None
    assert local.name == "openai-compatible"


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"nlp_provider": "anthropic"}, "ANTHROPIC_API_KEY"),
        ({"nlp_provider": "openai"}, "OPENAI_API_KEY"),
        ({"nlp_provider": "openai-compatible", "nlp_model": "m"}, "OPENAI_BASE_URL"),
        ({"nlp_provider": "openai-compatible", "openai_base_url": "http://h"}, "NLP_MODEL"),
    ],
)
def test_a_named_provider_without_its_settings_is_a_config_error(
    values: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match=message):
        build_provider(Settings(**values))  # type: ignore[arg-type]
