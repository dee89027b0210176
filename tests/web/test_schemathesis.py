"""The API fuzzed against its own OpenAPI document by schemathesis, on a live ``taskorch serve``:
no server errors, and every response conforms to the document (status codes, content types,
bodies). Tasks it creates are real: the daemon carries them on (one at a time) meanwhile.

The document is the app's own (``app.openapi()``, no database needed), taken at import time
because schemathesis parametrizes the tests then; a test checks that the live server serves the
same document. The event stream (``/api/v1/events``) is left out: it never ends by design;
test_serve covers it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.core.failures import AcceptedNegativeData, FailureGroup
from schemathesis.openapi.checks import RejectedPositiveData

from taskorch.domain.states import WorkflowState
from taskorch.engine import OrchestrationEngine
from taskorch.http import create_app
from taskorch.settings import load_settings
from web.served import Served

MAX_EXAMPLES = 60
FIGURES: Counter[str] = Counter({"5xx": 0})


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    home: Path = tmp_path_factory.mktemp("fuzz") / "home"
    served = Served.start(home, "--max-workflows", "1", sim_duration_s=0.0)
    try:
        yield served
    finally:
        code, _, err = served.stop()
        print(f"\nschemathesis: {dict(sorted(FIGURES.items()))}")
        assert code == 0, err
        assert "Traceback" not in err


DOCUMENT = create_app(OrchestrationEngine(load_settings())).openapi()
schema = schemathesis.openapi.from_dict(DOCUMENT)


@schema.exclude(path="/api/v1/events").parametrize()
@settings(
    max_examples=MAX_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_no_server_errors_and_responses_conform(
    case: schemathesis.Case[Any], fuzzed_server: Served
) -> None:
    response = case.call(base_url=fuzzed_server.url)
    FIGURES["cases"] += 1
    FIGURES[f"{response.status_code // 100}xx"] += 1
    try:
        case.validate_response(response)
    except FailureGroup as group:
        left = [f for f in group.exceptions if not _checked_beyond_the_schema(f, response)]
        if left:
            raise


SEMANTIC_FIELDS = {
    ("body", "dependencies"),
    ("body", "text"),
    ("body", "repo"),
    ("body", "base_branch"),
}
"""Fields checked beyond what a schema can say: a dependency must name an existing task, a
requirement must contain something to plan, a repository must be a git repository this server
reaches, a base branch a valid branch name. A 422 naming one of them is a correct answer to
schema-valid data."""


def _checked_beyond_the_schema(failure: Exception, response: schemathesis.Response) -> bool:
    if isinstance(failure, RejectedPositiveData | AcceptedNegativeData) and (
        response.status_code == 413
    ):
        # Text can be over the body limit in bytes before any schema check: 100,000 characters
        # sent as JSON escapes of astral characters are 1.2 MB. The 413 says so (documented),
        # and refuses too-long text as well as a 422 would.
        return "MAX_BODY_BYTES" in response.text
    if not isinstance(failure, RejectedPositiveData) or response.status_code != 422:
        return False
    detail = response.json()["detail"]
    loc = tuple(detail[0]["loc"])
    # FastAPI writes the bound of a task id (MAX_ID, 2**63 - 1) as a float in the document,
    # 2**63: ids up to that, refused, are "valid" to the fuzzer.
    too_large = loc[:2] == ("body", "dependencies") and detail[0]["type"] == "less_than_equal"
    return too_large or (loc in SEMANTIC_FIELDS and detail[0]["type"] == "value_error")


def test_the_server_serves_this_document(fuzzed_server: Served) -> None:
    assert fuzzed_server.get("/openapi.json") == DOCUMENT
    states = DOCUMENT["components"]["schemas"]["WorkflowState"]["enum"]
    assert states == [s.value for s in WorkflowState]
