"""``taskorch serve``: the daemon, the HTTP API and the dashboard in one process."""

from __future__ import annotations

from typing import Annotated

import typer

from taskorch.cli.app import app, console, duration, line, run, settings
from taskorch.cli.inputs import MAX_PATH_CHARS
from taskorch.domain.limits import MAX_ID
from taskorch.engine.daemon import Daemon, DaemonStats
from taskorch.engine.targets import check_target
from taskorch.http.app import check_root_path
from taskorch.http.server import ServeOptions, serve


@app.command("serve")
def serve_(
    host: Annotated[
        str | None,
        typer.Option(
            help="Address to bind (default TASKORCH_API_HOST=127.0.0.1; others need a token)."
        ),
    ] = None,
    port: Annotated[
        int | None,
        typer.Option(min=0, max=65535, help="Port (default TASKORCH_API_PORT=8765; 0: any)."),
    ] = None,
    agent: Annotated[
        str,
        typer.Option(
            help="auto: route each subtask to the best registered agent (the simulated agent "
            "when none is registered); sim; or the name of one registered agent."
        ),
    ] = "auto",
    sim_duration_s: Annotated[
        float, typer.Option("--sim-duration", min=0, help="Seconds each simulated subtask takes.")
    ] = 0.0,
    concurrency: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_ID, help="Subtasks run at once (default TASKORCH_WORKER_CONCURRENCY)."
        ),
    ] = None,
    max_workflows: Annotated[
        int | None,
        typer.Option(
            min=1, max=MAX_ID, help="Workflows carried at once (default MAX_CONCURRENT_WORKFLOWS)."
        ),
    ] = None,
    repo: Annotated[
        str | None,
        typer.Option(
            "--repo",
            metavar="PATH|URL",
            help="Repository of the tasks that name none (default TASKORCH_REPO, else a scratch "
            "repository): a local path or a git URL.",
            show_default=False,
        ),
    ] = None,
    merge: Annotated[
        str | None,
        typer.Option(
            "--merge",
            metavar="auto|approve",
            help="Merge policy of the tasks that name none "
            "(default TASKORCH_MERGE_POLICY, else auto).",
            show_default=False,
        ),
    ] = None,
    allowed_host: Annotated[
        list[str] | None,
        typer.Option(
            "--allowed-host",
            metavar="NAME[:PORT]",
            help="Another Host the server answers to besides its address, e.g. the name a proxy "
            "forwards (repeat for more; default TASKORCH_ALLOWED_HOSTS).",
            show_default=False,
        ),
    ] = None,
    root_path: Annotated[
        str | None,
        typer.Option(
            "--root-path",
            metavar="/PREFIX",
            help="Path prefix a proxy serves taskorch under, whether the proxy strips it or "
            "keeps it (default TASKORCH_ROOT_PATH; none).",
            show_default=False,
        ),
    ] = None,
) -> None:
    """Take pending tasks from the database and carry them to merged code; serve the HTTP API
    (/api/v1), the dashboard (/) and Prometheus metrics (/metrics). SIGTERM: finish, then exit.

    --repo and --merge stand in for TASKORCH_REPO and TASKORCH_MERGE_POLICY: a task's own
    repository and merge policy (`task add --repo/--merge`, the API's fields) come first."""
    config = settings(taskorch_allowed_hosts=",".join(allowed_host) if allowed_host else None)
    options = ServeOptions(
        host=line("--host", host) or config.api_host,
        port=config.api_port if port is None else port,
        agent=line("--agent", agent) or "auto",
        sim_duration_s=duration("--sim-duration", sim_duration_s) or 0.0,
        concurrency=concurrency,
        max_workflows=max_workflows,
        root_path=root_path,
    )

    def ready(url: str, daemon: Daemon) -> None:
        used = daemon.engine.settings
        root = check_root_path(used.taskorch_root_path if root_path is None else root_path)
        if root:
            url = f"{url} under {root} (behind the proxy: {root}/)"
        console.print(f"taskorch serving {url}  (dashboard /, API /api/v1, OpenAPI /openapi.json)")
        console.print(
            f"database {daemon.engine.database_location}; up to {daemon.max_workflows} workflows "
            f"at once; resuming {len(daemon.stats.resumed)} unfinished"
        )
        console.print(
            f"tasks that name no repository go to {used.taskorch_repo or 'a scratch repository'} "
            f"(merge policy {used.merge_policy})",
            highlight=False,
        )
        if daemon.note:
            console.print(daemon.note, highlight=False)
        if daemon.stats.left_alone:
            shown = ", ".join(
                f"{wf} (--agent {mode})" for wf, mode in daemon.stats.left_alone.items()
            )
            console.print(
                f"left alone, started with other agents (`taskorch resume` them): {shown}"
            )

    async def body() -> DaemonStats:
        served = config
        if repo is not None or merge is not None:
            target = await check_target(
                line("--repo", repo, MAX_PATH_CHARS), None, merge, reach=True
            )
            served = settings(
                taskorch_repo=target.get("repo"),
                merge_policy=target.get("merge_policy"),
                taskorch_allowed_hosts=config.taskorch_allowed_hosts,
            )
        return await serve(served, options, on_ready=ready)

    stats = run(body)
    waiting = len(stats.awaiting_approval)
    left = len(stats.started) + len(stats.resumed) - len(stats.finished) - waiting
    console.print(
        f"stopped: {len(stats.started)} workflow(s) started, {len(stats.finished)} finished, "
        f"{left} left to resume" + (f", {waiting} left for approval" if waiting else "")
    )
