"""The FastAPI application: the REST API under ``/api/v1``, ``/metrics`` for Prometheus, and the
dashboard (static files shipped in this package, nothing from a CDN).

Errors map onto HTTP as a client expects: a bad field is 422 naming it, an unknown id 404, a state
change the workflow no longer allows 409, a database that cannot be reached 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from taskorch.domain.errors import (
    ConfigError,
    InputError,
    NotFoundError,
    PlanError,
    PlannerError,
    StateError,
    StoreError,
    TaskorchError,
)
from taskorch.engine import OrchestrationEngine
from taskorch.http import api_system, api_work
from taskorch.http.auth import bearer_middleware
from taskorch.http.prometheus import CONTENT_TYPE, Exporter

STATIC = resources.files("taskorch.http") / "static"

UNREADABLE_BODY = "There was an error parsing the body"
"""FastAPI's 400 for a body it cannot decode."""

_STATUS: list[tuple[type[TaskorchError], int]] = [
    (NotFoundError, 404),
    (InputError, 422),
    (PlanError, 422),
    (StateError, 409),
    (StoreError, 503),
    (ConfigError, 503),
    (PlannerError, 502),
]


def create_app(
    engine: OrchestrationEngine,
    *,
    token: str | None = None,
    local_agents: list[dict[str, Any]] | None = None,
    stopping: asyncio.Event | None = None,
) -> FastAPI:
    """The app for an initialised ``engine``. With ``token``, every request must carry it.
    ``local_agents`` describes the agents this process runs (for ``/api/v1/agents``);
    ``stopping`` ends the event streams when the server shuts down."""
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
    if token:
        app.middleware("http")(bearer_middleware(token))

    @app.exception_handler(TaskorchError)
    async def taskorch_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TaskorchError)
        status = status_of(exc)
        if status == 422:  # the shape FastAPI gives every validation error
            detail: Any = [{"loc": list(exc_field(exc)), "msg": exc.message, "type": "value_error"}]
        else:
            detail = exc.message
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        if exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            # Bytes that are not even text: a validation error of the body like any other.
            detail = [
                {"loc": ["body"], "msg": "the body is not UTF-8 JSON", "type": "json_invalid"}
            ]
            return JSONResponse({"detail": detail}, status_code=422)
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by several
            # routes (GET and POST /api/v1/tasks) allows them all.
            exc.headers = {"Allow": ", ".join(sorted(_allowed(app, request.url.path)))}
        return await http_exception_handler(request, exc)

    app.include_router(api_work.router)
    app.include_router(api_system.router)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(await exporter.render(), media_type=CONTENT_TYPE)

    _add_dashboard(app)
    return app


def exc_field(error: TaskorchError) -> tuple[str, ...]:
    """Where a user error points: ``("body", "dependencies")`` when the message starts with
    ``dependencies:``, else nowhere in particular."""
    head, sep, _ = error.message.partition(":")
    return ("body", head) if sep and head.isidentifier() else ()


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


def status_of(error: TaskorchError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def _add_dashboard(app: FastAPI) -> None:
    page = STATIC / "index.html"

    @app.get("/", include_in_schema=False)
    async def dashboard() -> FileResponse:
        return FileResponse(str(page), media_type="text/html")

    @app.get("/workflows/{workflow_id}", include_in_schema=False)
    async def workflow_page(workflow_id: str) -> FileResponse:
        return FileResponse(str(page), media_type="text/html")

    app.mount("/static", StaticFiles(directory=str(STATIC)), name="static")
