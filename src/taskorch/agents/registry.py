"""The agent registry's model: what an agent is (type, adapter settings, capabilities, limit), the
built-in capability table for the known agent types, and building an adapter from a stored record.

A registered agent is an :class:`~taskorch.domain.models.Agent` row. Its adapter settings live in
``metadata["adapter"]``: ``{"kind": "agentapi", "url": ..., "key_env": ...}``, ``{"kind": "cli",
"template": "aider"}`` or ``{"kind": "cli", "command": [argv...]}``, ``{"kind": "shell"}``,
``{"kind": "sim", "duration_s": ...}``. Secrets are never stored: an agentapi key is read at run
time from the environment variable named by ``key_env`` (``AGENTAPI_KEY`` for the default agent).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from taskorch.agents.base import AgentAdapter
from taskorch.agents.cli_agent import TEMPLATES, CliAgentAdapter, CliTemplate
from taskorch.agents.shell import ShellAdapter
from taskorch.agents.sim import SimBehaviour
from taskorch.agents.sim_worktree import SimWorktreeAgent
from taskorch.domain.errors import ConfigError, InputError
from taskorch.domain.models import Agent, Capabilities
from taskorch.domain.plan import Domain, WorkerType

AdapterKind = Literal["agentapi", "cli", "shell", "sim"]
ADAPTER_KINDS: tuple[AdapterKind, ...] = ("agentapi", "cli", "shell", "sim")
KNOWN_TYPES = ("claude-code", "goose", "aider", "codex", "gemini", "shell", "sim")
DEFAULT_AGENT_NAME = "agentapi"
"""The agent that ``AGENTAPI_URL`` (with ``AGENTAPI_KEY``) configures."""
SIM_HEARTBEAT_S = 0.5
_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,62}$")

D, W = Domain, WorkerType
_ALL_DOMAINS = list(Domain)
_ALL_WORK = list(WorkerType)
_MAINSTREAM = ["python", "typescript", "javascript", "go", "rust", "java", "ruby", "shell", "sql"]

BUILTIN_CAPABILITIES: dict[str, Capabilities] = {
    "claude-code": Capabilities(
        domains=_ALL_DOMAINS,
        worker_types=_ALL_WORK,
        languages=[*_MAINSTREAM, "c", "cpp", "csharp", "kotlin", "swift", "php", "markdown"],
        specialties=["refactoring", "tests", "security review", "documentation", "debugging"],
    ),
    "aider": Capabilities(
        domains=[D.DEVELOPMENT, D.DOCS],
        worker_types=[W.IMPLEMENTATION, W.TEST, W.DOCUMENTATION],
        languages=[*_MAINSTREAM, "c", "cpp", "php", "markdown"],
        specialties=["focused edits", "refactoring", "git commits"],
    ),
    "goose": Capabilities(
        domains=[D.DEVELOPMENT, D.CICD, D.INVENTORY],
        worker_types=[W.PLANNER, W.IMPLEMENTATION, W.TEST, W.DEPLOY],
        languages=_MAINSTREAM,
        specialties=["automation", "tool use", "deployment"],
    ),
    "codex": Capabilities(
        domains=[D.DEVELOPMENT],
        worker_types=[W.IMPLEMENTATION, W.TEST],
        languages=[*_MAINSTREAM, "c", "cpp"],
        specialties=["implementation", "tests"],
    ),
    "gemini": Capabilities(
        domains=[D.DEVELOPMENT, D.DOCS, D.SECURITY],
        worker_types=[W.PLANNER, W.IMPLEMENTATION, W.TEST, W.AUDIT, W.DOCUMENTATION],
        languages=[*_MAINSTREAM, "markdown"],
        specialties=["large context", "design", "documentation"],
    ),
    "shell": Capabilities(
        domains=[D.DEVELOPMENT, D.CICD, D.INVENTORY],
        worker_types=[W.IMPLEMENTATION, W.TEST, W.DEPLOY],
        specialties=["commands"],
    ),
    "sim": Capabilities(specialties=["simulated"]),
}
"""What each known agent type is good at; empty lists mean "any". ``taskorch agents add
--domains/--worker-types/--languages/--specialties`` overrides a part."""

DEFAULT_ADAPTER: dict[str, AdapterKind] = {
    "claude-code": "cli",
    "aider": "cli",
    "goose": "cli",
    "codex": "cli",
    "shell": "shell",
    "sim": "sim",
}


class AgentSpec(BaseModel):
    """What ``taskorch agents add`` registers."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str
    type: str = "custom"
    adapter: AdapterKind | None = None
    """Default: agentapi when a URL is given, else the type's own (CLI for coding agents)."""
    url: str | None = None
    key_env: str | None = None
    host: str | None = None
    """agentapi: the host whose files its server sees (its worktrees must be there); only that
    host's workers send it work. Default: this host for a server on the loopback address, any
    host otherwise (a server that sees the same paths everywhere, e.g. a shared filesystem)."""
    command: list[str] | None = None
    """A custom CLI command (argv); ``{prompt}`` in one element, else the prompt goes on stdin."""
    executable: str | None = None
    """Path of a known CLI agent's program (default: its name on PATH)."""
    args: list[str] | None = None
    """More arguments after a known CLI agent's built-in ones (``--model openai/big``)."""
    capabilities: Capabilities | None = None
    """Default: the built-in table for the type."""
    max_concurrency: int = Field(default=1, ge=1)
    sim_duration_s: float = Field(default=0.0, ge=0)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError(
                "an agent name is 1-63 lower-case letters, digits, '.', '_' or '-' "
                f"(starting with a letter or digit), got {value!r}"
            )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> AgentSpec:
        kind = self.adapter_kind
        if kind == "agentapi" and not self.url:
            raise ValueError(f"agent {self.name}: an agentapi agent needs --url")
        if self.url and not self.url.startswith(("http://", "https://")):
            raise ValueError(f"agent {self.name}: --url must start with http:// or https://")
        if kind != "agentapi" and (self.url or self.key_env or self.host):
            raise ValueError(
                f"agent {self.name}: --url, --key-env and --host are for agentapi agents"
            )
        if kind == "cli" and not self.command and self.type not in TEMPLATES:
            known = ", ".join(sorted(TEMPLATES))
            raise ValueError(
                f"agent {self.name}: type {self.type!r} has no built-in command ({known}); "
                "give --command or --url"
            )
        if kind != "cli" and (self.command or self.executable or self.args):
            raise ValueError(
                f"agent {self.name}: --command, --executable and --arg are for CLI agents"
            )
        if self.command and self.args:
            raise ValueError(
                f"agent {self.name}: --arg adds to a known agent's command; "
                "put the arguments in --command instead"
            )
        return self

    @property
    def adapter_kind(self) -> AdapterKind:
        if self.adapter is not None:
            return self.adapter
        if self.url:
            return "agentapi"
        if self.command:
            return "cli"
        return DEFAULT_ADAPTER.get(self.type, "cli")

    def adapter_settings(self) -> dict[str, Any]:
        kind = self.adapter_kind
        settings: dict[str, Any] = {"kind": kind}
        if kind == "agentapi":
            settings["url"] = str(self.url).rstrip("/")
            if self.key_env:
                settings["key_env"] = self.key_env
            if self.host:
                settings["host"] = self.host
        elif kind == "cli":
            if self.command:
                settings["command"] = list(self.command)
            else:
                settings["template"] = self.type
            if self.executable:
                settings["executable"] = self.executable
            if self.args:
                settings["args"] = list(self.args)
        elif kind == "sim":
            settings["duration_s"] = self.sim_duration_s
        return settings

    def effective_capabilities(self) -> Capabilities:
        return self.capabilities or capabilities_for(self.type)


def capabilities_for(agent_type: str) -> Capabilities:
    """The built-in capabilities of a type; an unknown (custom) type can do anything."""
    return BUILTIN_CAPABILITIES.get(agent_type, Capabilities())


def merge_capabilities(base: Capabilities, **override: Sequence[str] | None) -> Capabilities:
    """``base`` with the parts given in ``override`` replaced (None keeps a part)."""
    data = base.model_dump()
    for part, values in override.items():
        if values is not None:
            data[part] = [v.strip().lower() for v in values if v.strip()]
    try:
        return Capabilities.model_validate(data)
    except ValueError as exc:
        domains = ", ".join(Domain)
        types = ", ".join(WorkerType)
        raise InputError(
            f"invalid capabilities: domains are {domains}; worker types are {types}"
        ) from exc


def adapter_settings(agent: Agent) -> dict[str, Any]:
    settings = agent.metadata.get("adapter")
    if not isinstance(settings, dict) or settings.get("kind") not in ADAPTER_KINDS:
        raise ConfigError(
            f"agent {agent.name} has no usable adapter settings: register it again "
            "(`taskorch agents add`)"
        )
    return settings


def configured_model(agent: Agent) -> str | None:
    """The model an agent was registered to use: ``--model X``, ``--model=X`` or ``-m X`` in its
    extra arguments or its custom command; None when it names none (the agent's default)."""
    try:
        settings = adapter_settings(agent)
    except ConfigError:
        return None
    argv = [str(a) for a in [*settings.get("command", []), *settings.get("args", [])]]
    for index, arg in enumerate(argv):
        if arg.startswith("--model="):
            return arg.split("=", 1)[1] or None
        if arg in ("--model", "-m") and index + 1 < len(argv):
            return argv[index + 1]
    return None


def serving_host(agent: Agent) -> str | None:
    """The only host whose workers may run ``agent`` (None: any): an agentapi server is sent
    a worktree's path, which it must be able to open."""
    host = adapter_settings(agent).get("host")
    return str(host) if host else None


def with_default_host(spec: AgentSpec, this_host: str) -> AgentSpec:
    """An agentapi server on the loopback address is on the host that registers it."""
    if spec.adapter_kind != "agentapi" or spec.host or not spec.url:
        return spec
    if urlsplit(spec.url).hostname in {"localhost", "127.0.0.1", "::1"}:
        return spec.model_copy(update={"host": this_host})
    return spec


def describe_adapter(agent: Agent) -> str:
    """One line for tables: ``agentapi http://...``, ``cli aider``, ``cli ./agent.sh {prompt}``."""
    try:
        settings = adapter_settings(agent)
    except ConfigError:
        return "?"
    kind = str(settings["kind"])
    if kind == "agentapi":
        return f"agentapi {_without_credentials(str(settings['url']))}"
    if kind == "cli":
        template = TEMPLATES.get(str(settings.get("template")))
        program = settings.get("executable") or (template.argv[0] if template else "?")
        shown = settings.get("command") or [program, *settings.get("args", [])]
        return "cli " + " ".join(str(part) for part in shown)
    return kind


def _without_credentials(url: str) -> str:
    """A URL fit to show: ``user:password@`` becomes ``***@``."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))


def _custom_command(argv: list[str], agent: Agent) -> CliTemplate:
    """A custom command; for a known type it is still that program (e.g. ``claude`` with more
    options), so its report is read the same way (Claude's JSON: ``is_error``, tokens, cost,
    ``permission_denials``) and its template's settings apply."""
    custom = CliTemplate.custom(argv, name=agent.name)
    known = TEMPLATES.get(agent.type)
    if known is None:
        return custom
    return replace(known, name=agent.name, argv=custom.argv, prompt_on_stdin=custom.prompt_on_stdin)


def build_adapter(agent: Agent, env: Mapping[str, str]) -> AgentAdapter:
    """The adapter for a registered agent; ``env`` supplies the secrets named by the settings."""
    settings = adapter_settings(agent)
    kind = settings["kind"]
    if kind == "agentapi":
        from taskorch.agents.agentapi import AgentApiAdapter  # httpx: only for such an agent

        key_env = settings.get("key_env")
        key = env.get(str(key_env)) if key_env else None
        return AgentApiAdapter(str(settings["url"]), key or None, name=agent.name)
    if kind == "cli":
        command = settings.get("command")
        base: CliTemplate | str = (
            _custom_command([str(p) for p in command], agent)
            if command
            else str(settings["template"])
        )
        executable = settings.get("executable")
        extra = [str(arg) for arg in settings.get("args", [])]
        return CliAgentAdapter(
            base, name=agent.name, executable=executable or None, extra_args=extra
        )
    if kind == "shell":
        return ShellAdapter(name=agent.name)
    duration = float(settings.get("duration_s") or 0.0)
    return SimWorktreeAgent(
        SimBehaviour(duration_s=duration, heartbeat_s=SIM_HEARTBEAT_S), name=agent.name
    )
