"""The HTTP API against bad input and other sites' pages, in-process: every malformed, huge,
binary or cross-site request is a 4xx with a one-line JSON error (naming the field where there is
one), never a 500; a Host that is not this server is 421; a state change is JSON from this site
or nothing."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from taskorch.domain.errors import ConfigError
from taskorch.domain.limits import MAX_BODY_BYTES, MAX_ID, MAX_TEXT_CHARS, MAX_TITLE_CHARS
from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import open_engine
from taskorch.http import create_app
from taskorch.http.auth import token_matches, usable
from taskorch.http.guard import HostPolicy, is_same_site, parse_allowed
from taskorch.settings import load_settings
from web.conftest import BASE_URL, HOSTS
from web.served import Served

JSON = {"Content-Type": "application/json"}
TASKS = "/api/v1/tasks"
PARSE = "/api/v1/parse"

FIELD_CASES: list[tuple[str, bytes, list[Any]]] = [
    # (path, body, where the 422 points); the ones marked 500 answered 500 before
    (TASKS, b'{"title": "\\ud800"}', ["body", "title"]),  # 500
    (TASKS, b'{"title": "x", "description": "a\\udfffb"}', ["body", "description"]),  # 500
    (TASKS, b'{"title": "x", "repo": "\\ud800"}', ["body", "repo"]),  # 500
    (TASKS, b'{"title": "x", "base_branch": "\\udbff"}', ["body", "base_branch"]),
    (TASKS, b'{"title": "x", "dependencies": [1e999]}', ["body", "dependencies", 0]),  # 500
    (TASKS, b'{"title": "x", "dependencies": [NaN]}', ["body", "dependencies", 0]),  # 500
    (TASKS, b'{"title": "x", "dependencies": [-Infinity]}', ["body", "dependencies", 0]),  # 500
    (TASKS, b'{"title": "x", "priority": 1e999}', ["body", "priority"]),  # 500
    (TASKS, b'{"title": "x", "dependencies": [%d]}' % (MAX_ID + 1), ["body", "dependencies", 0]),
    (TASKS, b'{"title": "a\\u0000b"}', ["body", "title"]),  # stored a NUL before
    (TASKS, b'{"title": "a\\u001b[2Jb"}', ["body", "title"]),
    (TASKS, b'{"title": "two\\nlines"}', ["body", "title"]),
    (TASKS, b'{"title": "%s"}' % (b"t" * (MAX_TITLE_CHARS + 1)), ["body", "title"]),
    (TASKS, b'{"title": "x", "\\ud800": 1}', ["body"]),  # 500; a key pydantic cannot read
    (PARSE, b'{"text": "\\ud800 add login"}', ["body", "text"]),  # 500
    (PARSE, b'{"text": "add login", "context": "\\udfff"}', ["body", "context"]),  # 500
    (PARSE, b'{"text": "%s"}' % (b"r" * (MAX_TEXT_CHARS + 1)), ["body", "text"]),
    ("/api/v1/workflows/wf-x/reject", b'{"reason": "\\ud800"}', ["body", "reason"]),  # 500
    ("/api/v1/workflows/wf-x/cancel", b'{"force": NaN}', ["body", "force"]),
]


@pytest.fixture
async def raw(engine: OrchestrationEngine) -> AsyncIterator[httpx.AsyncClient]:
    """A client that gets the app's 500 answer instead of its exception."""
    app = create_app(engine, hosts=HOSTS)
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        yield http


def one_line_json(response: httpx.Response) -> Any:
    assert response.headers["content-type"] == "application/json", response.text[:200]
    detail = response.json()["detail"]
    messages = [detail] if isinstance(detail, str) else [d["msg"] for d in detail]
    for message in messages:
        assert "\n" not in message
        assert "Traceback" not in message
        assert len(message) < 1000
    return detail


@pytest.mark.parametrize(("path", "body", "loc"), FIELD_CASES)
async def test_bad_text_and_numbers_are_422_naming_the_field(
    raw: httpx.AsyncClient, path: str, body: bytes, loc: list[Any]
) -> None:
    response = await raw.post(path, content=body, headers=JSON)
    assert response.status_code == 422, response.text[:300]
    detail = one_line_json(response)
    assert detail[0]["loc"] == loc
    assert "input" not in detail[0]  # the client's own text is never echoed whole


async def test_bodies_that_are_not_json_text(raw: httpx.AsyncClient) -> None:
    cases = [
        b'{"title": "\xff\xfe"}',  # not UTF-8
        '{"title": "x"}'.encode("utf-16"),  # json.loads would have guessed UTF-16
        b'{"title": "a\x00b"}',  # a raw NUL in a string
        b"[" * 100_000 + b"]" * 100_000,  # nested past any parser's depth
        b'{"title": "x"',  # cut short
        b"",
    ]
    for body in cases:
        response = await raw.post(TASKS, content=body, headers=JSON)
        assert response.status_code == 422, (body[:40], response.text[:200])
        assert one_line_json(response)[0]["loc"][0] == "body"
    assert (await raw.get(TASKS)).json() == []  # nothing was stored


async def test_ids_and_numbers_beyond_int64_in_path_and_query(raw: httpx.AsyncClient) -> None:
    for path in (
        f"/api/v1/tasks/{MAX_ID + 1}",
        "/api/v1/tasks/task-99999999999999999999",
        "/api/v1/tasks/%ff%fe",
        "/api/v1/tasks/%00",
        "/api/v1/workflows/%ed%a0%80",  # a surrogate, encoded
        "/api/v1/workflows?limit=99999999999999999999999",
        "/api/v1/workflows?limit=1e999",
        "/api/v1/workflows?limit=NaN",
        "/api/v1/tasks?status=%00",
        "/api/v1/events?max_events=1e999",
    ):
        response = await raw.get(path)
        assert response.status_code in (404, 422), (path, response.text[:200])
        one_line_json(response)


async def test_a_body_over_the_limit_is_413(raw: httpx.AsyncClient) -> None:
    title = "x" * MAX_BODY_BYTES
    declared = await raw.post(TASKS, json={"title": title})
    assert declared.status_code == 413
    assert "MAX_BODY_BYTES" in one_line_json(declared)

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"title": "'
        for _ in range(20):
            yield b"y" * 65536
        yield b'"}'

    streamed = await raw.post(TASKS, content=chunks(), headers=JSON)
    assert streamed.status_code == 413
    one_line_json(streamed)


async def test_state_changes_are_json_only(raw: httpx.AsyncClient) -> None:
    """A page of another site can POST a form, text or nothing without asking the server first;
    each is refused before anything runs."""
    created = await raw.post(TASKS, json={"title": "Add login"})
    assert created.status_code == 201
    refused = [
        ("/api/v1/workflows/wf-x/cancel", b"", {}),  # was 404 after looking the workflow up
        ("/api/v1/workflows/wf-x/approve", b"", {}),
        (TASKS, b"title=x", {"Content-Type": "application/x-www-form-urlencoded"}),
        (TASKS, b'{"title": "x"}', {"Content-Type": "text/plain"}),
        (TASKS, b'{"title": "x"}', {"Content-Type": "multipart/form-data; boundary=x"}),
        (TASKS, b'{"title": "x"}', {"Content-Type": "application/json; charset=latin-1"}),
        (PARSE, b'{"text": "x"}', {}),
    ]
    for path, body, headers in refused:
        response = await raw.post(path, content=body, headers=headers)
        assert response.status_code == 415, (path, headers, response.text)
        assert "application/json" in one_line_json(response)
    assert [t["id"] for t in (await raw.get(TASKS)).json()] == [created.json()["id"]]


async def test_other_sites_pages_may_not_change_anything(raw: httpx.AsyncClient) -> None:
    for headers in (
        {"Origin": "http://attacker.example"},
        {"Origin": "http://127.0.0.1:9999"},  # another port is another origin
        {"Origin": "null"},  # a sandboxed frame or a file
        {"Sec-Fetch-Site": "cross-site"},
    ):
        response = await raw.post(TASKS, json={"title": "x"}, headers=headers)
        assert response.status_code == 403, headers
        one_line_json(response)
    for origin in (BASE_URL, "http://localhost:8765"):
        ok = await raw.post(TASKS, json={"title": "x"}, headers={"Origin": origin})
        assert ok.status_code == 201, origin
    assert (await raw.get(TASKS, headers={"Origin": "http://attacker.example"})).status_code == 200


async def test_a_host_that_is_not_this_server_is_421(raw: httpx.AsyncClient) -> None:
    """DNS rebinding: a page of attacker.example whose name now points at 127.0.0.1."""
    for host in ("attacker.example", "attacker.example:8765", "127.0.0.1:9999", "127.0.0.1"):
        response = await raw.get("/api/v1/tasks", headers={"Host": host})
        assert response.status_code == 421, host
        assert "TASKORCH_ALLOWED_HOSTS" in one_line_json(response)
        posted = await raw.post(TASKS, json={"title": "x"}, headers={"Host": host})
        assert posted.status_code == 421
    for host in ("127.0.0.1:8765", "localhost:8765", "LOCALHOST:8765", "[::1]:8765"):
        assert (await raw.get("/api/v1/health", headers={"Host": host})).status_code == 200
    assert (await raw.get("/")).status_code == 200


def test_host_policy() -> None:
    loopback = HostPolicy.serving("127.0.0.1", 8765, ["proxy.example", "tls.example:443"])
    assert loopback.allows("proxy.example:1234")
    assert loopback.allows("Proxy.Example")
    assert loopback.allows("tls.example:443")
    assert not loopback.allows("tls.example")
    assert loopback.allows("[::1]:8765")
    assert loopback.allows("localhost.:8765")
    for bad in ("", "evil.example", "127.0.0.1:8765@evil", "a b", "localhost:99999", "[::1"):
        assert not loopback.allows(bad), bad
    # Every address: the token guards each request; any host unless an allow-list is given.
    everywhere = HostPolicy.serving("0.0.0.0", 8765)
    assert everywhere.allows("192.168.1.10:8765")
    assert everywhere.allows("anything")
    listed = HostPolicy.serving("0.0.0.0", 8765, ["app.example"])
    assert listed.allows("app.example")
    assert listed.allows("localhost:8765")
    assert not listed.allows("other.example")
    assert HostPolicy.serving("127.0.0.1", 8765, ["*"]).allows("anything")
    one = HostPolicy.serving("192.168.1.10", 8765)
    assert one.allows("192.168.1.10:8765")
    assert not one.allows("localhost:8765")
    for bad in ("http://x", "a b", "x:port", ""):
        with pytest.raises(ConfigError, match="invalid allowed host"):
            parse_allowed(bad)


def test_allowed_hosts_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TASKORCH_ALLOWED_HOSTS", " proxy.example, ,tls.example:443 ")
    assert load_settings().allowed_hosts == ("proxy.example", "tls.example:443")
    monkeypatch.setenv("TASKORCH_ALLOWED_HOSTS", "  ")
    with pytest.raises(ConfigError, match="TASKORCH_ALLOWED_HOSTS"):
        load_settings()


async def test_a_blank_token_cookie_or_header_is_none(engine: OrchestrationEngine) -> None:
    assert usable("   ") is None
    assert usable(" x ") == "x"
    assert usable(None) is None
    assert not token_matches("   ", "   ")
    assert not token_matches("", "")
    with pytest.raises(ConfigError, match="blank"):
        create_app(engine, token="   ", hosts=HOSTS)  # it let a cookie of %20%20%20 in
    app = create_app(engine, token="s3cret-token", hosts=HOSTS)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
        for headers in (
            {"Cookie": "taskorch_token=%20%20%20"},
            {"Authorization": "Bearer    "},
            {"Authorization": "Bearer", "Cookie": "taskorch_token="},
        ):
            assert (await http.get(TASKS, headers=headers)).status_code == 401, headers
        padded = {"Authorization": "Bearer  s3cret-token "}
        assert (await http.get(TASKS, headers=padded)).status_code == 200


async def test_an_unexpected_error_is_one_line(
    raw: httpx.AsyncClient, engine: OrchestrationEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The backstop: a bug answers 500 with one line, not a page or a closed connection."""

    async def broken(**_: Any) -> Any:
        raise RuntimeError("line one\nline two")

    monkeypatch.setattr(engine, "list_tasks", broken)
    response = await raw.get(TASKS)
    assert response.status_code == 500
    assert (
        one_line_json(response) == "internal error (RuntimeError); the server log has the details"
    )


def test_serve_answers_its_own_and_the_allowed_hosts_only(
    serve_factory: Any, tmp_path: Path
) -> None:
    served: Served = serve_factory(tmp_path / "home", "--allowed-host", "proxy.example")
    port = served.url.rsplit(":", 1)[1]
    for host, status in (
        (f"127.0.0.1:{port}", 200),
        (f"localhost:{port}", 200),
        ("proxy.example", 200),
        ("attacker.example", 421),
        (f"attacker.example:{port}", 421),
    ):
        response = httpx.get(served.url + "/api/v1/tasks", headers={"Host": host}, timeout=30)
        assert response.status_code == status, host
    cancel = httpx.post(served.url + "/api/v1/workflows/wf-x/cancel", timeout=30)
    assert cancel.status_code == 415
    code, _, err = served.stop()
    assert code == 0, err

    env = {k: v for k, v in os.environ.items() if not k.startswith(("TASKORCH_", "API_"))}
    refused = subprocess.run(
        [
            sys.executable,
            "-m",
            "taskorch",
            "--home",
            str(tmp_path / "home"),
            "serve",
            "--port",
            "0",
            "--allowed-host",
            "http://proxy.example/",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert refused.returncode == 1
    assert refused.stderr.strip().splitlines() == [
        "error: invalid allowed host 'http://proxy.example/': give a host name or address, "
        "optionally with :port (example.com, 10.0.0.5:8765, [::1]), or * for any"
    ]


async def test_a_path_that_is_not_utf8_is_answered_escaped(tmp_path: Path) -> None:
    """A data folder whose name has a byte that is not UTF-8 (it decodes to a lone surrogate):
    the health answer failed to serialise (500); now the byte is shown as an escape."""
    home = tmp_path / os.fsdecode(b"home\xff")
    settings = load_settings(database_url=f"sqlite:///{home}/taskorch.db", taskorch_home=home)
    async with open_engine(settings) as engine:
        app = create_app(engine, hosts=HOSTS)
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url=BASE_URL) as http:
            health = await http.get("/api/v1/health")
    assert health.status_code == 200, health.text
    assert "home\\udcff" in health.json()["components"]["database"]["info"]["location"]


async def test_blank_text_is_refused_in_words(raw: httpx.AsyncClient) -> None:
    """Not with the regex of the document (which says the same for clients)."""
    for path, body, field in (
        (TASKS, {"title": " \t "}, "title"),
        (PARSE, {"text": " \n "}, "text"),
        ("/api/v1/workflows/wf-x/reject", {"reason": "  "}, "reason"),
    ):
        response = await raw.post(path, json=body)
        assert response.status_code == 422
        assert one_line_json(response) == [
            {
                "type": "text_blank",
                "loc": ["body", field],
                "msg": f"{field} is empty: write something in it",
            }
        ]


def test_own_pages_behind_a_tls_proxy_may_change_things() -> None:
    """A proxy that serves https://taskorch.example and forwards its Host without a port."""
    policy = HostPolicy.serving("127.0.0.1", 8765, ["*"])
    assert is_same_site("https://taskorch.example", "taskorch.example", policy)
    assert is_same_site("http://taskorch.example", "taskorch.example", policy)
    assert not is_same_site("http://taskorch.example:3000", "taskorch.example", policy)
    assert not is_same_site("https://attacker.example", "taskorch.example", policy)
    assert not is_same_site("http://[::1]:8765/x", "[::1]:8765", policy)  # an origin has no path
    listed = HostPolicy.serving("127.0.0.1", 8765, ["taskorch.example"])
    assert is_same_site("https://taskorch.example", "127.0.0.1:8765", listed)  # Host rewritten
    assert is_same_site("http://[::1]:8765", "127.0.0.1:8765", listed)
