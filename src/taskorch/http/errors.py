"""How the HTTP API reads request bodies and answers errors.

Errors map onto HTTP as a client expects: a bad field is 422 naming it, an unknown id 404, a state
change the workflow no longer allows 409, a database that cannot be reached 503. Every error is
JSON, and every message in it is one line that can be encoded whatever the client sent: the
client's own input is never echoed back whole (a 1 MB title, a lone surrogate, a NUL). A body is
JSON in UTF-8; ``NaN``, ``Infinity`` and ``1e999`` are numbers no field takes (a 422 naming it).

An exception nothing expected is a 500 with one line, logged with its traceback: a backstop, not
a way to answer bad input.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
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
from taskorch.domain.limits import echo_safe

UNREADABLE_BODY = "There was an error parsing the body"
"""FastAPI's 400 for a body it cannot decode."""
MAX_MESSAGE_CHARS = 300

_STATUS: list[tuple[type[TaskorchError], int]] = [
    (NotFoundError, 404),
    (InputError, 422),
    (PlanError, 422),
    (StateError, 409),
    (StoreError, 503),
    (ConfigError, 503),
    (PlannerError, 502),
]


def status_of(error: TaskorchError) -> int:
    for kind, status in _STATUS:
        if isinstance(error, kind):
            return status
    return 500


def exc_field(error: TaskorchError) -> tuple[str, ...]:
    """Where a user error points: ``("body", "dependencies")`` when the message starts with
    ``dependencies:``, else nowhere in particular."""
    head, sep, _ = error.message.partition(":")
    return ("body", head) if sep and head.isidentifier() else ()


def parse_json_body(body: bytes) -> Any:
    """``body`` as JSON in UTF-8 (``json.loads`` of bytes would guess UTF-16 or UTF-32 too); an
    :class:`InputError` saying what is wrong otherwise. A non-finite number (``NaN``, ``1e999``)
    is read as a float, which every field refuses by name."""
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise InputError(f"the body is not UTF-8: byte {exc.start} is not valid") from None
    return json.loads(text)


class StrictJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json_body(await self.body())
        return self._json


class StrictJSONRoute(APIRoute):
    """A route whose JSON body is read by :func:`parse_json_body`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJSONRequest(request.scope, request.receive))

        return strict


def install_error_handlers(app: FastAPI, allowed_methods: Callable[[str], set[str]]) -> None:
    """The handlers that turn every error into its status and a JSON body with one line."""

    @app.exception_handler(TaskorchError)
    async def taskorch_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, TaskorchError)
        status = status_of(exc)
        message = echo_safe(exc.message, MAX_MESSAGE_CHARS * 4)
        if status == 422:  # the shape FastAPI gives every validation error
            detail: Any = [{"loc": list(exc_field(exc)), "msg": message, "type": "value_error"}]
        else:
            detail = message
        return JSONResponse({"detail": detail}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        return JSONResponse({"detail": [_clean(e) for e in exc.errors()]}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, StarletteHTTPException)
        cause = exc.__cause__
        if exc.status_code == 400 and isinstance(cause, StarletteHTTPException):
            exc = cause  # raised while FastAPI read the body: the body was too large
        elif exc.status_code == 400 and exc.detail == UNREADABLE_BODY:
            # Bytes that are not JSON: a validation error of the body like any other.
            message = cause.message if isinstance(cause, InputError) else "the body is not JSON"
            detail = [{"loc": ["body"], "msg": message, "type": "json_invalid"}]
            return JSONResponse({"detail": detail}, status_code=422)
        if exc.status_code == 405:
            # Starlette names only the first matching route's methods; a path served by several
            # routes (GET and POST /api/v1/tasks) allows them all.
            exc.headers = {"Allow": ", ".join(sorted(allowed_methods(request.url.path)))}
        return await http_exception_handler(request, exc)

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Starlette raises it on after this answer: the ASGI server logs its traceback.
        detail = f"internal error ({type(exc).__name__}); the server log has the details"
        return JSONResponse({"detail": detail}, status_code=500)


def _clean(error: Any) -> dict[str, Any]:
    """One validation error without the client's input (which may be huge, or not encodable):
    where, what, and the parser's reason for a body that is not JSON."""
    loc = [part if isinstance(part, int) else echo_safe(str(part), 80) for part in error["loc"]]
    message = str(error.get("msg", "invalid"))
    reason = (error.get("ctx") or {}).get("error")
    if error.get("type") == "json_invalid" and reason is not None:
        message = f"{message}: {reason}"
    return {
        "type": echo_safe(str(error.get("type", "value_error")), 80),
        "loc": loc,
        "msg": echo_safe(message, MAX_MESSAGE_CHARS),
    }
