"""Test-only pause points, inert unless ``TASKORCH_FAULT_PAUSE`` names the point.

A test that wants to kill -9 a real ``taskorch`` process at a given step sets
``TASKORCH_FAULT_PAUSE=<point>`` (e.g. ``base-merge:checkout``) and ``TASKORCH_FAULT_FILE=<path>``;
the process writes the point's name to that file when it gets there and then sleeps, so the test
knows where it is when it kills it.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

PAUSE_S = 3600.0


async def pause_point(name: str) -> None:
    """Pause here (for a test to kill the process) when ``TASKORCH_FAULT_PAUSE`` is ``name``."""
    if os.environ.get("TASKORCH_FAULT_PAUSE") != name:
        return
    marker = os.environ.get("TASKORCH_FAULT_FILE")
    if marker:
        await asyncio.to_thread(Path(marker).write_text, name)
    await asyncio.sleep(PAUSE_S)
