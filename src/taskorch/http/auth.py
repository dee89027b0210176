"""Who may talk to the server: anyone on this machine by default (it binds to 127.0.0.1), and with
``TASKORCH_API_TOKEN`` set only those who present it, on every request.

The token travels as ``Authorization: Bearer <token>``. A browser cannot put that header on a page
load or an ``EventSource``, so the dashboard's sign-in page stores the same token in a same-site
cookie (``taskorch_token``) that is accepted too.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Awaitable, Callable
from urllib.parse import unquote

from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response

from taskorch.domain.errors import ConfigError

COOKIE = "taskorch_token"
LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "ip6-localhost"})


def is_loopback(host: str) -> bool:
    if host.lower() in LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def check_binding(host: str, token: str | None) -> None:
    """Refuse to listen beyond this machine without a token (blanks are none)."""
    if not is_loopback(host) and not usable(token):
        raise ConfigError(
            f"refusing to bind {host} without TASKORCH_API_TOKEN: set a token (every request must "
            "then send `Authorization: Bearer <token>`) or bind 127.0.0.1"
        )


def usable(token: str | None) -> str | None:
    """``token`` without surrounding blanks; ``None`` when nothing is left (a blank token, header
    or cookie is no token at all)."""
    return (token or "").strip() or None


def presented_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() == "bearer" and usable(value):
        return usable(value)
    return usable(unquote(request.cookies.get(COOKIE, "")))


def token_matches(presented: str | None, token: str) -> bool:
    wanted, given = usable(token), usable(presented)
    return (
        wanted is not None
        and given is not None
        and hmac.compare_digest(given.encode(), wanted.encode())
    )


Next = Callable[[Request], Awaitable[Response]]


def bearer_middleware(token: str) -> Callable[[Request, Next], Awaitable[Response]]:
    """An HTTP middleware that answers 401 to every request without the token."""

    async def middleware(request: Request, call_next: Next) -> Response:
        if token_matches(presented_token(request), token):
            return await call_next(request)
        if _wants_page(request):
            return HTMLResponse(SIGN_IN_PAGE, status_code=401)
        return JSONResponse(
            {"detail": "missing or wrong token: send `Authorization: Bearer <TASKORCH_API_TOKEN>`"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    return middleware


def _wants_page(request: Request) -> bool:
    return request.method == "GET" and "text/html" in request.headers.get("accept", "")


SIGN_IN_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>taskorch · sign in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="icon" href="data:,">
<style>
body{font:15px/1.5 system-ui,sans-serif;background:#f6f7f9;color:#1f2933;display:grid;
place-items:center;min-height:90vh;margin:0}
form{background:#fff;border:1px solid #e1e5ea;border-radius:10px;padding:28px;width:340px}
h1{font-size:18px;margin:0 0 12px}input{width:100%;box-sizing:border-box;padding:8px;
border:1px solid #c9d1da;border-radius:6px;margin:8px 0 14px}button{padding:8px 16px;border:0;
border-radius:6px;background:#2f6fde;color:#fff;cursor:pointer}
</style></head><body>
<form id="f"><h1>taskorch</h1><label for="t">API token (TASKORCH_API_TOKEN)</label>
<input id="t" type="password" autocomplete="current-password" required>
<button>Sign in</button></form>
<script>
document.getElementById("f").addEventListener("submit", function (e) {
  e.preventDefault();
  var v = encodeURIComponent(document.getElementById("t").value);
  document.cookie = "taskorch_token=" + v + "; path=/; SameSite=Strict";
  location.reload();
});
</script></body></html>
"""
