"""The FastAPI application: the REST API under ``/api/v1``, ``/metrics`` for Prometheus, and the
dashboard (static files shipped in this package, nothing from a CDN).

Who may call it: :mod:`taskorch.http.guard` (the Host it is reached by, JSON-only state changes
from its own pages) and :mod:`taskorch.http.auth` (the token). How errors are answered:
:mod:`taskorch.http.errors`. Bodies are at most ``MAX_BODY_BYTES`` (413 beyond).
"""

from __future__ import annotations

import asyncio
import html
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

from taskorch.domain.errors import ConfigError
from taskorch.engine import OrchestrationEngine
from taskorch.http import api_evidence, api_system, api_work
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
    root_path: str | None = None,
) -> FastAPI:
    """The app for an initialised ``engine``. With ``token``, every request must carry it.
    ``local_agents`` describes the agents this process runs (for ``/api/v1/agents``);
    ``stopping`` ends the event streams when the server shuts down; ``hosts`` says which Host
    headers it answers (default: ``API_HOST``:``API_PORT`` and ``TASKORCH_ALLOWED_HOSTS``);
    ``root_path`` is the path prefix a proxy serves it under (default ``TASKORCH_ROOT_PATH``)."""
    if token is not None and usable(token) is None:
        raise ConfigError("the API token is blank: give one of at least 8 characters, or none")
    settings = engine.settings
    if hosts is None:
        hosts = HostPolicy.serving(settings.api_host, settings.api_port, settings.allowed_hosts)
    prefix = check_root_path(settings.taskorch_root_path if root_path is None else root_path)
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
    app.add_middleware(Gate, policy=hosts)
    if prefix:
        app.add_middleware(_RootPath, root_path=prefix)  # added last: runs first
    install_error_handlers(app, lambda path: _allowed(app, path))

    app.include_router(api_work.router)
    app.include_router(api_system.router)
    app.include_router(api_evidence.router)

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


class _RootPath:
    """Behind a proxy under a prefix, requests come with it (the proxy keeps it) or without (the
    proxy strips it): with the prefix as the ASGI ``root_path``, Starlette routes both the same,
    and the pages learn the prefix their links are relative to. (Not uvicorn's ``root_path``,
    which assumes the proxy strips it.)"""

    def __init__(self, app: ASGIApp, root_path: str) -> None:
        self.app = app
        self.root_path = root_path

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            path = str(scope["path"])
            if path != self.root_path and not path.startswith(self.root_path + "/"):
                # Stripped by the proxy: put it back, as ASGI has it (the path holds the root).
                path = self.root_path + path
            scope = {**scope, "root_path": self.root_path, "path": path}
            scope.pop("raw_path", None)  # would name the path without the prefix
        await self.app(scope, receive, send)


def check_root_path(value: str | None) -> str:
    """The path prefix a proxy serves taskorch under: ``""`` (none) or ``/a/b`` (no trailing
    slash); anything else is a one-line error."""
    text = (value or "").strip().rstrip("/")
    if not text:
        return ""
    if not _ROOT_PATH.fullmatch(text) or {".", ".."} & set(text.split("/")):
        raise ConfigError(
            f"invalid root path {value!r}: give a path prefix such as /taskorch "
            "(letters, digits and - _ . ~ between slashes)"
        )
    if text.split("/")[1] in _OWN_PATHS:
        raise ConfigError(
            f"invalid root path {value!r}: it starts like taskorch's own paths "
            f"({', '.join(sorted(_OWN_PATHS))}); choose another prefix, such as /taskorch"
        )
    return text


_ROOT_PATH = re.compile(r"(/[A-Za-z0-9._~-]+)+")
_OWN_PATHS = frozenset({"api", "static", "workflows", "metrics", "openapi.json"})
"""A prefix starting with one of these could not tell a stripped request from a kept one."""


def _add_dashboard(app: FastAPI) -> None:
    template = (STATIC / "index.html").read_text(encoding="utf-8")

    def page(request: Request) -> HTMLResponse:
        # Every path in the page and its script is relative to this base: under a prefix the
        # dashboard, its API calls, event stream and links stay under the prefix.
        root = str(request.scope.get("root_path") or "").rstrip("/")
        base = f'<base href="{html.escape(root, quote=True)}/">'
        return HTMLResponse(template.replace(_BASE, base, 1))

    @app.get("/", include_in_schema=False)
    async def dashboard(request: Request) -> HTMLResponse:
        return page(request)

    @app.get("/workflows/{workflow_id}", include_in_schema=False)
    async def workflow_page(request: Request, workflow_id: str) -> HTMLResponse:
        return page(request)

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")


_BASE = '<base href="/">'
"""The placeholder in index.html the served page replaces with the root path's base."""
