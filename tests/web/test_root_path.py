"""``serve --root-path``: behind a proxy that serves taskorch under a path prefix, whether the
proxy strips the prefix or keeps it, the dashboard, its scripts, API calls and links all resolve
under the prefix (every path in the page is relative to a ``<base>`` the server writes)."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import httpx
import pytest

from taskorch.domain.errors import ConfigError
from taskorch.engine import OrchestrationEngine
from taskorch.http import create_app
from taskorch.http.app import check_root_path
from web.conftest import BASE_URL, HOSTS, LOCAL_AGENT

PREFIX = "/tools/taskorch"


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.base: str | None = None
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "base":
            self.base = found["href"]
        for name in ("href", "src"):
            if found.get(name) and tag != "base":
                self.links.append(str(found[name]))


def _read(page: str) -> _Links:
    parser = _Links()
    parser.feed(page)
    return parser


@pytest.fixture
async def prefixed(engine: OrchestrationEngine) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(engine, local_agents=[LOCAL_AGENT], hosts=HOSTS, root_path=PREFIX + "/")
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


@pytest.mark.parametrize("kept", ["", PREFIX], ids=["proxy-strips", "proxy-keeps"])
async def test_the_dashboard_resolves_under_the_prefix(
    prefixed: httpx.AsyncClient, kept: str
) -> None:
    page = await prefixed.get(f"{kept}/")
    assert page.status_code == 200
    links = _read(page.text)
    assert links.base == f"{PREFIX}/"
    # What the browser asks for: each link resolved against the base, under the prefix.
    base_url = urljoin(BASE_URL, links.base)
    resolved = [urljoin(base_url, link) for link in links.links]
    assert resolved
    assert all(urlsplit(u).path.startswith(f"{PREFIX}/") for u in resolved)
    for url in resolved:
        path = urlsplit(url).path.removeprefix(PREFIX if not kept else "")
        assert (await prefixed.get(path)).status_code == 200, url

    script = (await prefixed.get(f"{kept}/static/app.js")).text
    # No absolute path left in the script: it would leave the prefix.
    assert not re.search(r"""["`]/(api|static|workflows)\b""", script)
    task = await prefixed.post(f"{kept}/api/v1/tasks", json={"title": "Fix bug in app.py line 3"})
    assert task.status_code == 201, task.text
    assert (await prefixed.get(f"{kept}/api/v1/tasks")).json()[0]["title"].startswith("Fix")
    assert (await prefixed.get(f"{kept}/api/v1/health")).json()["status"] == "ok"
    workflow = await prefixed.get(f"{kept}/workflows/wf-0123")
    assert workflow.status_code == 200
    assert _read(workflow.text).base == f"{PREFIX}/"


async def test_the_bare_prefix_and_the_openapi_document(prefixed: httpx.AsyncClient) -> None:
    bare = await prefixed.get(PREFIX)
    assert bare.status_code == 307
    assert urlsplit(bare.headers["location"]).path == f"{PREFIX}/"
    for kept in ("", PREFIX):
        document = (await prefixed.get(f"{kept}/openapi.json")).json()
        assert document["servers"] == [{"url": PREFIX}]


async def test_without_a_prefix_the_base_is_the_root(client: httpx.AsyncClient) -> None:
    assert _read((await client.get("/")).text).base == "/"
    assert _read((await client.get("/workflows/wf-1")).text).base == "/"


@pytest.mark.parametrize(
    ("given", "expected"), [(None, ""), ("", ""), ("/", ""), ("/a/b/", "/a/b"), (" /x ", "/x")]
)
def test_root_path_is_normalised(given: str | None, expected: str) -> None:
    assert check_root_path(given) == expected


@pytest.mark.parametrize(
    "given", ["taskorch", "/a b", "/a?x=1", "//evil.example", "/a/../b", "/api", "/static/x"]
)
def test_a_bad_root_path_is_one_line(given: str) -> None:
    with pytest.raises(ConfigError, match="invalid root path"):
        check_root_path(given)
