"""``taskorch init`` and ``taskorch health``."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.text import Text

from taskorch.cli.app import app, console, engine, fail, line, options, print_json, run, settings
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.engine import HealthReport, MigrationReport, OrchestrationEngine
from taskorch.engine.engine import SPEC_COMPONENTS
from taskorch.settings import config_file_path, without_password, write_config_value

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
) -> None:
    """Create or upgrade the database and print where it is."""

    url = line("--db", db, MAX_PATH_CHARS)

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
    console.print(f"data folder: {settings(url).home.resolve()}")


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
