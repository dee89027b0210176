"""The dashboard end to end in headless Chromium (the system's ``chromium``, driven by Playwright):
submit a requirement through the form, follow the workflow page live until it is merged with its
DAG drawn by stage, and keep a screenshot.

The screenshot goes to the test's tmp folder and is copied to ``$TASKORCH_SCREENS`` (default
``/work/screens``) when that folder can be written, for people to look at.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from web.served import Served

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
]
AUTH_TEXT = "Add authentication system with security audit and documentation"
WAIT_MS = 120_000

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).is_file(),
    reason="no chromium on this machine (Debian: apt-get install chromium); the browser test "
    "drives the system browser",
)


def test_submit_a_requirement_and_watch_it_merge(serve_factory: Any, tmp_path: Path) -> None:
    sync_api = pytest.importorskip("playwright.sync_api")
    served: Served = serve_factory(tmp_path / "home", sim_duration_s=0.8)
    errors: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.goto(served.url + "/")
            page.fill("#requirement", AUTH_TEXT)
            page.select_option("#priority", "high")
            page.click("#submit")
            page.wait_for_url(re.compile(r"/workflows/wf-[0-9a-f]+$"), timeout=WAIT_MS)
            # Live: a subtask is seen running before the end, without reloading the page.
            page.wait_for_selector('.node[data-state="running"]', timeout=WAIT_MS)
            page.wait_for_selector('#workflow[data-state="merged"]', timeout=WAIT_MS)
            page.wait_for_selector(".live.on", timeout=WAIT_MS)

            stages = page.locator(".stage-head").all_inner_texts()
            assert [s.upper() for s in stages] == [
                "STAGE 1",
                "STAGE 2 · PARALLEL",
                "STAGE 3",
                "STAGE 4",
                "STAGE 5",
            ]
            assert page.locator('.node[data-state="completed"]').count() == 6
            assert page.locator(".edges path").count() == 6  # one per dependency
            assert "auth-002-backend" in page.locator(".stage").nth(1).inner_text()
            assert page.locator("#wf-state").inner_text() == "merged"
            assert "merged into main" in page.locator("#delivery").inner_text()
            shot = tmp_path / "dashboard.png"
            page.screenshot(path=str(shot), full_page=True)

            page.goto(served.url + "/")
            page.wait_for_selector("#workflows .pill.ok", timeout=WAIT_MS)
            assert "merged" in page.locator("#workflows tbody").inner_text()
            assert "sim" in page.locator("#agents").inner_text()
        finally:
            browser.close()
    assert errors == []
    assert shot.stat().st_size > 10_000
    _publish(shot)
    code, _, err = served.stop()
    assert code == 0, err


def test_the_dashboard_under_a_proxy_prefix(serve_factory: Any, tmp_path: Path) -> None:
    """``serve --root-path``: the page, its script, the event stream, the API calls and the
    links all stay under the prefix (here reached with the prefix kept, as a proxy may)."""
    sync_api = pytest.importorskip("playwright.sync_api")
    served: Served = serve_factory(tmp_path / "home", "--root-path", "/ops/taskorch")
    errors: list[str] = []
    asked: list[str] = []
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on("pageerror", lambda error: errors.append(str(error)))
            page.on("request", lambda request: asked.append(request.url))
            page.goto(served.url + "/ops/taskorch/")
            page.wait_for_selector(".live.on", timeout=WAIT_MS)  # the event stream connected
            page.fill("#requirement", "Fix bug in app/models.py line 7")
            page.click("#submit")
            page.wait_for_url(re.compile(r"/ops/taskorch/workflows/wf-[0-9a-f]+$"), timeout=WAIT_MS)
            page.wait_for_selector("#wf-state:not(:empty)", timeout=WAIT_MS)  # read by the API
            page.click("#crumbs a")  # back to the list, under the prefix
            page.wait_for_selector("#workflows tbody a", timeout=WAIT_MS)
            assert page.url == served.url + "/ops/taskorch/"
        finally:
            browser.close()
    assert errors == []
    assert asked
    assert all(url.startswith(served.url + "/ops/taskorch/") for url in asked), asked
    code, _, err = served.stop()
    assert code == 0, err


def _publish(shot: Path) -> None:
    folder = Path(os.environ.get("TASKORCH_SCREENS", "/work/screens"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(shot, folder / "dashboard.png")
    except OSError:
        pass  # a read-only or missing place for reviews must not fail the test
