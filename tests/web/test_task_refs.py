"""Task ids as users type them: ``42``, taskorch's ``task-42`` and the specification's
``task_42``, everywhere a task id is read."""

from __future__ import annotations

import httpx
import pytest

from taskorch.domain.errors import InputError
from taskorch.domain.models import parse_task_ref


@pytest.mark.parametrize(
    "typed", [42, "42", "task-42", "task_42", " TASK_42 ", "Task-042", "task_00000000000042"]
)
def test_every_spelling_names_the_same_task(typed: str | int) -> None:
    assert parse_task_ref(typed) == 42


@pytest.mark.parametrize("typed", ["task:42", "task__42", "tasks_42", "task_", "_42", "task-4x"])
def test_other_spellings_are_refused_with_the_accepted_ones(typed: str) -> None:
    with pytest.raises(InputError, match="use a number such as 42, task-42 or task_42"):
        parse_task_ref(typed)


async def test_the_api_takes_the_specification_spelling(client: httpx.AsyncClient) -> None:
    created = (await client.post("/api/v1/tasks", json={"title": "Fix bug in a.py line 1"})).json()
    for spelling in (f"task_{created['id']}", f"task-{created['id']}", str(created["id"])):
        shown = await client.get(f"/api/v1/tasks/{spelling}")
        assert shown.status_code == 200, spelling
        assert shown.json()["id"] == created["id"]
