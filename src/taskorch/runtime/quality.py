"""A quality score for each finished attempt: the share of simple, real checks it passed.

The specification's orchestrator with validation scores every attempt. Here the score is the
share of the checks that apply which the attempt passed, in [0, 1], with the checks themselves
beside it (stored in the attempt's result, the subtask's task log and ``taskorch status``):

- ``reported``: the agent reported success with some output or some change;
- ``no_failure_reported``: its output does not report a failure (a traceback, "3 tests failed",
  a line starting with ``error:``, "could not", "unable to");
- ``answered``: it did not end by asking the user a question;
- ``in_scope``: when the subtask declares its files and the changed files are known, the share of
  changed files it declared (a partial pass);
- ``touched_declared``: likewise, at least one declared file changed.

A failed attempt scores 0. No check reads a model: the score costs microseconds per attempt.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from taskorch.domain.models import JSONDict, Subtask

_FAILURE = re.compile(
    r"traceback \(most recent call last\)|\b\d+ (?:tests? )?failed\b|\btests? failed\b|"
    r"^\s*(?:error|fatal):|\bcould not\b|\bunable to\b",
    re.IGNORECASE | re.MULTILINE,
)
_FAILURE_WORDS = ("traceback", "led", "error", "fatal", "could not", "unable to")
"""Every match of ``_FAILURE`` contains one of these once lower-cased, so an output with none of
them needs no regex (most outputs: the regex cost a tenth of a worker's time per no-op attempt).
None has an i or an s: the regex's case-insensitive matches of those include characters that
``str.lower`` leaves as they are (dotless i U+0131, long s U+017F)."""


@dataclass(frozen=True, slots=True)
class Quality:
    score: float
    checks: dict[str, float]

    def to_json(self) -> JSONDict:
        return {"score": self.score, "checks": dict(self.checks)}


FAILED = Quality(0.0, {})


def attempt_quality(
    subtask: Subtask, success: bool, output: str, data: Mapping[str, Any]
) -> Quality:
    """The quality of an attempt that ended with ``success``, ``output`` and its result ``data``."""
    if not success:
        return FAILED
    changed = data.get("changed_files")
    changed_files = [str(f) for f in changed] if isinstance(changed, list) else None
    checks: dict[str, float] = {
        "reported": 1.0 if output.strip() or changed_files else 0.0,
        "no_failure_reported": 0.0 if reports_failure(output) else 1.0,
        "answered": 0.0 if data.get("question") else 1.0,
    }
    declared = set(subtask.files_affected)
    if declared and changed_files:
        inside = sum(1 for f in changed_files if f in declared)
        checks["in_scope"] = round(inside / len(changed_files), 2)
        checks["touched_declared"] = 1.0 if inside else 0.0
    return Quality(round(sum(checks.values()) / len(checks), 2), checks)


def reports_failure(output: str) -> bool:
    """Whether the end of ``output`` reports a failure (``no_failure_reported`` fails)."""
    tail = output[-20_000:]
    lowered = tail.lower()
    return any(word in lowered for word in _FAILURE_WORDS) and bool(_FAILURE.search(tail))
