"""``taskorch agents list|add|remove|show|check|enable|disable``: the agent registry."""

from __future__ import annotations

import os
import shlex
from typing import Annotated, Any

import typer
from pydantic import ValidationError
from rich.text import Text

from taskorch.agents.registry import (
    ADAPTER_KINDS,
    KNOWN_TYPES,
    AdapterKind,
    AgentSpec,
    capabilities_for,
    merge_capabilities,
)
from taskorch.cli.agent_views import print_agents, seconds
from taskorch.cli.app import app, console, duration, engine, line, print_json, run
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.cli.terminal import shown
from taskorch.domain.errors import InputError
from taskorch.domain.limits import MAX_ID, MAX_TEXT_CHARS
from taskorch.engine import ComponentHealth
from taskorch.engine.agents import AgentInfo

agents_app = typer.Typer(
    help="Register coding agents and see their track record.", no_args_is_help=True
)
app.add_typer(agents_app, name="agents")

JsonOption = Annotated[bool, typer.Option("--json", help="Print JSON.")]
NameArg = Annotated[str, typer.Argument(metavar="NAME", help="Agent name (or id).")]


def _list(option: str, value: str | None) -> list[str] | None:
    listed = line(option, value, MAX_TEXT_CHARS)
    return None if listed is None else [part for part in listed.split(",") if part.strip()]


@agents_app.command("add")
def add(
    name: Annotated[str, typer.Argument(metavar="NAME", help="A short name, e.g. claude-1.")],
    agent_type: Annotated[
        str,
        typer.Option("--type", help=f"{', '.join(KNOWN_TYPES)}, or any name for a custom agent."),
    ] = "custom",
    url: Annotated[
        str | None, typer.Option(help="agentapi server URL (makes it an agentapi agent).")
    ] = None,
    key_env: Annotated[
        str | None,
        typer.Option(help="Environment variable holding the agentapi key (never stored)."),
    ] = None,
    host: Annotated[
        str | None,
        typer.Option(
            help="agentapi: the host whose files its server sees; only that host's workers send "
            "it work (default: this host for a loopback URL, else any host)."
        ),
    ] = None,
    command: Annotated[
        str | None,
        typer.Option(
            help="Custom CLI command, split like a shell would (never run by one); "
            "{prompt} in one word, else the prompt goes on stdin."
        ),
    ] = None,
    executable: Annotated[
        str | None, typer.Option(help="Path of a known CLI agent's program.")
    ] = None,
    extra_args: Annotated[
        list[str] | None,
        typer.Option(
            "--arg",
            help="One more argument for a known CLI agent's command (repeat it), "
            "e.g. --arg=--model --arg=openai/big. Stored and shown: never a key.",
        ),
    ] = None,
    adapter: Annotated[
        str | None, typer.Option(help=f"{'|'.join(ADAPTER_KINDS)} (default: from the options).")
    ] = None,
    domains: Annotated[str | None, typer.Option(help="Override, comma-separated.")] = None,
    worker_types: Annotated[str | None, typer.Option(help="Override, comma-separated.")] = None,
    languages: Annotated[str | None, typer.Option(help="Override, comma-separated.")] = None,
    specialties: Annotated[str | None, typer.Option(help="Override, comma-separated.")] = None,
    max_concurrency: Annotated[
        int, typer.Option("--max-concurrency", min=1, max=MAX_ID, help="Subtasks it runs at once.")
    ] = 1,
    sim_duration_s: Annotated[
        float, typer.Option("--sim-duration", min=0, help="Seconds a sim agent's subtask takes.")
    ] = 0.0,
    as_json: JsonOption = False,
) -> None:
    """Register an agent (or replace the one with this name)."""

    async def body() -> AgentInfo:
        kind = line("--type", agent_type) or "custom"
        caps = merge_capabilities(
            capabilities_for(kind),
            domains=_list("--domains", domains),
            worker_types=_list("--worker-types", worker_types),
            languages=_list("--languages", languages),
            specialties=_list("--specialties", specialties),
        )
        program = line("--executable", executable, MAX_PATH_CHARS)
        spec = _spec(
            name=_name(name),
            type=kind,
            adapter=_adapter(adapter),
            url=line("--url", url, MAX_PATH_CHARS),
            key_env=line("--key-env", key_env),
            host=line("--host", host),
            command=_command(line("--command", command, MAX_TEXT_CHARS)),
            executable=_program(program) if program else None,
            args=[line("--arg", each, MAX_TEXT_CHARS) or "" for each in extra_args or []] or None,
            capabilities=caps,
            max_concurrency=max_concurrency,
            sim_duration_s=duration("--sim-duration", sim_duration_s),
        )
        async with engine() as running:
            return await running.add_agent(spec)

    info = run(body)
    if as_json:
        print_json(info.to_json())
        return
    data = info.to_json()
    console.print(
        Text.assemble(
            "registered ", (info.agent.name, "bold"), f" ({data['type']}, {data['adapter']})"
        )
    )


@agents_app.command("list")
def list_(as_json: JsonOption = False) -> None:
    """Registered agents: status, load, success rate, latency, last error."""

    async def body() -> list[AgentInfo]:
        async with engine(create=False) as running:
            return await running.list_agents()

    agents = run(body)
    if as_json:
        print_json([info.to_json() for info in agents])
        return
    if not agents:
        console.print(
            "no agents registered: `taskorch agents add NAME --type claude-code` "
            "(or --url for agentapi); until then `taskorch run` uses the simulated agent"
        )
        return
    print_agents(agents)


@agents_app.command("show")
def show(name: NameArg, as_json: JsonOption = False) -> None:
    """One agent: adapter settings, capabilities, limit, status and track record."""

    async def body() -> AgentInfo:
        async with engine(create=False) as running:
            return await running.get_agent(_name(name))

    data = run(body).to_json()
    if as_json:
        print_json(data)
        return
    _print_fields(data)


@agents_app.command("remove")
def remove(name: NameArg) -> None:
    """Unregister an agent (its past attempts stay in the history)."""

    async def body() -> AgentInfo:
        async with engine(create=False) as running:
            return await running.remove_agent(_name(name))

    console.print(Text(f"removed {run(body).agent.name}"))


@agents_app.command("enable")
def enable(name: NameArg) -> None:
    """Let routing choose the agent again."""
    _set_enabled(name, True)


@agents_app.command("disable")
def disable(name: NameArg) -> None:
    """Keep routing away from the agent (it is not probed either)."""
    _set_enabled(name, False)


@agents_app.command("check")
def check(as_json: JsonOption = False) -> None:
    """Probe every agent that is not disabled; unreachable ones are marked offline (and back)."""

    async def body() -> dict[str, ComponentHealth]:
        async with engine(create=False) as running:
            return await running.agent_health()

    found = run(body)
    if as_json:
        print_json(
            {n: {"status": h.status, "detail": h.detail, **h.info} for n, h in found.items()}
        )
        return
    if not found:
        console.print("no agents to probe")
    for name, health in found.items():
        style = "green" if health.status == "ok" else "bold red"
        console.print(Text.assemble((f"{health.status:<5}", style), f" {name}: {health.detail}"))
    if any(h.status != "ok" for h in found.values()):
        raise typer.Exit(1)


def _set_enabled(name: str, enabled: bool) -> None:
    async def body() -> AgentInfo:
        async with engine(create=False) as running:
            return await running.set_agent_enabled(_name(name), enabled)

    info = run(body)
    console.print(Text(f"{info.agent.name}: {info.status.value}"))


def _name(value: str) -> str:
    return line("the agent name", value) or ""


def _spec(**fields: Any) -> AgentSpec:
    try:
        return AgentSpec(**fields)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise InputError(str(first["msg"]).removeprefix("Value error, ")) from None


def _adapter(value: str | None) -> AdapterKind | None:
    if value is None:
        return None
    for kind in ADAPTER_KINDS:
        if kind == value:
            return kind
    raise InputError(f"unknown adapter {shown(value)}: use {', '.join(ADAPTER_KINDS)}")


def _command(text: str | None) -> list[str] | None:
    """The argv of a custom command."""
    if not text:
        return None
    try:
        argv = shlex.split(text)
    except ValueError as exc:  # "No closing quotation", "No escaped character"
        raise InputError(f"--command cannot be split into words: {exc}") from None
    if argv:
        argv[0] = _program(argv[0])
    return argv


def _program(path: str) -> str:
    """A relative program path made absolute here, because the agent runs in a worktree, not
    where it was registered; a bare name is looked up on PATH when it runs."""
    if os.sep in path and not os.path.isabs(path):
        return os.path.abspath(path)
    return path


def _print_fields(data: dict[str, Any]) -> None:
    console.print(Text(f"{data['name']}  {data['type']}  {data['status']}", style="bold"))
    record = data["track_record"]
    rows = {
        "adapter": data["adapter"],
        "domains": ", ".join(data["capabilities"]["domains"]) or "any",
        "worker types": ", ".join(data["capabilities"]["worker_types"]) or "any",
        "languages": ", ".join(data["capabilities"]["languages"]) or "any",
        "specialties": ", ".join(data["capabilities"]["specialties"]) or "-",
        "concurrency": f"{data['active']} running of {data['max_concurrency']}",
        "attempts": f"{record['attempts']} ({record['successes']} succeeded)",
        "latency": f"mean {seconds(record['mean_s'])}, p95 {seconds(record['p95_s'])}",
        "last error": record["last_error"] or "-",
    }
    for key, value in rows.items():
        console.print(Text(f"  {key:<13}{value}"))
