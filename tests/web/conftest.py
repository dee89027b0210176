"""Fixtures for the HTTP face.

``engine`` / ``client``
    An initialised engine on a fresh SQLite database with git delivery, and an httpx client that
    calls the FastAPI app in-process (ASGI).
``serve_factory``
    ``serve_factory(home, *args, ...)`` starts ``taskorch serve`` (:class:`served.Served`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import open_engine
from taskorch.http import create_app
from taskorch.http.guard import HostPolicy
from taskorch.settings import load_settings
from web.served import Served

BASE_URL = "http://127.0.0.1:8765"
"""Where the in-process app believes it serves: its Host check answers only this (and the
loopback names on port 8765)."""
HOSTS = HostPolicy.serving("127.0.0.1", 8765)

LOCAL_AGENT = {
    "id": "sim",
    "name": "sim (simulated)",
    "type": "sim",
    "simulated": True,
    "max_concurrency": 5,
}


@pytest.fixture
async def engine(sqlite_url: str, tmp_path: Path) -> AsyncIterator[OrchestrationEngine]:
    settings = load_settings(database_url=sqlite_url, taskorch_home=tmp_path / "home")
    async with open_engine(settings) as running:
        yield running


@pytest.fixture
async def client(engine: OrchestrationEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, local_agents=[LOCAL_AGENT], hosts=HOSTS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.fixture
def serve_factory() -> Iterator[Callable[..., Served]]:
    """``serve_factory(home, *args, ...)``: a running ``taskorch serve``; killed after the test
    if the test did not stop it."""
    started: list[Served] = []

    def factory(home: Path, *args: str, **kwargs: Any) -> Served:
        served = Served.start(home, *args, **kwargs)
        started.append(served)
        return served

    yield factory
    for served in started:
        served.kill()
