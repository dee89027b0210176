"""``taskorch init`` and ``taskorch health``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from taskorch.cli.app import app, console, engine, fail, line, options, print_json, run, settings
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.engine import HealthReport, MigrationReport, OrchestrationEngine
from taskorch.engine.engine import SPEC_COMPONENTS
from taskorch.settings import (
    config_file_path,
    set_in_environment,
    without_password,
    write_config_value,
)

MAX_WORKFLOWS = 10_000
_STATUS_STYLE = {"ok": "green", "degraded": "yellow", "down": "bold red"}


@app.command()
def init(
    db: Annotated[
        str | None,
        typer.Option(
            "--db",
            help="Database URL to use from now on (saved in the config file).",
            show_default=False,
        ),
    ] = None,
    max_workflows: Annotated[
        int | None,
        typer.Option(
            "--max-workflows",
            min=1,
            max=MAX_WORKFLOWS,
            help="Workflows `serve` carries at once (saved: MAX_CONCURRENT_WORKFLOWS, default 20).",
            show_default=False,
        ),
    ] = None,
    enable_nlp: Annotated[
        bool | None,
        typer.Option(
            "--enable-nlp/--disable-nlp",
            " /--no-enable-nlp",
            help="Plan with the configured model, or always with the built-in heuristic planner "
            "(saved: ENABLE_NLP, default on).",
            show_default=False,
        ),
    ] = None,
    enable_agents: Annotated[
        bool | None,
        typer.Option(
            "--enable-agents/--disable-agents",
            " /--no-enable-agents",
            help="Route each subtask to the best-scoring capable agent, or every subtask to the "
            "first usable agent by name (saved: ENABLE_AGENT_COORDINATION, default on).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Create or upgrade the database and print where it is; save the settings given."""

    url = line("--db", db, MAX_PATH_CHARS)
    chosen: dict[str, int | bool] = {
        key: value
        for key, value in (
            ("max_concurrent_workflows", max_workflows),
            ("enable_nlp", enable_nlp),
            ("enable_agent_coordination", enable_agents),
        )
        if value is not None
    }

    async def body() -> tuple[str, MigrationReport]:
        async with engine(url) as running:
            return running.database_location, await running.initialize()

    location, report = run(body)
    if url:
        path = config_file_path(options.home)
        saved, password = without_password(url)
        try:
            write_config_value(path, "database_url", saved)
        except OSError as exc:
            fail(f"cannot save the database URL in {path}: {exc.strerror}")
        console.print(f"saved database_url={saved} in {path}")
        if password is not None:
            console.print(
                "the password is not saved: set TASKORCH_DB_PASSWORD (or DB_PASSWORD) "
                "in the environment of every taskorch command"
            )
    if report.applied:
        console.print(
            f"database {location}: schema {report.from_version} -> {report.to_version} "
            f"({', '.join(report.applied)})"
        )
    else:
        console.print(f"database {location}: schema version {report.to_version}, up to date")
    _save(chosen)
    console.print(f"data folder: {settings(url).home.resolve()}")


def _save(chosen: dict[str, int | bool]) -> None:
    """Write the settings given to ``init`` into the config file, saying where and what the
    environment still overrides (it wins over the file)."""
    path = config_file_path(options.home)
    for key, value in chosen.items():
        try:
            write_config_value(path, key, value)
        except OSError as exc:
            fail(f"cannot save {key} in {path}: {exc.strerror}")
        shown = str(value).lower() if isinstance(value, bool) else str(value)
        note = ""
        if (name := set_in_environment(key)) is not None:
            note = f" ({name} in the environment wins over it)"
        console.print(f"saved {key}={shown} in {path}{note}")


@app.command()
def health(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Report each component as ok, degraded or down, with the reason."""

    async def body() -> HealthReport:
        # No migration here: health must report a broken or old database, not try to fix it.
        unopened = OrchestrationEngine(settings())
        try:
            return await unopened.health_check()
        finally:
            await unopened.shutdown()

    report = run(body)
    if as_json:
        print_json(report.to_dict())
    else:
        aliases = {name: alias for alias, name in SPEC_COMPONENTS.items()}
        for name, component in report.components.items():
            if name in SPEC_COMPONENTS:
                continue  # shown with taskorch's name: "planner (nlp)"
            style = _STATUS_STYLE[component.status]
            shown = f"{name} ({aliases[name]})" if name in aliases else name
            console.print(
                Text.assemble((f"{component.status:<8}", style), f" {shown}: {component.detail}")
            )
            for key, value in component.info.items():
                console.print(f"           {key}: {value}")
    if report.status == "down":
        raise typer.Exit(1)
