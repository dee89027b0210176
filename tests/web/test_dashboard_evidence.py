"""The dashboard's evidence in headless Chromium: a subtask card opens the panel of its attempts
with the agent's output growing while it runs, then the finished attempt's figures and diff; the
workflow page shows spent vs budget; the list shows a pending task and fits a 390 px screen.

The agent is a scripted one that prints like Aider (progress lines, then its token and cost
line). The workflow gets a real $0.20 cap over HTTP as it starts (its attempt is predicted at
$0.15), and the budget view shows the $0.03 spent against it. Screenshots go to the test's tmp
folder and ``$TASKORCH_SCREENS`` (default ``/work/screens``) as ``evidence-1280.png``,
``evidence-390.png`` and ``evidence-390-list.png``.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

from taskorch.cli.main import invoke
from web.fake_aider import write_fake_aider
from web.served import Served
from web.test_dashboard import CHROMIUM, CHROMIUM_ARGS

WAIT_MS = 60_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="no chromium on this machine (Debian: apt-get install chromium)",
)


def test_attempt_panel_live_output_budget_and_narrow_screen(
    serve_factory: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    home = tmp_path / "home"
    monkeypatch.delenv("DATABASE_URL", raising=False)
    release = tmp_path / "release"  # the agent works until the test has seen it at work
    script = write_fake_aider(tmp_path / "bin", pause_s=0.3, steps=2, release=release)
    _cli("--home", str(home), "agents", "add", "fake-aider", "--type", "aider",
         "--executable", str(script))  # fmt: skip
    served: Served = serve_factory(home, "--agent", "fake-aider")
    first = served.post("/api/v1/tasks", {"title": "Fix the model", "description": FIX})
    # waits for the first task: pending while the first workflow runs
    second = served.post("/api/v1/tasks", {"title": "Then the docs", "dependencies": [first["id"]]})
    workflow_id = served.workflow_of(first["id"])["workflow_id"]
    # A real cap, set while its one attempt runs: the page shows spent against it.
    served.post(f"/api/v1/workflows/{workflow_id}/budget", {"usd": 0.2})
    errors: list[str] = []
    shots: dict[str, Path] = {}
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            narrow = browser.new_page(viewport={"width": 390, "height": 844})
            narrow.on("pageerror", lambda error: errors.append(str(error)))
            narrow.goto(served.url + "/")
            narrow.wait_for_selector(f'#pending li[data-task="{second["ref"]}"]', timeout=WAIT_MS)
            narrow.wait_for_selector("#workflows tbody a", timeout=WAIT_MS)
            narrow.wait_for_selector("#workflows .pill.run", timeout=WAIT_MS)
            assert _overflow(narrow) <= 0
            shots["evidence-390-list.png"] = _shot(narrow, tmp_path, "evidence-390-list.png")

            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(f"{served.url}/workflows/{workflow_id}")
            page.wait_for_selector("#wf-state:not(:empty)", timeout=WAIT_MS)  # first render
            page.wait_for_selector('.node[data-state="running"]', timeout=WAIT_MS)
            page.click(".node[data-key]")
            live = page.wait_for_selector(
                '#panel:not([hidden]) .attempt[data-outcome="running"] #live-output',
                timeout=WAIT_MS,
            )
            assert live is not None
            seen = live.inner_text()
            # more lines arrive in the open panel while the agent works, without a reload
            page.wait_for_function(
                "seen => { const o = document.getElementById('live-output');"
                " return o && o.textContent.length > seen.length"
                " && o.textContent.includes('working: step'); }",
                arg=seen,
                timeout=WAIT_MS,
            )
            assert "Main model: openai/gpt-fake" in page.inner_text("#live-output")
            release.touch()
            done = page.wait_for_selector(
                '.attempt[data-outcome="succeeded"]', timeout=WAIT_MS
            )  # the panel follows the attempt to its end
            assert done is not None
            text = done.inner_text()
            assert "fake-aider" in text
            assert "openai/gpt-fake" in text
            assert "2500 in / 300 out tokens · $0.0300" in text
            assert "Done: the change is in." in text
            assert "+written by the fake aider" in page.inner_text(".attempt .diff")
            assert page.locator(".attempt .diff .add").count() >= 1
            # the card and the facts follow from the workflow's JSON (no need to wait for the merge)
            page.wait_for_function(
                "document.getElementById('wf-facts').textContent.includes('$0.0300')",
                timeout=WAIT_MS,
            )
            assert "$0.0300" in page.inner_text('.node[data-key="bug-001-fix"]')
            assert page.is_visible("#wf-budget")
            page.wait_for_function(
                "document.getElementById('budget-text').textContent"
                ".includes('Spent $0.0300 of $0.2000 budget')",
                timeout=WAIT_MS,
            )
            assert not page.is_visible("#budget-waiting")  # nothing more to start: no wait
            shots["evidence-1280.png"] = _shot(page, tmp_path, "evidence-1280.png")

            page.set_viewport_size({"width": 390, "height": 844})
            page.wait_for_function("document.documentElement.scrollWidth <= 390", timeout=WAIT_MS)
            shots["evidence-390.png"] = _shot(page, tmp_path, "evidence-390.png")
            page.keyboard.press("Escape")
            page.wait_for_selector("#panel", state="hidden", timeout=WAIT_MS)
            assert _overflow(page) <= 0
        finally:
            browser.close()
    assert errors == []
    for name, shot in shots.items():
        assert shot.stat().st_size > 10_000
        _publish_as(shot, name)
    served.kill()  # the second task's workflow need not run to its end


FIX = "Fix bug in app/models.py line 7"


def _overflow(page: Any) -> int:
    """How far the page is wider than its screen (0 or less: it fits)."""
    return int(page.evaluate("document.documentElement.scrollWidth - window.innerWidth"))


def _shot(page: Any, folder: Path, name: str) -> Path:
    path = folder / name
    page.screenshot(path=str(path), full_page=True)
    return path


def _cli(*argv: str) -> None:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = invoke(list(argv))
    assert code == 0, err.getvalue()


def _publish_as(shot: Path, name: str) -> None:
    folder = Path(os.environ.get("TASKORCH_SCREENS", "/work/screens"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, folder / name)
    except OSError:
        pass  # a read-only or missing place for reviews must not fail the test
