"""Who may call the server: loopback by default; beyond it, the token on every request."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from taskorch.domain.errors import ConfigError
from taskorch.engine import OrchestrationEngine
from taskorch.http import create_app
from taskorch.http.auth import check_binding, is_loopback
from web.conftest import BASE_URL, HOSTS

TOKEN = "s3cret-token"


@pytest.fixture
async def guarded(engine: OrchestrationEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, token=TOKEN, hosts=HOSTS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def test_loopback_needs_no_token_anything_else_does() -> None:
    for host in ("127.0.0.1", "::1", "localhost", "127.0.0.5"):
        assert is_loopback(host)
        check_binding(host, None)
    for host in ("0.0.0.0", "::", "192.168.1.10", "example.com"):
        assert not is_loopback(host)
        with pytest.raises(ConfigError, match="TASKORCH_API_TOKEN"):
            check_binding(host, None)
        check_binding(host, TOKEN)


def test_serve_refuses_a_public_address_without_token(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "TASKORCH_API_TOKEN"}
    result = subprocess.run(
        [sys.executable, "-m", "taskorch", "--home", str(tmp_path), "serve", "--host", "0.0.0.0"],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        "error: refusing to bind 0.0.0.0 without TASKORCH_API_TOKEN: set a token (every request "
        "must then send `Authorization: Bearer <token>`) or bind 127.0.0.1"
    ]


async def test_every_request_needs_the_token(guarded: httpx.AsyncClient) -> None:
    for path in ("/api/v1/health", "/api/v1/tasks", "/metrics", "/openapi.json", "/static/app.js"):
        refused = await guarded.get(path)
        assert refused.status_code == 401, path
        assert refused.headers["www-authenticate"] == "Bearer"
    wrong = await guarded.get("/api/v1/health", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    assert TOKEN not in wrong.text
    ok = await guarded.get("/api/v1/health", headers={"Authorization": f"Bearer {TOKEN}"})
    assert ok.status_code == 200
    posted = await guarded.post(
        "/api/v1/tasks", json={"title": "x"}, headers={"Authorization": f"Bearer {TOKEN}"}
    )
    assert posted.status_code == 201


async def test_browser_signs_in_with_a_cookie(guarded: httpx.AsyncClient) -> None:
    page = await guarded.get("/", headers={"Accept": "text/html"})
    assert page.status_code == 401
    assert "API token" in page.text
    guarded.cookies.set("taskorch_token", TOKEN)
    assert (await guarded.get("/", headers={"Accept": "text/html"})).status_code == 200
    assert (await guarded.get("/api/v1/workflows")).status_code == 200
