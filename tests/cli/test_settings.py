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
