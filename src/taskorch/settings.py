"""One typed settings object, read from CLI flags, environment variables, a config file and defaults
(in that order of precedence). Invalid values fail at start with a :class:`ConfigError` that names
the setting as the user would write it (the environment variable).

The config file is TOML with the lower-case setting names as keys, at ``$TASKORCH_CONFIG`` or
``<TASKORCH_HOME>/config.toml`` (``.taskorch/config.toml`` by default).
"""

from __future__ import annotations

import os
import socket
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskorch.domain.errors import ConfigError

DEFAULT_HOME = Path(".taskorch")
MIN_TOKEN_LENGTH = 8
NlpProvider = Literal["auto", "heuristic", "anthropic", "openai", "openai-compatible"]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    taskorch_home: Path = DEFAULT_HOME

    database_url: str | None = None
    db_host: str | None = None
    db_port: int = Field(default=5432, ge=1, le=65535)
    db_name: str = "taskorch"
    db_user: str = "postgres"
    db_password: SecretStr | None = None

    nlp_provider: NlpProvider = "auto"
    nlp_model: str | None = None
    nlp_fallback: bool = True
    """When an LLM provider fails or answers garbage twice, fall back to the heuristic planner."""
    anthropic_api_key: SecretStr | None = None
    openai_api_key: SecretStr | None = None
    openai_base_url: str | None = None

    agentapi_url: str = "http://localhost:3284"
    agentapi_key: SecretStr | None = None

    max_concurrent_workflows: int = Field(default=20, ge=1)
    worker_concurrency: int = Field(default=5, ge=1)
    subtask_timeout_s: float = Field(default=300.0, gt=0)
    lease_s: float = Field(default=30.0, gt=0)
    enable_nlp: bool = True
    enable_agent_coordination: bool = True

    github_token: SecretStr | None = None
    github_repository: str | None = None
    """``owner/name``; default: read from the target repository's ``origin`` remote."""
    github_api_url: str = "https://api.github.com"

    taskorch_host_name: str | None = None
    """This host's name as workers advertise it and agents name it (default: the system's)."""
    taskorch_repo: str | None = None
    """The repository (a path or a git URL) of workflows that name none, nor their task."""
    merge_policy: Literal["auto", "approve"] = "auto"
    """auto: a validated workflow merges into its base branch at once; approve: it waits for
    ``taskorch approve`` (or reject)."""

    test_command: str | None = None
    """The validation test command, split into argv like a shell would (but never run by one)."""
    test_timeout_s: float = Field(default=600.0, gt=0)

    api_host: str = "127.0.0.1"
    api_port: int = Field(default=8765, ge=1, le=65535)
    taskorch_api_token: SecretStr | None = None
    taskorch_allowed_hosts: str | None = None
    """More names the HTTP server answers to besides the address it serves on, comma-separated:
    ``name`` (any port), ``name:port``, or ``*`` (any host: only behind a proxy that checks)."""

    @field_validator("taskorch_api_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"an API token needs at least {MIN_TOKEN_LENGTH} characters that are not blanks "
                "(e.g. `openssl rand -hex 24`); unset it to bind to 127.0.0.1 only"
            )
        return value

    @field_validator("database_url", "taskorch_repo", "db_host", "taskorch_allowed_hosts")
    @classmethod
    def _set_means_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is set but empty: give a value, or unset it for the default")
        return value

    @property
    def home(self) -> Path:
        return self.taskorch_home

    @property
    def host_name(self) -> str:
        return self.taskorch_host_name or socket.gethostname()

    @property
    def allowed_hosts(self) -> tuple[str, ...]:
        """``TASKORCH_ALLOWED_HOSTS`` as a list (empty when unset)."""
        entries = (self.taskorch_allowed_hosts or "").split(",")
        return tuple(entry.strip() for entry in entries if entry.strip())

    @property
    def sqlite_path(self) -> Path:
        return self.home / "taskorch.db"

    @property
    def effective_database_url(self) -> str:
        """``DATABASE_URL`` if set, else one built from ``DB_*`` if ``DB_HOST`` is set, else the
        embedded SQLite file."""
        if self.database_url:
            return self.database_url
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            auth = quote(self.db_user, safe="")
            if password:
                auth += ":" + quote(password, safe="")
            return f"postgresql://{auth}@{self.db_host}:{self.db_port}/{quote(self.db_name)}"
        return f"sqlite:///{self.sqlite_path}"


def config_file_path(home: Path | None = None) -> Path:
    explicit = os.environ.get("TASKORCH_CONFIG")
    if explicit:
        return Path(explicit)
    base = home or Path(os.environ.get("TASKORCH_HOME", str(DEFAULT_HOME)))
    return base / "config.toml"


def load_settings(**overrides: Any) -> Settings:
    """Build the settings: ``overrides`` (CLI flags; None = not given) > env > file > defaults."""
    given = {k: v for k, v in overrides.items() if v is not None}
    home = Path(given["taskorch_home"]) if "taskorch_home" in given else None
    file_values = _read_config_file(config_file_path(home))
    env_keys = {k.lower() for k in os.environ}
    from_file = {k: v for k, v in file_values.items() if k not in env_keys}
    try:
        return Settings(**{**from_file, **given})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return {str(k).lower(): v for k, v in data.items()}


def write_config_value(path: Path, key: str, value: str) -> None:
    """Set one top-level string key in the TOML config file, keeping the others."""
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip().lower() != key]
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    kept.append(f'{key} = "{escaped}"')
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(kept) + "\n")


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    field = str(error["loc"][0]) if error["loc"] else "setting"
    name = _ENV_NAMES.get(field, field.upper())
    shown = error.get("input")
    if isinstance(shown, dict):
        shown = None
    if field in _SECRET_FIELDS:
        shown = "***"
    value = f"={shown!r}" if shown is not None else ""
    return f"invalid setting {name}{value}: {str(error['msg']).removeprefix('Value error, ')}"


_ENV_NAMES: dict[str, str] = {}
_SECRET_FIELDS = frozenset(
    {
        "db_password",
        "anthropic_api_key",
        "openai_api_key",
        "agentapi_key",
        "taskorch_api_token",
        "github_token",
    }
)
