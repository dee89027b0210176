"""The FastAPI application: the REST API under ``/api/v1``, ``/metrics`` for Prometheus, and the
dashboard (static files shipped in this package, nothing from a CDN).

Who may call it: :mod:`taskorch.http.guard` (the Host it is reached by, JSON-only state changes
from its own pages) and :mod:`taskorch.http.auth` (the token). How errors are answered:
:mod:`taskorch.http.errors`. Bodies are at most ``MAX_BODY_BYTES`` (413 beyond).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI
from fastapi.responses import FileResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles

from taskorch.domain.errors import ConfigError
from taskorch.engine import OrchestrationEngine
from taskorch.http import api_system, api_work
from taskorch.http.auth import bearer_middleware, usable
from taskorch.http.errors import install_error_handlers
from taskorch.http.guard import Gate, HostPolicy
from taskorch.http.prometheus import CONTENT_TYPE, Exporter

STATIC = resources.files("taskorch.http") / "static"


def create_app(
    engine: OrchestrationEngine,
    *,
    token: str | None = None,
    local_agents: list[dict[str, Any]] | None = None,
    stopping: asyncio.Event | None = None,
    hosts: HostPolicy | None = None,
) -> FastAPI:
    """The app for an initialised ``engine``. With ``token``, every request must carry it.
    ``local_agents`` describes the agents this process runs (for ``/api/v1/agents``);
    ``stopping`` ends the event streams when the server shuts down; ``hosts`` says which Host
    headers it answers (default: ``API_HOST``:``API_PORT`` and ``TASKORCH_ALLOWED_HOSTS``)."""
    if token is not None and usable(token) is None:
        raise ConfigError("the API token is blank: give one of at least 8 characters, or none")
    settings = engine.settings
    if hosts is None:
        hosts = HostPolicy.serving(settings.api_host, settings.api_port, settings.allowed_hosts)
    exporter = Exporter(engine)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        exporter.start()
        app.state.started.set()
        try:
            yield
        finally:
            app.state.stopping.set()
            await exporter.stop()

    app = FastAPI(
        title="taskorch",
        version=_version(),
        description="Task orchestration for AI coding agents: tasks, workflows, plans, agents, "
        "health and live events.",
        lifespan=lifespan,
        docs_url=None,  # FastAPI's docs pages load their scripts from a CDN; nothing here does
        redoc_url=None,
    )
    app.state.engine = engine
    app.state.local_agents = local_agents or []
    app.state.stopping = stopping or asyncio.Event()
    app.state.started = asyncio.Event()
    app.state.host_policy = hosts
    if token is not None:
        app.middleware("http")(bearer_middleware(token))
    app.add_middleware(Gate, policy=hosts)  # added last: runs first
    install_error_handlers(app, lambda path: _allowed(app, path))

    app.include_router(api_work.router)
    app.include_router(api_system.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await exporter.render(), media_type=CONTENT_TYPE)

    _add_dashboard(app)
    return app


def _version() -> str:
    try:
        return version("taskorch")
    except PackageNotFoundError:
        return "0"


def _allowed(app: FastAPI, path: str) -> set[str]:
    methods: set[str] = set()
    for route in app.routes:
        if isinstance(route, APIRoute) and route.path_regex.match(path):
            methods |= route.methods or set()
    return methods


def _add_dashboard(app: FastAPI) -> None:
    page = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(page), media_type="text/html")

    @app.get("/workflows/{workflow_id}", include_in_schema=False)
    async def workflow_page(workflow_id: str) -> FileResponse:
        return FileResponse(str(page), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
