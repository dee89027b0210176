"""Settings that look set but say nothing are refused in one line (issue 14): a token of blanks
must not protect a server bound to every address, an empty DATABASE_URL must not silently mean
the default database."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from taskorch.domain.errors import ConfigError
from taskorch.settings import load_settings


@pytest.mark.parametrize("token", ["   ", "\t\n", "short"])
def test_a_token_of_blanks_or_too_short_is_refused(
    token: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TASKORCH_API_TOKEN", token)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    assert caught.value.message.startswith("invalid setting TASKORCH_API_TOKEN='***': ")
    assert "at least 8 characters that are not blanks" in caught.value.message
    assert "short" not in caught.value.message  # the value is never shown


@pytest.mark.parametrize("name", ["DATABASE_URL", "TASKORCH_REPO", "DB_HOST"])
def test_a_setting_given_empty_is_refused(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, " ")
    with pytest.raises(ConfigError, match=f"invalid setting {name}=' ': is set but empty"):
        load_settings()


def test_serve_with_a_blank_token_does_not_bind(tmp_path: Path) -> None:
    env = {**os.environ, "TASKORCH_API_TOKEN": "    ", "TASKORCH_HOME": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "taskorch", "serve", "--host", "0.0.0.0", "--port", "0"],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr.startswith("error: invalid setting TASKORCH_API_TOKEN='***'")
    assert "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_every_setting_has_a_taskorch_name(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKORCH_DATABASE_URL", "sqlite:///elsewhere.db")
    monkeypatch.setenv("TASKORCH_NLP_PROVIDER", "heuristic")
    monkeypatch.setenv("TASKORCH_WORKER_CONCURRENCY", "7")
    monkeypatch.setenv("TASKORCH_API_PORT", "9999")
    settings = load_settings()
    assert settings.database_url == "sqlite:///elsewhere.db"
    assert (settings.nlp_provider, settings.worker_concurrency, settings.api_port) == (
        "heuristic",
        7,
        9999,
    )


def test_the_specifications_names_keep_working_and_lose_to_taskorch_ones(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_WORKFLOWS", "3")
    monkeypatch.setenv("NLP_PROVIDER", "heuristic")
    monkeypatch.setenv("DB_HOST", "db.internal")
    assert load_settings().max_concurrent_workflows == 3
    assert load_settings().effective_database_url.startswith("postgresql://postgres@db.internal")
    monkeypatch.setenv("TASKORCH_MAX_CONCURRENT_WORKFLOWS", "4")
    assert load_settings().max_concurrent_workflows == 4
    assert load_settings(max_concurrent_workflows=5).max_concurrent_workflows == 5  # a flag


@pytest.mark.parametrize(
    ("name", "value"),
    [("API_PORT", "3000"), ("TEST_COMMAND", "npm test"), ("LEASE_S", "1"), ("MERGE_POLICY", "x")],
)
def test_a_projects_own_bare_names_are_not_taskorchs(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    settings = load_settings()  # no error: MERGE_POLICY=x is someone else's
    assert (settings.api_port, settings.test_command, settings.lease_s) == (8765, None, 30.0)


def test_a_bad_value_names_the_variable_that_was_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MAX_CONCURRENT_WORKFLOWS", "x")
    with pytest.raises(ConfigError, match="invalid setting MAX_CONCURRENT_WORKFLOWS='x'"):
        load_settings()
    monkeypatch.delenv("MAX_CONCURRENT_WORKFLOWS")
    monkeypatch.setenv("TASKORCH_LEASE_S", "-1")
    with pytest.raises(ConfigError, match="invalid setting TASKORCH_LEASE_S='-1'"):
        load_settings()


@pytest.mark.postgres
def test_init_never_writes_a_password_to_the_config_file(postgres_url: str, tmp_path: Path) -> None:
    home = tmp_path / ".taskorch"
    with_secret = postgres_url.replace("postgres@", "postgres:hunter2@", 1)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DB_", "DATABASE_URL"))}
    env |= {"TASKORCH_HOME": str(home)}

    def taskorch(*args: str, **extra: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "taskorch", *args]
        return subprocess.run(argv, env=env | extra, capture_output=True, text=True, check=False)

    init = taskorch("init", "--db", with_secret)
    assert init.returncode == 0, init.stderr
    assert "the password is not saved: set TASKORCH_DB_PASSWORD" in init.stdout
    config = (home / "config.toml").read_text()
    assert "hunter2" not in config
    assert "postgres@127.0.0.1" in config
    assert (home / "config.toml").stat().st_mode & 0o077 == 0
    listed = taskorch("task", "list", "--json", TASKORCH_DB_PASSWORD="hunter2")
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.strip() == "[]"


def test_the_password_setting_fills_a_url_without_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKORCH_DATABASE_URL", "postgresql://app@db.internal:5432/taskorch")
    monkeypatch.setenv("DB_PASSWORD", "s3cr:t/")
    url = load_settings().effective_database_url
    assert url == "postgresql://app:s3cr%3At%2F@db.internal:5432/taskorch"
    monkeypatch.setenv("TASKORCH_DATABASE_URL", "postgresql://app:own@db.internal/taskorch")
    assert load_settings().effective_database_url.startswith("postgresql://app:own@")
