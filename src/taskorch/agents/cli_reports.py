"""What a CLI agent reports about its own run: final text, success, tokens and cost.

- ``claude-json``: Claude Code's ``--output-format json`` result object (``is_error``, ``result``,
  ``total_cost_usd``, ``usage``, ``permission_denials``, the costliest model of ``modelUsage``).
  ``subtype`` is not read: it says "success" even for API errors. Input tokens count cache
  writes and reads too. A failure is classified by ``result`` (or ``errors`` when there is no
  result, e.g. at ``--max-turns``) and ``api_error_status``, never by the whole JSON (its
  numbers).
- ``aider``: the text output without Aider's own status lines (banner, "Tokens: ...", "Applied
  edit to ...", so the text ends with what the model said: a question there is seen), with the
  "Tokens: 2.3k sent, 150 received. Cost: $0.01 message, $0.02 session." lines summed (the last
  session cost wins; Aider's counts are rounded, "2.3k") and the model of its "Main model:"
  line. Aider exits 0 when the model call failed: a ``litellm.*Error`` line with no edit
  applied is its report of failure.
- ``text``: stdout as the final text, nothing else known.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Literal

from taskorch.agents.outcome import clean_text
from taskorch.domain.models import JSONDict

ReportFormat = Literal["text", "claude-json", "aider"]


@dataclass(frozen=True, slots=True)
class AgentReport:
    text: str
    ok: bool | None = None
    """The agent's own verdict: True/False when it reports one, None when it says nothing."""
    tokens_in: int | None = None
    tokens_out: int | None = None
    cost_usd: float | None = None
    permission_denials: list[str] = field(default_factory=list)
    extra: JSONDict = field(default_factory=dict)
    evidence: str | None = None
    """What a failure is classified by when the report is structured: the agent's own words (its
    JSON's numbers, such as 401 input tokens, must not read as HTTP statuses); None: the output."""


def parse_report(kind: ReportFormat, stdout: str) -> AgentReport:
    if kind == "claude-json":
        return parse_claude(stdout)
    if kind == "aider":
        return parse_aider(stdout)
    return AgentReport(clean_text(stdout))


def parse_claude(stdout: str) -> AgentReport:
    body = _claude_result(stdout)
    if body is None:
        return AgentReport(clean_text(stdout))
    usage = body.get("usage") if isinstance(body.get("usage"), dict) else {}
    assert isinstance(usage, dict)
    tokens_in = _sum_ints(
        usage, "input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens"
    )
    tokens_out = _sum_ints(usage, "output_tokens")
    cost = body.get("total_cost_usd", body.get("cost_usd"))
    denials = body.get("permission_denials")
    keys = ("session_id", "num_turns", "duration_ms", "api_error_status")
    extra: JSONDict = {k: body[k] for k in keys if body.get(k) is not None}
    model = _claude_model(body)
    if model:
        extra["model"] = model
    errors = body.get("errors")
    # a run cut short (max turns, an execution error) has no result, only its "errors"
    said = body.get("result") or ("; ".join(map(str, errors)) if isinstance(errors, list) else "")
    text = clean_text(str(said))
    status = body.get("api_error_status")
    return AgentReport(
        text=text,
        ok=not bool(body.get("is_error")),
        tokens_in=tokens_in,
        tokens_out=tokens_out,
        cost_usd=float(cost) if isinstance(cost, int | float) else None,
        permission_denials=[_denial(d) for d in denials] if isinstance(denials, list) else [],
        extra=extra,
        evidence=f"{text} (HTTP {status})" if isinstance(status, int) else text,
    )


def _claude_result(stdout: str) -> dict[str, Any] | None:
    """The result object: the whole stdout, or the last JSON line, or the last item of an array."""
    candidates = [stdout.strip()] + [
        line.strip()
        for line in reversed(stdout.splitlines())
        if line.strip().startswith(("{", "["))
    ]
    for text in candidates:
        try:
            body = json.loads(text)
        except ValueError:
            continue
        if isinstance(body, list):
            results = [b for b in body if isinstance(b, dict) and b.get("type") == "result"]
            body = results[-1] if results else None
        if isinstance(body, dict) and ("result" in body or "is_error" in body):
            return body
    return None


def _claude_model(body: dict[str, Any]) -> str | None:
    """The model that did most of the run: ``modelUsage``'s costliest entry, else ``model``."""
    usage = body.get("modelUsage")
    if isinstance(usage, dict) and usage:

        def cost(name: str) -> float:
            entry = usage.get(name)
            spent = entry.get("costUSD") if isinstance(entry, dict) else None
            return float(spent) if isinstance(spent, int | float) else 0.0

        return str(max(usage, key=cost))
    model = body.get("model")
    return str(model) if isinstance(model, str) and model else None


def _sum_ints(body: dict[str, Any], *keys: str) -> int | None:
    values = [body[k] for k in keys if isinstance(body.get(k), int)]
    return sum(values) if values else None


def _denial(item: Any) -> str:
    if isinstance(item, dict):
        return str(item.get("tool_name") or item.get("tool") or json.dumps(item))
    return str(item)


_TOKENS = re.compile(r"Tokens: ([\d.,]+[kKmM]?) sent.*?([\d.,]+[kKmM]?) received")
_SESSION_COST = re.compile(r"Cost: \$([\d.,]+) message, \$([\d.,]+) session")


_AIDER_STATUS = re.compile(
    r"^(?:Aider v\d|Main model: |Model: |Weak model: |Editor model: |Git repo: |Repo-map: |"
    r"Analytics have been |Tokens: |Cost: |Applied edit to |Commit [0-9a-f]{7,} )"
)
_AIDER_API_ERROR = re.compile(r"^litellm\.\w+(?:Error|Exception)\b", re.MULTILINE)
_AIDER_MODEL = re.compile(r"^(?:Main model|Model): (\S+)", re.MULTILINE)
_AIDER_EDITED = re.compile(r"^(?:Applied edit to |Commit [0-9a-f]{7,} )", re.MULTILINE)


def parse_aider(stdout: str) -> AgentReport:
    error = _AIDER_API_ERROR.search(stdout)
    if _AIDER_EDITED.search(stdout):
        error = None  # an edit landed before the error: the worktree judges the run
    sent = received = 0
    found = False
    for match in _TOKENS.finditer(stdout):
        found = True
        sent += _count(match.group(1))
        received += _count(match.group(2))
    costs = _SESSION_COST.findall(stdout)
    cost = float(costs[-1][1].replace(",", "")) if costs else None
    model = _AIDER_MODEL.search(stdout)
    return AgentReport(
        _without_status(stdout),
        ok=False if error else None,
        # classified by the error, not by the "Tokens: 401 sent" of an earlier exchange
        evidence=_without_status(stdout[error.start() :]) if error else None,
        tokens_in=sent if found else None,
        tokens_out=received if found else None,
        cost_usd=cost,
        extra={"model": model.group(1)} if model else {},
    )


def _without_status(text: str) -> str:
    return clean_text("\n".join(x for x in text.splitlines() if not _AIDER_STATUS.match(x)))


def _count(text: str) -> int:
    """Aider's token counts: ``950``, ``2.3k``, ``12k``, ``1.2M``."""
    text = text.replace(",", "")
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1].lower(), 1)
    number = text[:-1] if scale > 1 else text
    return round(float(number) * scale)
