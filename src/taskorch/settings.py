"""One typed settings object, read from CLI flags, environment variables, a config file and defaults
(in that order of precedence). Invalid values fail at start with a :class:`ConfigError` that names
the setting as the user would write it (the environment variable).

The config file is TOML with the lower-case setting names as keys, at ``$TASKORCH_CONFIG`` or
``<TASKORCH_HOME>/config.toml`` (``.taskorch/config.toml`` by default).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tempfile
import tomllib
from pathlib import Path
from typing import Any, Literal
from urllib.parse import quote, unquote, urlsplit, urlunsplit

from pydantic import (
    AliasChoices,
    Field,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict

from taskorch.domain.errors import ConfigError, InputError
from taskorch.domain.limits import check_duration, parse_duration

DEFAULT_HOME = Path(".taskorch")
MIN_TOKEN_LENGTH = 8
NlpProvider = Literal["auto", "heuristic", "anthropic", "openai", "openai-compatible"]


def _spec(name: str) -> AliasChoices:
    """``TASKORCH_<NAME>``, and the bare ``<NAME>`` the specification (or a tool's convention, as
    ``GITHUB_TOKEN``) gave it: both work, the ``TASKORCH_`` one wins."""
    return AliasChoices(f"TASKORCH_{name}", name)


def _own(name: str) -> AliasChoices:
    """Only ``TASKORCH_<NAME>``: a bare name of taskorch's own (``API_PORT``, ``TEST_COMMAND``)
    would collide with the user's project's settings."""
    return AliasChoices(f"TASKORCH_{name}")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
    )

    @model_validator(mode="before")
    @classmethod
    def _field_names_given(cls, data: Any) -> Any:
        """Flags and config-file keys use the field names (``api_port``); they win over the
        environment, which reaches a field only through its ``TASKORCH_``/specification names
        (never the bare ``api_port``: that is the user's project's)."""
        if not isinstance(data, dict):
            return data
        for field, info in cls.model_fields.items():
            alias = info.validation_alias
            if isinstance(alias, AliasChoices) and field in data:
                value = data.pop(field)
                for name in alias.choices:
                    data.pop(str(name), None)
                    data.pop(str(name).lower(), None)
                data[str(alias.choices[0])] = value
        return data

    taskorch_home: Path = DEFAULT_HOME
    taskorch_worktrees: Path | None = None
    """Where agents' git worktrees live; default outside the data folder (see
    :func:`default_worktrees_root`). Never inside ``TASKORCH_HOME``: an agent works there and must
    not reach taskorch's database or config."""

    database_url: str | None = Field(None, validation_alias=_spec("DATABASE_URL"))
    db_host: str | None = Field(None, validation_alias=_spec("DB_HOST"))
    db_port: int = Field(default=5432, ge=1, le=65535, validation_alias=_spec("DB_PORT"))
    db_name: str = Field("taskorch", validation_alias=_spec("DB_NAME"))
    db_user: str = Field("postgres", validation_alias=_spec("DB_USER"))
    db_password: SecretStr | None = Field(None, validation_alias=_spec("DB_PASSWORD"))

    nlp_provider: NlpProvider = Field("auto", validation_alias=_spec("NLP_PROVIDER"))
    nlp_model: str | None = Field(None, validation_alias=_spec("NLP_MODEL"))
    nlp_fallback: bool = Field(True, validation_alias=_spec("NLP_FALLBACK"))
    """When an LLM provider fails or answers garbage twice, fall back to the heuristic planner."""
    anthropic_api_key: SecretStr | None = Field(None, validation_alias=_spec("ANTHROPIC_API_KEY"))
    openai_api_key: SecretStr | None = Field(None, validation_alias=_spec("OPENAI_API_KEY"))
    openai_base_url: str | None = Field(None, validation_alias=_spec("OPENAI_BASE_URL"))

    agentapi_url: str = Field("http://localhost:3284", validation_alias=_spec("AGENTAPI_URL"))
    agentapi_key: SecretStr | None = Field(None, validation_alias=_spec("AGENTAPI_KEY"))

    max_concurrent_workflows: int = Field(
        default=20, ge=1, validation_alias=_spec("MAX_CONCURRENT_WORKFLOWS")
    )
    worker_concurrency: int = Field(default=5, ge=1, validation_alias=_own("WORKER_CONCURRENCY"))
    subtask_timeout_s: float = Field(
        default=300.0, gt=0, validation_alias=_own("SUBTASK_TIMEOUT_S")
    )
    lease_s: float = Field(default=30.0, gt=0, validation_alias=_own("LEASE_S"))
    budget_usd: float | None = Field(None, gt=0, validation_alias=_own("BUDGET_USD"))
    """The USD cap of a workflow that sets none (nor its task): see docs/budgets.md."""
    budget_tokens: int | None = Field(None, gt=0, validation_alias=_own("BUDGET_TOKENS"))
    """The token cap of a workflow that sets none (nor its task)."""
    enable_nlp: bool = Field(True, validation_alias=_spec("ENABLE_NLP"))
    enable_agent_coordination: bool = Field(
        True, validation_alias=_spec("ENABLE_AGENT_COORDINATION")
    )
    """Route each subtask to the best-scoring capable agent; false: every subtask goes to the
    first usable agent (by name), with no capability or load scoring (docs/agents.md)."""
    routing_cost_weight: float = Field(
        0.15, ge=0, le=1, validation_alias=_own("ROUTING_COST_WEIGHT")
    )
    """Weight of routing's ``cost`` part (cost per success, the cheapest candidate 1.0); 0 turns
    it off (docs/agents.md)."""
    retry_attempts: int | None = Field(None, ge=1, le=100, validation_alias=_spec("RETRY_ATTEMPTS"))
    """The specification's ``orchestrator.retryAttempts``: attempts in all per subtask (1: never
    retried) for every error class that is retried; unset: each class's own count."""
    retry_delay: str | None = Field(None, validation_alias=_spec("RETRY_DELAY"))
    """``orchestrator.retryDelay``: the wait before the first retry, doubling after; a duration
    (``5s``, ``1m``) or a bare number of milliseconds, as in the specification."""
    task_timeout: str | None = Field(None, validation_alias=_spec("TASK_TIMEOUT"))
    """``orchestrator.taskTimeout``: how long one attempt of a subtask may run; a duration or a
    bare number of milliseconds, as in the specification. Wins over TASKORCH_SUBTASK_TIMEOUT_S."""
    task_log_dir: Path | None = Field(None, validation_alias=_spec("TASK_LOG_DIR"))
    """``orchestrator.taskLogDir``: where each task's JSON log goes (default
    ``<TASKORCH_HOME>/logs/tasks``)."""
    nlp_enable_caching: bool = Field(True, validation_alias=_spec("NLP_ENABLE_CACHING"))
    """``nlp.enableCaching``: keep the model's validated plans (memory and
    ``<TASKORCH_HOME>/cache/planner``) so the same requirement costs one call; false: ask every
    time."""

    github_token: SecretStr | None = Field(None, validation_alias=_spec("GITHUB_TOKEN"))
    github_repository: str | None = Field(None, validation_alias=_spec("GITHUB_REPOSITORY"))
    """``owner/name``; default: read from the target repository's ``origin`` remote."""
    github_api_url: str = Field("https://api.github.com", validation_alias=_spec("GITHUB_API_URL"))

    taskorch_host_name: str | None = None
    """This host's name as workers advertise it and agents name it (default: the system's)."""
    taskorch_repo: str | None = None
    """The repository (a path or a git URL) of workflows that name none, nor their task."""
    merge_policy: Literal["auto", "approve"] = Field("auto", validation_alias=_own("MERGE_POLICY"))
    """auto: a validated workflow merges into its base branch at once; approve: it waits for
    ``taskorch approve`` (or reject)."""

    test_command: str | None = Field(None, validation_alias=_own("TEST_COMMAND"))
    """The validation test command, split into argv like a shell would (but never run by one)."""
    test_timeout_s: float = Field(default=600.0, gt=0, validation_alias=_own("TEST_TIMEOUT_S"))

    api_host: str = Field("127.0.0.1", validation_alias=_own("API_HOST"))
    api_port: int = Field(default=8765, ge=1, le=65535, validation_alias=_own("API_PORT"))
    taskorch_api_token: SecretStr | None = None
    taskorch_allowed_hosts: str | None = None
    """More names the HTTP server answers to besides the address it serves on, comma-separated:
    ``name`` (any port), ``name:port``, or ``*`` (any host: only behind a proxy that checks)."""
    taskorch_workflow_files: bool = True
    """Keep each workflow's plan, state, handoffs, events and report under
    ``<home>/workflows/<id>/`` (``taskorch.engine.workflow_files``)."""
    taskorch_root_path: str | None = None
    """The path prefix a proxy serves ``serve`` under (``/taskorch``); unset: none."""
    gc_older_than: str | None = Field(None, validation_alias=_own("GC_OLDER_THAN"))
    """``serve`` removes what workflows that ended longer ago than this left behind, hourly
    (as ``taskorch gc --older-than``); unset: never."""

    # --- the Python API's plugins (spec-api) ---
    recovery_strategies: str | None = Field(None, validation_alias=_own("RECOVERY_STRATEGIES"))
    """``package.module:function`` (comma-separated for several), each called with the
    ``ErrorRecoveryManager`` of every worker ``run``, ``serve`` and ``worker`` build."""

    @field_validator("gc_older_than")
    @classmethod
    def _an_age(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                parse_duration("age", value, limit_s=10 * 365 * 86400.0)
            except InputError as exc:
                raise ValueError(exc.message) from None
        return value

    @field_validator("retry_delay", "task_timeout", mode="before")
    @classmethod
    def _milliseconds(cls, value: Any, info: ValidationInfo) -> Any:
        """A bare number (a TOML integer too) is milliseconds, as the specification's are."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            value = f"{value}ms"
        if isinstance(value, str):
            try:
                seconds = parse_duration("", value.strip(), bare="ms")
            except InputError as exc:
                raise ValueError(exc.message.strip()) from None
            if seconds <= 0 and info.field_name == "task_timeout":
                raise ValueError("must be more than 0 (a bare number is milliseconds)")
            return value.strip()
        return value

    @field_validator("taskorch_api_token")
    @classmethod
    def _token_not_blank(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and len(value.get_secret_value().strip()) < MIN_TOKEN_LENGTH:
            raise ValueError(
                f"an API token needs at least {MIN_TOKEN_LENGTH} characters that are not blanks "
                "(e.g. `openssl rand -hex 24`); unset it to bind to 127.0.0.1 only"
            )
        return value

    @field_validator("subtask_timeout_s", "lease_s", "test_timeout_s")
    @classmethod
    def _bounded_duration(cls, value: float) -> float:
        try:
            return check_duration("the duration", value, allow_zero=False)
        except InputError as exc:  # pydantic reports a ValueError with the setting's name
            raise ValueError(exc.message) from None

    @field_validator("database_url", "taskorch_repo", "db_host", "taskorch_allowed_hosts")
    @classmethod
    def _set_means_not_blank(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("is set but empty: give a value, or unset it for the default")
        return value

    @field_validator("taskorch_worktrees")
    @classmethod
    def _worktrees_outside_home(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        home = info.data.get("taskorch_home")
        if value is not None and home is not None and is_inside(value, home):
            raise ValueError(
                f"is inside TASKORCH_HOME ({home}), where agents could reach taskorch's "
                "database and config: choose a folder outside it"
            )
        return value

    @property
    def home(self) -> Path:
        return self.taskorch_home

    @property
    def attempt_timeout_s(self) -> float:
        """How long one attempt of a subtask may run: ``TASK_TIMEOUT`` if set, else
        ``TASKORCH_SUBTASK_TIMEOUT_S``."""
        if self.task_timeout is None:
            return self.subtask_timeout_s
        return parse_duration("TASK_TIMEOUT", self.task_timeout, bare="ms")

    @property
    def retry_delay_s(self) -> float | None:
        """``RETRY_DELAY`` in seconds; None: each error class's own delay."""
        if self.retry_delay is None:
            return None
        return parse_duration("RETRY_DELAY", self.retry_delay, bare="ms")

    @property
    def task_logs_path(self) -> Path:
        """Where the tasks' JSON logs go (``TASK_LOG_DIR``, else under the data folder)."""
        return self.task_log_dir or self.home / "logs" / "tasks"

    @property
    def worktrees_root(self) -> Path:
        """Where this host's agents' worktrees live (absolute)."""
        if self.taskorch_worktrees is not None:
            return self.taskorch_worktrees.expanduser().absolute()
        return default_worktrees_root(self.home)

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
            return with_password(self.database_url, self.db_password)
        if self.db_host:
            password = self.db_password.get_secret_value() if self.db_password else ""
            auth = quote(self.db_user, safe="")
            if password:
                auth += ":" + quote(password, safe="")
            return f"postgresql://{auth}@{self.db_host}:{self.db_port}/{quote(self.db_name)}"
        return f"sqlite:///{self.sqlite_path}"


def with_password(url: str, password: SecretStr | None) -> str:
    """``url`` with ``DB_PASSWORD`` put in, where the URL names a user but carries no password
    (the config file never holds one: ``taskorch init --db`` saves the URL without it)."""
    parts = urlsplit(url)
    if password is None or parts.password is not None or not parts.username:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    secret = quote(password.get_secret_value(), safe="")
    return urlunsplit(parts._replace(netloc=f"{parts.username}:{secret}@{host}"))


def without_password(url: str) -> tuple[str, str | None]:
    """``url`` with its password taken out, and the password (None when it had none)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url, None
    user = parts.username or ""
    host = parts.netloc.rsplit("@", 1)[1]
    return urlunsplit(parts._replace(netloc=f"{user}@{host}")), unquote(parts.password)


def is_inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` is ``folder`` or lies inside it (both resolved)."""
    return path.expanduser().resolve().is_relative_to(folder.expanduser().resolve())


def default_worktrees_root(home: Path) -> Path:
    """``$XDG_CACHE_HOME/taskorch/worktrees/<digest of home>`` (``~/.cache`` without it; the
    system's temporary folder when both lie inside ``home``): one folder per data folder, never
    inside it."""
    home = home.expanduser().resolve()
    digest = hashlib.sha1(os.fsencode(home)).hexdigest()[:12]
    caches = [os.environ.get("XDG_CACHE_HOME", ""), str(Path.home() / ".cache")]
    caches = [c for c in caches if c and Path(c).is_absolute()]
    caches.append(str(Path(tempfile.gettempdir()) / f"taskorch-{os.getuid()}"))
    for cache in caches:
        root = Path(cache) / "taskorch" / "worktrees" / digest
        if not is_inside(root, home):
            return root
    raise ConfigError(
        f"no folder for worktrees outside TASKORCH_HOME ({home}): set TASKORCH_WORKTREES"
    )


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
    from_env = {f for f, names in _env_names().items() if env_keys & {n.lower() for n in names}}
    from_file = {k: v for k, v in file_values.items() if k not in from_env}
    try:
        return Settings(**{**from_file, **given})
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def set_in_environment(field: str) -> str | None:
    """The environment variable that sets ``field`` now (it wins over the config file)."""
    present = {k.upper() for k in os.environ}
    return next((n for n in _env_names().get(field, []) if n.upper() in present), None)


def _env_names() -> dict[str, list[str]]:
    """Each setting's environment variable names, the preferred one first."""
    names: dict[str, list[str]] = {}
    for field, info in Settings.model_fields.items():
        alias = info.validation_alias
        choices = alias.choices if isinstance(alias, AliasChoices) else [field.upper()]
        names[field] = [str(choice) for choice in choices]
    return names


def _read_config_file(path: Path) -> dict[str, Any]:
    if not path.is_file():
        return {}
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ConfigError(f"cannot read config file {path}: {exc}") from None
    return {str(k).lower(): v for k, v in data.items()}


def write_config_value(path: Path, key: str, value: str | int | bool) -> None:
    """Set one top-level key (a string, a whole number or a boolean) in the TOML config file,
    keeping the others."""
    lines = path.read_text().splitlines() if path.is_file() else []
    kept = [line for line in lines if line.split("=", 1)[0].strip().lower() != key]
    if isinstance(value, bool):
        kept.append(f"{key} = {'true' if value else 'false'}")
    elif isinstance(value, int):
        kept.append(f"{key} = {value}")
    else:
        escaped = value.replace("\\", "\\\\").replace('"', '\\"')
        kept.append(f'{key} = "{escaped}"')
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_private(path, "\n".join(kept) + "\n")


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable and writable by its owner only (it may hold secrets:
    the config file's database URL and tokens)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)  # (an existing file keeps its mode through O_CREAT)
    with os.fdopen(fd, "w") as handle:
        handle.write(text)


def secure_home(home: Path) -> None:
    """Create the data folder for its owner only (0700), and take group and others' access away
    from an existing one, its config file and its SQLite database: they hold secrets."""
    home.mkdir(mode=0o700, parents=True, exist_ok=True)
    for path, mode in ((home, 0o700), (home / "config.toml", 0o600), (home / "taskorch.db", 0o600)):
        try:
            if path.stat().st_mode & 0o077:
                path.chmod(mode)
        except FileNotFoundError:
            continue
        except PermissionError:  # not ours: say nothing, change nothing
            continue


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    given = str(error["loc"][0]) if error["loc"] else "setting"
    field = _field_of(given)
    environment = {k.upper() for k in os.environ}
    names = _env_names().get(field, [field.upper()])
    name = next((n for n in names if n.upper() in environment), names[0])
    shown = error.get("input")
    if isinstance(shown, dict):
        shown = None
    if field in _SECRET_FIELDS:
        shown = "***"
    value = f"={shown!r}" if shown is not None else ""
    return f"invalid setting {name}{value}: {str(error['msg']).removeprefix('Value error, ')}"


def _field_of(name: str) -> str:
    """The setting an error's location names: a field, or one of its environment names."""
    for field, names in _env_names().items():
        if name == field or name.upper() in names:
            return field
    return name


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
