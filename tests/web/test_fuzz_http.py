"""Every operation of the API's OpenAPI document fuzzed (in-process) with hostile
requests that schemathesis does not make: path and query values with lone surrogates (encoded),
NUL and other controls, ids beyond int64, ``1e999`` and ``NaN``; bodies that are JSON with such
values in every field (and unknown ones), raw bytes, JSON nested past any parser's depth, or over
MAX_BODY_BYTES; content types a page of another site could send. Every answer comes in time, is
not a 5xx, and an error is JSON with a one-line message.

test_schemathesis fuzzes the same document with the data it describes (and data it does not);
this one goes below it, to encodings and sizes.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest
from anyio.from_thread import BlockingPortal, start_blocking_portal
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from taskorch.domain.limits import MAX_BODY_BYTES, MAX_ID
from taskorch.engine import OrchestrationEngine
from taskorch.engine.setup import open_engine
from taskorch.http import create_app
from taskorch.settings import load_settings
from web.conftest import BASE_URL, HOSTS

EXAMPLES_PER_OPERATION = int(os.environ.get("TASKORCH_FUZZ_EXAMPLES", "40"))
"""More for a longer run: ``TASKORCH_FUZZ_EXAMPLES=500 pytest -s tests/web/test_fuzz_http.py``."""
ANSWER_S = 60.0
DOCUMENT = create_app(OrchestrationEngine(load_settings())).openapi()
OPERATIONS = [
    (method.upper(), path, operation)
    for path, item in DOCUMENT["paths"].items()
    for method, operation in item.items()
]
FIGURES: Counter[str] = Counter()

NASTY = ["\ud800", "\udfff", "\x00", "\x1b", "\x85", "\u202e", "\n", " ", "a", "é", "😀", "/", "%"]
TEXT = st.one_of(
    st.text(alphabet=st.sampled_from(NASTY), min_size=1, max_size=20),
    st.text(max_size=30),
    st.sampled_from(
        [str(MAX_ID + 1), "9" * 30, "task-" + "9" * 25, "1e999", "NaN", "-1", "0", "wf-x", ""]
    ),
)
NUMBER = st.one_of(
    st.sampled_from([0, -1, MAX_ID, MAX_ID + 1, 10**30, math.inf, -math.inf, math.nan]),
    st.integers(),
    st.floats(),
)
VALUE = st.recursive(
    st.one_of(TEXT, NUMBER, st.booleans(), st.none()),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
CONTENT_TYPES = st.one_of(
    st.just("application/json"),
    st.sampled_from(
        [
            None,
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data; boundary=x",
            "application/json; charset=utf-16",
            "application/merge-patch+json",
        ]
    ),
)


def encoded(text: str) -> str:
    """``text`` percent-encoded as UTF-8, a lone surrogate too (as a browser would not)."""
    return quote(text.encode("utf-8", "surrogatepass"), safe="")


def bodies(operation: dict[str, Any]) -> st.SearchStrategy[bytes | None]:
    schema_ref = (
        operation.get("requestBody", {})
        .get("content", {})
        .get("application/json", {})
        .get("schema", {})
        .get("$ref", "")
    )
    schema = DOCUMENT["components"]["schemas"].get(schema_ref.rsplit("/", 1)[-1], {})
    fields = sorted(schema.get("properties", {})) or ["x"]
    document = st.dictionaries(st.one_of(st.sampled_from(fields), st.text(max_size=6)), VALUE)
    return st.one_of(
        document.map(lambda d: json.dumps(d).encode()),  # NaN, Infinity and \ud800 as written
        st.binary(max_size=100),
        st.sampled_from([1_000, 100_000]).map(lambda n: b"[" * n + b"]" * n),
        st.just(b'{"title": "' + b"x" * MAX_BODY_BYTES + b'"}'),
        st.none(),
    )


def requests_for(method: str, path: str, operation: dict[str, Any]) -> st.SearchStrategy[Any]:
    params = operation.get("parameters", [])
    in_path = [p["name"] for p in params if p["in"] == "path"]
    in_query = [p["name"] for p in params if p["in"] == "query"]
    return st.fixed_dictionaries(
        {
            "path": st.fixed_dictionaries({name: TEXT.map(encoded) for name in in_path}),
            "query": st.dictionaries(st.sampled_from(in_query or ["x"]), TEXT.map(encoded)),
            "body": bodies(operation) if method != "GET" else st.none(),
            "content_type": CONTENT_TYPES,
            "origin": st.one_of(st.none(), st.sampled_from(["null", "http://attacker.example"])),
        }
    )


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[BlockingPortal, Any]]:
    """The app on its own event loop (in a thread, for hypothesis's sake) and a client of it:
    everything but the daemon, which would run the workflows of the tasks created meanwhile."""
    home: Path = tmp_path_factory.mktemp("fuzz-http") / "home"
    settings_ = load_settings(database_url=f"sqlite:///{home}/taskorch.db", taskorch_home=home)
    with start_blocking_portal() as portal:
        engine = portal.wrap_async_context_manager(open_engine(settings_))
        with engine as running:
            # Stopping from the start: an event stream ends after its first lines (the ASGI
            # transport reads a whole answer before it returns it).
            stopped = asyncio.Event()
            stopped.set()
            fuzzed = create_app(running, hosts=HOSTS, stopping=stopped)
            transport = httpx.ASGITransport(app=fuzzed)
            client = httpx.AsyncClient(transport=transport, base_url=BASE_URL, timeout=ANSWER_S)
            with portal.wrap_async_context_manager(client) as http:
                yield portal, http
    print(f"\nHTTP fuzz: {dict(sorted(FIGURES.items()))}")


@pytest.mark.parametrize(("method", "path", "operation"), OPERATIONS, ids=lambda v: str(v)[:40])
def test_no_5xx_and_json_errors(
    app: tuple[BlockingPortal, httpx.AsyncClient], method: str, path: str, operation: dict[str, Any]
) -> None:
    portal, http = app

    async def answer(url: str, body: bytes | None, headers: dict[str, str]) -> httpx.Response:
        with anyio.fail_after(ANSWER_S):  # no hang
            return await http.request(method, url, content=body, headers=headers)

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(request=requests_for(method, path, operation))
    def send(request: dict[str, Any]) -> None:
        url = re.sub(r"\{(\w+)\}", lambda m: request["path"][m.group(1)], path)
        query = "&".join(f"{k}={v}" for k, v in request["query"].items())
        headers = {"Content-Type": request["content_type"]} if request["content_type"] else {}
        if request["origin"]:
            headers["Origin"] = request["origin"]
        FIGURES["requests"] += 1
        try:
            response = portal.call(
                answer, url + (f"?{query}" if query else ""), request["body"], headers
            )
        except TimeoutError:
            FIGURES["hangs"] += 1
            raise
        except Exception:  # the app raised: a 500 with a traceback in the server's log
            FIGURES["tracebacks"] += 1
            raise
        FIGURES[f"{response.status_code // 100}xx"] += 1
        FIGURES["5xx"] += 0
        FIGURES["tracebacks"] += 0
        FIGURES["hangs"] += 0
        assert response.status_code < 500, (url, request, response.text[:300])
        if response.status_code >= 400:
            assert response.headers["content-type"] == "application/json", response.text[:200]
            detail = response.json()["detail"]
            for message in [detail] if isinstance(detail, str) else [d["msg"] for d in detail]:
                assert "\n" not in message, message
                assert "Traceback" not in message, message

    send()
