"""What keeps other web sites out of the server: a browser on this machine visits them too.

- **Host.** A request must name this server in its ``Host`` header: the address it serves on
  (``127.0.0.1:8765``; bound to loopback, ``localhost`` and ``[::1]`` as well, on the served
  port) or a name of ``TASKORCH_ALLOWED_HOSTS`` (``serve --allowed-host``). Anything else is
  ``421``: a page of ``attacker.example`` whose name an attacker points at 127.0.0.1 (DNS
  rebinding) is not answered. Bound to every address (``0.0.0.0``, ``::``), which needs a token,
  any host is accepted unless ``TASKORCH_ALLOWED_HOSTS`` is set: the token guards each request
  and the names a machine is reached by are not known in advance.
- **State changes.** ``POST`` (and ``PUT``, ``PATCH``, ``DELETE``) must carry a JSON body
  (``Content-Type: application/json``), else ``415``: a page of another site can send a form or
  a text body without asking, but not JSON. A request whose ``Origin`` is another site, or that
  the browser marks ``Sec-Fetch-Site: cross-site``, is ``403``.
"""

from __future__ import annotations

import email.message
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit

from fastapi import Request
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from taskorch.domain.errors import ConfigError
from taskorch.domain.limits import MAX_BODY_BYTES, echo_safe

LOOPBACK_ALIASES = ("localhost", "127.0.0.1", "::1")
WILDCARDS = frozenset({"0.0.0.0", "::", ""})
STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
ANY_HOST = "*"


@dataclass(frozen=True, slots=True)
class Allowed:
    """One name the server answers to: ``host`` (lower case, IPv6 without brackets) on ``port``
    (``None``: any port)."""

    host: str
    port: int | None


@dataclass(frozen=True, slots=True)
class HostPolicy:
    """Which ``Host`` (and ``Origin``) a request may name."""

    allowed: tuple[Allowed, ...]
    any_host: bool = False
    """True: any ``Host`` is answered (bound to every address without an allow-list, or ``*``
    in it). An ``Origin`` must still be one of ``allowed`` or the request's own host."""

    @classmethod
    def serving(cls, host: str, port: int, allowed_hosts: Iterable[str] = ()) -> HostPolicy:
        """The policy of a server bound to ``host``:``port`` with the extra ``allowed_hosts``
        (``name``, ``name:port`` or ``*``)."""
        bound = _bare(host)
        names = [bound] if bound not in WILDCARDS else []
        if bound in WILDCARDS or _is_loopback(bound):
            names += LOOPBACK_ALIASES
        extra = [parse_allowed(entry) for entry in allowed_hosts]
        return cls(
            allowed=tuple(Allowed(name, port) for name in dict.fromkeys(names))
            + tuple(entry for entry in extra if entry is not None),
            any_host=None in extra or (bound in WILDCARDS and not extra),
        )

    def allows(self, netloc: str, *, any_host: bool | None = None) -> bool:
        """Whether ``netloc`` (a Host header: ``name[:port]``) names this server."""
        if any_host if any_host is not None else self.any_host:
            return True
        parsed = split_netloc(netloc)
        if parsed is None:
            return False
        host, port = parsed
        return any(a.host == host and a.port in (None, port) for a in self.allowed)


def parse_allowed(entry: str) -> Allowed | None:
    """An allow-list entry: ``name`` (any port), ``name:port``, or ``*`` (``None``: any host)."""
    text = entry.strip()
    if text == ANY_HOST:
        return None
    parsed = split_netloc(text, default_port=None)
    if parsed is None or not parsed[0]:
        raise ConfigError(
            f"invalid allowed host {echo_safe(entry)!r}: give a host name or address, optionally "
            "with :port (example.com, 10.0.0.5:8765, [::1]), or * for any"
        )
    return Allowed(*parsed)


def split_netloc(netloc: str, *, default_port: int | None = 80) -> tuple[str, int | None] | None:
    """``("example.com", 8765)`` of ``Example.COM.:8765``; ``None`` when it is no host[:port]."""
    if not netloc or not netloc.isascii() or any(c in netloc for c in "/?#@\\ \t"):
        return None
    try:
        parts = urlsplit("//" + netloc)
        port = parts.port
    except ValueError:
        return None
    host = (parts.hostname or "").rstrip(".")
    return (host, default_port if port is None else port) if host else None


def _bare(host: str) -> str:
    return host.strip().strip("[]").lower().rstrip(".")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class BodyTooLarge(HTTPException):
    def __init__(self) -> None:
        super().__init__(
            413, f"the body is over {MAX_BODY_BYTES:,} bytes (MAX_BODY_BYTES): send less"
        )


class Gate:
    """ASGI middleware, before anything else runs: a request whose ``Host`` does not name this
    server is answered ``421`` (``400`` without one); a body over ``MAX_BODY_BYTES`` ``413``
    (at once when its Content-Length says so, else when the reader gets past the limit). Both
    with a one-line JSON error."""

    def __init__(self, app: ASGIApp, policy: HostPolicy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        refused = self._refused(scope)
        if refused is not None:
            await refused(scope, receive, send)
            return
        received = 0

        async def limited() -> Message:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > MAX_BODY_BYTES:
                raise BodyTooLarge()
            return message

        await self.app(scope, limited, send)

    def _refused(self, scope: Scope) -> JSONResponse | None:
        headers = Headers(scope=scope)
        hosts = headers.getlist("host")
        if len(hosts) != 1:
            return _error(400, "send exactly one Host header naming this server")
        if not self.policy.allows(hosts[0]):
            return _error(
                421,
                f"this server does not answer to host {echo_safe(hosts[0])!r}: use the address "
                "it serves on, or add the name to TASKORCH_ALLOWED_HOSTS (serve --allowed-host)",
            )
        length = headers.get("content-length", "0").strip()
        if not length.isdigit() or not length.isascii():
            return _error(400, "the Content-Length header is not a number of bytes")
        if len(length) > 18 or int(length) > MAX_BODY_BYTES:
            return _error(413, BodyTooLarge().detail)
        return None


def _error(status: int, detail: str) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status)


async def same_site_json(request: Request) -> None:
    """A dependency of every route: a state-changing request must be JSON (``415``) from this
    server's own pages or a program (``403`` for another site's page)."""
    if request.method not in STATE_CHANGING:
        return
    policy: HostPolicy = request.app.state.host_policy
    if request.headers.get("sec-fetch-site", "").lower() == "cross-site":
        raise HTTPException(403, "a page of another site may not change anything here")
    origin = request.headers.get("origin")
    if origin is not None and not is_same_site(origin, request.headers.get("host", ""), policy):
        raise HTTPException(
            403,
            f"requests from {echo_safe(origin)!r} may not change anything here: only this "
            "server's own pages (or a program that sends no Origin) may",
        )
    if not is_json(request.headers.get("content-type", "")):
        raise HTTPException(
            415,
            "send the request as JSON: Content-Type: application/json with a JSON body "
            "({} when there is nothing to say)",
        )


def is_same_site(origin: str, host: str, policy: HostPolicy) -> bool:
    """Whether a page of ``origin`` is this server's own: the request's own host and port (a
    Host without a port: 80 or 443, a proxy's TLS port being one), or an allowed one."""
    try:
        parts = urlsplit(origin)
    except ValueError:
        return False
    if parts.scheme not in ("http", "https") or parts.path or not parts.netloc:
        return False  # "null" (a sandboxed or file page), or no origin at all
    default = 443 if parts.scheme == "https" else 80
    page = split_netloc(parts.netloc, default_port=default)
    if page is None:
        return False
    own = split_netloc(host, default_port=None)
    ports = (80, 443) if own is None or own[1] is None else (own[1],)
    if own is not None and own[0] == page[0] and page[1] in ports:
        return True
    return policy.allows(
        f"[{page[0]}]:{page[1]}" if ":" in page[0] else f"{page[0]}:{page[1]}", any_host=False
    )


def is_json(content_type: str) -> bool:
    """``application/json`` (or ``+json``), in UTF-8 if a charset is named."""
    message = email.message.Message()
    message["content-type"] = content_type
    if not content_type or message.get_content_maintype() != "application":
        return False
    subtype = message.get_content_subtype()
    charset = str(message.get_param("charset") or "utf-8").lower()
    return (subtype == "json" or subtype.endswith("+json")) and charset in ("utf-8", "utf8")
