"""Health probes for registered agents: can this agent take work right now?

- agentapi: ``GET /status`` answers (``running`` means busy with a turn: reachable, so healthy);
- CLI: its program is on PATH (or at the configured path) and executable;
- shell, sim: always ready.

A probe never raises: it returns what it found, and the engine turns an unreachable agent
``offline`` (and a reachable offline one ``available`` again). Disabled agents are not probed.
"""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from taskorch.agents.cli_agent import TEMPLATES
from taskorch.agents.registry import adapter_settings
from taskorch.domain.errors import AgentError, ConfigError
from taskorch.domain.models import Agent

PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True, slots=True)
class Probe:
    reachable: bool
    detail: str
    info: dict[str, Any] = field(default_factory=dict)


async def probe_agent(
    agent: Agent, env: Mapping[str, str], *, timeout_s: float = PROBE_TIMEOUT_S
) -> Probe:
    try:
        settings = adapter_settings(agent)
    except ConfigError as exc:
        return Probe(False, exc.message)
    kind = settings["kind"]
    if kind == "agentapi":
        key_env = settings.get("key_env")
        return await _probe_agentapi(
            str(settings["url"]), env.get(str(key_env)) if key_env else None, timeout_s
        )
    if kind == "cli":
        command = settings.get("command")
        program = str(
            command[0]
            if command
            else settings.get("executable") or TEMPLATES[str(settings["template"])].argv[0]
        )
        return _probe_program(program)
    return Probe(True, f"{kind}: always ready")


async def _probe_agentapi(url: str, key: str | None, timeout_s: float) -> Probe:
    from taskorch.agents.agentapi_client import AgentApiClient  # httpx: only for such an agent

    try:
        async with AgentApiClient(url, key, request_timeout_s=timeout_s) as client:
            status = await asyncio.wait_for(client.status(), timeout_s)
    except AgentError as exc:
        return Probe(False, exc.message, {"url": url, "error_class": exc.error_class})
    except TimeoutError:
        return Probe(
            False, f"agentapi at {url} did not answer within {timeout_s:g} s", {"url": url}
        )
    info = {"url": url, "agent_status": status.status, "agent_type": status.agent_type}
    busy = " (busy with a turn)" if status.status == "running" else ""
    return Probe(True, f"agentapi at {url}: {status.status}{busy}", info)


def _probe_program(program: str) -> Probe:
    found = shutil.which(program)
    if found is None and os.sep in program and os.access(program, os.X_OK):
        found = program
    if found is None:
        return Probe(False, f"{program!r} is not installed or not executable (PATH)")
    return Probe(True, f"{found} found", {"path": found})
